namespace Shm.Interop;

/// <summary>How a child process ended.</summary>
/// <param name="Pid">The child's process id (free for reuse once it was reaped).</param>
/// <param name="ExitCode">The exit status (0 to 255) if it exited, else null.</param>
/// <param name="Signal">The signal that killed it, else null.</param>
public sealed record ChildExit(int Pid, int? ExitCode, int? Signal)
{
    /// <summary>What to do about a deadlocked child; part of the text of every report of one.</summary>
    public const string DeadlockAdvice =
        "Run the child's code once in the parent before forking (so that nothing is compiled or loaded for the first time in the child), " +
        "publish the app with NativeAOT (no JIT, no type loader at run time), or use Child.Spawn for code that must compile or load types.";

    /// <summary>True if it exited with status 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>True if it dumped core (killed by a signal whose default action does).</summary>
    public bool CoreDumped { get; init; }

    /// <summary>
    /// True if the forked child was found deadlocked and killed under <see cref="ChildDeadlockPolicy.Kill"/>:
    /// after its body started, its only thread waited without a timeout on a private futex with no
    /// wake-up for 250 ms, and it had no handler of its own for a signal it did not block, so nothing
    /// but a signal could end the wait (typically a runtime lock that another thread of the parent held
    /// at the instant of the fork). It was killed with SIGKILL and reaped.
    /// </summary>
    public bool Deadlocked { get; init; }

    /// <summary>
    /// True if somebody else reaped the child (this process runs as pid 1, whose runtime reaps every
    /// child, or a SIGCHLD handler reaps them). The status is then known only where the kernel keeps
    /// it for the pidfd (Linux 6.15+); otherwise <see cref="ExitCode"/> and <see cref="Signal"/> are both null.
    /// They are null too for a spawned program that ended and was reaped before its pidfd could be
    /// opened (without <c>pidfd_spawnp</c>, glibc before 2.39): a child that ran is never an error.
    /// </summary>
    public bool ReapedElsewhere { get; init; }

    /// <summary>True if <see cref="ExitCode"/> or <see cref="Signal"/> says how it ended.</summary>
    public bool StatusKnown => ExitCode is not null || Signal is not null;

    /// <summary>"exited 0", "killed by SIGTERM", "deadlocked ..." and so on.</summary>
    public override string ToString()
    {
        string how = ExitCode is int code ? $"exited {code}"
            : Signal is int signal ? $"killed by {SignalNames.Name(signal)}{(CoreDumped ? " (core dumped)" : "")}"
            : "ended, status unknown";
        if (Deadlocked)
        {
            return $"deadlocked: its only thread waited for ever on a lock that another thread of the parent held at the instant of the fork " +
                $"(typically the runtime's, taken to compile code or load a type for the first time); {how} by the waiter. {DeadlockAdvice}";
        }
        return ReapedElsewhere ? $"{how} (reaped by another waiter in this process)" : how;
    }

    /// <summary>Decodes a waitid siginfo: si_code CLD_EXITED carries the exit status, the others the signal.</summary>
    internal static ChildExit FromSigInfo(int pid, int code, int status) => code switch
    {
        Libc.CLD_EXITED => new ChildExit(pid, status, null),
        Libc.CLD_DUMPED => new ChildExit(pid, null, status) { CoreDumped = true },
        _ => new ChildExit(pid, null, status),
    };

    /// <summary>Decodes a waitpid-style status word.</summary>
    internal static ChildExit FromWaitStatus(int pid, int status)
    {
        int signal = status & 0x7f;
        return signal == 0
            ? new ChildExit(pid, (status >> 8) & 0xff, null)
            : new ChildExit(pid, null, signal) { CoreDumped = (status & 0x80) != 0 };
    }
}
