namespace Shm.Interop;

/// <summary>
/// What waits do about a forked child whose body started and which then cannot wake without a
/// signal: its only thread waits without a timeout on a private futex, with no wake-up for 250 ms,
/// and it has installed no handler for a signal it does not block. That is how a runtime lock
/// another parent thread held at the fork shows itself, and also how a healthy child looks that
/// waits for SIGTERM in <c>Thread.Sleep(Timeout.Infinite)</c>: from outside the two are identical.
/// </summary>
public enum ChildDeadlockPolicy
{
    /// <summary>
    /// The default: never kill such a child for it. Waits with a bound run to their bound as for any
    /// running child; waits without one (<see cref="Child.Wait"/>, <see cref="Children.WaitAll"/>,
    /// and <see cref="Child.WaitAsync"/> or <see cref="Children.WaitAllAsync"/> with a token that
    /// cannot be cancelled) throw <see cref="ChildDeadlockSuspectedException"/> instead of hanging,
    /// and leave the child running for you to decide: dispose it (kill), signal it, or wait again
    /// with a timeout. <see cref="Child.IsDeadlockSuspected"/> polls.
    /// </summary>
    Report,

    /// <summary>
    /// Every wait kills such a child with SIGKILL, reaps it and reports it
    /// (<see cref="ChildExit.Deadlocked"/>). Choose it when no child of yours ever waits to be
    /// ended by a signal.
    /// </summary>
    Kill,
}
