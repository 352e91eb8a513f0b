using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A writer of a <see cref="SharedChannel"/>: owns one lane (a single-writer ring) for as long as it
/// is not completed or disposed. Use it from one thread at a time, in the process that opened it.
/// </summary>
/// <remarks>
/// <para>The head is the writer's own: it reads the lane's head once, when it attaches, and from
/// then on only publishes it. Each tail it reads is checked (a multiple of 8, at most a ring behind
/// its head and not ahead of it); an impossible value, or a head another process rewrote, is
/// reported with <see cref="SharedMemoryCorruptedException"/>, and the writer refuses further use.</para>
/// <para>Before every write, and when it completes, the writer checks that its lane still names it
/// (pid and attach generation): if the reader took it for dead and gave the lane to another writer,
/// it writes nothing more there (<see cref="ChannelClosedException"/>).</para>
/// <para><see cref="Complete"/> is final: writes after it throw <see cref="ChannelClosedException"/>,
/// and <see cref="Dispose"/> after it leaves the lane alone.</para>
/// </remarks>
public sealed partial class SharedChannelWriter : IMessageWriter
{
    private readonly SharedChannel _channel;
    private readonly ChannelHeaderView _header;
    private readonly LaneView _lane;
    private readonly unsafe byte* _data;
    private readonly long _capacity;
    private readonly long _mask;
    private readonly int _pid;
    private readonly int _generation;
    private long _head;
    private long _tailSeen;
    private long _readerCheckedAt;
    private int _loan = -1;
    private bool _completed;
    private bool _disposed;
    private SharedMemoryCorruptedException? _corruption;

    internal unsafe SharedChannelWriter(SharedChannel channel)
    {
        _channel = channel;
        _header = channel.Header;
        _capacity = channel.LaneCapacity;
        _mask = _capacity - 1;
        channel.Attach(this);
        try
        {
            (_pid, long started) = PeerIdentity.Self();
            for (int i = 0; i < channel.LaneCount; i++)
            {
                LaneView lane = channel.Lane(i);
                if (Interlocked.CompareExchange(ref lane.WriterPid, _pid, 0) != 0)
                {
                    continue;
                }
                _lane = lane;
                _data = lane.Ring;
                LaneIndex = i;
                _generation = Interlocked.Increment(ref lane.Generation);
                Volatile.Write(ref lane.WriterStart, started);
                Volatile.Write(ref lane.State, LaneStates.Attached);
                try
                {
                    // The head is ours from here on: read it once, and check it before trusting it with a write.
                    _head = Volatile.Read(ref lane.Head);
                    if ((_head & ChannelLayout.PositionMustBeClear) != 0)
                    {
                        throw Corrupt("channel lane head", lane.At(ChannelLayout.Head), _head, "a multiple of 8 below 2^63");
                    }
                    _tailSeen = ReadTail();
                    CheckClosed(joining: true);
                }
                catch
                {
                    Volatile.Write(ref lane.State, LaneStates.Free);
                    Volatile.Write(ref lane.WriterPid, 0);
                    throw;
                }
                Volatile.Write(ref _header.EverWritten, 1);
                return;
            }
            throw new InvalidOperationException($"All {channel.LaneCount} writer lanes of the channel are in use.");
        }
        catch
        {
            channel.Detach(this);
            throw;
        }
    }

    /// <summary>Which lane this writer owns.</summary>
    public int LaneIndex { get; }

    /// <summary>The longest message this writer accepts: its lane's capacity less one record header.</summary>
    public int MaxMessageLength => (int)(_capacity - ChannelLayout.RecordHeaderSize);

    /// <summary>True once <see cref="Complete"/> (or <see cref="Dispose"/>) ran.</summary>
    internal bool IsCompleted => _completed;

    /// <summary>Writes <paramref name="message"/> if there is room now; false if the lane is full.</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written).</exception>
    /// <exception cref="ChannelClosedException">This writer completed; or the lane is full and the reader died; or the stream ended; or the lane was given to another writer.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible: the writer is not used further.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    public unsafe bool TryWrite(ReadOnlySpan<byte> message)
    {
        byte* target = ReserveRecord(message.Length);
        if (target is null)
        {
            return false;
        }
        message.CopyTo(new Span<byte>(target, message.Length));
        Publish(message.Length);
        return true;
    }

    /// <summary>Writes an unmanaged value as one message of its size, if there is room now.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="value">The value, copied.</param>
    /// <exception cref="ChannelClosedException">As <see cref="TryWrite(ReadOnlySpan{byte})"/>.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe bool TryWrite<T>(in T value)
        where T : unmanaged =>
        TryWrite(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    /// <summary>Writes <paramref name="message"/>, waiting as long as it takes for room (spinning briefly, then parked on a shared futex).</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public void Write(ReadOnlySpan<byte> message, CancellationToken cancellationToken = default) =>
        WriteCore(message, Deadline.Never, cancellationToken);

    /// <summary>Writes <paramref name="message"/>, waiting up to <paramref name="timeout"/> for room; false if there was none.</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written), or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public bool TryWrite(ReadOnlySpan<byte> message, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WriteCore(message, Deadline.After(timeout), cancellationToken);

    /// <summary>Writes <paramref name="message"/>, waiting up to <paramref name="timeout"/> for room without holding a thread; false if there was none.</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written), or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed, before or during the wait.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public async ValueTask<bool> TryWriteAsync(ReadOnlyMemory<byte> message, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        CheckLength(message.Length);
        Deadline deadline = Deadline.After(timeout);
        while (!TryWrite(message.Span))
        {
            if (!await WaitToWriteAsync(message.Length, deadline, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The blocking write: spins briefly, then parks on the lane's futex, looking at the reader between sleeps.</summary>
    private unsafe bool WriteCore(ReadOnlySpan<byte> message, Deadline deadline, CancellationToken cancellationToken)
    {
        CheckLength(message.Length);
        var parker = new FutexParker(_lane.SpaceSequence, _lane.WriterSleeping);
        while (true)
        {
            if (TryWrite(message))
            {
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (!parker.Pause(new RoomFor(this, message.Length), deadline, cancellationToken))
            {
                return false;
            }
        }
    }

    /// <summary>Writes <paramref name="message"/>, waiting for room without holding a thread (parked on the process's futex watcher).</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed, before or during the wait.</exception>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        CheckLength(message.Length);
        while (!TryWrite(message.Span))
        {
            await WaitToWriteAsync(message.Length, Deadline.Never, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends <paramref name="length"/> bytes of the ring to fill in place, if there is room now;
    /// <see cref="WriteLoan.Commit(int)"/> publishes them. One loan at a time.
    /// </summary>
    /// <param name="length">The most the message will hold.</param>
    /// <param name="loan">The space.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="InvalidOperationException">A loan is still open.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe bool TryReserve(int length, out WriteLoan loan)
    {
        byte* target = ReserveRecord(length);
        loan = target is null ? default : new WriteLoan(this, target, length);
        return target is not null;
    }

    /// <summary>
    /// Says this writer is done: once the reader has taken its messages, its lane is free for another
    /// writer. Final: every write after it throws <see cref="ChannelClosedException"/>; an open loan
    /// is dropped. Calling it again does nothing.
    /// </summary>
    /// <exception cref="ChannelClosedException">The lane was given to another writer meanwhile (the reader took this one for dead): it is left alone.</exception>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    public unsafe void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_completed && !CompleteLane())
        {
            throw TakenOver();
        }
    }

    /// <summary>A <see cref="ChannelWriter{T}"/> over this writer, for code written against System.Threading.Channels.</summary>
    public ChannelWriter<ReadOnlyMemory<byte>> AsChannelWriter() => new ChannelWriterAdapter(this);

    /// <summary>Completes the lane if <see cref="Complete"/> was not called (and only if it is still this writer's), and ends pending waits with <see cref="ObjectDisposedException"/>.</summary>
    public unsafe void Dispose()
    {
        if (!_disposed)
        {
            _builder?.Dispose(); // an open message is abandoned, and lets go of the mapping
            if (!_completed)
            {
                CompleteLane();
            }
            _disposed = true;
            _channel.Detach(this);
        }
    }

    /// <summary>Waits, parked on the process's futex watcher, until a message of <paramref name="length"/> bytes can make progress (its padding, or itself, fits); false at the deadline.</summary>
    internal unsafe Task<bool> WaitToWriteAsync(int length, Deadline deadline, CancellationToken cancellationToken)
    {
        int* sequence = _lane.SpaceSequence;
        int seen = Volatile.Read(ref *sequence);
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, _lane.WriterSleeping, () =>
        {
            ThrowIfUnusable(); // disposed while registering: end the wait rather than poll for ever
            if (HasRoom(length))
            {
                return true;
            }
            ThrowIfReaderDied();
            return false;
        }, deadline, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
    }

    /// <summary>What a parked writer waits for: room for its message.</summary>
    private readonly struct RoomFor(SharedChannelWriter writer, int length) : IParkCondition
    {
        public bool IsMet => writer.HasRoom(length);
    }
}
