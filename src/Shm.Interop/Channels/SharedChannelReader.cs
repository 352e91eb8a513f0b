using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
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
public sealed partial class SharedChannelReader : IMessageReader
{
    private readonly SharedChannel _channel;
    private readonly ChannelHeaderView _header;
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
        _lanes = channel.Lane(0).At(0);
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
                LaneView lane = Lane(i);
                long tail = Volatile.Read(ref lane.Tail);
                if ((tail & ChannelLayout.PositionMustBeClear) != 0)
                {
                    throw Corrupt("channel lane tail", i, lane.At(ChannelLayout.Tail), tail, "a multiple of 8 below 2^63");
                }
                _tails[i] = tail;
                CheckHead(i, lane, Volatile.Read(ref lane.Head), tail);
            }
        }
        catch
        {
            Interlocked.CompareExchange(ref _header.ReaderPid, 0, Libc.getpid());
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
    public bool TryRead(out ReceivedMessage message)
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
    /// <exception cref="InvalidOperationException">The message is not the size of a <typeparamref name="T"/> (it is released), or the previous one was not disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public bool TryRead<T>(out T value)
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
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public ReceivedMessage Read(CancellationToken cancellationToken = default)
    {
        ReadCore(out ReceivedMessage message, Deadline.Never, cancellationToken);
        return message;
    }

    /// <summary>Takes the next message, waiting up to <paramref name="timeout"/>; false if none came.</summary>
    /// <param name="message">The message; dispose it to release it.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public bool TryRead(out ReceivedMessage message, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReadCore(out message, Deadline.After(timeout), cancellationToken);

    /// <summary>Takes the next message, waiting up to <paramref name="timeout"/> without holding a thread; null if none came.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The message (dispose it to release it), or null at the timeout.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">The stream ended: every writer completed or died (named in the message).</exception>
    /// <exception cref="ObjectDisposedException">The reader or its channel was disposed, before or during the wait.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public async ValueTask<ReceivedMessage?> TryReadAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        while (true)
        {
            if (TryRead(out ReceivedMessage message))
            {
                return message;
            }
            if (CheckEnded(force: true))
            {
                throw Ended();
            }
            if (!await WaitForWriterAsync(deadline, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }

    /// <summary>The blocking read: spins briefly, then parks on the reader's futex, looking at its writers between sleeps.</summary>
    private unsafe bool ReadCore(out ReceivedMessage message, Deadline deadline, CancellationToken cancellationToken)
    {
        var parker = new FutexParker(_header.ReaderSequence, _header.ReaderSleeping);
        while (true)
        {
            if (TryRead(out message))
            {
                return true;
            }
            if (CheckEnded(force: parker.IsFirstPass))
            {
                throw Ended();
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (!parker.Pause(new MessageArrived(this), deadline, cancellationToken))
            {
                return false;
            }
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
            await WaitForWriterAsync(Deadline.Never, cancellationToken).ConfigureAwait(false);
        }
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
    public ChannelReader<byte[]> AsChannelReader() => new ChannelReaderAdapter(this);

    /// <summary>Every message, copied, until the stream ends; without a thread of its own.</summary>
    /// <param name="cancellationToken">Stops reading.</param>
    public IAsyncEnumerable<byte[]> ReadAllAsync(CancellationToken cancellationToken = default) => AsChannelReader().ReadAllAsync(cancellationToken);

    /// <summary>Gives up the reader's place, and ends its pending waits with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _pendingLane = -1;
            Interlocked.CompareExchange(ref _header.ReaderPid, 0, Libc.getpid());
            _channel.Detach(this);
        }
    }

    /// <summary>Releases message number <paramref name="number"/> if it is the one being read; a stale copy's release does nothing.</summary>
    internal void Release(long number)
    {
        if (_pendingLane < 0 || number != _taken || _disposed)
        {
            return;
        }
        int index = _pendingLane;
        _pendingLane = -1;
        Publish(index, Lane(index), _pendingEnd);
    }

    /// <summary>True if some lane's head is not where this reader's tail is: a message, or an impossible head that <see cref="TryRead(out ReceivedMessage)"/> reports.</summary>
    internal bool HasMessage()
    {
        for (int i = 0; i < _laneCount; i++)
        {
            if (Volatile.Read(ref Lane(i).Head) != _tails[i])
            {
                return true;
            }
        }
        return false;
    }

    // Parks with the process's futex watcher until a writer publishes (or every 100 ms, to look at the writers); false at the deadline.
    private unsafe Task<bool> WaitForWriterAsync(Deadline deadline, CancellationToken cancellationToken)
    {
        int* sequence = _header.ReaderSequence;
        int seen = Volatile.Read(ref *sequence);
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, _header.ReaderSleeping, () =>
        {
            ThrowIfUnusable(); // disposed while registering: end the wait rather than poll for ever
            return HasMessage() || CheckEnded(force: false);
        }, deadline, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe LaneView Lane(int index) => new(_lanes + (index * _stride));

    /// <summary>What a parked reader waits for: a message in some lane.</summary>
    private readonly struct MessageArrived(SharedChannelReader reader) : IParkCondition
    {
        public bool IsMet => reader.HasMessage();
    }
}
