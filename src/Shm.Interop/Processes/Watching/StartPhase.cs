namespace Shm.Interop;

/// <summary>
/// How a forked child that has not yet reported started (see <see cref="ForkHandshake"/>) shows it
/// never will: it inherited a lock another parent thread held at the instant of the fork. Its path to
/// the report takes a few milliseconds and blocks nowhere, so the parent reads its state while it
/// waits and gives up on it (kills it and forks again, before any user code ran) as soon as it:
/// waits for ever on a private futex (<see cref="ThreadSample.CannotWake"/>), spins, or sleeps again and again.
/// </summary>
internal static class StartPhase
{
    /// <summary>CPU time a child may spend before reporting; its path takes a few milliseconds, a spin on a dead thread's lock far more.</summary>
    public const long CpuLimitNanoseconds = 250_000_000;

    /// <summary>
    /// Times a child may block or sleep before reporting. Its path blocks nowhere; a spin lock that
    /// sleeps between tries (waiting for a dead thread) does so hundreds of times a second.
    /// </summary>
    public const long SleepLimit = 20;

    /// <summary>True if <paramref name="sample"/> (of a child not yet started) shows it never will; false for an unreadable one (only the start timeout decides then).</summary>
    public static bool CannotStart(in ThreadSample sample) =>
        sample.Exists && (sample.CannotWake || sample.CpuNanoseconds >= CpuLimitNanoseconds || sample.VoluntarySwitches >= SleepLimit);
}
