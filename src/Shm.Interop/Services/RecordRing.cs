namespace Shm.Interop;

/// <summary>
/// A publisher's private list of the records in its pool, oldest first: where each starts, how many
/// bytes it takes, and its sequence (0 for padding). The publisher walks this, never the headers in
/// shared memory, to know where records begin, so a peer that rewrites a header cannot move its walk.
/// </summary>
internal struct RecordRing
{
    private Entry[] _entries;
    private int _oldest;

    public RecordRing() => _entries = new Entry[64];

    public int Count { get; private set; }

    public readonly ref Entry Oldest => ref _entries[_oldest];

    public readonly ref Entry Newest => ref _entries[(_oldest + Count - 1) & (_entries.Length - 1)];

    /// <summary>The <paramref name="i"/>-th record from the oldest.</summary>
    public readonly ref Entry this[int i] => ref _entries[(_oldest + i) & (_entries.Length - 1)];

    public void Add(long position, long size, long sequence)
    {
        if (Count == _entries.Length)
        {
            var grown = new Entry[_entries.Length * 2];
            for (int i = 0; i < Count; i++)
            {
                grown[i] = this[i];
            }
            _entries = grown;
            _oldest = 0;
        }
        _entries[(_oldest + Count) & (_entries.Length - 1)] = new Entry(position, size, sequence);
        Count++;
    }

    public void RemoveOldest()
    {
        _oldest = (_oldest + 1) & (_entries.Length - 1);
        Count--;
    }

    public void RemoveNewest() => Count--;

    public void Clear()
    {
        _oldest = 0;
        Count = 0;
    }

    /// <summary>One record: <paramref name="Position"/> in the pool's stream of bytes, <paramref name="Size"/> with header and alignment.</summary>
    internal record struct Entry(long Position, long Size, long Sequence)
    {
        public readonly bool IsPadding => Sequence == 0;
    }
}
