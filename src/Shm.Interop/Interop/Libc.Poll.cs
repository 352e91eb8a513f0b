using System.Runtime.InteropServices;

namespace Shm.Interop;

// <poll.h>, <sys/epoll.h>, <sys/eventfd.h>: waiting on many descriptors (pidfds) at once.
internal static partial class Libc
{
    internal const short POLLIN = 0x001;

    internal const int EPOLL_CLOEXEC = 0x80000;
    internal const int EPOLL_CTL_ADD = 1;
    internal const int EPOLL_CTL_DEL = 2;
    internal const uint EPOLLIN = 0x001;

    internal const int EFD_CLOEXEC = 0x80000;
    internal const int EFD_NONBLOCK = 0x800;

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    // struct epoll_event { uint32_t events; uint64_t data; } is packed on x86-64 (12 bytes) and
    // naturally aligned elsewhere (16 bytes).
    private static readonly bool PackedEpollEvent = RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>Bytes per struct epoll_event on this architecture.</summary>
    internal static int EpollEventSize => PackedEpollEvent ? 12 : 16;

    [LibraryImport(Name, EntryPoint = "poll", SetLastError = true)]
    internal static unsafe partial int poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport(Name, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Name, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static unsafe partial int epoll_ctl(int epfd, int op, int fd, void* epollEvent);

    [LibraryImport(Name, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static unsafe partial int epoll_wait(int epfd, void* events, int maxEvents, int timeoutMilliseconds);

    /// <summary>Watches <paramref name="fd"/> for input, tagging its events with <paramref name="data"/>.</summary>
    internal static unsafe int EpollAdd(int epfd, int fd, ulong data)
    {
        byte* epollEvent = stackalloc byte[16];
        *(uint*)epollEvent = EPOLLIN;
        *(ulong*)(epollEvent + (PackedEpollEvent ? 4 : 8)) = data;
        return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, epollEvent);
    }

    /// <summary>The tag of event <paramref name="index"/> in a buffer epoll_wait filled.</summary>
    internal static unsafe ulong EpollData(byte* events, int index) =>
        *(ulong*)(events + (index * EpollEventSize) + (PackedEpollEvent ? 4 : 8));

    [LibraryImport(Name, EntryPoint = "eventfd", SetLastError = true)]
    internal static partial int eventfd(uint initial, int flags);
}
