using System;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// Regions backed by a descriptor: memfd, attach by descriptor, inherit from a spawning parent.
public partial class SharedRegion
{
    /// <summary>The environment variable that tells a spawned child which descriptors it inherited, in order.</summary>
    public const string InheritedDescriptorsVariable = "SHM_INHERITED_FDS";

    /// <summary>
    /// Creates an anonymous in-memory file (<c>memfd_create</c>) of <paramref name="length"/> zeroed
    /// bytes and maps it. Any process that receives the descriptor can map it; it ends when the last
    /// descriptor and mapping are gone. It shows in <c>/proc/PID/maps</c> as <c>/memfd:NAME (deleted)</c>.
    /// </summary>
    /// <param name="name">A label for diagnostics (1 to 249 bytes, no NUL); it need not be unique.</param>
    /// <param name="length">Bytes, at least 1.</param>
    /// <param name="inheritable">Leave the descriptor open across <c>exec</c> (off: close-on-exec; <see cref="Child.Spawn"/> passes it either way).</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty, too long or contains NUL.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative.</exception>
    /// <exception cref="ShmException"><c>memfd_create</c>, <c>ftruncate</c> or <c>mmap</c> failed.</exception>
    public static SharedRegion CreateMemfd(string name, long length, bool inheritable = false)
    {
        ArgumentNullException.ThrowIfNull(name);
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes is 0 or > 249 || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"A memfd name is 1 to 249 bytes without NUL; got {bytes} bytes.", nameof(name));
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);

        SafeFileHandle fd = Opened(Libc.memfd_create(name, inheritable ? 0 : Libc.MFD_CLOEXEC), "memfd_create", name);
        try
        {
            if (Libc.ftruncate(fd, length) != 0)
            {
                throw ShmException.FromLastError("ftruncate", $"memfd '{name}', {length} bytes");
            }
            return new SharedRegion(MapDescriptor(fd, length, Protection.ReadWrite, name), length, Protection.ReadWrite, RegionKind.Memfd, fd, name);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Maps the whole object behind descriptor <paramref name="fd"/> (a memfd, a segment or a file
    /// received from another process), sized by <c>fstat</c>. The region works on its own duplicate
    /// of the descriptor; the caller keeps <paramref name="fd"/>.
    /// </summary>
    /// <param name="fd">An open descriptor.</param>
    /// <param name="writable">Map read/write (the descriptor must be open for writing) or read-only.</param>
    /// <exception cref="ShmException"><c>dup</c> (EBADF for a closed descriptor), <c>fstat</c> or <c>mmap</c> failed.</exception>
    /// <exception cref="ArgumentException">The object is empty.</exception>
    public static SharedRegion FromDescriptor(int fd, bool writable = true)
    {
        return Attach(Opened(Libc.dup(fd), "dup", $"descriptor {fd}"), writable, RegionKind.Descriptor, null);
    }

    /// <summary>
    /// The spawned child's side of <see cref="Child.Spawn"/>: maps inherited region number
    /// <paramref name="index"/> (in the order the parent passed them) and takes ownership of its descriptor.
    /// </summary>
    /// <param name="index">Which inherited region, from 0.</param>
    /// <param name="writable">Map read/write or read-only.</param>
    /// <exception cref="InvalidOperationException">This process was not given regions (no <see cref="InheritedDescriptorsVariable"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">Fewer regions were inherited.</exception>
    public static SharedRegion AttachInherited(int index = 0, bool writable = true)
    {
        string list = Environment.GetEnvironmentVariable(InheritedDescriptorsVariable)
            ?? throw new InvalidOperationException($"No regions were inherited: {InheritedDescriptorsVariable} is not set. Start this process with Child.Spawn.");
        string[] fds = list.Split(',', StringSplitOptions.RemoveEmptyEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, fds.Length);
        var fd = new SafeFileHandle(int.Parse(fds[index], CultureInfo.InvariantCulture), ownsHandle: true);
        return Attach(fd, writable, RegionKind.Descriptor, null);
    }

    private static SharedRegion Attach(SafeFileHandle fd, bool writable, RegionKind kind, string? name)
    {
        try
        {
            long length = Libc.FileStatus(fd).Size;
            if (length <= 0)
            {
                throw new ArgumentException($"The object behind descriptor {fd.DangerousGetHandle()} is empty: nothing to map.", "fd");
            }
            Protection protection = writable ? Protection.ReadWrite : Protection.Read;
            return new SharedRegion(MapDescriptor(fd, length, protection, name), length, protection, kind, fd, name);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static SafeMappingHandle MapDescriptor(SafeFileHandle fd, long length, Protection protection, string? name) =>
        Adopt(new SafeMappingHandle(), Libc.mmap(0, (nuint)length, (int)protection, Libc.MAP_SHARED, fd, 0), length, name ?? "descriptor");

    /// <summary>Returns <paramref name="fd"/>, just returned by <paramref name="syscall"/>, or disposes it and throws the call's errno.</summary>
    private static SafeFileHandle Opened(SafeFileHandle fd, string syscall, string detail)
    {
        if (fd.IsInvalid)
        {
            fd.Dispose();
            throw ShmException.FromLastError(syscall, detail);
        }
        return fd;
    }

    /// <summary>Allocates the backing pages or blocks now (<c>posix_fallocate</c>), so a full file system fails here and not with SIGBUS on first touch.</summary>
    private static void Reserve(SafeFileHandle fd, long length, string what)
    {
        int error = Libc.posix_fallocate(fd, 0, length);
        if (error != 0)
        {
            throw new ShmException("posix_fallocate", error, $"{what}, {length} bytes");
        }
    }
}
