using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

// How records go into the ring: room is found behind the head (padding first where a record would
// cross the ring's end), the bytes and the record header are written, then the head is published.
// The lane's tail is the only value read from the reader's side, and it is checked each time.
public sealed partial class SharedChannelWriter
{
    internal unsafe void Commit(byte* target, int reserved, int length)
    {
        ThrowIfUnusable();
        if (_loan < 0 || target != _data + ((_head + ChannelLayout.RecordHeaderSize) & _mask))
        {
            throw new InvalidOperationException("This loan was committed already, or is not the writer's current one.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, reserved);
        if (!OwnsLane())
        {
            _loan = -1;
            throw TakenOver(); // the loan may have been long: look again before publishing
        }
        Publish(length);
    }

    private void CheckLength(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > MaxMessageLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"A message of this channel holds at most {MaxMessageLength} bytes (its lane capacity less an 8-byte header).");
        }
    }

    /// <summary>
    /// Finds room for a record of <paramref name="length"/> bytes at the head; returns where the
    /// message's bytes go, or null if the lane is full. A record that would cross the end of the ring
    /// needs padding first: as soon as the padding fits, it is published on its own (the reader
    /// skips it and gives its space back), and the record then waits for room at the start of the
    /// ring. So any message up to <see cref="MaxMessageLength"/> fits once the reader drained the lane.
    /// </summary>
    private unsafe byte* ReserveRecord(int length)
    {
        ThrowIfUnusable();
        CheckLength(length);
        if (_loan >= 0)
        {
            throw new InvalidOperationException("A loan is still open on this writer: commit it first.");
        }
        CheckClosed(joining: false);
        if (!OwnsLane())
        {
            throw TakenOver();
        }
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        if (offset + record > _capacity)
        {
            long padding = _capacity - offset;
            if (!HasRoomFor(padding))
            {
                return Full();
            }
            *(ulong*)(_data + offset) = ChannelLayout.RecordHeader(_head, (uint)(padding - ChannelLayout.RecordHeaderSize), ChannelLayout.Padding);
            PublishHead(_head + padding);
            offset = 0;
        }
        if (!HasRoomFor(record))
        {
            return Full();
        }
        _loan = length;
        return _data + offset + ChannelLayout.RecordHeaderSize;
    }

    /// <summary>True if <paramref name="bytes"/> more fit behind the head. The reader's tail is another core's cache line: read only when the last one seen leaves no room.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HasRoomFor(long bytes) =>
        _head + bytes - _tailSeen <= _capacity || _head + bytes - (_tailSeen = ReadTail()) <= _capacity;

    /// <summary>True if a message of <paramref name="length"/> bytes can make progress: its padding, if it needs one, or itself fits.</summary>
    private bool HasRoom(int length)
    {
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        return HasRoomFor(offset + record > _capacity ? _capacity - offset : record);
    }

    /// <summary>The lane's tail, read once and checked: a multiple of 8, not ahead of the head, at most a ring behind it.</summary>
    private long ReadTail()
    {
        long tail = Volatile.Read(ref _lane.Tail);
        if ((tail & ChannelLayout.PositionMustBeClear) != 0 || (ulong)(_head - tail) > (ulong)_capacity)
        {
            throw BadTail(tail);
        }
        return tail;
    }

    // The record's bytes are written: its header goes in (one 8-byte store, so a reader that was
    // shown a head too far never takes a record before its commit), then the head is published.
    private unsafe void Publish(int length)
    {
        *(ulong*)(_data + (_head & _mask)) = ChannelLayout.RecordHeader(_head, (uint)length, 0);
        _loan = -1;
        PublishHead(_head + ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length));
    }

    /// <summary>
    /// Publishes the head (a full fence, so the check of the reader's sleep flag cannot pass it) and
    /// wakes the reader only if it sleeps. The exchange expects the head this writer published last:
    /// any other value means another process wrote it.
    /// </summary>
    private unsafe void PublishHead(long head)
    {
        long seen = Interlocked.CompareExchange(ref _lane.Head, head, _head);
        if (seen != _head)
        {
            throw BadHead(seen);
        }
        _head = head;
        FutexParker.WakeIfSleeping(_header.ReaderSequence, _header.ReaderSleeping);
    }
}
