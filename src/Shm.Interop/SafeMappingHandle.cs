using System.Runtime.InteropServices;

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
    internal SafeMappingHandle()
        : base(ownsHandle: true) { }

    internal void Attach(nint address, nuint length)
    {
        SetHandle(address);
        Initialize(length);
    }

    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Libc.munmap(handle, (nuint)ByteLength) == 0;
}
