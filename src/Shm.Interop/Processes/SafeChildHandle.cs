using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// Owns a child process: a pidfd (to wait with a timeout) and the duty to reap the pid. Released
/// without a reap (the owner was forgotten), it kills the child and reaps it, so no orphan or zombie
/// outlives the object.
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

    /// <summary>Set once waitpid returned the child's status: its pid may now belong to someone else.</summary>
    public bool Reaped { get; set; }

    public override bool IsInvalid => handle < 0;

    protected override unsafe bool ReleaseHandle()
    {
        if (!Reaped)
        {
            int status;
            Libc.kill(Pid, Libc.SIGKILL);
            while (Libc.waitpid(Pid, &status, 0) < 0 && Marshal.GetLastPInvokeError() == Errno.EINTR)
            {
            }
        }
        return Libc.close((int)handle) == 0;
    }
}
