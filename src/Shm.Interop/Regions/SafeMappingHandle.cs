using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// Owns one <c>mmap</c>ped range, like the BCL's <c>SafeMemoryMappedViewHandle</c>: its release is
/// the <c>munmap</c> of the same address and length, run exactly once, by <see cref="SafeHandle.Dispose()"/>
/// (through the region that owns it) or, for a region the user forgot, by the runtime's critical finalizer.
/// As a <see cref="SafeBuffer"/> it knows its length and can be pinned for native calls
/// (<see cref="SafeHandle.DangerousAddRef"/>): the range stays mapped until the last reference goes.
/// </summary>
public sealed class SafeMappingHandle : SafeBuffer
{
    private volatile bool _disposed;
    private volatile Action<SafeMappingHandle>? _whenDisposed;

    internal SafeMappingHandle()
        : base(ownsHandle: true) { }

    /// <summary>
    /// True once <see cref="SafeHandle.Dispose()"/> ran, even while references (a primitive, a pending
    /// wait) keep the range mapped: <see cref="SafeHandle.IsClosed"/> turns true only at the munmap.
    /// </summary>
    internal bool IsDisposed => _disposed;

    /// <summary>
    /// Set once an asynchronous wait holds this mapping: only then does disposing it concern the futex
    /// watcher, which asks to be told (<paramref name="whenDisposed"/>, a cached delegate: the layer
    /// above is called back, never named here). Returns <see cref="IsDisposed"/> read after it (with
    /// <see cref="Dispose(bool)"/>'s order, one of the two sees the other).
    /// </summary>
    internal bool MarkWatched(Action<SafeMappingHandle> whenDisposed)
    {
        _whenDisposed = whenDisposed;
        Interlocked.MemoryBarrier();
        return _disposed;
    }

    internal void Attach(nint address, nuint length)
    {
        SetHandle(address);
        Initialize(length);
        ShmDiagnostics.Mapped((long)length);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        Interlocked.MemoryBarrier();
        base.Dispose(disposing);
        if (disposing && _whenDisposed is Action<SafeMappingHandle> whenDisposed)
        {
            whenDisposed(this); // pending asynchronous waits let go of the range, so it is unmapped now
        }
    }

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        long length = (long)ByteLength;
        bool unmapped = Libc.munmap(handle, (nuint)length) == 0;
        if (unmapped)
        {
            ShmDiagnostics.Unmapped(length);
        }
        return unmapped;
    }
}
