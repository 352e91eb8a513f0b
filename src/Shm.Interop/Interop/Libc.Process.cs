using System.Runtime.InteropServices;

namespace Shm.Interop;

// <unistd.h>, <sys/wait.h>, <sys/prctl.h>: creating, ending and reaping processes.
internal static partial class Libc
{
    internal const int WEXITED = 4;
    internal const int WNOHANG = 1;

    /// <summary>waitid: report a waitable child but leave it waitable (unreaped).</summary>
    internal const int WNOWAIT = 0x01000000;

    /// <summary>waitid's idtype for a pid.</summary>
    internal const int P_PID = 1;

    /// <summary>waitid's idtype for a pidfd (Linux 5.4+): waits for exactly that process, whatever its pid now names.</summary>
    internal const int P_PIDFD = 3;

    /// <summary>si_code values of a SIGCHLD siginfo.</summary>
    internal const int CLD_EXITED = 1;
    internal const int CLD_DUMPED = 3;

    internal const int PR_SET_PDEATHSIG = 1;
    internal const int PR_GET_PDEATHSIG = 2;

    /// <summary>The fields of a SIGCHLD siginfo_t (128 bytes) that waitid fills.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    internal struct SigInfo
    {
        [FieldOffset(8)] public int Code;
        [FieldOffset(16)] public int Pid;
        [FieldOffset(24)] public int Status;
    }

    [LibraryImport(Name, EntryPoint = "fork", SetLastError = true)]
    internal static partial int fork();

    /// <summary>Ends the process at once: no atexit handlers, no stdio flush, no runtime shutdown.</summary>
    [LibraryImport(Name, EntryPoint = "_exit")]
    internal static partial void _exit(int status);

    [LibraryImport(Name, EntryPoint = "waitid", SetLastError = true)]
    internal static unsafe partial int waitid(int idType, int id, SigInfo* info, int options);

    /// <summary>Only for a child whose pidfd could not be opened: until it is reaped its pid is still ours.</summary>
    [LibraryImport(Name, EntryPoint = "kill", SetLastError = true)]
    internal static partial int kill(int pid, int signal);

    [LibraryImport(Name, EntryPoint = "getpid")]
    internal static partial int getpid();

    [LibraryImport(Name, EntryPoint = "getppid")]
    internal static partial int getppid();

    // prctl is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "prctl", SetLastError = true)]
    internal static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
