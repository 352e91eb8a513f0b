using System;

namespace Shm.Interop;

/// <summary>
/// Tuning for <see cref="Child.Fork(Func{int}, ForkOptions?)"/> and <see cref="Children.Fork"/>: what
/// every child has (<see cref="ChildOptions"/>), and the fork's own.
/// </summary>
public sealed class ForkOptions : ChildOptions
{
    /// <summary>The defaults.</summary>
    public static new ForkOptions Default { get; } = new();

    /// <summary>
    /// Bytes a forked child may allocate on the managed heap (default 16 MiB). The parent forks
    /// inside a no-GC region of this size, which the child inherits; a child that allocates more
    /// triggers a garbage collection, which a forked runtime cannot run safely.
    /// </summary>
    public long AllocationBudget { get; init; } = 16L << 20;

    /// <summary>
    /// How long one attempt at starting a child may take before it is killed and forked again
    /// (default 2 s). Most stuck children are seen much sooner: one that inherited a lock another
    /// parent thread held at the fork waits for ever on a private futex, or spins, before it runs
    /// any code of yours, and is retried within milliseconds. The timeout is the last resort.
    /// </summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How many times one child is forked before giving up with a <see cref="TimeoutException"/>
    /// (default 100). Retries are cheap (a fork each) and safe (no user code ran in a discarded
    /// child); beside threads that compile code or load types without pause, several in a row are normal.
    /// </summary>
    public int StartAttempts { get; init; } = 100;

    /// <summary>
    /// Whether each child, before it reports started, compiles and loads code of its own to take the
    /// JIT's and the type loader's locks (default true). A child forked while another parent thread
    /// held one of them then hangs there, is seen, and is forked again before any code of yours
    /// runs. The price is the child's first compilation: about 10 ms per child on a VM, where each
    /// page it touches is a copy-on-write fault. Turn it off when the parent's other threads do not
    /// compile or load types while you fork (warmed-up services, NativeAOT apps): a child that
    /// deadlocks later is still detected and handled as <see cref="DeadlockPolicy"/> says, just not retried.
    /// </summary>
    public bool ProbeRuntimeLocks { get; init; } = true;

    /// <summary>
    /// What waits do about a child that, after its body started, cannot wake without a signal
    /// (default <see cref="ChildDeadlockPolicy.Report"/>: never kill it; waits without a bound throw
    /// <see cref="ChildDeadlockSuspectedException"/>). Disposing such a child sends SIGKILL at once
    /// under either policy, instead of waiting out <see cref="ChildOptions.TerminateGracePeriod"/>.
    /// </summary>
    public ChildDeadlockPolicy DeadlockPolicy { get; init; } = ChildDeadlockPolicy.Report;
}
