using System;
using System.Buffers.Binary;

namespace Shm.Interop.Tests.Bridge;

/// <summary>
/// Test messages of 64 bytes that carry their own number and checksum: the writer's id and the
/// sequence number, filler derived from them, and an FNV-1a hash of the first 56 bytes, so a reader
/// tells a lost, repeated, reordered or damaged message apart.
/// </summary>
internal static class Stamped
{
    public const int Length = 64;

    public static void Fill(Span<byte> message, long writer, long sequence)
    {
        BinaryPrimitives.WriteInt64LittleEndian(message, writer);
        BinaryPrimitives.WriteInt64LittleEndian(message[8..], sequence);
        for (int i = 16; i < 56; i++)
        {
            message[i] = (byte)(sequence * 31 + i);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(message[56..], Hash(message[..56]));
    }

    /// <summary>The sequence number of a sound message from <paramref name="writer"/>; throws for anything else.</summary>
    public static long Check(ReadOnlySpan<byte> message, long writer)
    {
        if (message.Length != Length)
        {
            throw new InvalidOperationException($"a message of {message.Length} bytes; {Length} were written");
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(message[56..]) != Hash(message[..56]))
        {
            throw new InvalidOperationException($"message {BinaryPrimitives.ReadInt64LittleEndian(message[8..])}: checksum mismatch");
        }
        long from = BinaryPrimitives.ReadInt64LittleEndian(message);
        return from == writer ? BinaryPrimitives.ReadInt64LittleEndian(message[8..]) : throw new InvalidOperationException($"a message from writer {from}, not {writer}");
    }

    private static ulong Hash(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 14695981039346656037;
        foreach (byte b in bytes)
        {
            hash = (hash ^ b) * 1099511628211;
        }
        return hash;
    }
}
