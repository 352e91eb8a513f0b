using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// A reference on a <see cref="SafeHandle"/> held for a scope (<c>using</c>), like the runtime's
/// <c>SafeBuffer.AcquirePointer</c>/<c>ReleasePointer</c>: the constructor takes it
/// (<see cref="SafeHandle.DangerousAddRef"/>, which throws <see cref="System.ObjectDisposedException"/>
/// for a handle already released), <see cref="Dispose"/> gives it back. While it is held the handle
/// is not released (a mapping is not unmapped, a descriptor not closed), whatever another thread disposes.
/// </summary>
/// <remarks>A default lease holds nothing; disposing one, or one twice, does nothing.</remarks>
internal ref struct SafeHandleLease
{
    private readonly SafeHandle? _handle;
    private bool _held;

    /// <exception cref="System.ObjectDisposedException"><paramref name="handle"/> was released already.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public SafeHandleLease(SafeHandle handle)
    {
        _handle = handle;
        _held = false;
        handle.DangerousAddRef(ref _held);
    }

    /// <summary>True while it holds a reference.</summary>
    public readonly bool IsHeld => _held;

    /// <summary>The raw handle, valid while the lease is held.</summary>
    public readonly nint DangerousHandle => _handle!.DangerousGetHandle();

    /// <summary>Gives the reference back (once).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        if (_held)
        {
            _held = false;
            _handle!.DangerousRelease();
        }
    }
}
