using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/mman.h> memfd_create, <unistd.h> ftruncate, <sys/stat.h> fstat, <fcntl.h>: descriptors that back regions.
internal static partial class Libc
{
    internal const uint MFD_CLOEXEC = 0x0001;

    internal const int F_GETFD = 1;
    internal const int F_SETFD = 2;
    internal const int FD_CLOEXEC = 1;

    [LibraryImport(Name, EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial SafeFileHandle memfd_create(string name, uint flags);

    [LibraryImport(Name, EntryPoint = "ftruncate", SetLastError = true)]
    internal static partial int ftruncate(SafeFileHandle fd, long length);

    [LibraryImport(Name, EntryPoint = "dup", SetLastError = true)]
    internal static partial SafeFileHandle dup(int fd);

    [LibraryImport(Name, EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int fcntl(SafeFileHandle fd, int command, int argument);

    // struct stat is 144 bytes on x86-64 and 128 on arm64; both put st_dev at 0, st_ino at 8 and st_size at 48.
    private const int StatSize = 256;

    /// <summary>The size of the object behind <paramref name="fd"/>, from fstat's st_size.</summary>
    internal static unsafe long FileSize(SafeFileHandle fd)
    {
        byte* stat = stackalloc byte[StatSize];
        if (fstat(fd, stat) != 0)
        {
            throw ShmException.FromLastError("fstat");
        }
        return *(long*)(stat + 48);
    }

    [LibraryImport(Name, EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int fstat(SafeFileHandle fd, byte* stat);
}
