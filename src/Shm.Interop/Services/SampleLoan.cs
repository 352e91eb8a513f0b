using System;

namespace Shm.Interop;

/// <summary>
/// Space a <see cref="Publisher"/> lent from its pool for one sample: fill <see cref="Span"/> in place,
/// then <see cref="Publish(int)"/>. Disposing a loan that was not published gives the space back.
/// </summary>
/// <remarks>
/// A publisher lends one sample at a time. The loan carries its number: publishing or disposing a copy
/// of a loan that was published, discarded or replaced already is refused (publish) or does nothing
/// (dispose). Do not write into <see cref="Span"/> after publishing: subscribers read those bytes.
/// </remarks>
public readonly unsafe struct SampleLoan : IDisposable
{
    private readonly Publisher? _publisher;
    private readonly byte* _payload;
    private readonly long _number;

    internal SampleLoan(Publisher publisher, byte* payload, int length, long number)
    {
        _publisher = publisher;
        _payload = payload;
        _number = number;
        Length = length;
    }

    /// <summary>The bytes lent (the size asked for).</summary>
    public int Length { get; }

    /// <summary>The sample's bytes, in place in the pool (64-byte aligned).</summary>
    /// <exception cref="InvalidOperationException">The loan was published or discarded, or its publisher disposed.</exception>
    public Span<byte> Span => (_publisher ?? throw new InvalidOperationException("No loan.")).IsOpen(_number)
        ? new Span<byte>(_payload, Length)
        : throw new InvalidOperationException("This loan was published or discarded already, or its publisher was disposed.");

    /// <summary>Publishes the first <paramref name="length"/> bytes of <see cref="Span"/> as one sample to every attached subscriber.</summary>
    /// <param name="length">How many bytes were filled, 0 to <see cref="Length"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or larger than the loan.</exception>
    /// <exception cref="InvalidOperationException">The loan was published or discarded already.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible: the publisher is not used further.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed.</exception>
    public void Publish(int length) => (_publisher ?? throw new InvalidOperationException("No loan.")).Publish(_number, length);

    /// <summary>Publishes the whole of <see cref="Span"/>.</summary>
    /// <exception cref="InvalidOperationException">The loan was published or discarded already.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed.</exception>
    public void Publish() => Publish(Length);

    /// <summary>Gives the space back if the loan was not published; otherwise does nothing.</summary>
    public void Dispose() => _publisher?.Discard(_number);
}
