using System.Runtime.InteropServices;

namespace Shm.Interop;

// <unistd.h> on raw descriptor numbers: /proc files, eventfds, epoll sets, pidfds, a forked child's stderr.
internal static partial class Libc
{
    [LibraryImport(Name, EntryPoint = "read", SetLastError = true)]
    internal static unsafe partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport(Name, EntryPoint = "write", SetLastError = true)]
    internal static unsafe partial nint write(int fd, void* buffer, nuint count);

    [LibraryImport(Name, EntryPoint = "close", SetLastError = true)]
    internal static partial int close(int fd);
}
