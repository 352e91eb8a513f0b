using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// When a wait must end: a <see cref="Stopwatch"/> timestamp (Stopwatch counts CLOCK_MONOTONIC on
/// Linux), or never. The one conversion between what callers pass (a <see cref="TimeSpan"/>,
/// <see cref="Timeout.InfiniteTimeSpan"/> for ever) and what the kernel takes (an absolute timespec
/// on a clock, poll's milliseconds): every wait of the library computes its deadline once, here, and
/// checks it on every pass, so a wait whose word a peer keeps changing still ends on time.
/// </summary>
internal readonly struct Deadline
{
    /// <summary>The longest a single sleep is asked to last (about 73 years): the kernel's timespec holds more, the arithmetic here does not.</summary>
    private const long MaximumSleepNanoseconds = long.MaxValue / 4;

    /// <summary>The longest a cancellable blocking wait sleeps before it looks at its token again: 100 ms.</summary>
    private static readonly long CancellationSliceTicks = Stopwatch.Frequency / 10;

    private readonly long _timestamp;

    private Deadline(long timestamp) => _timestamp = timestamp;

    /// <summary>No deadline: the wait ends only by what it waits for (or its token).</summary>
    public static Deadline Never => new(long.MaxValue);

    /// <summary>
    /// <paramref name="timeout"/> from now; <see cref="Never"/> for <see cref="Timeout.InfiniteTimeSpan"/>
    /// or a timeout too long to count; now for <see cref="TimeSpan.Zero"/> (look once, never wait).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    public static Deadline After(TimeSpan timeout)
    {
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return Never;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        double ticks = timeout.TotalSeconds * Stopwatch.Frequency;
        long now = Stopwatch.GetTimestamp();
        return new(ticks >= long.MaxValue - now ? long.MaxValue : now + (long)ticks);
    }

    /// <summary><paramref name="ticks"/> of <see cref="Stopwatch"/> time from now.</summary>
    public static Deadline AfterTicks(long ticks) => At(Stopwatch.GetTimestamp() + ticks);

    /// <summary>The <see cref="Stopwatch"/> timestamp <paramref name="timestamp"/>.</summary>
    public static Deadline At(long timestamp) => new(timestamp);

    /// <summary>Stopwatch ticks in <paramref name="duration"/>: how intervals kept as <see cref="TimeSpan"/>s are compared with timestamps.</summary>
    public static long Ticks(TimeSpan duration) => (long)(duration.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Poll's milliseconds for <paramref name="ticks"/> of Stopwatch time: rounded up, 0 to <see cref="int.MaxValue"/> (about 24 days: callers loop).</summary>
    public static int Milliseconds(long ticks) => (int)Math.Clamp(Math.Ceiling(ticks * 1000.0 / Stopwatch.Frequency), 0, int.MaxValue);

    /// <summary>True for <see cref="Never"/>.</summary>
    public bool IsNever => _timestamp == long.MaxValue;

    /// <summary>The Stopwatch timestamp it ends at (<see cref="long.MaxValue"/> for never).</summary>
    public long Timestamp => _timestamp;

    /// <summary>True once the clock reached it.</summary>
    public bool HasPassed
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Stopwatch.GetTimestamp() >= _timestamp;
    }

    /// <summary>True if <paramref name="now"/>, a timestamp the caller just read, is at or past it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool HasPassedAt(long now) => now >= _timestamp;

    /// <summary>Whichever of the two comes first.</summary>
    public Deadline Or(Deadline other) => _timestamp <= other._timestamp ? this : other;

    /// <summary>This deadline, or <paramref name="ticks"/> from now if that comes first: a sleep in slices.</summary>
    public Deadline AtMost(long ticks) => Or(AfterTicks(ticks));

    /// <summary>
    /// The end of one sleep of a blocking wait with <paramref name="cancellationToken"/>: this deadline,
    /// or at most 100 ms from now if the token can be cancelled. A token's callback wakes the sleeper,
    /// but the wake is lost if it comes between the wait's last look and its sleep: the slice bounds that.
    /// </summary>
    public Deadline SliceFor(CancellationToken cancellationToken) =>
        cancellationToken.CanBeCanceled ? AtMost(CancellationSliceTicks) : this;

    /// <summary>
    /// The same moment as an absolute time on <paramref name="clock"/> (CLOCK_MONOTONIC for futexes
    /// and pthread_mutex_clocklock, CLOCK_REALTIME for pthread_mutex_timedlock); a deadline in the
    /// past is now. Only for a deadline that is not <see cref="Never"/>: pass no timespec for those.
    /// </summary>
    public unsafe Libc.TimeSpec ToTimeSpec(int clock)
    {
        long remaining = _timestamp - Stopwatch.GetTimestamp();
        double nanoseconds = remaining <= 0 ? 0 : remaining * (1_000_000_000.0 / Stopwatch.Frequency);
        Libc.TimeSpec now;
        Libc.clock_gettime(clock, &now);
        long total = now.Nanoseconds + (long)Math.Min(nanoseconds, MaximumSleepNanoseconds);
        return new Libc.TimeSpec { Seconds = now.Seconds + (total / 1_000_000_000), Nanoseconds = total % 1_000_000_000 };
    }

    /// <summary>Poll's milliseconds until it, counted from <paramref name="now"/>: rounded up, 0 once passed.</summary>
    public int ToPollMilliseconds(long now) => Milliseconds(_timestamp - now);
}
