using System;

namespace Shm.Interop;

/// <summary>
/// How a child process ended. Only the library makes one (from what the kernel reported), so a
/// <see cref="ChildExit"/> always describes a real end; two are equal when every property is.
/// </summary>
public sealed class ChildExit : IEquatable<ChildExit>
{
    /// <summary>What to do about a deadlocked child; part of the text of every report of one.</summary>
    public static readonly string DeadlockAdvice =
        "Run the child's code once in the parent before forking (so that nothing is compiled or loaded for the first time in the child), " +
        "publish the app with NativeAOT (no JIT, no type loader at run time), or use Child.Spawn for code that must compile or load types.";

    internal ChildExit(int pid, int? exitCode, int? signal, bool coreDumped = false, bool deadlocked = false, bool reapedElsewhere = false)
    {
        Pid = pid;
        ExitCode = exitCode;
        Signal = signal;
        CoreDumped = coreDumped;
        Deadlocked = deadlocked;
        ReapedElsewhere = reapedElsewhere;
    }

    /// <summary>The child's process id (free for reuse once it was reaped).</summary>
    public int Pid { get; }

    /// <summary>The exit status (0 to 255) if it exited, else null.</summary>
    public int? ExitCode { get; }

    /// <summary>The signal that killed it, else null.</summary>
    public int? Signal { get; }

    /// <summary>True if it exited with status 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>True if it dumped core (killed by a signal whose default action does).</summary>
    public bool CoreDumped { get; }

    /// <summary>
    /// True if the forked child was found deadlocked and killed under <see cref="ChildDeadlockPolicy.Kill"/>:
    /// after its body started, its only thread waited without a timeout on a private futex with no
    /// wake-up for 250 ms, and it had no handler of its own for a signal it did not block, so nothing
    /// but a signal could end the wait (typically a runtime lock that another thread of the parent held
    /// at the instant of the fork). It was killed with SIGKILL and reaped.
    /// </summary>
    public bool Deadlocked { get; }

    /// <summary>
    /// True if somebody else reaped the child (this process runs as pid 1, whose runtime reaps every
    /// child, or a SIGCHLD handler reaps them). The status is then known only where the kernel keeps
    /// it for the pidfd (Linux 6.15+); otherwise <see cref="ExitCode"/> and <see cref="Signal"/> are both null.
    /// They are null too for a spawned program that ended and was reaped before its pidfd could be
    /// opened (without <c>pidfd_spawnp</c>, glibc before 2.39): a child that ran is never an error.
    /// </summary>
    public bool ReapedElsewhere { get; }

    /// <summary>True if <see cref="ExitCode"/> or <see cref="Signal"/> says how it ended.</summary>
    public bool StatusKnown => ExitCode is not null || Signal is not null;

    /// <summary>True if <paramref name="left"/> and <paramref name="right"/> describe the same end (or are both null).</summary>
    /// <param name="left">An exit, or null.</param>
    /// <param name="right">An exit, or null.</param>
    public static bool operator ==(ChildExit? left, ChildExit? right) => left is null ? right is null : left.Equals(right);

    /// <summary>True unless <paramref name="left"/> and <paramref name="right"/> describe the same end.</summary>
    /// <param name="left">An exit, or null.</param>
    /// <param name="right">An exit, or null.</param>
    public static bool operator !=(ChildExit? left, ChildExit? right) => !(left == right);

    /// <summary>True if <paramref name="other"/> has the same pid, status and flags.</summary>
    /// <param name="other">Another exit, or null.</param>
    public bool Equals(ChildExit? other) =>
        other is not null && Pid == other.Pid && ExitCode == other.ExitCode && Signal == other.Signal &&
        CoreDumped == other.CoreDumped && Deadlocked == other.Deadlocked && ReapedElsewhere == other.ReapedElsewhere;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ChildExit);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Pid, ExitCode, Signal, CoreDumped, Deadlocked, ReapedElsewhere);

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

    /// <summary>The same end, found deadlocked by the waiter that killed it.</summary>
    internal ChildExit AsDeadlocked() => new(Pid, ExitCode, Signal, CoreDumped, deadlocked: true, ReapedElsewhere);

    /// <summary>A child somebody else reaped, whose status the kernel did not keep.</summary>
    internal static ChildExit UnknownReapedElsewhere(int pid) => new(pid, null, null, reapedElsewhere: true);

    /// <summary>Decodes a waitid siginfo: si_code CLD_EXITED carries the exit status, the others the signal.</summary>
    internal static ChildExit FromSigInfo(int pid, int code, int status) => code switch
    {
        Libc.CLD_EXITED => new ChildExit(pid, status, null),
        Libc.CLD_DUMPED => new ChildExit(pid, null, status, coreDumped: true),
        _ => new ChildExit(pid, null, status),
    };

    /// <summary>Decodes a waitpid-style status word (of a child somebody else reaped).</summary>
    internal static ChildExit FromWaitStatus(int pid, int status, bool reapedElsewhere)
    {
        int signal = status & 0x7f;
        return signal == 0
            ? new ChildExit(pid, (status >> 8) & 0xff, null, reapedElsewhere: reapedElsewhere)
            : new ChildExit(pid, null, signal, coreDumped: (status & 0x80) != 0, reapedElsewhere: reapedElsewhere);
    }
}
