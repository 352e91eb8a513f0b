using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
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
public sealed class SharedChannelWriter : IMessageWriter
{
    /// <summary>How long a full writer spins before it parks: a futex wake-up costs tens of microseconds on a VM.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    private readonly SharedChannel _channel;
    private readonly unsafe byte* _header;
    private readonly unsafe byte* _lane;
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
            (_pid, long started) = ProcessIdentity.Self();
            for (int i = 0; i < channel.LaneCount; i++)
            {
                byte* lane = channel.Lane(i);
                if (Interlocked.CompareExchange(ref *(int*)(lane + ChannelLayout.WriterPid), _pid, 0) != 0)
                {
                    continue;
                }
                _lane = lane;
                _data = lane + ChannelLayout.LaneHeaderSize;
                LaneIndex = i;
                _generation = Interlocked.Increment(ref *(int*)(lane + ChannelLayout.Generation));
                Volatile.Write(ref *(long*)(lane + ChannelLayout.WriterStart), started);
                Volatile.Write(ref *(int*)(lane + ChannelLayout.LaneState), LaneStates.Attached);
                try
                {
                    // The head is ours from here on: read it once, and check it before trusting it with a write.
                    _head = Volatile.Read(ref *(long*)(lane + ChannelLayout.Head));
                    if ((_head & ChannelLayout.PositionMustBeClear) != 0)
                    {
                        throw Corrupt("channel lane head", lane + ChannelLayout.Head, _head, "a multiple of 8 below 2^63");
                    }
                    _tailSeen = ReadTail();
                    CheckClosed(joining: true);
                }
                catch
                {
                    Volatile.Write(ref *(int*)(lane + ChannelLayout.LaneState), LaneStates.Free);
                    Volatile.Write(ref *(int*)(lane + ChannelLayout.WriterPid), 0);
                    throw;
                }
                Volatile.Write(ref *(int*)(_header + ChannelLayout.EverWritten), 1);
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

    private unsafe ref long Head => ref *(long*)(_lane + ChannelLayout.Head);

    /// <summary>Writes <paramref name="message"/> if there is room now; false if the lane is full.</summary>
    /// <param name="message">Up to <see cref="MaxMessageLength"/> bytes, copied into the ring.</param>
    /// <exception cref="ArgumentOutOfRangeException">The message is longer than <see cref="MaxMessageLength"/> (nothing is written).</exception>
    /// <exception cref="ChannelClosedException">This writer completed; or the lane is full and the reader died; or the stream ended; or the lane was given to another writer.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible: the writer is not used further.</exception>
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
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe void Write(ReadOnlySpan<byte> message) => Write(message, Timeout.InfiniteTimeSpan, CancellationToken.None);

    /// <summary>Writes <paramref name="message"/>, waiting up to <paramref name="timeout"/> for room; false if there was none.</summary>
    /// <param name="message">The bytes.</param>
    /// <param name="timeout">How long; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    public unsafe bool Write(ReadOnlySpan<byte> message, TimeSpan timeout, CancellationToken cancellationToken)
    {
        CheckLength(message.Length);
        Deadline deadline = Deadline.After(timeout);
        long spinUntil = 0;
        while (true)
        {
            if (TryWrite(message))
            {
                return true;
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
            ParkUntilRoom(message.Length, deadline, cancellationToken);
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
            await WaitToWriteAsync(message.Length, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends <paramref name="length"/> bytes of the ring to fill in place, if there is room now;
    /// <see cref="WriteLoan.Commit(int)"/> publishes them. One loan at a time.
    /// </summary>
    /// <param name="length">The most the message will hold.</param>
    /// <param name="loan">The space.</param>
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
    public unsafe void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_completed && !CompleteLane())
        {
            throw TakenOver();
        }
    }

    /// <summary>A <see cref="ChannelWriter{T}"/> over this writer, for code written against System.Threading.Channels.</summary>
    public unsafe ChannelWriter<ReadOnlyMemory<byte>> AsChannelWriter() => new Adapter(this);

    /// <summary>Completes the lane if <see cref="Complete"/> was not called (and only if it is still this writer's), and ends pending waits with <see cref="ObjectDisposedException"/>.</summary>
    public unsafe void Dispose()
    {
        if (!_disposed)
        {
            if (!_completed)
            {
                CompleteLane();
            }
            _disposed = true;
            _channel.Detach(this);
        }
    }

    internal unsafe void Commit(byte* target, int reserved, int length)
    {
        ThrowIfUnusable();
        if (_loan < 0 || target != _data + ((_head + ChannelLayout.RecordHeaderSize) & _mask))
        {
            throw new InvalidOperationException("This loan was committed already, or is not the writer's current one.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, reserved);
        if (!OwnsLane())
        {
            _loan = -1;
            throw TakenOver(); // the loan may have been long: look again before publishing
        }
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

    /// <summary>
    /// Finds room for a record of <paramref name="length"/> bytes at the head; returns where the
    /// message's bytes go, or null if the lane is full. A record that would cross the end of the ring
    /// needs padding first: as soon as the padding fits, it is published on its own (the reader
    /// skips it and gives its space back), and the record then waits for room at the start of the
    /// ring. So any message up to <see cref="MaxMessageLength"/> fits once the reader drained the lane.
    /// </summary>
    private unsafe byte* ReserveRecord(int length)
    {
        ThrowIfUnusable();
        CheckLength(length);
        if (_loan >= 0)
        {
            throw new InvalidOperationException("A loan is still open on this writer: commit it first.");
        }
        CheckClosed(joining: false);
        if (!OwnsLane())
        {
            throw TakenOver();
        }
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        if (offset + record > _capacity)
        {
            long padding = _capacity - offset;
            if (!HasRoomFor(padding))
            {
                return Full();
            }
            *(ulong*)(_data + offset) = ChannelLayout.RecordHeader(_head, (uint)(padding - ChannelLayout.RecordHeaderSize), ChannelLayout.Padding);
            PublishHead(_head + padding);
            offset = 0;
        }
        if (!HasRoomFor(record))
        {
            return Full();
        }
        _loan = length;
        return _data + offset + ChannelLayout.RecordHeaderSize;
    }

    /// <summary>True if <paramref name="bytes"/> more fit behind the head. The reader's tail is another core's cache line: read only when the last one seen leaves no room.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HasRoomFor(long bytes) =>
        _head + bytes - _tailSeen <= _capacity || _head + bytes - (_tailSeen = ReadTail()) <= _capacity;

    /// <summary>The lane's tail, read once and checked: a multiple of 8, not ahead of the head, at most a ring behind it.</summary>
    private unsafe long ReadTail()
    {
        long tail = Volatile.Read(ref *(long*)(_lane + ChannelLayout.Tail));
        if ((tail & ChannelLayout.PositionMustBeClear) != 0 || (ulong)(_head - tail) > (ulong)_capacity)
        {
            throw BadTail(tail);
        }
        return tail;
    }

    // Full. Whether the reader lives is a read of /proc: ask at most every 50 ms, not on every spin.
    private unsafe byte* Full()
    {
        long now = Stopwatch.GetTimestamp();
        if (now - _readerCheckedAt >= Stopwatch.Frequency / 20)
        {
            _readerCheckedAt = now;
            ThrowIfReaderDied();
            long head = Volatile.Read(ref Head);
            if (head != _head)
            {
                throw BadHead(head); // waiting, look: a head rewritten would stall the reader silently
            }
        }
        return null;
    }

    // The record's bytes are written: its header goes in (one 8-byte store, so a reader that was
    // shown a head too far never takes a record before its commit), then the head is published.
    private unsafe void Publish(int length)
    {
        *(ulong*)(_data + (_head & _mask)) = ChannelLayout.RecordHeader(_head, (uint)length, 0);
        _loan = -1;
        PublishHead(_head + ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length));
    }

    /// <summary>
    /// Publishes the head (a full fence, so the check of the reader's sleep flag cannot pass it) and
    /// wakes the reader only if it sleeps. The exchange expects the head this writer published last:
    /// any other value means another process wrote it.
    /// </summary>
    private unsafe void PublishHead(long head)
    {
        long seen = Interlocked.CompareExchange(ref Head, head, _head);
        if (seen != _head)
        {
            throw BadHead(seen);
        }
        _head = head;
        SharedChannel.Wake((int*)(_header + ChannelLayout.ReaderSequence), (int*)(_header + ChannelLayout.ReaderSleeping));
    }

    /// <summary>True if the lane still names this writer: its pid and the generation it took when it attached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe bool OwnsLane() =>
        Volatile.Read(ref *(int*)(_lane + ChannelLayout.WriterPid)) == _pid && Volatile.Read(ref *(int*)(_lane + ChannelLayout.Generation)) == _generation;

    /// <summary>Marks this writer completed and, if the lane is still its own, publishes the final head and the completed state; false if it was not.</summary>
    private unsafe bool CompleteLane()
    {
        _completed = true;
        _loan = -1;
        if (!OwnsLane())
        {
            return false;
        }
        Volatile.Write(ref *(long*)(_lane + ChannelLayout.FinalHead), _head);
        Volatile.Write(ref *(int*)(_lane + ChannelLayout.LaneState), LaneStates.Completed);
        Interlocked.MemoryBarrier();
        SharedChannel.Wake((int*)(_header + ChannelLayout.ReaderSequence), (int*)(_header + ChannelLayout.ReaderSleeping));
        return true;
    }

    private unsafe bool HasRoom(int length)
    {
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        long offset = _head & _mask;
        return HasRoomFor(offset + record > _capacity ? _capacity - offset : record); // the padding first, if it needs one
    }

    private unsafe void ThrowIfReaderDied()
    {
        int reader = Volatile.Read(ref *(int*)(_header + ChannelLayout.ReaderPid));
        if (reader < 0)
        {
            throw Corrupt("channel reader pid", _header + ChannelLayout.ReaderPid, reader, "0 (no reader) or a pid", lane: false);
        }
        long started = Volatile.Read(ref *(long*)(_header + ChannelLayout.ReaderStart));
        if (reader != 0 && !ProcessIdentity.IsAlive(reader, started))
        {
            throw new ChannelClosedException($"The channel's reader, process {reader}, died; nothing will take these messages.");
        }
        CheckClosed(joining: false);
    }

    private unsafe void CheckClosed(bool joining)
    {
        int closed = Volatile.Read(ref *(int*)(_header + ChannelLayout.Closed));
        if (closed != 0)
        {
            throw closed == 1
                ? new ChannelClosedException(joining ? "The channel's reader already saw the end of the stream: no writer may join." : "The channel's reader saw the end of the stream.")
                : Corrupt("channel closed flag", _header + ChannelLayout.Closed, closed, "0 or 1", lane: false);
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
        Corrupt("channel lane tail", _lane + ChannelLayout.Tail, tail, $"a multiple of 8 from {_head - _capacity} (one ring behind the head) to the head {_head}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe SharedMemoryCorruptedException BadHead(long head) =>
        Corrupt("channel lane head", _lane + ChannelLayout.Head, head, $"{_head}, the head this writer published last (only the writer writes it)");

    /// <summary>Describes a corrupt value and makes the writer refuse further use.</summary>
    private unsafe SharedMemoryCorruptedException Corrupt(string structure, byte* where, long value, string expected, bool lane = true) =>
        _corruption = new SharedMemoryCorruptedException(structure, _channel.RegionOffsetOf(where), value, expected, lane ? LaneIndex : null);

    private unsafe void ParkUntilRoom(int length, Deadline deadline, CancellationToken cancellationToken)
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
            Libc.TimeSpec until = deadline.AtMost(Stopwatch.Frequency / 10).ToTimeSpec(Libc.CLOCK_MONOTONIC);
            Libc.FutexWait(sequence, seen, &until);
        }
        finally
        {
            Volatile.Write(ref *sleeping, 0);
        }
    }

    /// <summary>Waits, parked on the process's futex watcher, until a message of <paramref name="length"/> bytes can make progress (its padding, or itself, fits).</summary>
    private unsafe Task<bool> WaitToWriteAsync(int length, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_lane + ChannelLayout.SpaceSequence);
        int seen = Volatile.Read(ref *sequence);
        return FutexWatcher.Wait(this, _channel.Region.SafeMappingHandle, sequence, seen, (int*)(_lane + ChannelLayout.WriterSleeping), () =>
        {
            ThrowIfUnusable(); // disposed while registering: end the wait rather than poll for ever
            if (HasRoom(length))
            {
                return true;
            }
            ThrowIfReaderDied();
            return false;
        }, Deadline.Never, cancellationToken, pollEvery: Stopwatch.Frequency / 10);
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

    /// <summary>
    /// The System.Threading.Channels view: <see cref="WriteAsync"/> waits for room for its message,
    /// and <see cref="WaitToWriteAsync"/> for room for the last message <see cref="TryWrite"/>
    /// refused, both parked on the process's futex watcher. After <see cref="TryComplete"/>,
    /// <see cref="TryWrite"/> is false, <see cref="WaitToWriteAsync"/> false, and a second
    /// <see cref="TryComplete"/> false, as for <see cref="Channel{T}"/>.
    /// </summary>
    private sealed class Adapter(SharedChannelWriter writer) : ChannelWriter<ReadOnlyMemory<byte>>
    {
        private int _refused;

        public override bool TryWrite(ReadOnlyMemory<byte> item)
        {
            if (writer._completed)
            {
                return false;
            }
            if (writer.TryWrite(item.Span))
            {
                _refused = 0;
                return true;
            }
            _refused = item.Length;
            return false;
        }

        public override async ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
        {
            if (writer._completed)
            {
                return false;
            }
            try
            {
                await writer.WaitToWriteAsync(_refused, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (ChannelClosedException)
            {
                return false;
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> item, CancellationToken cancellationToken = default) =>
            writer.WriteAsync(item, cancellationToken);

        public override bool TryComplete(Exception? error = null)
        {
            if (writer._completed)
            {
                return false;
            }
            writer.Complete();
            return true;
        }
    }
}
