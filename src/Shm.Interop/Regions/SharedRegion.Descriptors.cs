using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// Regions backed by a descriptor: memfd, attach by descriptor, inherit from a spawning parent.
public partial class SharedRegion
{
    /// <summary>The environment variable that tells a spawned child which descriptors it inherited, in order.</summary>
    public static readonly string InheritedDescriptorsVariable = "SHM_INHERITED_FDS";

    private static readonly HashSet<int> ClaimedInherited = [];

    /// <summary>
    /// Creates an anonymous in-memory file (<c>memfd_create</c>) of <paramref name="length"/> zeroed
    /// bytes and maps it. Any process that receives the descriptor can map it; it ends when the last
    /// descriptor and mapping are gone. It shows in <c>/proc/PID/maps</c> as <c>/memfd:NAME (deleted)</c>.
    /// Its size is sealed (<c>F_SEAL_SHRINK | F_SEAL_GROW</c>): a process it is handed to cannot
    /// truncate it under this one's mapping, which would kill this process with SIGBUS.
    /// </summary>
    /// <param name="name">A label for diagnostics (1 to 249 bytes, no NUL); it need not be unique.</param>
    /// <param name="length">Bytes, at least 1.</param>
    /// <param name="inheritability">Whether the descriptor stays open across <c>exec</c> (default: close-on-exec; <see cref="Child.Spawn(string, System.Collections.Generic.IEnumerable{string}, SharedRegion[])"/> passes it either way).</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty, too long or contains NUL.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative.</exception>
    /// <exception cref="ShmException"><c>memfd_create</c>, <c>ftruncate</c>, <c>fcntl</c> or <c>mmap</c> failed.</exception>
    public static SharedRegion CreateMemfd(string name, long length, HandleInheritability inheritability = HandleInheritability.None)
    {
        ArgumentNullException.ThrowIfNull(name);
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes is 0 or > 249 || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"A memfd name is 1 to 249 bytes without NUL; got {bytes} bytes.", nameof(name));
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);

        uint flags = Libc.MFD_ALLOW_SEALING | (inheritability == HandleInheritability.Inheritable ? 0 : Libc.MFD_CLOEXEC);
        SafeFileHandle fd = Libc.CheckIo(Libc.memfd_create(name, flags), "memfd_create", name);
        try
        {
            Libc.CheckIo(Libc.ftruncate(fd, length), "ftruncate", $"memfd '{name}', {length} bytes");
            Libc.CheckIo(Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW), "fcntl(F_ADD_SEALS)", $"memfd '{name}'");
            return new SharedRegion(MapDescriptor(fd, length, Protection.ReadWrite, name), length, Protection.ReadWrite, RegionKind.Memfd, fd, name);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Maps the whole object behind descriptor <paramref name="descriptor"/> (a memfd, a segment or a
    /// file received from another process), sized by <c>statx</c>. The region works on its own
    /// close-on-exec duplicate of the descriptor; the caller keeps and closes <paramref name="descriptor"/>.
    /// </summary>
    /// <param name="descriptor">An open descriptor (wrap a raw number with <c>new SafeFileHandle(fd, ownsHandle: false)</c>).</param>
    /// <param name="access">Read/write (the descriptor must be open for writing) or read-only.</param>
    /// <exception cref="ArgumentNullException"><paramref name="descriptor"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="access"/> is neither read/write nor read-only.</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="descriptor"/> was closed.</exception>
    /// <exception cref="ShmException"><c>fcntl</c> (EBADF for a descriptor number nothing is open at), <c>statx</c> or <c>mmap</c> (EACCES mapping read/write a descriptor open read-only) failed.</exception>
    /// <exception cref="InvalidOperationException">The object is empty.</exception>
    public static SharedRegion OpenDescriptor(SafeFileHandle descriptor, RegionAccess access = RegionAccess.ReadWrite)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ObjectDisposedException.ThrowIf(descriptor.IsClosed, descriptor);
        using var held = new SafeHandleLease(descriptor);
        int fd = (int)held.DangerousHandle;
        return Attach(Duplicate(fd), access, RegionKind.Descriptor, null, $"descriptor {fd}");
    }

    /// <summary>
    /// The spawned child's side of <see cref="Child.Spawn(string, System.Collections.Generic.IEnumerable{string}, SharedRegion[])"/>: opens inherited region number
    /// <paramref name="index"/> (in the order the parent passed them). The inherited descriptor is made
    /// close-on-exec (so it goes no further, to this process's own children) and stays open; each
    /// region works on its own duplicate, so attaching the same index twice gives two independent regions.
    /// </summary>
    /// <param name="index">Which inherited region, from 0.</param>
    /// <param name="access">Read/write or read-only.</param>
    /// <exception cref="InvalidOperationException">This process was not given regions (no <see cref="InheritedDescriptorsVariable"/>), or the object is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is negative or fewer regions were inherited, or <paramref name="access"/> is neither read/write nor read-only.</exception>
    /// <exception cref="FormatException"><see cref="InheritedDescriptorsVariable"/> does not hold descriptor numbers (someone else set it).</exception>
    /// <exception cref="ShmException">The inherited descriptor is not open (EBADF), or mapping it failed.</exception>
    public static SharedRegion OpenInherited(int index = 0, RegionAccess access = RegionAccess.ReadWrite)
    {
        string list = Environment.GetEnvironmentVariable(InheritedDescriptorsVariable)
            ?? throw new InvalidOperationException($"No regions were inherited: {InheritedDescriptorsVariable} is not set. Start this process with Child.Spawn.");
        string[] fds = list.Split(',', StringSplitOptions.RemoveEmptyEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, fds.Length);
        int fd = int.Parse(fds[index], CultureInfo.InvariantCulture);
        lock (ClaimedInherited)
        {
            if (ClaimedInherited.Add(fd))
            {
                Libc.CheckIo(Libc.fcntl(fd, Libc.F_SETFD, Libc.FD_CLOEXEC), "fcntl(F_SETFD)", $"inherited descriptor {fd}");
            }
        }
        return Attach(Duplicate(fd), access, RegionKind.Descriptor, null, $"inherited descriptor {fd}");
    }

    private static SafeFileHandle Duplicate(int fd) =>
        new(Libc.CheckIo(Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0), "fcntl(F_DUPFD_CLOEXEC)", $"descriptor {fd}"), ownsHandle: true);

    private static SharedRegion Attach(SafeFileHandle fd, RegionAccess access, RegionKind kind, string? name, string what)
    {
        try
        {
            Libc.FileId file = Libc.FileStatus(fd);
            if (kind == RegionKind.Named && !file.IsRegularFile)
            {
                throw new ArgumentException(
                    $"'{name}' in /dev/shm is {file.TypeName}, not a shared memory segment (a regular file); someone else may have put it there.",
                    nameof(name));
            }
            long length = file.Size;
            if (length <= 0)
            {
                throw new InvalidOperationException(kind == RegionKind.Named
                    ? $"The segment '{name}' is empty (0 bytes): its creator has opened it but not sized it yet, or never will. Retry after the creator has finished (it sizes the segment before writing to it)."
                    : $"The object behind {what} is empty (0 bytes): nothing to map.");
            }
            Protection protection = ProtectionFor(access);
            return new SharedRegion(MapDescriptor(fd, length, protection, name), length, protection, kind, fd, name);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static Protection ProtectionFor(RegionAccess access) => access switch
    {
        RegionAccess.ReadWrite => Protection.ReadWrite,
        RegionAccess.ReadOnly => Protection.Read,
        _ => throw new ArgumentOutOfRangeException(nameof(access), access, "ReadWrite or ReadOnly."),
    };

    private static SafeMappingHandle MapDescriptor(SafeFileHandle fd, long length, Protection protection, string? name) =>
        Adopt(new SafeMappingHandle(), Libc.mmap(0, (nuint)length, (int)protection, Libc.MAP_SHARED, fd, 0), length, name ?? "descriptor");

    /// <summary>Allocates the backing pages or blocks now (<c>posix_fallocate</c>), so a full file system fails here and not with SIGBUS on first touch.</summary>
    private static void Reserve(SafeFileHandle fd, long length, string what) =>
        Libc.CheckError(Libc.posix_fallocate(fd, 0, length), "posix_fallocate", $"{what}, {length} bytes");
}
