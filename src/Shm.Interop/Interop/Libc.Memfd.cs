using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/mman.h> memfd_create, <unistd.h> ftruncate, <fcntl.h> fcntl: descriptors that back regions.
internal static partial class Libc
{
    internal const uint MFD_CLOEXEC = 0x0001;
    internal const uint MFD_ALLOW_SEALING = 0x0002;

    internal const int F_SETFD = 2;
    internal const int FD_CLOEXEC = 1;

    /// <summary>Duplicates a descriptor with FD_CLOEXEC set, atomically (dup would clear it).</summary>
    internal const int F_DUPFD_CLOEXEC = 1030;

    internal const int F_ADD_SEALS = 1033;
    internal const int F_SEAL_SHRINK = 0x0002;
    internal const int F_SEAL_GROW = 0x0004;

    [LibraryImport(Name, EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial SafeFileHandle memfd_create(string name, uint flags);

    [LibraryImport(Name, EntryPoint = "ftruncate", SetLastError = true)]
    internal static partial int ftruncate(SafeFileHandle fd, long length);

    // fcntl is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int fcntl(SafeFileHandle fd, int command, int argument);

    [LibraryImport(Name, EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int fcntl(int fd, int command, int argument);
}
