using System.Threading;

namespace Shm.Interop;

/*
 * A BLACKBOARD SERVICE (kind 3) in the service segment of ServiceLayout.cs (same header, handle table,
 * naming, create/open race and last-leaver removal). Documented for C in include/shm/shm.h, section
 * "Blackboard".
 *
 *   [0, 4096)        header; configuration at 64: u32 keys (1..2^20), 68 u32 value size (1..2^20),
 *                    with keys x entry stride at most 2^30
 *   [4096, 8192)     handle table
 *   8192             writer slot (64 bytes): u64 owner word (attaching, attached; 0 free)
 *   8256             entries: keys x EntryStride, EntryStride = align64(16 + value size), entry k at 8256 + k x stride
 *   the segment's size is the end of the last entry rounded up to 4096
 *
 * ENTRY
 *    0 u32 sequence   even: the value is stable; odd: a write is in flight. 0: never written (the value is zeros)
 *    4 u32 waiters    readers asleep on the sequence (futex): the writer wakes them only if this is not 0
 *    8 u32 torn by    the pid of a writer that died in the middle of writing this value, or 0
 *   16 the value     (value size bytes)
 *
 * PROTOCOL (a seqlock per entry: a writer never waits for readers, a reader never sees a torn value)
 * - One writer at a time: it takes the writer slot by compare-and-swap (0, or an owner whose process
 *   died, to attaching; then attached). A taker that replaces a dead writer first repairs the entries
 *   that writer left odd: it writes the dead writer's pid to `torn by` and makes the sequence even, so
 *   readers of that entry are told which process left it half written until a new value is written.
 * - Write: sequence = s + 1 (full fence), `torn by` = 0, the value, sequence = s + 2 (full fence), then
 *   a futex wake of the sequence if `waiters` is not 0. The writer keeps each sequence privately and
 *   never reads one back.
 * - Read: s1 = sequence (acquire); if odd, retry; copy the value and `torn by`; read fence; s2 =
 *   sequence; if s1 != s2, retry. Retries are bounded: a reader that keeps failing looks at the writer
 *   slot (a free slot or a dead owner with the sequence still odd: reported) and sleeps on the
 *   sequence (waiters + 1) in slices, up to its timeout or cancellation.
 */

/// <summary>Where everything of one blackboard lives, computed once from its configuration (never from shared memory).</summary>
internal sealed class BlackboardLayout
{
    public const int WriterSlot = 8192;
    public const int EntriesOffset = 8256;
    public const int KeysAt = 64;
    public const int ValueSizeAt = 68;
    public const int Sequence = 0;
    public const int Waiters = 4;
    public const int TornBy = 8;
    public const int Value = 16;
    public const int EntryHeaderBytes = 16;
    public const int MaxKeys = 1 << 20;
    public const int MaxValueSize = 1 << 20;
    public const long MaxEntriesBytes = 1L << 30;
    public const string KeysField = "keys";
    public const string ValueSizeField = "value size";

    public BlackboardLayout(int keys, int valueSize)
    {
        Keys = keys;
        ValueSize = valueSize;
        Stride = StrideOf(valueSize);
        TotalBytes = (EntriesOffset + (keys * Stride) + ServiceLayout.PageSize - 1) & ~(long)(ServiceLayout.PageSize - 1);
    }

    public int Keys { get; }

    public int ValueSize { get; }

    public long Stride { get; }

    public long TotalBytes { get; }

    public long Entry(int key) => EntriesOffset + (key * Stride);

    private static long StrideOf(int valueSize) => ServiceLayout.Align64(EntryHeaderBytes + (long)valueSize);

    /// <summary>Why a configuration cannot exist (the field, its value, what was expected), or null.</summary>
    public static string? Check(int keys, int valueSize, out string field, out long value, out string expected)
    {
        (field, value, expected) = keys is < 1 or > MaxKeys ? (KeysField, keys, "1 to 1048576")
            : valueSize is < 1 or > MaxValueSize ? (ValueSizeField, valueSize, "1 to 1048576 bytes")
            : keys * StrideOf(valueSize) > MaxEntriesBytes ? (KeysField, keys, $"at most {MaxEntriesBytes / StrideOf(valueSize)} entries of {StrideOf(valueSize)} bytes (1 GiB in all)")
            : ("", 0, "");
        return field.Length == 0 ? null : $"{field} is {value}; expected {expected}";
    }

    public static unsafe void Write(byte* header, BlackboardConfig config)
    {
        *(int*)(header + KeysAt) = config.Keys;
        *(int*)(header + ValueSizeAt) = config.ValueSize;
    }

    /// <summary>The stored configuration, each field read once and checked, and the layout it makes checked against the segment's size; false (and why) if it cannot be.</summary>
    public static unsafe bool Read(byte* header, long length, out BlackboardConfig? config, out BlackboardLayout? layout, out string field, out long offset, out long value, out string expected)
    {
        int keys = Volatile.Read(ref *(int*)(header + KeysAt));
        int valueSize = Volatile.Read(ref *(int*)(header + ValueSizeAt));
        config = null;
        layout = null;
        offset = 0;
        if (Check(keys, valueSize, out field, out value, out expected) is not null)
        {
            offset = field == KeysField ? KeysAt : ValueSizeAt;
            return false;
        }
        var made = new BlackboardLayout(keys, valueSize);
        if (made.TotalBytes != length)
        {
            (field, offset, value, expected) = ("size", ServiceLayout.SegmentBytes, length, $"{made.TotalBytes} bytes, what its configuration lays out");
            return false;
        }
        layout = made;
        config = new BlackboardConfig { Keys = keys, ValueSize = valueSize };
        return true;
    }

    /// <summary>As <see cref="Read(byte*, long, out BlackboardConfig?, out BlackboardLayout?, out string, out long, out long, out string)"/> for a joined segment: corruption throws.</summary>
    public static unsafe (BlackboardConfig Config, BlackboardLayout Layout) Read(ServiceSegment segment) =>
        Read(segment.Base, segment.Length, out BlackboardConfig? config, out BlackboardLayout? layout, out string field, out long offset, out long value, out string expected)
            ? (config!, layout!)
            : throw segment.Corrupt($"blackboard configuration {field}", offset, value, expected);
}
