using System;

namespace Shm.Interop;

/// <summary>Tuning for <see cref="Child.Fork(Func{int}, ForkOptions?)"/> and <see cref="Children.Fork"/>.</summary>
public sealed class ForkOptions
{
    /// <summary>The defaults.</summary>
    public static ForkOptions Default { get; } = new();

    /// <summary>
    /// Bytes a forked child may allocate on the managed heap (default 16 MiB). The parent forks
    /// inside a no-GC region of this size, which the child inherits; a child that allocates more
    /// triggers a garbage collection, which a forked runtime cannot run safely.
    /// </summary>
    public long AllocationBudget { get; init; } = 16L << 20;

    /// <summary>
    /// How long a new child has to report that it is running (default 2 s). A child that does not
    /// (it inherited a runtime lock that another parent thread held at the fork) is killed, reaped
    /// and forked again, so a rare stuck fork becomes a retry instead of a hang.
    /// </summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many times a child that did not start is forked again before giving up (default 3).</summary>
    public int StartAttempts { get; init; } = 3;

    /// <summary>
    /// How long disposing an unreaped child waits after SIGTERM before it sends SIGKILL (default 2 s).
    /// </summary>
    public TimeSpan TerminateGracePeriod { get; init; } = TimeSpan.FromSeconds(2);
}
