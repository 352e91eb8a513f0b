using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/stat.h>: what an object is (device, inode), how large, and who may open it.
internal static partial class Libc
{
    // struct stat is 144 bytes on x86-64 and 128 on arm64; both put st_dev at 0, st_ino at 8 and st_size at 48.
    private const int StatSize = 256;

    [LibraryImport(Name, EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int fstat(SafeFileHandle fd, byte* buffer);

    [LibraryImport(Name, EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int stat(string path, byte* buffer);

    [LibraryImport(Name, EntryPoint = "fchmod", SetLastError = true)]
    internal static partial int fchmod(SafeFileHandle fd, uint mode);

    /// <summary>The (device, inode) pair that names the object behind <paramref name="fd"/>, and its size.</summary>
    internal static unsafe (ulong Device, ulong Inode, long Size) FileStatus(SafeFileHandle fd)
    {
        byte* buffer = stackalloc byte[StatSize];
        if (fstat(fd, buffer) != 0)
        {
            throw ShmException.FromLastError("fstat");
        }
        return (*(ulong*)buffer, *(ulong*)(buffer + 8), *(long*)(buffer + 48));
    }

    /// <summary>The (device, inode) pair at <paramref name="path"/>, or null if nothing is there.</summary>
    internal static unsafe (ulong Device, ulong Inode)? PathId(string path)
    {
        byte* buffer = stackalloc byte[StatSize];
        return stat(path, buffer) == 0 ? (*(ulong*)buffer, *(ulong*)(buffer + 8)) : null;
    }
}
