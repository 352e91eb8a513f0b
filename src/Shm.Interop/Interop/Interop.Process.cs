using System.Runtime.InteropServices;

namespace Shm.Interop;

// <unistd.h>, <sys/wait.h>, <sys/prctl.h>: creating, ending, reaping and signalling processes.
internal static partial class Libc
{
    internal const int WNOHANG = 1;

    internal const int PR_SET_PDEATHSIG = 1;
    internal const int PR_GET_PDEATHSIG = 2;

    [LibraryImport(Name, EntryPoint = "fork", SetLastError = true)]
    internal static partial int fork();

    /// <summary>Ends the process at once: no atexit handlers, no stdio flush, no runtime shutdown.</summary>
    [LibraryImport(Name, EntryPoint = "_exit")]
    internal static partial void _exit(int status);

    [LibraryImport(Name, EntryPoint = "waitpid", SetLastError = true)]
    internal static unsafe partial int waitpid(int pid, int* status, int options);

    [LibraryImport(Name, EntryPoint = "kill", SetLastError = true)]
    internal static partial int kill(int pid, int signal);

    [LibraryImport(Name, EntryPoint = "getpid")]
    internal static partial int getpid();

    [LibraryImport(Name, EntryPoint = "getppid")]
    internal static partial int getppid();

    // prctl is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "prctl", SetLastError = true)]
    internal static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport(Name, EntryPoint = "write", SetLastError = true)]
    internal static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport(Name, EntryPoint = "close", SetLastError = true)]
    internal static partial int close(int fd);
}
