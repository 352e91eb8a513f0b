using System;
using System.IO;

namespace Shm.Interop;

// The region as Memory<byte> and as a Stream, for APIs that take those (async I/O, serializers, copies).
public partial class SharedRegion
{
    /// <summary>
    /// The whole region as writable <see cref="Memory{T}"/>, for APIs that hold a buffer across an
    /// await (<c>Stream.ReadAsync</c>, <c>Socket.ReceiveAsync</c>). The memory keeps the range mapped
    /// while it (or a pin of it) may be used: a <see cref="Dispose"/> meanwhile refuses the region's
    /// own accessors at once but defers the <c>munmap</c> until the garbage collector finds the last
    /// such memory unreachable (the memory never throws for the region's state: a socket completing
    /// a receive on a thread-pool thread would end the process). A span taken from the memory is as a
    /// span from <see cref="AsSpan()"/>: not to be used after the memory is dropped. Each call makes
    /// one small object with a finalizer: take it once and slice it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (use <see cref="AsReadOnlyMemory()"/>).</exception>
    /// <exception cref="InvalidOperationException">The region is larger than a <see cref="Memory{T}"/> can address (2 GiB); slice it.</exception>
    public Memory<byte> AsMemory() => AsMemory(0, WholeSpanLength());

    /// <summary><paramref name="length"/> writable bytes from <paramref name="offset"/> as <see cref="Memory{T}"/>; see <see cref="AsMemory()"/>.</summary>
    /// <param name="offset">Byte offset into the region.</param>
    /// <param name="length">Number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    public Memory<byte> AsMemory(long offset, int length) => Manage(offset, length, Protection.ReadWrite).Memory;

    /// <summary>The whole region as <see cref="ReadOnlyMemory{T}"/>; see <see cref="AsMemory()"/>.</summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    /// <exception cref="InvalidOperationException">The region is larger than a <see cref="Memory{T}"/> can address (2 GiB); slice it.</exception>
    public ReadOnlyMemory<byte> AsReadOnlyMemory() => AsReadOnlyMemory(0, WholeSpanLength());

    /// <summary><paramref name="length"/> bytes from <paramref name="offset"/> as <see cref="ReadOnlyMemory{T}"/>; see <see cref="AsMemory()"/>.</summary>
    /// <param name="offset">Byte offset into the region.</param>
    /// <param name="length">Number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    public ReadOnlyMemory<byte> AsReadOnlyMemory(long offset, int length) => Manage(offset, length, Protection.Read).Memory;

    /// <summary>
    /// The whole region as a seekable, fixed-length <see cref="Stream"/> (an <see cref="UnmanagedMemoryStream"/>
    /// over <see cref="SafeMappingHandle"/>): read/write, or read-only if the region is. Each read and
    /// write holds a reference on the handle, so a <see cref="Dispose"/> of the region waits for one
    /// in progress, and later ones throw <see cref="ObjectDisposedException"/> once the range is
    /// unmapped (while a <see cref="AsMemory()"/> of the region keeps it mapped, they still work on it).
    /// Disposing the stream leaves the region alone.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    public Stream AsStream() => AsStream(0, Length);

    /// <summary><paramref name="length"/> bytes from <paramref name="offset"/> as a <see cref="Stream"/>; see <see cref="AsStream()"/>.</summary>
    /// <param name="offset">Byte offset into the region.</param>
    /// <param name="length">Number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="NotSupportedException">The region is not readable.</exception>
    public Stream AsStream(long offset, long length)
    {
        CheckRange(offset, length);
        ThrowIfDisposed();
        if (!CanRead)
        {
            throw new NotSupportedException("The region is not readable (Protection.None): a stream over it could not read.");
        }
        return new UnmanagedMemoryStream(_mapping, offset, length, CanWrite ? FileAccess.ReadWrite : FileAccess.Read);
    }

    private RegionMemoryManager Manage(long offset, int length, Protection needed)
    {
        CheckRange(offset, length);
        ThrowIfDisposed();
        if ((_protection & needed) != needed)
        {
            throw new NotSupportedException(needed == Protection.ReadWrite
                ? $"The region is {_protection}, not writable: use AsReadOnlyMemory."
                : $"The region is {_protection}, not readable.");
        }
        return new RegionMemoryManager(_mapping, offset, length);
    }
}
