using System;
using System.Buffers.Binary;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>
/// A channel's bytes as <c>include/shm/shm.h</c> documents them, for tests that play a peer writing
/// raw values: the tests know the layout only from the documentation, as a C peer does.
/// </summary>
internal sealed class ChannelBytes(SharedRegion region, long offset, long capacity)
{
    public const int HeaderSize = 256;
    public const int LaneHeaderSize = 256;

    // Channel header.
    public const int State = 0;
    public const int KindVersion = 4;
    public const int Lanes = 8;
    public const int Closed = 12;
    public const int Capacity = 16;
    public const int ReaderPid = 24;
    public const int EverWritten = 28;
    public const int ReaderStart = 32;
    public const int ReaderSequence = 64;
    public const int ReaderSleeping = 68;

    // Lane header.
    public const int Head = 0;
    public const int WriterPid = 8;
    public const int LaneState = 12;
    public const int WriterStart = 16;
    public const int Generation = 24;
    public const int FinalHead = 32;
    public const int Tail = 64;
    public const int SpaceSequence = 128;
    public const int WriterSleeping = 132;

    public SharedRegion Region => region;

    /// <summary>Where the channel starts in the region.</summary>
    public long Offset => offset;

    public long LaneCapacity => capacity;

    /// <summary>Region offset of lane <paramref name="lane"/>'s header.</summary>
    public long LaneAt(int lane) => offset + HeaderSize + (lane * (LaneHeaderSize + capacity));

    /// <summary>Region offset of lane <paramref name="lane"/>'s ring.</summary>
    public long RingAt(int lane) => LaneAt(lane) + LaneHeaderSize;

    public long ReadLane(int lane, int field) => Volatile.Read(ref region.As<long>(LaneAt(lane) + field));

    public int ReadLane32(int lane, int field) => Volatile.Read(ref region.As<int>(LaneAt(lane) + field));

    public void WriteLane(int lane, int field, long value) => Volatile.Write(ref region.As<long>(LaneAt(lane) + field), value);

    public void WriteLane32(int lane, int field, int value) => Volatile.Write(ref region.As<int>(LaneAt(lane) + field), value);

    public void WriteHeader32(int field, int value) => Volatile.Write(ref region.As<int>(offset + field), value);

    public void WriteHeader(int field, long value) => Volatile.Write(ref region.As<long>(offset + field), value);

    public int ReadHeader32(int field) => Volatile.Read(ref region.As<int>(offset + field));

    /// <summary>Makes lane <paramref name="lane"/> look attached by process <paramref name="pid"/> (start time 0: any live process with that pid).</summary>
    public void Attach(int lane, int pid)
    {
        WriteLane32(lane, WriterPid, pid);
        WriteLane32(lane, LaneState, 1);
        WriteHeader32(EverWritten, 1);
    }

    /// <summary>Sets a lane's head and tail, as a peer that used it before would have left them.</summary>
    public void Position(int lane, long tail, long head)
    {
        WriteLane(lane, Tail, tail);
        WriteLane(lane, Head, head);
    }

    /// <summary>
    /// Writes a record header at stream position <paramref name="position"/> of the lane, with the
    /// check word the layout prescribes for it (or <paramref name="check"/> if given).
    /// </summary>
    public void WriteRecord(int lane, long position, uint length, bool padding, uint? check = null)
    {
        long at = RingAt(lane) + (position & (capacity - 1));
        region.Write(at, length);
        region.Write(at + 4, check ?? Check(position, length, padding));
    }

    /// <summary>Writes message <paramref name="index"/> (as <see cref="Messages.Of"/>) as a committed-looking record at <paramref name="position"/>; returns the next position.</summary>
    public long WriteMessage(int lane, long position, int index, int length)
    {
        byte[] bytes = Messages.Of(index, length);
        WriteRecord(lane, position, (uint)length, padding: false);
        bytes.CopyTo(region.AsSpan(RingAt(lane) + (position & (capacity - 1)) + 8, length));
        return position + 8 + ((length + 7) & ~7);
    }

    /// <summary>The record header's second word, as shm.h defines it: a hash of the record's stream position, length and padding bit, with bit 0 the padding bit.</summary>
    public static uint Check(long position, uint length, bool padding)
    {
        ulong pad = padding ? 1UL : 0UL;
        ulong z = unchecked(((ulong)position ^ (length * 0x9E3779B97F4A7C15UL) ^ pad) * 0xD6E8FEB86659FD93UL);
        return ((uint)(z >> 32) & ~1u) | (uint)pad;
    }
}

/// <summary>Messages that carry their own proof: an index, its complement, and bytes derived from both, so any torn, shifted or invented message is seen.</summary>
internal static class Messages
{
    public const int MinimumLength = 8;

    /// <summary>Message <paramref name="index"/> of <paramref name="length"/> bytes (at least 8).</summary>
    public static byte[] Of(int index, int length)
    {
        var bytes = new byte[length];
        Fill(index, bytes);
        return bytes;
    }

    public static void Fill(int index, Span<byte> bytes)
    {
        BinaryPrimitives.WriteInt32LittleEndian(bytes, index);
        BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], ~index ^ bytes.Length);
        for (int i = 8; i < bytes.Length; i++)
        {
            bytes[i] = (byte)((index * 31) + (i * 7) + (i >> 8));
        }
    }

    /// <summary>True if <paramref name="message"/> is exactly a message this class made; its index.</summary>
    public static bool IsIntact(ReadOnlySpan<byte> message, out int index)
    {
        index = -1;
        if (message.Length < MinimumLength)
        {
            return false;
        }
        index = BinaryPrimitives.ReadInt32LittleEndian(message);
        if (BinaryPrimitives.ReadInt32LittleEndian(message[4..]) != (~index ^ message.Length))
        {
            return false;
        }
        for (int i = 8; i < message.Length; i++)
        {
            if (message[i] != (byte)((index * 31) + (i * 7) + (i >> 8)))
            {
                return false;
            }
        }
        return true;
    }
}
