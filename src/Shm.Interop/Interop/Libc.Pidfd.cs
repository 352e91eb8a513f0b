using System.Runtime.InteropServices;

namespace Shm.Interop;

// <sys/pidfd.h>: a descriptor that names one process for its whole life, so that waiting for it and
// signalling it can never reach another process that later got the same pid.
internal static partial class Libc
{
    // Added after the architectures' tables were unified: the same numbers everywhere.
    private const long SYS_pidfd_send_signal = 424;
    private const long SYS_pidfd_open = 434;

    /// <summary>PIDFD_GET_INFO (Linux 6.13+), sized for struct pidfd_info's first version (64 bytes).</summary>
    private const uint PIDFD_GET_INFO = 0xC040FF0B;

    /// <summary>pidfd_info.mask bit: the exit status is filled in (Linux 6.15+, once the process was reaped by anyone).</summary>
    private const ulong PIDFD_INFO_EXIT = 1 << 3;

    [StructLayout(LayoutKind.Explicit, Size = 64)]
    private struct PidfdInfo
    {
        [FieldOffset(0)] public ulong Mask;
        [FieldOffset(60)] public int ExitCode;
    }

    [LibraryImport(Name, EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, nuint request, void* argument);

    /// <summary>A close-on-exec pidfd for <paramref name="pid"/>, or -1 with errno set.</summary>
    internal static int pidfd_open(int pid) => (int)syscall(SYS_pidfd_open, pid, 0, 0, 0, 0, 0);

    /// <summary>Sends <paramref name="signal"/> to the process behind <paramref name="pidfd"/>; 0 or -1 with errno set.</summary>
    internal static int pidfd_send_signal(int pidfd, int signal) => (int)syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0, 0, 0);

    /// <summary>
    /// The wait status of the process behind <paramref name="pidfd"/> after somebody reaped it, or
    /// null where the kernel does not keep it (before Linux 6.15) or it has not been reaped.
    /// </summary>
    internal static unsafe int? ExitStatusOfReaped(int pidfd)
    {
        PidfdInfo info = new() { Mask = PIDFD_INFO_EXIT };
        return ioctl(pidfd, PIDFD_GET_INFO, &info) == 0 && (info.Mask & PIDFD_INFO_EXIT) != 0 ? info.ExitCode : null;
    }
}
