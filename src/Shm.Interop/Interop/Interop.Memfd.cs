using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/mman.h> memfd_create, <unistd.h> ftruncate and dup, <fcntl.h> fcntl: descriptors that back regions.
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
}
