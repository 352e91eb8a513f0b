using System;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// File-backed regions: persistent, shared with anyone who can open the file.
public partial class SharedRegion
{
    /// <summary>
    /// Maps the first <paramref name="length"/> bytes of the regular file at <paramref name="path"/>.
    /// Writable, the file is created if missing (mode 0600, like a named segment) and extended to
    /// <paramref name="length"/> if shorter, with its blocks reserved so that a full disk fails here
    /// instead of with SIGBUS later. Changes reach the file; <see cref="Flush"/> makes them durable.
    /// The file outlives the region: disposing unmaps and closes, nothing more. A symbolic link as the
    /// last component is refused (a planted link cannot redirect the write), and so is anything that
    /// is not a regular file. If the file was created here and mapping it then fails, it is removed.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="length">Bytes to map, at least 1.</param>
    /// <param name="access">Read/write (create or extend as needed), or read-only (the file must exist and be long enough).</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative, or longer than a read-only file; or <paramref name="access"/> is neither read/write nor read-only.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, or not a regular file.</exception>
    /// <exception cref="ShmException"><c>open</c> (ENOENT, EACCES, ELOOP for a symbolic link...), <c>posix_fallocate</c> (ENOSPC, EFBIG) or <c>mmap</c> failed.</exception>
    public static SharedRegion CreateFromFile(string path, long length, RegionAccess access = RegionAccess.ReadWrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);

        // O_NONBLOCK: opening a FIFO must not wait for a peer before it can be refused.
        const int NoFollow = Libc.O_NOFOLLOW | Libc.O_CLOEXEC | Libc.O_NONBLOCK;
        Protection protection = ProtectionFor(access);
        bool writable = access == RegionAccess.ReadWrite;
        bool created = false;
        SafeFileHandle fd;
        if (writable)
        {
            fd = Libc.open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | NoFollow, 0b110_000_000);
            created = !fd.IsInvalid;
            if (!created && System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == LinuxErrno.EEXIST)
            {
                fd.Dispose();
                fd = Libc.open(path, Libc.O_RDWR | NoFollow, 0);
            }
        }
        else
        {
            fd = Libc.open(path, Libc.O_RDONLY | NoFollow, 0);
        }
        Libc.CheckIo(fd, "open", path);
        try
        {
            Libc.FileId file = Libc.FileStatus(fd);
            if (!file.IsRegularFile)
            {
                throw new ArgumentException($"{path} is not a regular file; only regular files can back a region.", nameof(path));
            }
            if (writable && file.Size < length)
            {
                Reserve(fd, length, path);
            }
            else if (!writable && file.Size < length)
            {
                throw new ArgumentOutOfRangeException(nameof(length), length, $"{path} holds only {file.Size} bytes.");
            }
            return new SharedRegion(MapDescriptor(fd, length, protection, path), length, protection, RegionKind.File, fd, path);
        }
        catch
        {
            RemoveIfStillOurs(created, path, fd);
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Removes a file this call created, if the path still names it; never throws (the original exception matters).</summary>
    private static void RemoveIfStillOurs(bool created, string path, SafeFileHandle fd)
    {
        try
        {
            if (created && Libc.PathStatus(path)?.Id == Libc.FileStatus(fd).Id)
            {
                Libc.unlink(path); // ours, and still ours: leave no half-made file behind
            }
        }
        catch (ShmException)
        {
            // statx failed on our own descriptor: leave the file rather than hide the first failure.
        }
    }
}
