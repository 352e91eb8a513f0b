using System.Numerics;
using System.Runtime.CompilerServices;

namespace Shm.Interop;

/// <summary>
/// Where everything of a <see cref="SharedChannel"/> lives: one header, then one lane per writer,
/// each lane a single-writer ring. Documented for C in <c>include/shm/shm.h</c>; any change here is
/// a new <see cref="Version"/>.
/// </summary>
internal static class ChannelLayout
{
    /// <summary>The channel's layout version, stored with its kind in the primitive's second word.</summary>
    /// <remarks>2: lane generation and final head words; a record's second word is a check of its position and length.</remarks>
    public const int Version = PrimitiveKinds.ChannelLayoutVersion;

    public const int HeaderSize = 256;
    public const int LaneHeaderSize = 256;
    public const int RecordHeaderSize = 8;
    public const int RecordAlignment = 8;

    /// <summary>The smallest lane: a page.</summary>
    public const int MinimumLaneCapacity = 4096;

    /// <summary>The largest lane: 1 GiB.</summary>
    public const int MaximumLaneCapacity = 1 << 30;

    public const int MaximumWriters = 64;

    // Header (bytes). Words 0 and 1 are the SharedPrimitive state and kind/version.
    public const int Lanes = 8;            // u32
    public const int Closed = 12;          // u32: 1 once the reader saw the end
    public const int LaneCapacity = 16;    // u64, a power of two
    public const int ReaderPid = 24;       // i32
    public const int EverWritten = 28;     // u32: 1 once any writer attached
    public const int ReaderStart = 32;     // i64: the reader's start time
    public const int ReaderSequence = 64;  // u32 futex: bumped by a writer that publishes while the reader sleeps
    public const int ReaderSleeping = 68;  // u32

    // Lane header (bytes from the lane).
    public const int Head = 0;             // u64: bytes committed by the writer
    public const int WriterPid = 8;        // i32: 0 = free lane
    public const int LaneState = 12;       // u32: see LaneStates
    public const int WriterStart = 16;     // i64
    public const int Generation = 24;      // u32: bumped by every writer that attaches, which keeps its value
    public const int FinalHead = 32;       // u64: the head when the writer completed
    public const int Tail = 64;            // u64: bytes released by the reader
    public const int SpaceSequence = 128;  // u32 futex: bumped by the reader that frees space while the writer sleeps
    public const int WriterSleeping = 132; // u32

    /// <summary>Bit 0 of a record's check word: a padding record, which fills the ring to its end.</summary>
    public const uint Padding = 1;

    /// <summary>
    /// A stream position (head or tail) is a multiple of 8 and below 2^63: a value with any of these
    /// bits set is corrupt. One test covers both rules.
    /// </summary>
    public const long PositionMustBeClear = unchecked((long)0x8000_0000_0000_0007);

    public static long LaneStride(long capacity) => LaneHeaderSize + capacity;

    public static long RequiredLength(long capacity, int writers) => HeaderSize + (writers * LaneStride(capacity));

    public static bool IsValidCapacity(long capacity) =>
        capacity is >= MinimumLaneCapacity and <= MaximumLaneCapacity && BitOperations.IsPow2(capacity);

    public static int Align(int length) => (length + RecordAlignment - 1) & ~(RecordAlignment - 1);

    /// <summary>
    /// A record's second header word: a hash of where the record starts in the lane's stream, its
    /// length and whether it is padding, with bit 0 the padding bit. A record header that was
    /// overwritten, shortened, or left over from an earlier lap of the ring does not match, so the
    /// reader never hands out a torn or replayed message. Two multiplications: cheap beside the copy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Check(long position, uint length, uint padding)
    {
        ulong z = unchecked(((ulong)position ^ (length * 0x9E37_79B9_7F4A_7C15UL) ^ padding) * 0xD6E8_FEB8_6659_FD93UL);
        return ((uint)(z >> 32) & ~Padding) | padding;
    }

    /// <summary>A record header as one 8-byte word (length low, check high), written or read in one access.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong RecordHeader(long position, uint length, uint padding) => length | ((ulong)Check(position, length, padding) << 32);
}

/// <summary>A lane's life.</summary>
internal static class LaneStates
{
    public const int Free = 0;
    public const int Attached = 1;
    public const int Completed = 2;
}
