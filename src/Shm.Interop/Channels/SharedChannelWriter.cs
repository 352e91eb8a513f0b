using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A writer of a <see cref="SharedChannel"/>: owns one lane (a single-writer ring) for as long as it
/// is not disposed. Use it from one thread at a time.
/// </summary>
public sealed class SharedChannelWriter : IMessageWriter
{
    /// <summary>How long a full writer spins before it parks: a futex wake-up costs tens of microseconds on a VM.</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 10_000;

    private readonly SharedChannel _channel;
    private readonly unsafe byte* _lane;
    private readonly unsafe byte* _data;
    private readonly long _mask;
    private long _head;
    private long _tailSeen;
    private long _readerCheckedAt;
    private int _loan = -1;
    private bool _disposed;

    internal unsafe SharedChannelWriter(SharedChannel channel)
    {
        _channel = channel;
        (int pid, long started) = ProcessIdentity.Self();
        for (int i = 0; i < channel.LaneCount; i++)
        {
            byte* lane = channel.Lane(i);
            if (Interlocked.CompareExchange(ref *(int*)(lane + ChannelLayout.WriterPid), pid, 0) == 0)
            {
                *(long*)(lane + ChannelLayout.WriterStart) = started;
                Volatile.Write(ref *(int*)(lane + ChannelLayout.LaneState), LaneStates.Attached);
                Volatile.Write(ref *(int*)(channel.Header + ChannelLayout.EverWritten), 1);
                _lane = lane;
                _data = lane + ChannelLayout.LaneHeaderSize;
                _mask = channel.LaneCapacity - 1;
                _head = Volatile.Read(ref *(long*)lane);
                _tailSeen = Volatile.Read(ref *(long*)(lane + ChannelLayout.Tail));
                LaneIndex = i;
                if (Volatile.Read(ref *(int*)(channel.Header + ChannelLayout.Closed)) != 0)
                {
                    Release();
                    throw new ChannelClosedException("The channel's reader already saw the end of the stream: no writer may join.");
                }
                return;
            }
        }
        throw new InvalidOperationException($"All {channel.LaneCount} writer lanes of the channel are in use.");
    }

    /// <summary>Which lane this writer owns.</summary>
    public int LaneIndex { get; }

    /// <inheritdoc/>
    public int MaxMessageLength => _channel.MaxMessageLength;

    private unsafe ref long Head => ref *(long*)(_lane + ChannelLayout.Head);

    private unsafe ref long Tail => ref *(long*)(_lane + ChannelLayout.Tail);

    /// <summary>Writes <paramref name="message"/> if there is room now; false if the lane is full.</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written).</exception>
    /// <exception cref="ChannelClosedException">The lane is full and the reader died, or the stream ended.</exception>
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

    /// <summary>Writes an unmanaged value as one message of its size.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="value">The value, copied.</param>
    public unsafe bool TryWrite<T>(in T value)
        where T : unmanaged =>
        TryWrite(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    /// <summary>Writes <paramref name="message"/>, waiting as long as it takes for room (spinning briefly, then parked on a shared futex).</summary>
    /// <param name="message">The bytes.</param>
    /// <exception cref="ChannelClosedException">The reader died, or the stream ended.</exception>
    public unsafe void Write(ReadOnlySpan<byte> message) => Write(message, Timeout.InfiniteTimeSpan, CancellationToken.None);

    /// <summary>Writes <paramref name="message"/>, waiting up to <paramref name="timeout"/> for room; false if there was none.</summary>
    /// <param name="message">The bytes.</param>
    /// <param name="timeout">How long; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The reader died, or the stream ended.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public unsafe bool Write(ReadOnlySpan<byte> message, TimeSpan timeout, CancellationToken cancellationToken)
    {
        CheckLength(message.Length);
        long deadline = Child.Deadline(timeout);
        long spinUntil = 0;
        while (true)
        {
            if (TryWrite(message))
            {
                return true;
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
            ParkUntilRoom(message.Length, deadline, cancellationToken);
        }
    }

    /// <inheritdoc/>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        CheckLength(message.Length);
        while (!TryWrite(message.Span))
        {
            await WaitToWriteAsync(message.Length, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends <paramref name="length"/> bytes of the ring to fill in place, if there is room now;
    /// <see cref="WriteLoan.Commit(int)"/> publishes them. One loan at a time.
    /// </summary>
    /// <param name="length">The most the message will hold.</param>
    /// <param name="loan">The space.</param>
    public unsafe bool TryReserve(int length, out WriteLoan loan)
    {
        byte* target = ReserveRecord(length);
        loan = target is null ? default : new WriteLoan(this, target, length);
        return target is not null;
    }

    /// <summary>Says this writer is done: once the reader has taken its messages, its lane is free for another writer.</summary>
    public unsafe void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Volatile.Write(ref *(int*)(_lane + ChannelLayout.LaneState), LaneStates.Completed);
        Interlocked.MemoryBarrier();
        SharedChannel.Wake((int*)(_channel.Header + ChannelLayout.ReaderSequence), (int*)(_channel.Header + ChannelLayout.ReaderSleeping));
    }

    /// <summary>A <see cref="ChannelWriter{T}"/> over this writer, for code written against System.Threading.Channels.</summary>
    public unsafe ChannelWriter<ReadOnlyMemory<byte>> AsChannelWriter() => new Adapter(this);

    /// <summary>Completes the lane (if not done already).</summary>
    public unsafe void Dispose()
    {
        if (!_disposed)
        {
            if (Volatile.Read(ref *(int*)(_lane + ChannelLayout.LaneState)) == LaneStates.Attached)
            {
                Complete();
            }
            _disposed = true;
        }
    }

    internal unsafe void Commit(byte* target, int reserved, int length)
    {
        if (_loan < 0 || target != _data + ((_head + ChannelLayout.RecordHeaderSize) & _mask))
        {
            throw new InvalidOperationException("This loan was committed already, or is not the writer's current one.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, reserved);
        Publish(length);
    }

    private unsafe void CheckLength(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > MaxMessageLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"A message of this channel holds at most {MaxMessageLength} bytes (its lane capacity less an 8-byte header).");
        }
    }

    // Finds room for a record of `length` bytes at the head, writing a padding record first if it
    // would cross the end of the ring; returns where the message's bytes go, or null if full.
    private unsafe byte* ReserveRecord(int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _channel.EnsureUsable();
        CheckLength(length);
        if (_loan >= 0)
        {
            throw new InvalidOperationException("A loan is still open on this writer: commit it first.");
        }
        if (Volatile.Read(ref *(int*)(_channel.Header + ChannelLayout.Closed)) != 0)
        {
            throw new ChannelClosedException("The channel's reader saw the end of the stream.");
        }
        long capacity = _mask + 1;
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        long padding = offset + record > capacity ? capacity - offset : 0;
        // The reader's tail is another core's cache line: read it only when the last one seen leaves no room.
        if (_head + padding + record - _tailSeen > capacity && _head + padding + record - (_tailSeen = Volatile.Read(ref Tail)) > capacity)
        {
            // Full. Whether the reader lives is a read of /proc: ask at most every 50 ms, not on every spin.
            long now = Stopwatch.GetTimestamp();
            if (now - _readerCheckedAt >= Stopwatch.Frequency / 20)
            {
                _readerCheckedAt = now;
                ThrowIfReaderDied();
            }
            return null;
        }
        if (padding > 0)
        {
            *(uint*)(_data + offset) = (uint)(padding - ChannelLayout.RecordHeaderSize);
            *(uint*)(_data + offset + 4) = ChannelLayout.Padding;
            _head += padding;
        }
        byte* header = _data + (_head & _mask);
        *(uint*)header = (uint)length;
        *(uint*)(header + 4) = 0;
        _loan = length;
        return header + ChannelLayout.RecordHeaderSize;
    }

    // The record's bytes are written: publish the head (a full fence, so the check of the reader's
    // sleep flag cannot pass it), and wake the reader only if it sleeps.
    private unsafe void Publish(int length)
    {
        *(uint*)(_data + (_head & _mask)) = (uint)length;
        _head += ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        _loan = -1;
        Interlocked.Exchange(ref Head, _head);
        SharedChannel.Wake((int*)(_channel.Header + ChannelLayout.ReaderSequence), (int*)(_channel.Header + ChannelLayout.ReaderSleeping));
    }

    private unsafe bool HasRoom(int length)
    {
        long capacity = _mask + 1;
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        long padding = offset + record > capacity ? capacity - offset : 0;
        return _head + padding + record - Volatile.Read(ref Tail) <= capacity;
    }

    private unsafe void ThrowIfReaderDied()
    {
        int reader = Volatile.Read(ref *(int*)(_channel.Header + ChannelLayout.ReaderPid));
        long started = *(long*)(_channel.Header + ChannelLayout.ReaderStart);
        if (reader != 0 && !ProcessIdentity.IsAlive(reader, started))
        {
            throw new ChannelClosedException($"The channel's reader, process {reader}, died; nothing will take these messages.");
        }
        if (Volatile.Read(ref *(int*)(_channel.Header + ChannelLayout.Closed)) != 0)
        {
            throw new ChannelClosedException("The channel's reader saw the end of the stream.");
        }
    }

    private unsafe void ParkUntilRoom(int length, long deadline, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_lane + ChannelLayout.SpaceSequence);
        int* sleeping = (int*)(_lane + ChannelLayout.WriterSleeping);
        int seen = Volatile.Read(ref *sequence);
        Interlocked.Exchange(ref *sleeping, 1);
        using CancellationTokenRegistration wake = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => Libc.FutexWake((int*)(nint)state!, int.MaxValue), (nint)sequence)
            : default;
        try
        {
            if (HasRoom(length))
            {
                return;
            }
            // At most 100 ms at a time: a reader that died wakes nobody.
            long slice = Math.Min(deadline - Stopwatch.GetTimestamp(), Stopwatch.Frequency / 10);
            Libc.TimeSpec until = Libc.DeadlineOn(Libc.CLOCK_MONOTONIC, TimeSpan.FromTicks(Math.Max(0, (long)(slice * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency))));
            Libc.FutexWaitUntil(sequence, seen, &until);
        }
        finally
        {
            Volatile.Write(ref *sleeping, 0);
        }
    }

    private unsafe Task<bool> WaitToWriteAsync(int length, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_lane + ChannelLayout.SpaceSequence);
        int seen = Volatile.Read(ref *sequence);
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, (int*)(_lane + ChannelLayout.WriterSleeping), () =>
        {
            if (HasRoom(length))
            {
                return true;
            }
            ThrowIfReaderDied();
            return false;
        }, Timeout.InfiniteTimeSpan, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
    }

    private unsafe void Release()
    {
        Volatile.Write(ref *(int*)(_lane + ChannelLayout.LaneState), LaneStates.Free);
        Volatile.Write(ref *(int*)(_lane + ChannelLayout.WriterPid), 0);
    }

    /// <summary>Space lent by <see cref="TryReserve"/>: fill <see cref="Span"/>, then <see cref="Commit(int)"/>.</summary>
    public readonly unsafe ref struct WriteLoan
    {
        private readonly SharedChannelWriter? _writer;
        private readonly unsafe byte* _target;
        private readonly int _length;

        internal WriteLoan(SharedChannelWriter writer, byte* target, int length)
        {
            _writer = writer;
            _target = target;
            _length = length;
        }

        /// <summary>The space, in place in the ring.</summary>
        public Span<byte> Span => new(_target, _length);

        /// <summary>Publishes the first <paramref name="length"/> bytes of <see cref="Span"/> as one message.</summary>
        /// <param name="length">How many bytes were filled, up to the length reserved.</param>
        public void Commit(int length) => (_writer ?? throw new InvalidOperationException("No loan.")).Commit(_target, _length, length);

        /// <summary>Publishes the whole span as one message.</summary>
        public void Commit() => Commit(_length);
    }

    private sealed class Adapter(SharedChannelWriter writer) : ChannelWriter<ReadOnlyMemory<byte>>
    {
        public override bool TryWrite(ReadOnlyMemory<byte> item) => writer.TryWrite(item.Span);

        public override async ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                await writer.WaitToWriteAsync(0, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (ChannelClosedException)
            {
                return false;
            }
        }

        public override bool TryComplete(Exception? error = null)
        {
            writer.Complete();
            return true;
        }
    }
}
