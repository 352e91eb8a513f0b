using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/mman.h> shm_open/shm_unlink, <fcntl.h> open/posix_fallocate: named segments and files.
internal static partial class Libc
{
    internal const int O_RDONLY = 0x0;
    internal const int O_RDWR = 0x2;
    internal const int O_CREAT = 0x40;
    internal const int O_EXCL = 0x80;
    internal const int O_CLOEXEC = 0x80000;

    /// <summary>Where glibc keeps POSIX shared memory objects on Linux.</summary>
    internal const string ShmDirectory = "/dev/shm/";

    [LibraryImport(Name, EntryPoint = "shm_open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial SafeFileHandle shm_open(string name, int flags, uint mode);

    [LibraryImport(Name, EntryPoint = "shm_unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int shm_unlink(string name);

    [LibraryImport(Name, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial SafeFileHandle open(string path, int flags, uint mode);

    /// <summary>Returns the error number (0 on success); does not set errno.</summary>
    [LibraryImport(Name, EntryPoint = "posix_fallocate")]
    internal static partial int posix_fallocate(SafeFileHandle fd, long offset, long length);
}
