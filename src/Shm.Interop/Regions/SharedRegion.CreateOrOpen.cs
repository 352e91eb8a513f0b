using System;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// One name, many processes starting together: the first to create it sizes it, the others open it
// and wait (bounded) for the size, as MemoryMappedFile.CreateOrOpen does on Windows.
public partial class SharedRegion
{
    /// <summary>How long <see cref="CreateOrOpen(string, long)"/> waits for a creator to size the segment.</summary>
    private static readonly TimeSpan DefaultSizingTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// True if this region created its named segment (<see cref="CreateNamed"/>, or the creating side
    /// of <see cref="CreateOrOpen(string, long)"/>) and so unlinks the name when disposed;
    /// false for an opener and for every other kind of region.
    /// </summary>
    public bool OwnsName => _name is not null;

    /// <summary>
    /// Creates the named segment <paramref name="name"/> as <see cref="CreateNamed"/> does or, if it
    /// exists, opens it read/write as <see cref="OpenNamed"/> does, race-free between processes starting
    /// together: exactly one creates (mode 0600) and sizes it, and owns the name (see <see cref="OwnsName"/>); the
    /// others wait up to 5 seconds for its size to appear, and never unlink it. The size is set before
    /// any opener can map the segment; its contents are what the creator writes after.
    /// </summary>
    /// <param name="name">An optional leading <c>/</c>, then 1 to 255 bytes with no <c>/</c> and no NUL.</param>
    /// <param name="length">Bytes, at least 1; an existing segment must have exactly this size.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid POSIX name, or names something in <c>/dev/shm</c> that is not a regular file.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative.</exception>
    /// <exception cref="InvalidOperationException">The segment exists with another size (the message names both).</exception>
    /// <exception cref="TimeoutException">The segment exists but stayed empty for 5 seconds: its creator died before sizing it, or is stuck (the message names it and the <c>shm rm</c> that removes it).</exception>
    /// <exception cref="ShmException">ENOSPC creating it, EACCES opening it, ...</exception>
    public static SharedRegion CreateOrOpen(string name, long length) =>
        CreateOrOpenCore(name, length, OwnerReadWrite, Deadline.After(DefaultSizingTimeout), CancellationToken.None)
        ?? throw new TimeoutException(
            $"The segment '{name}' exists but stayed empty (0 bytes) for {DefaultSizingTimeout.TotalSeconds:0} s: its creator opened it and never sized it (it may have died). If no process is creating it, remove it: shm rm {name.TrimStart('/')}");

    /// <summary>
    /// <see cref="CreateOrOpen(string, long)"/> with the mode a creator gives the segment, waiting up to
    /// <paramref name="timeout"/> for its creator to size an existing one: false (and
    /// <paramref name="region"/> null) if it stayed empty that long.
    /// </summary>
    /// <param name="name">An optional leading <c>/</c>, then 1 to 255 bytes with no <c>/</c> and no NUL.</param>
    /// <param name="length">Bytes, at least 1; an existing segment must have exactly this size.</param>
    /// <param name="mode">Who may open it, if this call creates it.</param>
    /// <param name="region">The region, created or opened (<see cref="OwnsName"/> says which).</param>
    /// <param name="timeout">How long to wait for an existing, empty segment to be sized; <see cref="TimeSpan.Zero"/> looks once, <see cref="Timeout.InfiniteTimeSpan"/> waits for ever.</param>
    /// <param name="cancellationToken">Ends the wait with <see cref="OperationCanceledException"/>.</param>
    /// <returns>True with the region; false if the segment existed and stayed empty (or kept being removed and made again) until the timeout.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid POSIX name, or names something in <c>/dev/shm</c> that is not a regular file.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative, or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">The segment exists with another size (the message names both).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ShmException">ENOSPC creating it, EACCES opening it, ...</exception>
    public static bool TryCreateOrOpen(string name, long length, UnixFileMode mode, [NotNullWhen(true)] out SharedRegion? region, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        region = CreateOrOpenCore(name, length, mode, Deadline.After(timeout), cancellationToken);
        return region is not null;
    }

    /// <summary>The loop behind both forms: the region, or null at the deadline.</summary>
    private static SharedRegion? CreateOrOpenCore(string name, long length, UnixFileMode mode, Deadline deadline, CancellationToken cancellationToken)
    {
        string posixName = ValidateName(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        NamedSegmentCleanup.EnsureWatching();
        for (bool first = true; ; first = false)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!first && deadline.HasPassed)
            {
                return null; // others keep creating and removing the name under us: each pass creates, opens or sees it gone
            }
            SafeFileHandle made = Libc.shm_open(posixName, Libc.O_CREAT | Libc.O_EXCL | Libc.O_RDWR, (uint)mode);
            if (!made.IsInvalid)
            {
                return Own(made, posixName, name, length, mode);
            }
            ThrowUnless(made, LinuxErrno.EEXIST, name);

            // O_NONBLOCK: a FIFO planted under the name must be refused, not waited on for a writer.
            SafeFileHandle fd = Libc.shm_open(posixName, Libc.O_RDWR | Libc.O_NONBLOCK, 0);
            if (fd.IsInvalid)
            {
                ThrowUnless(fd, LinuxErrno.ENOENT, name); // gone since: its creator failed and unlinked it; try to create it
                continue;
            }
            if (OpenWhenSized(fd, posixName, name, length, deadline, cancellationToken, out bool timedOut) is SharedRegion opened)
            {
                return opened;
            }
            if (timedOut)
            {
                return null;
            }
        }
    }

    /// <summary>Closes <paramref name="fd"/>, which failed to open; returns if errno was <paramref name="expected"/>, else throws it.</summary>
    private static void ThrowUnless(SafeFileHandle fd, int expected, string name)
    {
        int error = Marshal.GetLastPInvokeError();
        fd.Dispose();
        if (error != expected)
        {
            throw new ShmException("shm_open", error, name);
        }
    }

    /// <summary>
    /// The opener's side: maps <paramref name="fd"/> once its creator has sized it (and checks the size),
    /// or returns null (with <paramref name="fd"/> closed) if the name stopped naming this segment while
    /// it was empty: its creator failed and unlinked it, so the caller tries to create it again; or
    /// null with <paramref name="timedOut"/> set if it stayed empty until <paramref name="deadline"/>.
    /// </summary>
    private static SharedRegion? OpenWhenSized(SafeFileHandle fd, string posixName, string name, long length, Deadline deadline, CancellationToken cancellationToken, out bool timedOut)
    {
        timedOut = false;
        try
        {
            while (true)
            {
                Libc.FileId file = Libc.FileStatus(fd);
                if (!file.IsRegularFile)
                {
                    throw new ArgumentException(
                        $"'{name}' in /dev/shm is {file.TypeName}, not a shared memory segment (a regular file); someone else may have put it there.",
                        nameof(name));
                }
                if (file.Size > 0)
                {
                    if (file.Size != length)
                    {
                        throw new InvalidOperationException(
                            $"The segment '{name}' exists with {file.Size} bytes; CreateOrOpen asked for {length} bytes. Every process must ask for the segment's size (or open it with OpenNamed, which takes its size).");
                    }
                    return new SharedRegion(MapDescriptor(fd, length, Protection.ReadWrite, name), length, Protection.ReadWrite, RegionKind.Named, fd, name);
                }
                if (Libc.PathStatus(Libc.ShmDirectory + posixName[1..])?.Id != file.Id)
                {
                    fd.Dispose();
                    return null;
                }
                if (deadline.HasPassed)
                {
                    timedOut = true;
                    fd.Dispose();
                    return null;
                }
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(1); // the size has no wake-up of its own: a creator sizes within microseconds of creating
            }
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
