using System;

namespace Shm.Interop;

// mlock, msync, madvise, mprotect over the whole region.
public partial class SharedRegion
{
    /// <summary>Locks the pages in RAM (<c>mlock</c>) so they are never swapped out.</summary>
    /// <exception cref="ShmException"><c>mlock</c> failed, e.g. ENOMEM over RLIMIT_MEMLOCK or EPERM.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public unsafe void LockPages() => Apply("mlock", &Mlock, 0);

    /// <summary>Undoes <see cref="LockPages"/> (<c>munlock</c>).</summary>
    /// <exception cref="ShmException"><c>munlock</c> failed.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public unsafe void UnlockPages() => Apply("munlock", &Munlock, 0);

    /// <summary>
    /// Writes changed pages back to the backing object (<c>msync</c>): for a file-backed region
    /// this makes the bytes durable; for memory-only kinds it is cheap and harmless.
    /// </summary>
    /// <param name="asynchronous">Schedule the write (<c>MS_ASYNC</c>) instead of waiting for it (<c>MS_SYNC</c>).</param>
    /// <exception cref="ShmException"><c>msync</c> failed.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public unsafe void Flush(bool asynchronous = false) =>
        Apply("msync", &Libc.msync, asynchronous ? Libc.MS_ASYNC : Libc.MS_SYNC);

    /// <summary>Tells the kernel how the region will be used (<c>madvise</c>).</summary>
    /// <param name="advice">The hint.</param>
    /// <exception cref="ShmException"><c>madvise</c> failed, e.g. EINVAL for advice this kernel lacks.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public unsafe void Advise(Advice advice) => Apply("madvise", &Libc.madvise, (int)advice);

    /// <summary>
    /// Changes the page protection (<c>mprotect</c>). The typed accessors follow it: a region
    /// made read-only refuses <see cref="AsSpan()"/> with <see cref="NotSupportedException"/>
    /// instead of letting a write fault.
    /// </summary>
    /// <param name="protection">The new protection.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="protection"/> has unknown bits.</exception>
    /// <exception cref="ShmException"><c>mprotect</c> failed, e.g. EACCES asking to write a read-only descriptor.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public unsafe void Protect(Protection protection)
    {
        if ((protection & ~Protection.ReadWrite) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(protection), protection, "Only Read and Write may be combined.");
        }
        Apply("mprotect", &Libc.mprotect, (int)protection);
        _protection = protection;
    }

    private static int Mlock(nint address, nuint length, int unused) => Libc.mlock(address, length);

    private static int Munlock(nint address, nuint length, int unused) => Libc.munlock(address, length);

    // Holds a reference on the handle for the duration of the call, so a Dispose on another
    // thread cannot unmap the range (and let a new mapping take its place) mid-syscall.
    private unsafe void Apply(string syscall, delegate*<nint, nuint, int, int> call, int argument)
    {
        ThrowIfDisposed();
        using var held = new SafeHandleLease(_mapping);
        Libc.CheckIo(call(held.DangerousHandle, (nuint)_mapping.ByteLength, argument), syscall);
    }
}
