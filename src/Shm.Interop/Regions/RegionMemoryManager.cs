using System;
using System.Buffers;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A range of a region's mapping as <see cref="Memory{T}"/>, for APIs that keep a buffer across an
/// await (<c>Stream.ReadAsync</c>, <c>Socket.ReceiveAsync</c>). It holds a reference on the
/// <see cref="SafeMappingHandle"/> from its creation until it is collected: every
/// <see cref="Memory{T}"/> made from it, and every <see cref="MemoryHandle"/> pinned from them, keeps it
/// reachable, so the range stays mapped while any of them may still be used, even after the region's
/// <see cref="SharedRegion.Dispose"/> (the <c>munmap</c> waits for the last manager to be collected).
/// </summary>
/// <remarks>
/// <see cref="GetSpan"/> and <see cref="Pin"/> never throw for the region's state: the socket engine
/// calls <c>Memory.Span</c> on a thread-pool thread when a pending receive completes, where an
/// exception ends the process (a test saw it). After Dispose the memory simply stays usable; after a
/// <see cref="SharedRegion.Protect"/> that removed write access, a kernel write into it fails with
/// EFAULT (a <c>SocketException</c>), a write through a span faults, as with <see cref="SharedRegion.AsSpan()"/>.
/// </remarks>
internal sealed unsafe class RegionMemoryManager : MemoryManager<byte>
{
    private readonly SafeMappingHandle _mapping;
    private readonly byte* _start;
    private readonly int _length;
    private int _held;

    /// <summary>The range [<paramref name="offset"/>, +<paramref name="length"/>), already checked against the region and its protection.</summary>
    public RegionMemoryManager(SafeMappingHandle mapping, long offset, int length)
    {
        _mapping = mapping;
        _length = length;
        bool added = false;
        mapping.DangerousAddRef(ref added); // ObjectDisposedException if it is already unmapped
        _held = added ? 1 : 0;
        _start = (byte*)mapping.DangerousGetHandle() + offset;
    }

    // The only release: nobody can tell when the last Memory made from this manager is dropped but the GC.
    // CA2015's hazard (a Span outliving every Memory it came from) needs the region disposed meanwhile,
    // and a span used after Dispose is already out of contract, as one from AsSpan is. What this protects
    // is the buffer async I/O holds as a Memory or a pin across an await: those keep this manager reachable.
#pragma warning disable CA2015
    ~RegionMemoryManager()
    {
        if (Interlocked.Exchange(ref _held, 0) == 1)
        {
            _mapping.DangerousRelease();
        }
    }
#pragma warning restore CA2015

    /// <inheritdoc/>
    public override Span<byte> GetSpan() => new(_start, _length);

    /// <inheritdoc/>
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
        // Native memory never moves; the handle keeps this manager, and so the mapping, alive until Unpin.
        return new MemoryHandle(_start + elementIndex, default, this);
    }

    /// <inheritdoc/>
    public override void Unpin()
    {
    }

    /// <summary>
    /// Nothing: a <see cref="Memory{T}"/> made from this manager may still be in use by whoever
    /// disposes it (<c>MemoryMarshal.TryGetMemoryManager</c>), so only the finalizer lets go of the mapping.
    /// </summary>
    protected override void Dispose(bool disposing)
    {
    }
}
