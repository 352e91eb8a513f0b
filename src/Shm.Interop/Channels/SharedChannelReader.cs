using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// The reader of a <see cref="SharedChannel"/>: takes messages from every writer's lane in turn, in
/// place (zero copy). Use it from one thread at a time, and dispose each message before taking the next.
/// </summary>
public sealed class SharedChannelReader : IMessageReader
{
    /// <summary>How long an idle reader spins before it parks: a futex wake-up costs tens of microseconds on a VM.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    private readonly SharedChannel _channel;
    private readonly unsafe byte* _header;
    private readonly long _mask;
    private readonly List<int> _deadWriters = [];
    private int _nextLane;
    private int _pendingLane = -1;
    private long _pendingEnd;
    private bool _ended;
    private long _lastLivenessCheck;
    private bool _disposed;

    internal unsafe SharedChannelReader(SharedChannel channel)
    {
        _channel = channel;
        _header = channel.Header;
        _mask = channel.LaneCapacity - 1;
        (int pid, long started) = ProcessIdentity.Self();
        int* reader = (int*)(_header + ChannelLayout.ReaderPid);
        while (true)
        {
            int current = Volatile.Read(ref *reader);
            if (current != 0 && ProcessIdentity.IsAlive(current, *(long*)(_header + ChannelLayout.ReaderStart)))
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
                *(long*)(_header + ChannelLayout.ReaderStart) = started; // a dead reader's place is taken over
                return;
            }
        }
    }

    /// <summary>Processes whose lanes ended because they died (their committed messages were all delivered first).</summary>
    public IReadOnlyList<int> DeadWriters => _deadWriters;

    /// <summary>True once every writer is gone and every message was taken.</summary>
    public bool IsCompleted => _ended;

    /// <inheritdoc/>
    public unsafe bool TryRead(out ReceivedMessage message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _channel.EnsureUsable();
        if (_pendingLane >= 0)
        {
            throw new InvalidOperationException("The previous message was not released: dispose it before reading the next.");
        }
        for (int visited = 0; visited < _channel.LaneCount; visited++)
        {
            int index = (_nextLane + visited) % _channel.LaneCount;
            byte* lane = _channel.Lane(index);
            long tail = *(long*)(lane + ChannelLayout.Tail);
            long head = Volatile.Read(ref *(long*)(lane + ChannelLayout.Head));
            while (tail < head)
            {
                byte* record = lane + ChannelLayout.LaneHeaderSize + (tail & _mask);
                uint length = *(uint*)record;
                long next = tail + ChannelLayout.Align(ChannelLayout.RecordHeaderSize + (int)Math.Min(length, (uint)int.MaxValue - 16));
                if (length > _channel.MaxMessageLength || next > head)
                {
                    throw new InvalidOperationException($"Lane {index} holds a malformed record at {tail} (length {length}): the channel's memory was overwritten.");
                }
                if ((*(uint*)(record + 4) & ChannelLayout.Padding) != 0)
                {
                    tail = next; // skip to the start of the ring
                    continue;
                }
                *(long*)(lane + ChannelLayout.Tail) = tail; // padding consumed; the message itself on release
                (_pendingLane, _pendingEnd, _nextLane) = (index, next, (index + 1) % _channel.LaneCount);
                message = new ReceivedMessage(this, record + ChannelLayout.RecordHeaderSize, (int)length);
                return true;
            }
            if (tail != *(long*)(lane + ChannelLayout.Tail))
            {
                Advance(lane, tail);
            }
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
    public unsafe ReceivedMessage Read(CancellationToken cancellationToken = default) =>
        TryRead(out ReceivedMessage message, Timeout.InfiniteTimeSpan, cancellationToken) ? message : throw new TimeoutException();

    /// <summary>Takes the next message, waiting up to <paramref name="timeout"/>; false if none came.</summary>
    /// <param name="message">The message; dispose it to release it.</param>
    /// <param name="timeout">How long; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public unsafe bool TryRead(out ReceivedMessage message, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long deadline = Child.Deadline(timeout);
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
            if (now >= deadline)
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

    /// <inheritdoc/>
    public async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
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
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, (int*)(_header + ChannelLayout.ReaderSleeping),
            () => HasMessage() || CheckEnded(force: false), Timeout.InfiniteTimeSpan, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
    }

    /// <inheritdoc/>
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

    /// <summary>Gives up the reader's place.</summary>
    public unsafe void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Interlocked.CompareExchange(ref *(int*)(_header + ChannelLayout.ReaderPid), 0, Libc.getpid());
        }
    }

    internal unsafe void Release(byte* message)
    {
        if (_pendingLane < 0)
        {
            return; // released already
        }
        byte* lane = _channel.Lane(_pendingLane);
        _pendingLane = -1;
        Advance(lane, _pendingEnd);
    }

    // Publishes the tail (a full fence before the check of the writer's sleep flag) and wakes the
    // writer only if it sleeps.
    private static unsafe void Advance(byte* lane, long tail)
    {
        Interlocked.Exchange(ref *(long*)(lane + ChannelLayout.Tail), tail);
        SharedChannel.Wake((int*)(lane + ChannelLayout.SpaceSequence), (int*)(lane + ChannelLayout.WriterSleeping));
    }

    private unsafe bool HasMessage()
    {
        for (int i = 0; i < _channel.LaneCount; i++)
        {
            byte* lane = _channel.Lane(i);
            if (*(long*)(lane + ChannelLayout.Tail) < Volatile.Read(ref *(long*)(lane + ChannelLayout.Head)))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Reclaims the lanes of writers that completed or died once they are drained, and decides whether
    /// the stream ended: some writer attached once, none is attached now, nothing is left. Reads /proc
    /// (to tell whether writers live) at most every 50 ms unless <paramref name="force"/>.
    /// </summary>
    private unsafe bool CheckEnded(bool force)
    {
        if (_ended)
        {
            return true;
        }
        long now = Stopwatch.GetTimestamp();
        if (!force && now - _lastLivenessCheck < Stopwatch.Frequency / 20)
        {
            return false;
        }
        _lastLivenessCheck = now;
        bool attached = false;
        for (int i = 0; i < _channel.LaneCount; i++)
        {
            byte* lane = _channel.Lane(i);
            int writer = Volatile.Read(ref *(int*)(lane + ChannelLayout.WriterPid));
            if (writer == 0)
            {
                continue;
            }
            int state = Volatile.Read(ref *(int*)(lane + ChannelLayout.LaneState));
            bool gone = state == LaneStates.Completed || !ProcessIdentity.IsAlive(writer, *(long*)(lane + ChannelLayout.WriterStart));
            // Read the head after learning the writer is gone: what it committed before is delivered first.
            bool drained = *(long*)(lane + ChannelLayout.Tail) == Volatile.Read(ref *(long*)(lane + ChannelLayout.Head));
            if (!gone || !drained || i == _pendingLane)
            {
                attached = true;
                continue;
            }
            if (state != LaneStates.Completed)
            {
                _deadWriters.Add(writer);
            }
            Volatile.Write(ref *(int*)(lane + ChannelLayout.LaneState), LaneStates.Free);
            Volatile.Write(ref *(int*)(lane + ChannelLayout.WriterPid), 0);
        }
        if (attached || Volatile.Read(ref *(int*)(_header + ChannelLayout.EverWritten)) == 0 || HasMessage())
        {
            return false;
        }
        Volatile.Write(ref *(int*)(_header + ChannelLayout.Closed), 1);
        _ended = true;
        return true;
    }

    private unsafe ChannelClosedException Ended() => _deadWriters.Count == 0
        ? new ChannelClosedException("The channel ended: every writer completed and every message was read.")
        : new ChannelClosedException($"The channel ended: writer process{(_deadWriters.Count > 1 ? "es" : "")} {string.Join(", ", _deadWriters)} died; every message committed before was delivered.");

    private unsafe void Park(long deadline, CancellationToken cancellationToken)
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
            long slice = Math.Min(deadline - Stopwatch.GetTimestamp(), Stopwatch.Frequency / 10);
            Libc.TimeSpec until = Libc.DeadlineOn(Libc.CLOCK_MONOTONIC, TimeSpan.FromTicks(Math.Max(0, (long)(slice * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency))));
            Libc.FutexWaitUntil(sequence, seen, &until);
        }
        finally
        {
            Volatile.Write(ref *sleeping, 0);
        }
    }

    private sealed class Adapter(SharedChannelReader reader) : ChannelReader<byte[]>
    {
        private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task Completion => _completion.Task;

        public override bool TryRead(out byte[] item)
        {
            if (reader.TryRead(out ReceivedMessage message))
            {
                using (message)
                {
                    item = message.ToArray();
                    return true;
                }
            }
            if (reader.CheckEnded(force: false))
            {
                _ = reader._deadWriters.Count == 0 ? _completion.TrySetResult() : _completion.TrySetException(reader.Ended());
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
            catch (ChannelClosedException ended)
            {
                _completion.TrySetException(ended);
                throw;
            }
        }
    }
}
