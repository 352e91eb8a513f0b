using System;
using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

/// <summary>
/// A shared memory mapping (<c>MAP_SHARED</c>) owned by this object: disposing it unmaps the
/// range, and a region that is never disposed is unmapped when the garbage collector finds it.
/// </summary>
/// <remarks>
/// <para>Spans and references handed out by <see cref="AsSpan()"/> and <see cref="As{T}(long)"/>
/// point straight into the mapping: they are as fast as a C pointer and, like one, must not be
/// used after <see cref="Dispose"/>. Methods that make system calls on the range hold a
/// reference on the handle while they run, so a concurrent <see cref="Dispose"/> waits for them
/// instead of unmapping under them.</para>
/// <para>A region is safe to read and write from several threads; the bytes follow the memory
/// model of the hardware, so publish with <see cref="System.Threading.Volatile"/> or
/// <see cref="System.Threading.Interlocked"/> where another process must see an order.</para>
/// </remarks>
public partial class SharedRegion : IDisposable
{
    private readonly SafeMappingHandle _mapping;
    private readonly SafeFileHandle? _descriptor;
    private NamedSegmentOwner? _name;
    private Protection _protection;
    private volatile bool _disposed;

    private protected SharedRegion(SafeMappingHandle mapping, long length, Protection protection, RegionKind kind = RegionKind.Anonymous, SafeFileHandle? descriptor = null, string? name = null)
    {
        _mapping = mapping;
        Length = length;
        _protection = protection;
        Kind = kind;
        _descriptor = descriptor;
        Name = name;
    }

    /// <summary>What backs the region, and so who can share it and when it ends.</summary>
    public RegionKind Kind { get; }

    /// <summary>The segment's, memfd's or file's name; null for anonymous regions.</summary>
    public string? Name { get; }

    /// <summary>
    /// The descriptor of the backing object (memfd, named segment, file), owned by the region and
    /// closed with it; null for anonymous regions. Pass it to another process with
    /// <see cref="Child.Spawn(string, System.Collections.Generic.IEnumerable{string}, SharedRegion[])"/>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public SafeFileHandle? Descriptor
    {
        get
        {
            ThrowIfDisposed();
            return _descriptor;
        }
    }

    /// <summary>The number of usable bytes (the length asked for; the kernel maps whole pages).</summary>
    public long Length { get; }

    /// <summary>True once <see cref="Dispose"/> ran (or its <see cref="SafeMappingHandle"/> was disposed): every further access throws <see cref="ObjectDisposedException"/>.</summary>
    public bool IsDisposed => _disposed || _mapping.IsClosed;

    /// <summary>The current page protection (see <see cref="Protect"/>).</summary>
    public Protection Protection => _protection;

    /// <summary>True if the pages may be read.</summary>
    public bool CanRead => (_protection & Protection.Read) != 0;

    /// <summary>True if the pages may be written.</summary>
    public bool CanWrite => (_protection & Protection.Write) != 0;

    /// <summary>
    /// The start address of the mapping (page aligned). Dangerous, as the BCL's
    /// <c>DangerousGetHandle</c>: nothing keeps the range mapped while you use the address; a
    /// <see cref="Dispose"/> on another thread unmaps it under you. Pin it with
    /// <see cref="SafeMappingHandle"/>'s <c>DangerousAddRef</c>, or use the spans and accessors.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public nint DangerousGetAddress()
    {
        ThrowIfDisposed();
        return _mapping.DangerousGetHandle();
    }

    /// <summary>
    /// The handle that owns the mapping, for callers that pin it across native calls
    /// (<see cref="System.Runtime.InteropServices.SafeHandle.DangerousAddRef"/>). Disposing it
    /// disposes the region's memory: every accessor then throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public SafeMappingHandle SafeMappingHandle => _mapping;

    /// <summary>
    /// Maps <paramref name="length"/> bytes of zeroed, anonymous shared memory, readable and
    /// writable, visible to this process and to children forked after this call.
    /// </summary>
    /// <param name="length">Bytes to map, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative.</exception>
    /// <exception cref="ShmException"><c>mmap</c> failed, e.g. ENOMEM for a length the address space cannot hold.</exception>
    public static SharedRegion CreateAnonymous(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        return new SharedRegion(MapAnonymous(length), length, Protection.ReadWrite);
    }

    /// <summary>Maps an anonymous shared region sized for one <typeparamref name="T"/>, zeroed.</summary>
    /// <typeparam name="T">An unmanaged struct; its value lives in the mapping.</typeparam>
    /// <exception cref="ShmException"><c>mmap</c> failed.</exception>
    public static SharedRegion<T> CreateAnonymous<T>()
        where T : unmanaged
    {
        long length = Unsafe.SizeOf<T>();
        return new SharedRegion<T>(MapAnonymous(length), length, Protection.ReadWrite);
    }

    // The handle is created before mmap runs (arguments evaluate left to right), so nothing can
    // fail between the mapping and its owner.
    private static SafeMappingHandle MapAnonymous(long length) =>
        Adopt(new SafeMappingHandle(), Libc.mmap(0, (nuint)length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_ANONYMOUS, -1, 0), length, "anonymous");

    /// <summary>Gives <paramref name="address"/>, just returned by <c>mmap</c>, to <paramref name="mapping"/>, or throws mmap's errno.</summary>
    private static SafeMappingHandle Adopt(SafeMappingHandle mapping, nint address, long length, string what)
    {
        if (address == Libc.MAP_FAILED)
        {
            mapping.SetHandleAsInvalid();
            throw ShmException.FromLastError("mmap", $"{what}, {length} bytes");
        }
        mapping.Attach(address, (nuint)length);
        return mapping;
    }

    /// <summary>Unmaps the region. Calling it again does nothing.</summary>
    public void Dispose()
    {
        // The handle defers the munmap until calls holding a reference finish; the flag makes
        // new accesses fail at once.
        _disposed = true;
        _mapping.Dispose();
        ReleaseBacking();
    }

    private void ReleaseBacking()
    {
        _name?.Release();
        _descriptor?.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        IsDisposed ? $"{Describe()} (disposed)" : $"{Describe()}, {Length} bytes at 0x{_mapping.DangerousGetHandle():x}";

    private protected virtual string Describe() => Kind switch
    {
        RegionKind.Anonymous => "anonymous region",
        _ => $"{Kind.ToString().ToLowerInvariant()} region '{Name}'",
    };

    private protected void ThrowIfDisposed()
    {
        if (_disposed || _mapping.IsClosed)
        {
            throw new ObjectDisposedException(nameof(SharedRegion), "The region was disposed and its memory unmapped.");
        }
    }
}
