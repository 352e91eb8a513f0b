using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// The reader of a <see cref="SharedChannel"/>: takes messages from every writer's lane in turn, in
/// place (zero copy). Use it from one thread at a time, and dispose each message before taking the next.
/// </summary>
/// <remarks>
/// Every value it reads from the channel is checked before use: a lane's head (a multiple of 8, at
/// most a ring ahead of the tail this reader published), each record header (wholly inside the ring
/// and inside the head, its check word matching its position and length), padding (from a non-zero
/// offset exactly to the ring's end), lane states and pids. An impossible value is reported with
/// <see cref="SharedMemoryCorruptedException"/>, and the reader refuses further use from then on.
/// The tails are the reader's own: it keeps them privately and only publishes them, and reports a
/// tail another process rewrote when it next publishes.
/// </remarks>
public sealed class SharedChannelReader : IMessageReader
{
    /// <summary>How long an idle reader spins before it parks: a futex wake-up costs tens of microseconds on a VM.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    /// <summary>How often, at most, a reader with nothing to do asks /proc whether its writers live.</summary>
    private static readonly long LivenessEvery = Stopwatch.Frequency / 20;

    private readonly SharedChannel _channel;
    private readonly unsafe byte* _header;
    private readonly unsafe byte* _lanes;
    private readonly long _stride;
    private readonly long _capacity;
    private readonly long _mask;
    private readonly int _laneCount;

    /// <summary>Each lane's tail as this reader last published it: never read back from shared memory.</summary>
    private readonly long[] _tails;

    private readonly List<int> _deadWriters = [];
    private int _nextLane;
    private int _pendingLane = -1;
    private long _pendingEnd;
    private long _taken;
    private bool _ended;
    private long _lastLivenessCheck;
    private bool _disposed;
    private SharedMemoryCorruptedException? _corruption;

    internal unsafe SharedChannelReader(SharedChannel channel)
    {
        _channel = channel;
        _header = channel.Header;
        _lanes = channel.Lane(0);
        _laneCount = channel.LaneCount;
        _capacity = channel.LaneCapacity;
        _mask = _capacity - 1;
        _stride = ChannelLayout.LaneStride(_capacity);
        _tails = new long[_laneCount];
        channel.Attach(this);
        try
        {
            ClaimReaderPlace();
        }
        catch
        {
            channel.Detach(this);
            throw;
        }
        try
        {
            // A reader taking a dead reader's place starts where it left off: each tail once, checked.
            for (int i = 0; i < _laneCount; i++)
            {
                byte* lane = Lane(i);
                long tail = Volatile.Read(ref *(long*)(lane + ChannelLayout.Tail));
                if ((tail & ChannelLayout.PositionMustBeClear) != 0)
                {
                    throw Corrupt("channel lane tail", i, lane + ChannelLayout.Tail, tail, "a multiple of 8 below 2^63");
                }
                _tails[i] = tail;
                CheckHead(i, lane, Volatile.Read(ref *(long*)(lane + ChannelLayout.Head)), tail);
            }
        }
        catch
        {
            Interlocked.CompareExchange(ref *(int*)(_header + ChannelLayout.ReaderPid), 0, Libc.getpid());
            channel.Detach(this);
            throw;
        }
    }

    /// <summary>Processes whose lanes ended because they died (their committed messages were all delivered first).</summary>
    public IReadOnlyList<int> DeadWriters => _deadWriters;

    /// <summary>True once every writer is gone and every message was taken.</summary>
    public bool IsCompleted => _ended;

    /// <summary>Takes the next message if one is there, without waiting; false if none is (or the stream ended).</summary>
    /// <param name="message">The message, in place in the ring; dispose it to release it.</param>
    /// <exception cref="InvalidOperationException">The previous message was not disposed.</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible (now or before): the reader is not used further.</exception>
    public unsafe bool TryRead(out ReceivedMessage message)
    {
        ThrowIfUnusable();
        if (_pendingLane >= 0)
        {
            throw new InvalidOperationException("The previous message was not released: dispose it before reading the next.");
        }
        int index = _nextLane;
        for (int visited = 0; visited < _laneCount; visited++)
        {
            if (TryTake(index, out message))
            {
                return true;
            }
            index = index + 1 == _laneCount ? 0 : index + 1;
        }
        message = default;
        return false;
    }

    /// <summary>Reads an unmanaged value written with <c>TryWrite&lt;T&gt;</c>, if one is there.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="value">The value.</param>
    public unsafe bool TryRead<T>(out T value)
        where T : unmanaged
    {
        if (!TryRead(out ReceivedMessage message))
        {
            value = default;
            return false;
        }
        using (message)
        {
            value = message.Read<T>();
            return true;
        }
    }

    /// <summary>Takes the next message, waiting as long as it takes (spinning briefly, then parked on a shared futex).</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe ReceivedMessage Read(CancellationToken cancellationToken = default) =>
        TryRead(out ReceivedMessage message, Timeout.InfiniteTimeSpan, cancellationToken) ? message : throw new TimeoutException();

    /// <summary>Takes the next message, waiting up to <paramref name="timeout"/>; false if none came.</summary>
    /// <param name="message">The message; dispose it to release it.</param>
    /// <param name="timeout">How long; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe bool TryRead(out ReceivedMessage message, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Deadline deadline = Deadline.After(timeout);
        long spinUntil = 0;
        while (true)
        {
            if (TryRead(out message))
            {
                return true;
            }
            if (CheckEnded(force: spinUntil == 0))
            {
                throw Ended();
            }
            cancellationToken.ThrowIfCancellationRequested();
            long now = Stopwatch.GetTimestamp();
            if (deadline.HasPassedAt(now))
            {
                return false;
            }
            spinUntil = spinUntil == 0 ? now + SpinTicks : spinUntil;
            if (now < spinUntil)
            {
                Thread.SpinWait(4);
                continue;
            }
            Park(deadline, cancellationToken);
        }
    }

    /// <summary>Waits without holding a thread until a message can be read (true) or the stream ended (false).</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">The stream ended because writers died (named in the message).</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed, before or during the wait.</exception>
    public async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ThrowIfUnusable();
            if (HasMessage())
            {
                return true;
            }
            if (CheckEnded(force: true))
            {
                return _deadWriters.Count == 0 ? false : throw Ended();
            }
            await WaitForWriterAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // Parks with the process's futex watcher until a writer publishes (or every 100 ms, to look at the writers).
    private unsafe Task<bool> WaitForWriterAsync(CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_header + ChannelLayout.ReaderSequence);
        int seen = Volatile.Read(ref *sequence);
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, (int*)(_header + ChannelLayout.ReaderSleeping), () =>
        {
            ThrowIfUnusable(); // disposed while registering: end the wait rather than poll for ever
            return HasMessage() || CheckEnded(force: false);
        }, Deadline.Never, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
    }

    /// <summary>Takes the next message, waiting without holding a thread.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed, before or during the wait.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public async ValueTask<ReceivedMessage> ReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (TryRead(out ReceivedMessage message))
            {
                return message;
            }
            if (!await WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                throw Ended();
            }
        }
    }

    /// <summary>A <see cref="ChannelReader{T}"/> over this reader (messages copied into arrays): <c>ReadAllAsync</c> gives an <see cref="IAsyncEnumerable{T}"/>.</summary>
    public unsafe ChannelReader<byte[]> AsChannelReader() => new Adapter(this);

    /// <summary>Every message, copied, until the stream ends; without a thread of its own.</summary>
    /// <param name="cancellationToken">Stops reading.</param>
    public unsafe IAsyncEnumerable<byte[]> ReadAllAsync(CancellationToken cancellationToken = default) => AsChannelReader().ReadAllAsync(cancellationToken);

    /// <summary>Gives up the reader's place, and ends its pending waits with <see cref="ObjectDisposedException"/>.</summary>
    public unsafe void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _pendingLane = -1;
            Interlocked.CompareExchange(ref *(int*)(_header + ChannelLayout.ReaderPid), 0, Libc.getpid());
            _channel.Detach(this);
        }
    }

    /// <summary>Releases message number <paramref name="number"/> if it is the one being read; a stale copy's release does nothing.</summary>
    internal unsafe void Release(long number)
    {
        if (_pendingLane < 0 || number != _taken || _disposed)
        {
            return;
        }
        int index = _pendingLane;
        _pendingLane = -1;
        Publish(index, Lane(index), _pendingEnd);
    }

    private unsafe byte* Lane(int index) => _lanes + (index * _stride);

    /// <summary>Takes the next message of lane <paramref name="index"/>, skipping at most one padding record.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe bool TryTake(int index, out ReceivedMessage message)
    {
        message = default;
        byte* lane = Lane(index);
        long tail = _tails[index];
        long head = Volatile.Read(ref *(long*)(lane + ChannelLayout.Head)); // once per visit
        if (head == tail)
        {
            return false;
        }
        CheckHead(index, lane, head, tail);
        byte* ring = lane + ChannelLayout.LaneHeaderSize;
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
    private unsafe void CheckHead(int index, byte* lane, long head, long tail)
    {
        if ((head & ChannelLayout.PositionMustBeClear) != 0 || (ulong)(head - tail) > (ulong)_capacity)
        {
            throw BadHead(index, lane, head, tail);
        }
    }

    // The reports, out of line: the paths that take messages stay small.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadHead(int index, byte* lane, long head, long tail) =>
        Corrupt("channel lane head", index, lane + ChannelLayout.Head, head, $"a multiple of 8 from the tail {tail} to {tail + _capacity} (one ring ahead)");

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

    /// <summary>
    /// Publishes lane <paramref name="index"/>'s tail (a full fence before the check of the writer's
    /// sleep flag) and wakes the writer only if it sleeps. The exchange expects the value this
    /// reader published last: any other means another process wrote the tail, and the writer may
    /// have overwritten messages on its word.
    /// </summary>
    private unsafe void Publish(int index, byte* lane, long tail)
    {
        long published = _tails[index];
        long seen = Interlocked.CompareExchange(ref *(long*)(lane + ChannelLayout.Tail), tail, published);
        if (seen != published)
        {
            throw BadTail(index, lane, seen, published);
        }
        _tails[index] = tail;
        SharedChannel.Wake((int*)(lane + ChannelLayout.SpaceSequence), (int*)(lane + ChannelLayout.WriterSleeping));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadTail(int index, byte* lane, long seen, long published) =>
        Corrupt("channel lane tail", index, lane + ChannelLayout.Tail, seen, $"{published}, the tail this reader published last (only the reader writes it)");

    private unsafe bool HasMessage()
    {
        for (int i = 0; i < _laneCount; i++)
        {
            if (Volatile.Read(ref *(long*)(Lane(i) + ChannelLayout.Head)) != _tails[i])
            {
                return true; // or an impossible head, which TryRead reports
            }
        }
        return false;
    }

    /// <summary>
    /// Reclaims the lanes of writers that completed or died once they are drained, and decides whether
    /// the stream ended: some writer attached once, none is attached now, nothing is left. A completed
    /// lane is decided at once; whether a writer lives is a read of /proc, done at most every 50 ms
    /// unless <paramref name="force"/>, and only for drained lanes.
    /// </summary>
    private unsafe bool CheckEnded(bool force)
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
            byte* lane = Lane(i);
            long tail = Volatile.Read(ref *(long*)(lane + ChannelLayout.Tail));
            if (probe && tail != _tails[i])
            {
                throw BadTail(i, lane, tail, _tails[i]); // idle, look: a tail rewritten would stall the writer silently
            }
            int writer = Volatile.Read(ref *(int*)(lane + ChannelLayout.WriterPid));
            if (writer == 0)
            {
                continue;
            }
            if (writer < 0)
            {
                throw Corrupt("channel lane writer pid", i, lane + ChannelLayout.WriterPid, writer, "0 (free) or a pid");
            }
            int state = Volatile.Read(ref *(int*)(lane + ChannelLayout.LaneState));
            if ((uint)state > LaneStates.Completed)
            {
                throw Corrupt("channel lane state", i, lane + ChannelLayout.LaneState, state, "0 (free), 1 (attached) or 2 (completed)");
            }
            if (i == _pendingLane || Volatile.Read(ref *(long*)(lane + ChannelLayout.Head)) != _tails[i])
            {
                attached = true; // messages left: whether its writer lives does not matter yet
                continue;
            }
            if (state != LaneStates.Completed && (!probe || ProcessIdentity.IsAlive(writer, Volatile.Read(ref *(long*)(lane + ChannelLayout.WriterStart)))))
            {
                attached = true;
                continue;
            }
            // Gone. Read the head again after learning it: what it committed before is delivered first.
            long head = Volatile.Read(ref *(long*)(lane + ChannelLayout.Head));
            if (head != _tails[i])
            {
                attached = true;
                continue;
            }
            if (state == LaneStates.Completed)
            {
                long final = Volatile.Read(ref *(long*)(lane + ChannelLayout.FinalHead));
                if (final != head)
                {
                    throw Corrupt("channel lane final head", i, lane + ChannelLayout.FinalHead, final,
                        $"{head}, the head: a writer completes after its last message (a completion another process wrote, or a head moved back)");
                }
            }
            else
            {
                _deadWriters.Add(writer);
            }
            Volatile.Write(ref *(int*)(lane + ChannelLayout.LaneState), LaneStates.Free);
            Volatile.Write(ref *(int*)(lane + ChannelLayout.WriterPid), 0);
        }
        if (attached || !EverWritten() || HasMessage())
        {
            return false;
        }
        Volatile.Write(ref *(int*)(_header + ChannelLayout.Closed), 1);
        _ended = true;
        return true;
    }

    private unsafe bool EverWritten()
    {
        int ever = Volatile.Read(ref *(int*)(_header + ChannelLayout.EverWritten));
        return (uint)ever <= 1 ? ever == 1 : throw Corrupt("channel ever-written flag", null, _header + ChannelLayout.EverWritten, ever, "0 or 1");
    }

    private unsafe void ClaimReaderPlace()
    {
        (int pid, long started) = ProcessIdentity.Self();
        int* reader = (int*)(_header + ChannelLayout.ReaderPid);
        while (true)
        {
            int current = Volatile.Read(ref *reader);
            if (current < 0)
            {
                throw Corrupt("channel reader pid", null, (byte*)reader, current, "0 (no reader) or a pid");
            }
            if (current != 0 && ProcessIdentity.IsAlive(current, Volatile.Read(ref *(long*)(_header + ChannelLayout.ReaderStart))))
            {
                throw new InvalidOperationException($"Process {current} is the channel's reader already; a channel has one reader.");
            }
            if (current != 0)
            {
                // Until ours is written, no start time: a writer that reads our pid beside the dead
                // reader's start time would take us for dead.
                Volatile.Write(ref *(long*)(_header + ChannelLayout.ReaderStart), 0);
            }
            if (Interlocked.CompareExchange(ref *reader, pid, current) == current)
            {
                Volatile.Write(ref *(long*)(_header + ChannelLayout.ReaderStart), started); // a dead reader's place is taken over
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

    private unsafe ChannelClosedException Ended() => _deadWriters.Count == 0
        ? new ChannelClosedException("The channel ended: every writer completed and every message was read.")
        : new ChannelClosedException($"The channel ended: writer process{(_deadWriters.Count > 1 ? "es" : "")} {string.Join(", ", _deadWriters)} died; every message committed before was delivered.");

    private unsafe void Park(Deadline deadline, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_header + ChannelLayout.ReaderSequence);
        int* sleeping = (int*)(_header + ChannelLayout.ReaderSleeping);
        int seen = Volatile.Read(ref *sequence);
        Interlocked.Exchange(ref *sleeping, 1);
        using CancellationTokenRegistration wake = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => Libc.FutexWake((int*)(nint)state!, int.MaxValue), (nint)sequence)
            : default;
        try
        {
            if (HasMessage())
            {
                return;
            }
            // At most 100 ms at a time: a writer that dies wakes nobody, so look at the writers again then.
            Libc.TimeSpec until = deadline.AtMost(Stopwatch.Frequency / 10).ToTimeSpec(Libc.CLOCK_MONOTONIC);
            Libc.FutexWait(sequence, seen, &until);
        }
        finally
        {
            Volatile.Write(ref *sleeping, 0);
        }
    }

    /// <summary>
    /// The System.Threading.Channels view. <see cref="Completion"/> completes (or faults, naming the
    /// writers that died) as soon as the stream ended and its last message was taken: in the
    /// <see cref="TryRead"/> that took it or found nothing, or in <see cref="WaitToReadAsync"/>.
    /// </summary>
    private sealed class Adapter(SharedChannelReader reader) : ChannelReader<byte[]>
    {
        private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task Completion => _completion.Task;

        public override bool TryRead(out byte[] item)
        {
            try
            {
                if (reader.TryRead(out ReceivedMessage message))
                {
                    using (message)
                    {
                        item = message.ToArray();
                    }
                    CompleteIfEnded();
                    return true;
                }
                CompleteIfEnded();
            }
            catch (SharedMemoryCorruptedException corrupted)
            {
                _completion.TrySetException(corrupted);
                throw;
            }
            item = [];
            return false;
        }

        public override async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                bool more = await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false);
                if (!more)
                {
                    _completion.TrySetResult();
                }
                return more;
            }
            catch (Exception ended) when (ended is ChannelClosedException or SharedMemoryCorruptedException)
            {
                _completion.TrySetException(ended);
                throw;
            }
        }

        // Only once nothing is left: a completed writer's lane needs no /proc read; a live one's is asked at most every 50 ms.
        private void CompleteIfEnded()
        {
            if (!_completion.Task.IsCompleted && !reader.HasMessage() && reader.CheckEnded(force: false))
            {
                _ = reader._deadWriters.Count == 0 ? _completion.TrySetResult() : _completion.TrySetException(reader.Ended());
            }
        }
    }
}
