using System.Runtime.InteropServices;

namespace Shm.Interop;

// Threads by their kernel id: who holds a SharedFutexMutex, and whether that thread still exists.
// Through syscall(2), as glibc wraps gettid only since 2.30 and tgkill only since 2.30.
internal static partial class Libc
{
    private static readonly long SYS_gettid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 178 : 186;
    private static readonly long SYS_tgkill = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 131 : 234;

    /// <summary>The calling thread's kernel id (its tid; the pid for a process's first thread).</summary>
    internal static int gettid() => (int)syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);

    /// <summary>
    /// Signal 0 to thread <paramref name="tid"/> of process <paramref name="pid"/>: 0 if it exists
    /// (a zombie included), else the errno (ESRCH: no such thread in that process; EPERM: it exists,
    /// under another user).
    /// </summary>
    internal static int ProbeThread(int pid, int tid) =>
        syscall(SYS_tgkill, pid, tid, 0, 0, 0, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
}
