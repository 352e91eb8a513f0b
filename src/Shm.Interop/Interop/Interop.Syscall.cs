using System.Runtime.InteropServices;

namespace Shm.Interop;

// Calls glibc does not wrap (futex, pidfd) go through syscall(2).
internal static partial class Libc
{
    internal static readonly long SYS_futex = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 98 : 202;

    // Added after the architectures' tables were unified: the same number everywhere.
    internal const long SYS_pidfd_send_signal = 424;
    internal const long SYS_pidfd_open = 434;

    internal const int FUTEX_WAIT = 0;
    internal const int FUTEX_WAKE = 1;

    internal const short POLLIN = 0x001;

    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    // syscall is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall(long number, nint arg1, nint arg2, nint arg3, nint arg4, nint arg5, nint arg6);

    [LibraryImport(Name, EntryPoint = "poll", SetLastError = true)]
    internal static unsafe partial int poll(PollFd* fds, nuint count, int timeoutMilliseconds);
}
