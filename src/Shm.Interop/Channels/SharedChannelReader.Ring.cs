using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

// How records come out of a lane's ring: the head read once per visit and checked, the record header
// read once as one word and checked against its position, length and padding bit, at most one padding
// record skipped; then, when the message is disposed, the tail published.
public sealed partial class SharedChannelReader
{
    /// <summary>Takes the next message of lane <paramref name="index"/>, skipping at most one padding record.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe bool TryTake(int index, out ReceivedMessage message)
    {
        message = default;
        LaneView lane = Lane(index);
        long tail = _tails[index];
        long head = Volatile.Read(ref lane.Head); // once per visit
        if (head == tail)
        {
            return false;
        }
        CheckHead(index, lane, head, tail);
        byte* ring = lane.Ring;
        long offset = tail & _mask;
        ulong header = Volatile.Read(ref *(ulong*)(ring + offset));
        if (((uint)(header >> 32) & ChannelLayout.Padding) != 0)
        {
            // Padding fills the ring from a non-zero offset exactly to its end; the next record starts at 0.
            if (offset == 0 || (uint)header != _capacity - offset - ChannelLayout.RecordHeaderSize || head - tail < _capacity - offset
                || header != ChannelLayout.RecordHeader(tail, (uint)header, ChannelLayout.Padding))
            {
                throw BadPadding(index, ring, offset, header);
            }
            tail += _capacity - offset;
            Publish(index, lane, tail); // its space goes back now: a writer may be waiting to wrap
            if (head == tail)
            {
                return false;
            }
            offset = 0;
            header = Volatile.Read(ref *(ulong*)ring);
            if (((uint)(header >> 32) & ChannelLayout.Padding) != 0)
            {
                throw BadPadding(index, ring, offset, header); // at most one padding skip per record
            }
        }
        uint length = (uint)header;
        long size = ChannelLayout.RecordHeaderSize + (((long)length + ChannelLayout.RecordAlignment - 1) & ~(ChannelLayout.RecordAlignment - 1L));
        if (offset + size > _capacity || size > head - tail)
        {
            throw BadLength(index, ring, offset, length, head - tail);
        }
        if (header != ChannelLayout.RecordHeader(tail, length, 0))
        {
            throw BadCheck(index, ring, offset, tail, length, header);
        }
        _pendingLane = index;
        _pendingEnd = tail + size;
        _nextLane = index + 1 == _laneCount ? 0 : index + 1;
        message = new ReceivedMessage(this, ring + offset + ChannelLayout.RecordHeaderSize, (int)length, ++_taken);
        return true;
    }

    /// <summary>A head is a multiple of 8 below 2^63, at most a ring ahead of the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckHead(int index, LaneView lane, long head, long tail)
    {
        if ((head & ChannelLayout.PositionMustBeClear) != 0 || (ulong)(head - tail) > (ulong)_capacity)
        {
            throw BadHead(index, lane, head, tail);
        }
    }

    /// <summary>
    /// Publishes lane <paramref name="index"/>'s tail (a full fence before the check of the writer's
    /// sleep flag) and wakes the writer only if it sleeps. The exchange expects the value this
    /// reader published last: any other means another process wrote the tail, and the writer may
    /// have overwritten messages on its word.
    /// </summary>
    private unsafe void Publish(int index, LaneView lane, long tail)
    {
        long published = _tails[index];
        long seen = Interlocked.CompareExchange(ref lane.Tail, tail, published);
        if (seen != published)
        {
            throw BadTail(index, lane, seen, published);
        }
        _tails[index] = tail;
        FutexParker.WakeIfSleeping(lane.SpaceSequence, lane.WriterSleeping);
    }

    // The reports, out of line: the paths that take messages stay small.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadHead(int index, LaneView lane, long head, long tail) =>
        Corrupt("channel lane head", index, lane.At(ChannelLayout.Head), head, $"a multiple of 8 from the tail {tail} to {tail + _capacity} (one ring ahead)");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadPadding(int index, byte* ring, long offset, ulong header) =>
        Corrupt("channel padding record", index, ring + offset, (long)header, offset == 0
            ? "a record at the start of the ring: padding is never there (nor after padding)"
            : $"padding from offset {offset} to the ring's end (length {_capacity - offset - ChannelLayout.RecordHeaderSize} in the low word), inside the head, with its check word");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadLength(int index, byte* ring, long offset, uint length, long committed) =>
        Corrupt("channel record length", index, ring + offset, length,
            $"a record inside the ring ({_capacity - offset - ChannelLayout.RecordHeaderSize} bytes to its end) and inside the head ({committed - ChannelLayout.RecordHeaderSize} bytes committed)");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadCheck(int index, byte* ring, long offset, long position, uint length, ulong header) =>
        Corrupt("channel record check", index, ring + offset + 4, (long)(header >> 32),
            $"0x{ChannelLayout.Check(position, length, 0):X8}, the check of a {length}-byte record at stream position {position} (a record of an earlier lap, a header rewritten, or one never committed)");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadTail(int index, LaneView lane, long seen, long published) =>
        Corrupt("channel lane tail", index, lane.At(ChannelLayout.Tail), seen, $"{published}, the tail this reader published last (only the reader writes it)");
}
