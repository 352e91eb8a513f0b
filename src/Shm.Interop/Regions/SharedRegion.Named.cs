using System;
using System.IO;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// Named POSIX segments in /dev/shm: raw objects (data at offset 0, size from statx, no header),
// so C, Python's multiprocessing.shared_memory and Boost.Interprocess can attach to ours and we to theirs.
public partial class SharedRegion
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Creates the named segment <paramref name="name"/> (<c>shm_open</c> with <c>O_CREAT | O_EXCL</c>),
    /// reserves its pages, sizes it and maps it read/write. The region owns the name: its
    /// <see cref="Dispose"/> unlinks it (unless someone else already did), so the segment ends when
    /// the last process unmaps it; a creator region that is never disposed unlinks the name when it
    /// is collected, or when this process exits or is ended by SIGINT, SIGTERM, SIGHUP or SIGQUIT
    /// (handlers installed on the first call, which never cancel the signal; SIGKILL cannot be
    /// caught: <c>shm rm --orphans</c> cleans up after it). Reserving the pages now means a segment
    /// larger than <c>/dev/shm</c> can hold fails here with ENOSPC, not later with SIGBUS on first
    /// touch. On any failure the half-made segment is unlinked and closed.
    /// </summary>
    /// <param name="name">An optional leading <c>/</c>, then 1 to 255 bytes with no <c>/</c> and no NUL.</param>
    /// <param name="length">Bytes, at least 1.</param>
    /// <param name="mode">Who may open it (exactly these bits: the umask does not apply). Default 0600.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid POSIX name.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative.</exception>
    /// <exception cref="ShmException">EEXIST if the name is taken, ENOSPC if <c>/dev/shm</c> lacks room, EACCES, ...</exception>
    public static SharedRegion CreateNamed(string name, long length, UnixFileMode mode = OwnerReadWrite)
    {
        string posixName = ValidateName(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        NamedSegmentCleanup.EnsureWatching();

        SafeFileHandle fd = Libc.CheckIo(Libc.shm_open(posixName, Libc.O_CREAT | Libc.O_EXCL | Libc.O_RDWR, (uint)mode), "shm_open", name);
        return Own(fd, posixName, name, length, mode);
    }

    /// <summary>
    /// The creator's side of a segment this process just made exclusively (<paramref name="fd"/>):
    /// claims the name, sets the mode, reserves and sizes, maps. On failure unlinks and closes.
    /// </summary>
    private static SharedRegion Own(SafeFileHandle fd, string posixName, string name, long length, UnixFileMode mode)
    {
        NamedSegmentOwner? owner = null;
        try
        {
            owner = new NamedSegmentOwner(posixName, Libc.FileStatus(fd).Id); // watched from here on
            Libc.CheckIo(Libc.fchmod(fd, (uint)mode), "fchmod", name);
            Reserve(fd, length, name);
            Libc.CheckIo(Libc.ftruncate(fd, length), "ftruncate", name);
            var region = new SharedRegion(MapDescriptor(fd, length, Protection.ReadWrite, name), length, Protection.ReadWrite, RegionKind.Named, fd, name);
            region._name = owner;
            return region;
        }
        catch
        {
            if (owner is null)
            {
                Libc.shm_unlink(posixName); // statx failed on the segment we just made exclusively
            }
            owner?.Release();
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens and maps the existing named segment <paramref name="name"/>, whoever created it, sized by
    /// <c>statx</c>. Never unlinks it. Opened read-only, the mapping is <c>PROT_READ</c> and the
    /// writing accessors refuse with <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="name">The segment's name (an optional leading <c>/</c>).</param>
    /// <param name="access">Read/write, or read-only.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid POSIX name, or names something in <c>/dev/shm</c> that is not a regular file (a FIFO, a directory...).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="access"/> is neither read/write nor read-only.</exception>
    /// <exception cref="InvalidOperationException">The segment exists but is empty: its creator has not sized it yet.</exception>
    /// <exception cref="ShmException">ENOENT if there is no such segment, EACCES if its mode forbids it.</exception>
    public static SharedRegion OpenNamed(string name, RegionAccess access = RegionAccess.ReadWrite)
    {
        string posixName = ValidateName(name);
        ProtectionFor(access);
        // O_NONBLOCK: a FIFO planted under the name must be refused, not waited on for a writer.
        int flags = (access == RegionAccess.ReadWrite ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_NONBLOCK;
        SafeFileHandle fd = Libc.CheckIo(Libc.shm_open(posixName, flags, 0), "shm_open", name);
        return Attach(fd, access, RegionKind.Named, name, $"segment '{name}'");
    }

    /// <summary>
    /// Removes the name <paramref name="name"/> from <c>/dev/shm</c> (<c>shm_unlink</c>). Processes
    /// that mapped the segment keep it until they unmap; nobody can open it by name any more.
    /// </summary>
    /// <param name="name">The segment's name.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid POSIX name.</exception>
    /// <exception cref="ShmException">ENOENT if there is no such segment, EACCES if not allowed.</exception>
    public static void Unlink(string name) => Libc.CheckIo(Libc.shm_unlink(ValidateName(name)), "shm_unlink", name);

    /// <summary>Checks a POSIX shared memory name and returns it with its leading slash.</summary>
    private static string ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string bare = name.StartsWith('/') ? name[1..] : name;
        int bytes = Encoding.UTF8.GetByteCount(bare);
        if (bytes is 0 or > 255 || bare.Contains('/', StringComparison.Ordinal) || bare.Contains('\0', StringComparison.Ordinal) || bare is "." or "..")
        {
            throw new ArgumentException(
                $"A shared memory name is an optional leading '/' then 1 to 255 bytes with no '/' and no NUL (not \".\" or \"..\"); got \"{name.Replace("\0", "\\0", StringComparison.Ordinal)}\".",
                nameof(name));
        }
        return "/" + bare;
    }
}
