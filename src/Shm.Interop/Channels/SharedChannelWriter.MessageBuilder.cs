using System;
using System.Buffers;
using System.Threading;
using System.Threading.Channels;

namespace Shm.Interop;

public sealed partial class SharedChannelWriter
{
    /// <summary>
    /// One message being written by a serializer, in place in the ring: an <see cref="IBufferWriter{T}"/>
    /// (<see cref="GetSpan"/>, <see cref="GetMemory"/>, <see cref="Advance"/>), then <see cref="Commit"/>
    /// publishes the bytes advanced over as one message. Disposing it uncommitted abandons it: nothing
    /// is delivered, and the writer can begin another.
    /// </summary>
    /// <remarks>
    /// Room is reserved when the message begins. Asked for more, it grows in place (doubling, up to
    /// <see cref="MaxMessageLength"/>) while the ring has that much free space after it, unbroken; if
    /// the message would cross the ring's end, or the reader has not freed enough yet, the bytes so far
    /// are copied to a pooled buffer, the ring's reservation is abandoned, and the rest is written
    /// there: <see cref="Commit"/> then copies the message into the ring, waiting for room as
    /// <see cref="Write"/> does. Use it from the writer's thread; memory it handed out is valid until
    /// the next call on it, as the interface says.
    /// </remarks>
    public sealed unsafe class MessageBuilder : IBufferWriter<byte>, IDisposable
    {
        private readonly SharedChannelWriter _writer;
        private readonly SafeMappingHandle _mapping;
        private readonly LoanMemory _memory = new();
        private byte* _target;
        private byte[]? _copy;
        private int _capacity;
        private int _written;
        private bool _ended;

        internal MessageBuilder(SharedChannelWriter writer, SafeMappingHandle mapping, byte* target, int reserved)
        {
            bool added = false;
            mapping.DangerousAddRef(ref added); // the ring stays mapped while the message is open, whoever disposes the channel
            _writer = writer;
            _mapping = mapping;
            _target = target;
            _capacity = reserved;
        }

        /// <summary>The bytes advanced over so far: the message's length if committed now.</summary>
        public int WrittenCount => _written;

        /// <summary>True once the message was copied out of the ring to grow (see the remarks): <see cref="Commit"/> may then wait for room.</summary>
        public bool IsCopied => _copy is not null;

        /// <inheritdoc/>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative or more than the last span or memory held.</exception>
        /// <exception cref="ObjectDisposedException">The message was committed or abandoned.</exception>
        public void Advance(int count)
        {
            ThrowIfEnded();
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _capacity - _written);
            _written += count;
        }

        /// <inheritdoc/>
        /// <exception cref="ArgumentOutOfRangeException">The message would grow past <see cref="MaxMessageLength"/> (a serializer may ask for more than it writes: <c>Utf8JsonWriter</c> asks for 4096 bytes at a time).</exception>
        /// <exception cref="ObjectDisposedException">The message was committed or abandoned.</exception>
        public Span<byte> GetSpan(int sizeHint = 0)
        {
            Ensure(sizeHint);
            return _copy is null ? new Span<byte>(_target + _written, _capacity - _written) : _copy.AsSpan(_written, _capacity - _written);
        }

        /// <inheritdoc/>
        /// <exception cref="ArgumentOutOfRangeException">The message would grow past <see cref="MaxMessageLength"/>.</exception>
        /// <exception cref="ObjectDisposedException">The message was committed or abandoned.</exception>
        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            Ensure(sizeHint);
            return _copy is null ? _memory.Over(_target + _written, _capacity - _written) : _copy.AsMemory(_written, _capacity - _written);
        }

        /// <summary>Publishes the bytes advanced over as one message; if it was copied out of the ring, waits for room first.</summary>
        /// <param name="cancellationToken">Stops waiting for room (the message stays open: commit again or dispose it).</param>
        /// <exception cref="ObjectDisposedException">The message was committed or abandoned, or the writer or its channel disposed.</exception>
        /// <exception cref="OperationCanceledException">Cancelled while waiting for room.</exception>
        /// <exception cref="ChannelClosedException">The writer completed, the reader died, or its lane was given to another writer.</exception>
        /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
        public void Commit(CancellationToken cancellationToken = default) => CommitCore(Deadline.Never, cancellationToken);

        /// <summary><see cref="Commit"/>, waiting up to <paramref name="timeout"/> for room if the message was copied out of the ring; false (the message still open) if there was none in time.</summary>
        /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once.</param>
        /// <param name="cancellationToken">Stops waiting.</param>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
        /// <exception cref="ObjectDisposedException">The message was committed or abandoned, or the writer or its channel disposed.</exception>
        /// <exception cref="OperationCanceledException">Cancelled.</exception>
        /// <exception cref="ChannelClosedException">The writer completed, the reader died, or its lane was given to another writer.</exception>
        /// <exception cref="SharedMemoryCorruptedException">A value read from the channel is impossible.</exception>
        public bool TryCommit(TimeSpan timeout, CancellationToken cancellationToken = default) => CommitCore(Deadline.After(timeout), cancellationToken);

        /// <summary>Abandons the message if it was not committed: nothing is delivered. Twice does nothing.</summary>
        public void Dispose()
        {
            if (!_ended)
            {
                if (_copy is null)
                {
                    _writer.AbandonLoan(_target);
                }
                End();
            }
        }

        private bool CommitCore(Deadline deadline, CancellationToken cancellationToken)
        {
            ThrowIfEnded();
            bool done = false;
            try
            {
                if (_copy is null)
                {
                    _writer.Commit(_target, _capacity, _written);
                    done = true;
                }
                else
                {
                    done = _writer.WriteCopied(_copy.AsSpan(0, _written), deadline, cancellationToken);
                }
                return done;
            }
            catch (OperationCanceledException) when (_copy is not null)
            {
                throw; // nothing was lost: the message stays open
            }
            catch
            {
                done = true; // the writer refused for good: the message ends here
                throw;
            }
            finally
            {
                if (done)
                {
                    End();
                }
            }
        }

        /// <summary>Makes room for <paramref name="sizeHint"/> more bytes (at least one): in place, or in a copy.</summary>
        private void Ensure(int sizeHint)
        {
            ThrowIfEnded();
            ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
            int wanted = Math.Max(sizeHint, 1);
            if (_capacity - _written >= wanted)
            {
                return;
            }
            int max = _writer.MaxMessageLength;
            long need = (long)_written + wanted;
            if (need > max)
            {
                throw new ArgumentOutOfRangeException(nameof(sizeHint), sizeHint, $"A message of this channel holds at most {max} bytes: {_written} are written and {wanted} more were asked for. Use a larger lane capacity (serializers may ask for more than they write: Utf8JsonWriter asks for 4096 bytes at a time).");
            }
            int grown = (int)Math.Min(max, Math.Max(need, 2L * _capacity));
            if (_copy is null)
            {
                if (_writer.TryGrowLoan(_target, grown))
                {
                    _capacity = grown;
                    return;
                }
                if (grown != need && _writer.TryGrowLoan(_target, (int)need))
                {
                    _capacity = (int)need;
                    return;
                }
                byte[] copy = ArrayPool<byte>.Shared.Rent(grown);
                new ReadOnlySpan<byte>(_target, _written).CopyTo(copy);
                _writer.AbandonLoan(_target);
                _target = null;
                _copy = copy;
            }
            else
            {
                byte[] larger = ArrayPool<byte>.Shared.Rent(grown);
                _copy.AsSpan(0, _written).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_copy);
                _copy = larger;
            }
            _capacity = Math.Min(_copy.Length, max);
        }

        private void End()
        {
            _ended = true;
            _target = null;
            if (_copy is not null)
            {
                ArrayPool<byte>.Shared.Return(_copy);
                _copy = null;
            }
            _mapping.DangerousRelease();
            _writer.Ended(this);
        }

        private void ThrowIfEnded()
        {
            if (_ended)
            {
                throw new ObjectDisposedException(nameof(MessageBuilder), "The message was committed or abandoned: begin another.");
            }
        }

        /// <summary>The loan's free space as <see cref="Memory{T}"/>: one manager per message, pointed at the current space on each call.</summary>
        private sealed class LoanMemory : MemoryManager<byte>
        {
            private byte* _start;
            private int _length;

            public Memory<byte> Over(byte* start, int length)
            {
                _start = start;
                _length = length;
                return CreateMemory(length);
            }

            public override Span<byte> GetSpan() => new(_start, _length);

            public override MemoryHandle Pin(int elementIndex = 0)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
                ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
                return new MemoryHandle(_start + elementIndex, default, this);
            }

            public override void Unpin()
            {
            }

            protected override void Dispose(bool disposing)
            {
            }
        }
    }
}
