using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// A message a reader took: its bytes in place in the ring (no copy), valid until the message is
/// disposed, which gives the space back to the writer. Take the next message only after disposing
/// this one.
/// </summary>
/// <remarks>
/// The reader numbers the messages it hands out, and each message carries its number: disposing a
/// copy of a message released already (or disposing twice) does nothing, so it can never give back
/// the space of the message being read now.
/// </remarks>
public readonly unsafe struct ReceivedMessage : IDisposable
{
    private readonly SharedChannelReader? _reader;
    private readonly byte* _bytes;
    private readonly long _number;
    private readonly ReadOnlyMemory<byte> _memory;

    internal ReceivedMessage(SharedChannelReader reader, byte* bytes, int length, long number)
    {
        _reader = reader;
        _bytes = bytes;
        _number = number;
        Length = length;
        _memory = default;
    }

    /// <summary>
    /// A message another transport delivered in memory it owns (the NetMQ transport wraps each
    /// received frame so); disposing it does nothing.
    /// </summary>
    /// <param name="memory">The message's bytes, kept (not copied).</param>
    public ReceivedMessage(ReadOnlyMemory<byte> memory)
    {
        _reader = null;
        _bytes = null;
        _number = 0;
        _memory = memory;
        Length = memory.Length;
    }

    /// <summary>The number of bytes.</summary>
    public int Length { get; }

    /// <summary>The bytes, in place; do not keep them past <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Span => _reader is null ? _memory.Span : new ReadOnlySpan<byte>(_bytes, Length);

    /// <summary>The message as an unmanaged <typeparamref name="T"/> (written with <c>TryWrite&lt;T&gt;</c>).</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <exception cref="InvalidOperationException">The message is not the size of a <typeparamref name="T"/>.</exception>
    public T Read<T>()
        where T : unmanaged =>
        Length == Unsafe.SizeOf<T>()
            ? MemoryMarshal.Read<T>(Span)
            : throw new InvalidOperationException($"The message is {Length} bytes; a {typeof(T).Name} is {Unsafe.SizeOf<T>()}.");

    /// <summary>Copies the bytes into a new array.</summary>
    public byte[] ToArray() => Span.ToArray();

    /// <summary>Releases the message: its space in the ring goes back to the writer. Does nothing for a message released already.</summary>
    /// <exception cref="SharedMemoryCorruptedException">Another process rewrote the lane's tail while this message was read: the writer may have overwritten its bytes.</exception>
    public void Dispose() => _reader?.Release(_number);
}
