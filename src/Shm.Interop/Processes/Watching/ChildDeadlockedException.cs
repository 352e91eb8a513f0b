using System;

namespace Shm.Interop;

/// <summary>
/// A forked child deadlocked in the runtime and was killed (<see cref="ChildDeadlockPolicy.Kill"/>):
/// thrown where a failure must be loud, e.g. by the F# nursery at the end of a <c>shm { }</c> block.
/// <see cref="Child.Wait"/> itself reports it in <see cref="ChildExit.Deadlocked"/> instead. Under
/// the default policy such a child is not killed; see <see cref="ChildDeadlockSuspectedException"/>.
/// </summary>
public sealed class ChildDeadlockedException : Exception
{
    /// <summary>Creates the exception for <paramref name="exit"/>, the report of child <paramref name="index"/>.</summary>
    /// <param name="exit">How the child ended; <see cref="ChildExit.Deadlocked"/> is true.</param>
    /// <param name="index">The child's index in its group (0 for a single child).</param>
    public ChildDeadlockedException(ChildExit exit, int index)
        : base($"Forked child {index} (pid {exit?.Pid}) {exit}")
    {
        ArgumentNullException.ThrowIfNull(exit);
        Exit = exit;
        Index = index;
    }

    /// <summary>How the child ended.</summary>
    public ChildExit Exit { get; }

    /// <summary>The child's process id.</summary>
    public int Pid => Exit.Pid;

    /// <summary>The child's index in its group (0 for a single child).</summary>
    public int Index { get; }
}
