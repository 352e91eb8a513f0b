using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// Owns one <c>mmap</c>ped range: its release is the <c>munmap</c> of the same address and
/// length, run exactly once, by <see cref="SafeHandle.Dispose()"/> or, for a region the user
/// forgot, by the runtime's critical finalizer.
/// </summary>
public sealed class SafeMappingHandle : SafeHandle
{
    private nuint _length;

    /// <summary>An invalid handle, for marshalling.</summary>
    public SafeMappingHandle()
        : base(Libc.MAP_FAILED, ownsHandle: true) { }

    internal void Attach(nint address, nuint length)
    {
        _length = length;
        SetHandle(address);
    }

    /// <summary>The length passed to <c>mmap</c>, and given back to <c>munmap</c>.</summary>
    public nuint ByteLength => _length;

    /// <inheritdoc/>
    public override bool IsInvalid => handle == Libc.MAP_FAILED || handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Libc.munmap(handle, _length) == 0;
}
