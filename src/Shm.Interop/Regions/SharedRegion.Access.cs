using System;
using System.Runtime.CompilerServices;

namespace Shm.Interop;

// Typed, bounds-checked views of the mapped bytes.
public partial class SharedRegion
{
    /// <summary>The whole region as writable bytes.</summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (use <see cref="AsReadOnlySpan()"/>).</exception>
    /// <exception cref="InvalidOperationException">The region is larger than a span can address (2 GiB); slice it.</exception>
    public Span<byte> AsSpan() => AsSpan(0, WholeSpanLength());

    /// <summary><paramref name="length"/> writable bytes starting at <paramref name="offset"/>.</summary>
    /// <param name="offset">Byte offset into the region.</param>
    /// <param name="length">Number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public unsafe Span<byte> AsSpan(long offset, int length)
    {
        CheckRange(offset, length);
        return new Span<byte>(Pointer(offset, Protection.Write), length);
    }

    /// <summary>The whole region as read-only bytes.</summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    /// <exception cref="InvalidOperationException">The region is larger than a span can address (2 GiB); slice it.</exception>
    public ReadOnlySpan<byte> AsReadOnlySpan() => AsReadOnlySpan(0, WholeSpanLength());

    /// <summary><paramref name="length"/> read-only bytes starting at <paramref name="offset"/>.</summary>
    /// <param name="offset">Byte offset into the region.</param>
    /// <param name="length">Number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    public unsafe ReadOnlySpan<byte> AsReadOnlySpan(long offset, int length)
    {
        CheckRange(offset, length);
        return new ReadOnlySpan<byte>(Pointer(offset, Protection.Read), length);
    }

    /// <summary>The region as an array of <typeparamref name="T"/>: as many whole elements as fit.</summary>
    /// <typeparam name="T">An unmanaged element type.</typeparam>
    /// <exception cref="ArgumentException">One <typeparamref name="T"/> is larger than the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public Span<T> AsSpan<T>()
        where T : unmanaged
    {
        long count = Length / Unsafe.SizeOf<T>();
        if (count == 0)
        {
            throw TooLarge<T>();
        }
        if (count > int.MaxValue)
        {
            throw new InvalidOperationException($"The region holds more than {int.MaxValue} elements of {typeof(T).Name}; use AsSpan<T>(offset, count).");
        }
        return AsSpan<T>(0, (int)count);
    }

    /// <summary><paramref name="count"/> elements of <typeparamref name="T"/> starting at byte <paramref name="offset"/>.</summary>
    /// <typeparam name="T">An unmanaged element type.</typeparam>
    /// <param name="offset">Byte offset into the region; a multiple of <typeparamref name="T"/>'s alignment.</param>
    /// <param name="count">Number of elements.</param>
    /// <exception cref="ArgumentOutOfRangeException">The elements do not lie inside the region.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is misaligned for <typeparamref name="T"/>.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public unsafe Span<T> AsSpan<T>(long offset, int count)
        where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckTyped<T>(offset, (long)count * Unsafe.SizeOf<T>());
        return new Span<T>(Pointer(offset, Protection.Write), count);
    }

    /// <summary>A reference to the <typeparamref name="T"/> stored at byte <paramref name="offset"/>, in place.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="offset">Byte offset into the region; a multiple of <typeparamref name="T"/>'s alignment.</param>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is larger than the region, or <paramref name="offset"/> is misaligned.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public unsafe ref T As<T>(long offset = 0)
        where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() > Length)
        {
            throw TooLarge<T>();
        }
        CheckTyped<T>(offset, Unsafe.SizeOf<T>());
        return ref Unsafe.AsRef<T>(Pointer(offset, Protection.Write));
    }

    /// <summary>Copies the <typeparamref name="T"/> at byte <paramref name="offset"/> out of the region.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="offset">Byte offset; need not be aligned.</param>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    public unsafe T Read<T>(long offset)
        where T : unmanaged
    {
        CheckRange(offset, Unsafe.SizeOf<T>());
        // Held for the copy: a Dispose on another thread waits instead of unmapping under it.
        using var held = new SafeHandleLease(_mapping);
        return Unsafe.ReadUnaligned<T>(Pointer(offset, Protection.Read));
    }

    /// <summary>Copies <paramref name="value"/> into the region at byte <paramref name="offset"/>.</summary>
    /// <typeparam name="T">An unmanaged struct.</typeparam>
    /// <param name="offset">Byte offset; need not be aligned.</param>
    /// <param name="value">The value to store.</param>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public unsafe void Write<T>(long offset, T value)
        where T : unmanaged
    {
        CheckRange(offset, Unsafe.SizeOf<T>());
        using var held = new SafeHandleLease(_mapping);
        Unsafe.WriteUnaligned(Pointer(offset, Protection.Write), value);
    }

    private int WholeSpanLength()
    {
        ThrowIfDisposed();
        return Length <= int.MaxValue
            ? (int)Length
            : throw new InvalidOperationException($"The region is {Length} bytes, more than a span can address; use AsSpan(offset, length).");
    }

    private void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Length);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length - offset);
    }

    private void CheckTyped<T>(long offset, long length)
        where T : unmanaged
    {
        CheckRange(offset, length);
        int alignment = AlignmentOf<T>();
        if (offset % alignment != 0)
        {
            throw new ArgumentException($"Offset {offset} is not a multiple of {typeof(T).Name}'s alignment ({alignment}).", nameof(offset));
        }
    }

    private unsafe byte* Pointer(long offset, Protection needed)
    {
        ThrowIfDisposed();
        if ((_protection & needed) != needed)
        {
            throw new NotSupportedException($"The region is mapped {_protection}; it does not allow {needed}.");
        }
        return (byte*)_mapping.DangerousGetHandle() + offset;
    }

    private ArgumentException TooLarge<T>() =>
        new($"{typeof(T).Name} is {Unsafe.SizeOf<T>()} bytes; the region holds {Length}.", "T");

    // The runtime lays out a struct of a byte followed by T with T at its natural alignment.
    private static int AlignmentOf<T>()
        where T : unmanaged => Unsafe.SizeOf<AlignmentProbe<T>>() - Unsafe.SizeOf<T>();

    private struct AlignmentProbe<T>
        where T : unmanaged
    {
#pragma warning disable CS0649 // Never assigned: only its layout matters.
        public byte Padding;
        public T Value;
#pragma warning restore CS0649
    }
}
