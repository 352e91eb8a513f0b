using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A walk over the records of a publisher's pool as its publisher last published them (from the pool's
/// tail to its head), every header checked. Safe only where nothing reclaims meanwhile: a dead or
/// departed publisher's pool under the cleanup lock, or a reading that tolerates a moving pool (a
/// listing, which stops at the first record that does not check).
/// </summary>
internal sealed unsafe class PoolWalk
{
    private readonly byte* _slot;
    private readonly byte* _pool;
    private readonly long _poolOffset;
    private readonly PubSubLayout _layout;
    private readonly uint _generation;
    private readonly long _tail;
    private readonly long _head;
    private long _position;

    public PoolWalk(byte* @base, PubSubLayout layout, int p)
    {
        _layout = layout;
        _slot = @base + layout.PublisherSlot(p);
        _poolOffset = layout.Pool(p);
        _pool = @base + _poolOffset;
        _generation = Volatile.Read(ref *(uint*)(_slot + ServiceLayout.Generation));
        _tail = Volatile.Read(ref *(long*)(_slot + ServiceLayout.PoolTail));
        _head = Volatile.Read(ref *(long*)(_slot + ServiceLayout.PoolHead));
        _position = _tail;
        Index = p;
        if ((_tail & 63) != 0 || (_head & 63) != 0 || _tail < 0 || (ulong)(_head - _tail) > (ulong)layout.PoolBytes)
        {
            Problem = ($"pool positions", layout.PublisherSlot(p) + ServiceLayout.PoolHead, _head, $"a multiple of 64 at most {layout.PoolBytes} bytes ahead of the tail {_tail}");
        }
    }

    public int Index { get; }

    /// <summary>Bytes between the pool's tail and head: records not yet reclaimed.</summary>
    public long Allocated => Problem is null ? _head - _tail : 0;

    /// <summary>The last sample record walked so far (not padding), or null.</summary>
    public byte* Newest { get; private set; }

    /// <summary>The sequence of <see cref="Newest"/>, as its checked header says.</summary>
    public long NewestSequence { get; private set; }

    /// <summary>The first impossible value met: structure, offset from the segment's start, value, expectation.</summary>
    public (string Structure, long Offset, long Value, string Expected)? Problem { get; private set; }

    /// <summary>The next record; false at the head or at the first record that does not check (<see cref="Problem"/>).</summary>
    public bool Next(out byte* record, out long size, out bool padding)
    {
        record = null;
        size = 0;
        padding = false;
        if (Problem is not null || _position >= _head)
        {
            return false;
        }
        long offset = _position % _layout.PoolBytes;
        byte* at = _pool + offset;
        uint flags = Volatile.Read(ref *(uint*)(at + ServiceLayout.Flags));
        uint length = Volatile.Read(ref *(uint*)(at + ServiceLayout.Length));
        long sequence = Volatile.Read(ref *(long*)(at + ServiceLayout.Sequence));
        uint check = Volatile.Read(ref *(uint*)(at + ServiceLayout.Check));
        padding = flags == ServiceLayout.Padding;
        size = padding ? _layout.PoolBytes - offset : ServiceLayout.RecordBytes(length);
        if ((flags & ~ServiceLayout.Padding) != 0 || (padding ? length != size - ServiceLayout.RecordHeaderBytes || offset == 0 : length > _layout.MaxPayload)
            || offset + size > _layout.PoolBytes || _position + size > _head
            || check != ServiceLayout.CheckOf(offset, length, sequence, _generation, flags))
        {
            Problem = ("sample record", _poolOffset + offset, length, $"a record inside the pool and before its head ({_head - _position} bytes), with the check word of its position, length, sequence and generation");
            return false;
        }
        record = at;
        _position += size;
        if (!padding)
        {
            Newest = at;
            NewestSequence = sequence;
        }
        return true;
    }

    /// <summary>Clears <paramref name="bits"/> in every record's mask; true if some record is still referenced. Throws on a record that does not check.</summary>
    public bool ClearBits(ulong bits, ServiceSegment segment)
    {
        bool referenced = false;
        while (Next(out byte* record, out _, out bool padding))
        {
            if (padding)
            {
                continue;
            }
            ulong mask = Interlocked.And(ref *(ulong*)(record + ServiceLayout.Mask), ~bits) & ~bits;
            if ((mask & ~_layout.SubscriberBits) != 0)
            {
                throw segment.Corrupt("sample mask", _poolOffset + (record - _pool), (long)mask, $"bits of the {_layout.MaxSubscribers} subscriber slots only", Index);
            }
            referenced |= mask != 0;
        }
        if (Problem is { } problem)
        {
            throw segment.Corrupt(problem.Structure, problem.Offset, problem.Value, problem.Expected, Index);
        }
        return referenced;
    }
}
