using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// A sample a <see cref="Subscriber"/> received: its bytes in place in the publisher's pool (no copy),
/// valid until the sample is disposed, which releases it (it returns to the pool once every subscriber
/// released it).
/// </summary>
/// <remarks>
/// Each sample carries a token its subscriber checks: disposing a copy of a sample released already (or
/// disposing twice) does nothing. Do not read <see cref="Span"/> after disposing: the publisher may
/// reuse the space.
/// </remarks>
public readonly unsafe struct Sample : IDisposable
{
    private readonly Subscriber? _subscriber;
    private readonly byte* _payload;
    private readonly long _token;

    internal Sample(Subscriber subscriber, byte* payload, int length, long token, int publisher, long sequence, long missed, long timestamp)
    {
        _subscriber = subscriber;
        _payload = payload;
        _token = token;
        Length = length;
        PublisherIndex = publisher;
        Sequence = sequence;
        Missed = missed;
        PublishTimestamp = timestamp;
    }

    /// <summary>The number of bytes.</summary>
    public int Length { get; }

    /// <summary>The publisher slot it came from.</summary>
    public int PublisherIndex { get; }

    /// <summary>Its number among the samples of its publisher, from 1 (a new publisher in the slot starts again).</summary>
    public long Sequence { get; }

    /// <summary>
    /// How many samples of the same publisher this subscriber lost just before this one because its
    /// queue was full under <see cref="OverflowPolicy.DropOldest"/> (always 0 under
    /// <see cref="OverflowPolicy.Block"/>). <see cref="Subscriber.Missed"/> has the total.
    /// </summary>
    public long Missed { get; }

    /// <summary>When it was published: a <see cref="System.Diagnostics.Stopwatch"/> timestamp (CLOCK_MONOTONIC, comparable across processes of a machine).</summary>
    public long PublishTimestamp { get; }

    /// <summary>The bytes, in place; do not keep them past <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Span => new(_payload, Length);

    /// <summary>The sample as an unmanaged <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <exception cref="InvalidOperationException">The sample is not the size of a <typeparamref name="T"/>.</exception>
    public T Read<T>()
        where T : unmanaged =>
        Length == Unsafe.SizeOf<T>()
            ? MemoryMarshal.Read<T>(Span)
            : throw new InvalidOperationException($"The sample is {Length} bytes; a {typeof(T).Name} is {Unsafe.SizeOf<T>()}.");

    /// <summary>Copies the bytes into a new array.</summary>
    public byte[] ToArray() => Span.ToArray();

    /// <summary>Releases the sample. Does nothing for a sample released already.</summary>
    /// <exception cref="SharedMemoryCorruptedException">Another process cleared this subscriber's reference while it read the sample: the publisher may have reused its space.</exception>
    public void Dispose() => _subscriber?.Release(_token);
}
