using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// Owns a child process through its pidfd, and with it the duty to reap it. Released before the
/// child was reaped (its owner was forgotten), it kills the child and reaps it, so no orphan or zombie
/// outlives the object. The pidfd names the process itself, not its pid: signals and waits through
/// it cannot reach a process that later got the same pid.
/// </summary>
internal sealed class SafeChildHandle : SafeHandle
{
    public SafeChildHandle(int pid, int pidfd)
        : base(-1, ownsHandle: true)
    {
        Pid = pid;
        SetHandle(pidfd);
    }

    public int Pid { get; }

    /// <summary>Set once the child was reaped (by us or anyone): nothing is left to kill.</summary>
    public volatile bool Reaped;

    public override bool IsInvalid => handle < 0;

    protected override unsafe bool ReleaseHandle()
    {
        if (!Reaped)
        {
            Libc.SigInfo info;
            Libc.pidfd_send_signal((int)handle, Libc.SIGKILL);
            while (Libc.waitid(Libc.P_PIDFD, (int)handle, &info, Libc.WEXITED) < 0 && Marshal.GetLastPInvokeError() == LinuxErrno.EINTR)
            {
            }
        }
        return Libc.close((int)handle) == 0;
    }
}
