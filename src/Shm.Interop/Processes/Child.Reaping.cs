using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Shm.Interop;

// Reaping (waitid on the pidfd, or the kernel's record when someone else reaped), signalling, and the
// termination of a child or a group: SIGTERM, one shared grace period, SIGKILL, a reap of each.
public sealed partial class Child
{
    /// <summary>
    /// For a child whose pidfd could not be opened: kills and reaps it by pid while it is still our
    /// unreaped child (so the pid cannot name another process yet), and returns the exception to throw.
    /// </summary>
    private static unsafe ShmException KillUnowned(int pid, int errno)
    {
        Libc.SigInfo info;
        bool ours = Libc.waitid(Libc.P_PID, pid, &info, Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT) == 0;
        if (ours)
        {
            Libc.kill(pid, Libc.SIGKILL);
            while (Libc.waitid(Libc.P_PID, pid, &info, Libc.WEXITED) < 0 && Marshal.GetLastPInvokeError() == LinuxErrno.EINTR)
            {
            }
        }
        string fate = ours ? "which was killed and reaped" : "which somebody else reaped already";
        return new ShmException("pidfd_open", errno, $"child {pid}, {fate}; Shm reaches children through pidfds (Linux 5.4+)");
    }

    /// <summary>
    /// Terminates several children together: SIGTERM to each, one shared grace period, SIGKILL to the
    /// rest, and a reap of every one, whatever any single child throws.
    /// </summary>
    internal static void TerminateAll(IEnumerable<Child?> children)
    {
        var termination = Termination.Begin(children);
        try
        {
            BlockingChildWait.WaitAll(termination.Running, Deadline.After(termination.Grace), terminating: true);
        }
        catch (Exception failure)
        {
            termination.Fail(failure);
        }
        termination.Finish();
    }

    /// <summary>Reaps the child if it ended; null while it runs. Never blocks.</summary>
    internal ChildExit? TryReap()
    {
        if (_exit is ChildExit exit)
        {
            return exit;
        }
        lock (_gate)
        {
            return TryReapLocked();
        }
    }

    /// <summary>SIGKILL and a blocking reap, for a child that must go now.</summary>
    internal void KillAndReap(bool deadlocked)
    {
        lock (_gate)
        {
            if (TryReapLocked() is null)
            {
                SendLocked(Libc.SIGKILL);
                ReapBlockingLocked();
                if (deadlocked && _exit is not null)
                {
                    _exit = _exit.AsDeadlocked();
                }
            }
        }
    }

    /// <summary>Marks the child disposed and releases its pidfd after a kill and reap: for children the fork path gives up on.</summary>
    internal void Discard()
    {
        KillAndReap(deadlocked: false);
        _disposed = true;
        _handle.Dispose();
    }

    private void SendLocked(int signal)
    {
        using var held = new SafeHandleLease(_handle);
        // ESRCH: it ended and is not reaped yet; the next reap records how.
        if (Libc.pidfd_send_signal((int)held.DangerousHandle, signal) != 0 && Marshal.GetLastPInvokeError() != LinuxErrno.ESRCH)
        {
            throw ShmException.FromLastError("pidfd_send_signal", $"child {Pid}, signal {signal}");
        }
    }

    /// <summary>
    /// <c>waitid</c> on the pidfd: records and returns how the child ended, or null while it runs.
    /// Blocks only if <paramref name="block"/> (after SIGKILL). Call under <see cref="_gate"/>.
    /// </summary>
    private unsafe ChildExit? ReapLocked(bool block)
    {
        if (_exit is not null)
        {
            return _exit;
        }
        using var held = new SafeHandleLease(_handle);
        int pidfd = (int)held.DangerousHandle;
        Libc.SigInfo info = default;
        while (Libc.waitid(Libc.P_PIDFD, pidfd, &info, block ? Libc.WEXITED : Libc.WEXITED | Libc.WNOHANG) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == LinuxErrno.ECHILD)
            {
                return EndedElsewhere(pidfd, block);
            }
            if (errno != LinuxErrno.EINTR)
            {
                throw new ShmException("waitid", errno, $"child {Pid}");
            }
        }
        return info.Pid == 0 ? null : Record(ChildExit.FromSigInfo(Pid, info.Code, info.Status));
    }

    private ChildExit? TryReapLocked() => ReapLocked(block: false);

    private void ReapBlockingLocked() => ReapLocked(block: true);

    /// <summary>
    /// waitid said ECHILD: somebody else reaps the child (a process running as pid 1 reaps every
    /// child; so does a SIGCHLD handler that calls waitpid(-1)). The pidfd still tells whether it ended
    /// and, on Linux 6.15+, how.
    /// </summary>
    private unsafe ChildExit? EndedElsewhere(int pidfd, bool block)
    {
        Libc.PollFd poll = new() { Fd = pidfd, Events = Libc.POLLIN };
        // After SIGKILL the other reaper needs a moment; otherwise look without waiting.
        if (Libc.poll(&poll, 1, block ? 5000 : 0) != 1)
        {
            return null;
        }
        return Record(Libc.ExitStatusOfReaped(pidfd) is int status
            ? ChildExit.FromWaitStatus(Pid, status, reapedElsewhere: true)
            : ChildExit.UnknownReapedElsewhere(Pid));
    }

    private ChildExit Record(ChildExit exit)
    {
        _handle.Reaped = true;
        return _exit = exit;
    }
}
