using System;

namespace Shm.Interop;

public sealed partial class SharedChannelWriter
{
    /// <summary>Space lent by <see cref="TryReserve"/>: fill <see cref="Span"/>, then <see cref="Commit(int)"/>.</summary>
    public readonly unsafe ref struct WriteLoan
    {
        private readonly SharedChannelWriter? _writer;
        private readonly byte* _target;
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
        /// <exception cref="InvalidOperationException">No loan, or one committed already.</exception>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or longer than the length reserved.</exception>
        /// <exception cref="System.Threading.Channels.ChannelClosedException">The writer completed, or its lane was given to another writer.</exception>
        public void Commit(int length) => (_writer ?? throw new InvalidOperationException("No loan.")).Commit(_target, _length, length);

        /// <summary>
        /// Gives the space back without publishing anything: no message, not even an empty one, reaches
        /// the reader, and the writer can reserve or write again. Nothing if committed or abandoned already.
        /// </summary>
        public void Abandon() => _writer?.AbandonLoan(_target);

        /// <summary>Publishes the whole span as one message.</summary>
        /// <exception cref="InvalidOperationException">No loan, or one committed already.</exception>
        /// <exception cref="System.Threading.Channels.ChannelClosedException">The writer completed, or its lane was given to another writer.</exception>
        public void Commit() => Commit(_length);
    }
}
