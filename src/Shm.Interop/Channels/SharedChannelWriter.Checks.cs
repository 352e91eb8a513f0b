using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Channels;

namespace Shm.Interop;

// What the writer checks around its writes: that the lane still names it, that its reader lives and
// has not closed the stream, that it is still usable; how it completes its lane; how it reports corruption.
public sealed partial class SharedChannelWriter
{
    /// <summary>True if the lane still names this writer: its pid and the generation it took when it attached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool OwnsLane() =>
        Volatile.Read(ref _lane.WriterPid) == _pid && Volatile.Read(ref _lane.Generation) == _generation;

    /// <summary>Marks this writer completed and, if the lane is still its own, publishes the final head and the completed state; false if it was not.</summary>
    private unsafe bool CompleteLane()
    {
        _completed = true;
        _loan = -1;
        if (!OwnsLane())
        {
            return false;
        }
        Volatile.Write(ref _lane.FinalHead, _head);
        Volatile.Write(ref _lane.State, LaneStates.Completed);
        Interlocked.MemoryBarrier();
        FutexParker.WakeIfSleeping(_header.ReaderSequence, _header.ReaderSleeping);
        return true;
    }

    // Full. Whether the reader lives is a read of /proc: ask at most every 50 ms, not on every spin.
    private unsafe byte* Full()
    {
        long now = Stopwatch.GetTimestamp();
        if (now - _readerCheckedAt >= Stopwatch.Frequency / 20)
        {
            _readerCheckedAt = now;
            ThrowIfReaderDied();
            long head = Volatile.Read(ref _lane.Head);
            if (head != _head)
            {
                throw BadHead(head); // waiting, look: a head rewritten would stall the reader silently
            }
        }
        return null;
    }

    private unsafe void ThrowIfReaderDied()
    {
        int reader = Volatile.Read(ref _header.ReaderPid);
        if (reader < 0)
        {
            throw Corrupt("channel reader pid", _header.At(ChannelLayout.ReaderPid), reader, "0 (no reader) or a pid", lane: false);
        }
        long started = Volatile.Read(ref _header.ReaderStart);
        if (reader != 0 && !PeerIdentity.IsAlive(reader, started))
        {
            ShmDiagnostics.DeadPeer("channel_reader", reader);
            throw new ChannelClosedException($"The channel's reader, process {reader}, died; nothing will take these messages.");
        }
        CheckClosed(joining: false);
    }

    private unsafe void CheckClosed(bool joining)
    {
        int closed = Volatile.Read(ref _header.Closed);
        if (closed != 0)
        {
            throw closed == 1
                ? new ChannelClosedException(joining ? "The channel's reader already saw the end of the stream: no writer may join." : "The channel's reader saw the end of the stream.")
                : Corrupt("channel closed flag", _header.At(ChannelLayout.Closed), closed, "0 or 1", lane: false);
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            throw new ChannelClosedException("This writer completed: it writes nothing more.");
        }
        _channel.EnsureUsable();
        if (_corruption is not null)
        {
            ExceptionDispatchInfo.Throw(_corruption);
        }
    }

    private ChannelClosedException TakenOver() => new(
        $"Lane {LaneIndex} no longer names this writer (process {_pid}, attach generation {_generation}): the reader took it for dead or completed and gave the lane to another writer. Every message it committed before was delivered; it writes nothing more there.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadTail(long tail) =>
        Corrupt("channel lane tail", _lane.At(ChannelLayout.Tail), tail, $"a multiple of 8 from {_head - _capacity} (one ring behind the head) to the head {_head}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadHead(long head) =>
        Corrupt("channel lane head", _lane.At(ChannelLayout.Head), head, $"{_head}, the head this writer published last (only the writer writes it)");

    /// <summary>Describes a corrupt value and makes the writer refuse further use.</summary>
    private unsafe SharedMemoryCorruptedException Corrupt(string structure, byte* where, long value, string expected, bool lane = true) =>
        _corruption = new SharedMemoryCorruptedException(structure, _channel.RegionOffsetOf(where), value, expected, lane ? LaneIndex : null);
}
