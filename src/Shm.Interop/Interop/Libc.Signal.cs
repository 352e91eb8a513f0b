using System.Runtime.InteropServices;

namespace Shm.Interop;

// <signal.h>: dispositions and masks.
internal static partial class Libc
{
    internal const int SIGILL = 4;
    internal const int SIGTRAP = 5;
    internal const int SIGBUS = 7;
    internal const int SIGFPE = 8;
    internal const int SIGKILL = 9;
    internal const int SIGSEGV = 11;
    internal const int SIGTERM = 15;
    internal const int SIGSTOP = 19;

    /// <summary>The last classic (non real-time) signal.</summary>
    internal const int SIGSYS = 31;

    internal const nint SIG_DFL = 0;
    internal const nint SIG_IGN = 1;

    internal const int SIG_BLOCK = 0;
    internal const int SIG_SETMASK = 2;

    /// <summary>glibc's sigset_t: 1024 bits.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    internal struct SigSet
    {
    }

    [LibraryImport(Name, EntryPoint = "signal", SetLastError = true)]
    internal static partial nint signal(int signal, nint handler);

    [LibraryImport(Name, EntryPoint = "sigfillset", SetLastError = true)]
    internal static unsafe partial int sigfillset(SigSet* set);

    [LibraryImport(Name, EntryPoint = "sigemptyset", SetLastError = true)]
    internal static unsafe partial int sigemptyset(SigSet* set);

    /// <summary>Returns the error number (0 on success); does not set errno.</summary>
    [LibraryImport(Name, EntryPoint = "pthread_sigmask")]
    internal static unsafe partial int pthread_sigmask(int how, SigSet* set, SigSet* oldSet);
}
