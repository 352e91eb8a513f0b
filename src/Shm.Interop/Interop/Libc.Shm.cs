using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <fcntl.h> open/posix_fallocate, <unistd.h> unlink: named segments and files. A POSIX shared memory
// object is a file in /dev/shm: glibc's shm_open is open(2) there with O_NOFOLLOW | O_CLOEXEC. It
// lived in librt before glibc 2.34, so calling open directly works with every glibc.
internal static partial class Libc
{
    internal const int O_RDONLY = 0x0;
    internal const int O_RDWR = 0x2;
    internal const int O_CREAT = 0x40;
    internal const int O_EXCL = 0x80;
    internal const int O_NONBLOCK = 0x800;
    internal const int O_NOFOLLOW = 0x20000;
    internal const int O_CLOEXEC = 0x80000;

    /// <summary>Where POSIX shared memory objects live on Linux.</summary>
    internal const string ShmDirectory = "/dev/shm/";

    [LibraryImport(Name, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial SafeFileHandle open(string path, int flags, uint mode);

    [LibraryImport(Name, EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int unlink(string path);

    /// <summary>Returns the error number (0 on success); does not set errno.</summary>
    [LibraryImport(Name, EntryPoint = "posix_fallocate")]
    internal static partial int posix_fallocate(SafeFileHandle fd, long offset, long length);

    /// <summary>shm_open: the segment named <paramref name="posixName"/> ("/NAME").</summary>
    internal static SafeFileHandle shm_open(string posixName, int flags, uint mode) =>
        open(ShmDirectory + posixName[1..], flags | O_NOFOLLOW | O_CLOEXEC, mode);

    /// <summary>shm_unlink: 0 or -1 with errno set.</summary>
    internal static int shm_unlink(string posixName) => unlink(ShmDirectory + posixName[1..]);
}
