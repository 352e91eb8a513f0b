using System;

namespace Shm.Interop;

/// <summary>
/// What every child shares, spawned (<see cref="Child.Spawn(string, System.Collections.Generic.IEnumerable{string}, ChildOptions, SharedRegion[])"/>)
/// or forked (<see cref="ForkOptions"/>, which adds the fork's own tuning).
/// </summary>
public class ChildOptions
{
    /// <summary>The defaults.</summary>
    public static ChildOptions Default { get; } = new();

    /// <summary>
    /// How long disposing an unreaped child waits after SIGTERM before it sends SIGKILL (default 2 s).
    /// </summary>
    public TimeSpan TerminateGracePeriod { get; init; } = TimeSpan.FromSeconds(2);
}
