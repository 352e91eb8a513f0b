namespace Shm.Interop;

/// <summary>How a child process ended, decoded from its <c>waitpid</c> status.</summary>
/// <param name="Pid">The child's process id (free for reuse once it was reaped).</param>
/// <param name="ExitCode">The exit status (0 to 255) if it exited, else null.</param>
/// <param name="Signal">The signal that killed it, else null.</param>
public sealed record ChildExit(int Pid, int? ExitCode, int? Signal)
{
    /// <summary>True if it exited with status 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>True if it dumped core (killed by a signal whose default action does).</summary>
    public bool CoreDumped { get; init; }

    /// <summary>"exited 0", "exited 70", "killed by SIGTERM" and so on.</summary>
    public override string ToString() =>
        ExitCode is int code ? $"exited {code}" : $"killed by {SignalNames.Name(Signal ?? 0)}{(CoreDumped ? " (core dumped)" : "")}";

    internal static ChildExit FromStatus(int pid, int status)
    {
        int signal = status & 0x7f;
        return signal == 0
            ? new ChildExit(pid, (status >> 8) & 0xff, null)
            : new ChildExit(pid, null, signal) { CoreDumped = (status & 0x80) != 0 };
    }
}
