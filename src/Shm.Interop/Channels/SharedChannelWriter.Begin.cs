using System;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

// A message built in place by a serializer (IBufferWriter<byte>): begun with room reserved in the
// ring, grown in place while the ring allows, abandoned without a trace if never committed.
public sealed partial class SharedChannelWriter
{
    /// <summary>What a message begun without a size hint reserves first: 256 bytes, or the whole message if less.</summary>
    private const int DefaultReservation = 256;

    private MessageBuilder? _builder;

    /// <summary>
    /// Begins a message that a serializer writes straight into the ring, if there is room now for
    /// <paramref name="sizeHint"/> bytes (256 if 0): fill it through <see cref="System.Buffers.IBufferWriter{T}"/>
    /// (<c>new Utf8JsonWriter(builder)</c>, MessagePack, protobuf), then <see cref="MessageBuilder.Commit"/>;
    /// dispose it without committing to abandon it (nothing is delivered). One message at a time.
    /// </summary>
    /// <param name="sizeHint">Bytes to reserve now, 0 to <see cref="MaxMessageLength"/>; the message may grow past it.</param>
    /// <param name="builder">The message, when there was room.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sizeHint"/> is negative or longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="InvalidOperationException">A loan or another message is still open.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    public bool TryBeginMessage(int sizeHint, [NotNullWhen(true)] out MessageBuilder? builder)
    {
        builder = TryBegin(sizeHint);
        return builder is not null;
    }

    /// <summary>
    /// <see cref="TryBeginMessage(int, out MessageBuilder?)"/>, waiting up to <paramref name="timeout"/>
    /// for room for <paramref name="sizeHint"/> bytes.
    /// </summary>
    /// <param name="sizeHint">Bytes to reserve now, 0 to <see cref="MaxMessageLength"/>.</param>
    /// <param name="builder">The message, when there was room in time.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sizeHint"/> is negative or longer than <see cref="MaxMessageLength"/>, or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="InvalidOperationException">A loan or another message is still open.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    public bool TryBeginMessage(int sizeHint, [NotNullWhen(true)] out MessageBuilder? builder, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        builder = BeginCore(sizeHint, deadline, cancellationToken);
        return builder is not null;
    }

    /// <summary><see cref="TryBeginMessage(int, out MessageBuilder?)"/>, waiting (blocking) for room.</summary>
    /// <param name="sizeHint">Bytes to reserve now, 0 to <see cref="MaxMessageLength"/>.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sizeHint"/> is negative or longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="InvalidOperationException">A loan or another message is still open.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed.</exception>
    public MessageBuilder BeginMessage(int sizeHint, CancellationToken cancellationToken = default) =>
        BeginCore(sizeHint, Deadline.Never, cancellationToken)!;

    /// <summary><see cref="TryBeginMessage(int, out MessageBuilder?)"/>, waiting for room without holding a thread.</summary>
    /// <param name="sizeHint">Bytes to reserve now, 0 to <see cref="MaxMessageLength"/>.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sizeHint"/> is negative or longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="InvalidOperationException">A loan or another message is still open.</exception>
    /// <exception cref="ChannelClosedException">This writer completed, the reader died, or the stream ended.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its channel was disposed, before or during the wait.</exception>
    public async ValueTask<MessageBuilder> BeginMessageAsync(int sizeHint, CancellationToken cancellationToken = default)
    {
        int reserve = Reservation(sizeHint);
        MessageBuilder? builder;
        while ((builder = TryBegin(sizeHint)) is null)
        {
            await WaitToWriteAsync(reserve, Deadline.Never, cancellationToken).ConfigureAwait(false);
        }
        return builder;
    }

    private unsafe MessageBuilder? BeginCore(int sizeHint, Deadline deadline, CancellationToken cancellationToken)
    {
        int reserve = Reservation(sizeHint);
        var parker = new FutexParker(_lane.SpaceSequence, _lane.WriterSleeping);
        while (true)
        {
            if (TryBegin(sizeHint) is MessageBuilder builder)
            {
                return builder;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (!parker.Pause(new RoomFor(this, reserve), deadline, cancellationToken))
            {
                return null;
            }
        }
    }

    private int Reservation(int sizeHint)
    {
        CheckLength(sizeHint);
        return sizeHint > 0 ? sizeHint : Math.Min(DefaultReservation, MaxMessageLength);
    }

    private unsafe MessageBuilder? TryBegin(int sizeHint)
    {
        int reserve = Reservation(sizeHint);
        if (_builder is not null)
        {
            throw new InvalidOperationException("A message begun on this writer is still open: commit or dispose it first.");
        }
        byte* target = ReserveRecord(reserve);
        if (target is null)
        {
            return null;
        }
        try
        {
            return _builder = new MessageBuilder(this, _channel.Region.SafeMappingHandle, target, reserve);
        }
        catch
        {
            _loan = -1;
            throw;
        }
    }

    /// <summary>Grows the open loan at <paramref name="target"/> in place to <paramref name="length"/> bytes, if the ring has that much room after it, unbroken, now.</summary>
    internal unsafe bool TryGrowLoan(byte* target, int length)
    {
        if (_loan < 0 || target != _data + ((_head + ChannelLayout.RecordHeaderSize) & _mask) || length > MaxMessageLength)
        {
            return false;
        }
        int record = ChannelLayout.Align(ChannelLayout.RecordHeaderSize + length);
        if ((_head & _mask) + record > _capacity || !HasRoomFor(record))
        {
            return false;
        }
        _loan = length;
        return true;
    }

    /// <summary>
    /// Drops the open loan at <paramref name="target"/> without publishing anything: its bytes lie past
    /// the head, where no reader looks, and the next record is written over them.
    /// </summary>
    internal unsafe void AbandonLoan(byte* target)
    {
        if (_loan >= 0 && target == _data + ((_head + ChannelLayout.RecordHeaderSize) & _mask))
        {
            _loan = -1;
        }
    }

    /// <summary>Writes a message the builder had to copy out of the ring, waiting for room as <see cref="Write"/> does.</summary>
    internal bool WriteCopied(ReadOnlySpan<byte> message, Deadline deadline, CancellationToken cancellationToken) =>
        WriteCore(message, deadline, cancellationToken);

    internal void Ended(MessageBuilder builder)
    {
        if (ReferenceEquals(_builder, builder))
        {
            _builder = null;
        }
    }
}
