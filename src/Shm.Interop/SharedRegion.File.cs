using System;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// File-backed regions: persistent, shared with anyone who can open the file.
public partial class SharedRegion
{
    /// <summary>
    /// Maps the first <paramref name="length"/> bytes of the file at <paramref name="path"/>.
    /// Writable, the file is created if missing (mode 0644 less the umask) and extended to
    /// <paramref name="length"/> if shorter, with its blocks reserved so that a full disk fails here
    /// instead of with SIGBUS later. Changes reach the file; <see cref="Flush"/> makes them durable.
    /// The file outlives the region: disposing unmaps and closes, nothing more.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="length">Bytes to map, at least 1.</param>
    /// <param name="writable">Map read/write (create or extend as needed), or read-only (the file must exist and be long enough).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or negative, or longer than a read-only file.</exception>
    /// <exception cref="ShmException"><c>open</c> (ENOENT, EACCES...), <c>posix_fallocate</c> (ENOSPC) or <c>mmap</c> failed.</exception>
    public static SharedRegion MapFile(string path, long length, bool writable = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);

        SafeFileHandle fd = Opened(Libc.open(path, writable ? Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC : Libc.O_RDONLY | Libc.O_CLOEXEC, 0b110_100_100), "open", path);
        try
        {
            long size = Libc.FileStatus(fd).Size;
            if (writable && size < length)
            {
                Reserve(fd, length, path);
            }
            else if (!writable && size < length)
            {
                throw new ArgumentOutOfRangeException(nameof(length), length, $"{path} holds only {size} bytes.");
            }
            Protection protection = writable ? Protection.ReadWrite : Protection.Read;
            return new SharedRegion(MapDescriptor(fd, length, protection, path), length, protection, RegionKind.File, fd, path);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
