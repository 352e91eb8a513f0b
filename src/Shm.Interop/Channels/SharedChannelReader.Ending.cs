using System;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Channels;

namespace Shm.Interop;

// The reader's place and the stream's end: claiming the place (a dead reader's is taken over),
// reclaiming the lanes of writers that completed or died, deciding that the stream ended, and
// refusing further use once something was corrupt.
public sealed partial class SharedChannelReader
{
    /// <summary>How often, at most, a reader with nothing to do asks /proc whether its writers live.</summary>
    private static readonly long LivenessEvery = Stopwatch.Frequency / 20;

    /// <summary>
    /// Reclaims the lanes of writers that completed or died once they are drained, and decides whether
    /// the stream ended: some writer attached once, none is attached now, nothing is left. A completed
    /// lane is decided at once; whether a writer lives is a read of /proc, done at most every 50 ms
    /// unless <paramref name="force"/>, and only for drained lanes.
    /// </summary>
    internal bool CheckEnded(bool force)
    {
        if (_ended)
        {
            return true;
        }
        long now = Stopwatch.GetTimestamp();
        bool probe = force || now - _lastLivenessCheck >= LivenessEvery;
        if (probe)
        {
            _lastLivenessCheck = now;
        }
        bool attached = false;
        for (int i = 0; i < _laneCount; i++)
        {
            if (!LaneEnded(i, probe))
            {
                attached = true;
            }
        }
        if (attached || !EverWritten() || HasMessage())
        {
            return false;
        }
        Volatile.Write(ref _header.Closed, 1);
        _ended = true;
        return true;
    }

    /// <summary>The end of the stream: normal if every writer completed, else naming those that died.</summary>
    internal ChannelClosedException Ended() => _deadWriters.Count == 0
        ? new ChannelClosedException("The channel ended: every writer completed and every message was read.")
        : new ChannelClosedException($"The channel ended: writer process{(_deadWriters.Count > 1 ? "es" : "")} {string.Join(", ", _deadWriters)} died; every message committed before was delivered.");

    /// <summary>True if the writer(s) that died, by pid (for the adapter's completion).</summary>
    internal bool WritersDied => _deadWriters.Count > 0;

    /// <summary>
    /// False while lane <paramref name="index"/> has a writer or messages; true once it is free, or
    /// once its writer completed or died and it is drained (the lane is then freed for another writer).
    /// </summary>
    private unsafe bool LaneEnded(int index, bool probe)
    {
        LaneView lane = Lane(index);
        long tail = Volatile.Read(ref lane.Tail);
        if (probe && tail != _tails[index])
        {
            throw BadTail(index, lane, tail, _tails[index]); // idle, look: a tail rewritten would stall the writer silently
        }
        int writer = Volatile.Read(ref lane.WriterPid);
        if (writer == 0)
        {
            return true;
        }
        if (writer < 0)
        {
            throw Corrupt("channel lane writer pid", index, lane.At(ChannelLayout.WriterPid), writer, "0 (free) or a pid");
        }
        int state = Volatile.Read(ref lane.State);
        if ((uint)state > LaneStates.Completed)
        {
            throw Corrupt("channel lane state", index, lane.At(ChannelLayout.LaneState), state, "0 (free), 1 (attached) or 2 (completed)");
        }
        if (index == _pendingLane || Volatile.Read(ref lane.Head) != _tails[index])
        {
            return false; // messages left: whether its writer lives does not matter yet
        }
        if (state != LaneStates.Completed && (!probe || PeerIdentity.IsAlive(writer, Volatile.Read(ref lane.WriterStart))))
        {
            return false;
        }
        // Gone. Read the head again after learning it: what it committed before is delivered first.
        long head = Volatile.Read(ref lane.Head);
        if (head != _tails[index])
        {
            return false;
        }
        if (state == LaneStates.Completed)
        {
            long final = Volatile.Read(ref lane.FinalHead);
            if (final != head)
            {
                throw Corrupt("channel lane final head", index, lane.At(ChannelLayout.FinalHead), final,
                    $"{head}, the head: a writer completes after its last message (a completion another process wrote, or a head moved back)");
            }
        }
        else
        {
            _deadWriters.Add(writer);
            ShmDiagnostics.DeadPeer("channel_writer", writer);
        }
        Volatile.Write(ref lane.State, LaneStates.Free);
        Volatile.Write(ref lane.WriterPid, 0);
        return true;
    }

    private unsafe bool EverWritten()
    {
        int ever = Volatile.Read(ref _header.EverWritten);
        return (uint)ever <= 1 ? ever == 1 : throw Corrupt("channel ever-written flag", null, _header.At(ChannelLayout.EverWritten), ever, "0 or 1");
    }

    private unsafe void ClaimReaderPlace()
    {
        (int pid, long started) = PeerIdentity.Self();
        while (true)
        {
            int current = Volatile.Read(ref _header.ReaderPid);
            if (current < 0)
            {
                throw Corrupt("channel reader pid", null, _header.At(ChannelLayout.ReaderPid), current, "0 (no reader) or a pid");
            }
            if (current != 0 && PeerIdentity.IsAlive(current, Volatile.Read(ref _header.ReaderStart)))
            {
                throw new InvalidOperationException($"Process {current} is the channel's reader already; a channel has one reader.");
            }
            if (current != 0)
            {
                // Until ours is written, no start time: a writer that reads our pid beside the dead
                // reader's start time would take us for dead.
                Volatile.Write(ref _header.ReaderStart, 0);
            }
            if (Interlocked.CompareExchange(ref _header.ReaderPid, pid, current) == current)
            {
                Volatile.Write(ref _header.ReaderStart, started); // a dead reader's place is taken over
                return;
            }
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _channel.EnsureUsable();
        if (_corruption is not null)
        {
            ExceptionDispatchInfo.Throw(_corruption);
        }
    }

    /// <summary>Describes a corrupt value and makes the reader refuse further use.</summary>
    private unsafe SharedMemoryCorruptedException Corrupt(string structure, int? lane, byte* where, long value, string expected) =>
        _corruption = new SharedMemoryCorruptedException(structure, _channel.RegionOffsetOf(where), value, expected, lane);
}
