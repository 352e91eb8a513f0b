using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/mman.h>: mapping, protection, sync, advice and locking of address ranges.
internal static partial class Libc
{
    internal const int PROT_NONE = 0x0;
    internal const int PROT_READ = 0x1;
    internal const int PROT_WRITE = 0x2;

    internal const int MAP_SHARED = 0x01;
    internal const int MAP_ANONYMOUS = 0x20;

    internal const int MS_ASYNC = 1;
    internal const int MS_SYNC = 4;

    /// <summary>mmap's error return, <c>(void*)-1</c>.</summary>
    internal const nint MAP_FAILED = -1;

    [LibraryImport(Name, EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Name, EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint mmap(nint addr, nuint length, int prot, int flags, SafeFileHandle fd, long offset);

    [LibraryImport(Name, EntryPoint = "munmap", SetLastError = true)]
    internal static partial int munmap(nint addr, nuint length);

    [LibraryImport(Name, EntryPoint = "mprotect", SetLastError = true)]
    internal static partial int mprotect(nint addr, nuint length, int prot);

    [LibraryImport(Name, EntryPoint = "msync", SetLastError = true)]
    internal static partial int msync(nint addr, nuint length, int flags);

    [LibraryImport(Name, EntryPoint = "madvise", SetLastError = true)]
    internal static partial int madvise(nint addr, nuint length, int advice);

    [LibraryImport(Name, EntryPoint = "mlock", SetLastError = true)]
    internal static partial int mlock(nint addr, nuint length);

    [LibraryImport(Name, EntryPoint = "munlock", SetLastError = true)]
    internal static partial int munlock(nint addr, nuint length);
}
