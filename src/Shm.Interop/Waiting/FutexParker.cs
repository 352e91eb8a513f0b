using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>What a parked side waits for: a struct, so that a park allocates nothing (a forked writer runs in a no-GC budget) and the check inlines.</summary>
internal interface IParkCondition
{
    /// <summary>True once there is no need to sleep (a message, room): read after the sleeping flag is raised.</summary>
    bool IsMet { get; }
}

/// <summary>
/// Spin, then park on a shared futex with a sleeping flag: how a side of a channel with nothing to do
/// waits for the other. It spins for <see cref="SpinTicks"/> (a futex wake-up costs tens of
/// microseconds on a VM), then raises its flag, looks once more (<see cref="IParkCondition"/>), and
/// sleeps on the sequence word until the other side bumps it, for at most 100 ms at a time (a peer
/// that died wakes nobody, so the caller looks at its peers between sleeps), the deadline or the
/// token. The other side wakes it only if the flag says it sleeps (<see cref="WakeIfSleeping"/>), so
/// no system call is made while both sides are busy.
/// </summary>
internal unsafe ref struct FutexParker
{
    /// <summary>How long a side spins before it parks: 100 µs.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    /// <summary>The longest one sleep lasts: 100 ms.</summary>
    private static readonly long SliceTicks = Stopwatch.Frequency / 10;

    private readonly int* _sequence;
    private readonly int* _sleeping;
    private long _spinUntil;

    /// <param name="sequence">The futex word the other side bumps when it has done something.</param>
    /// <param name="sleeping">The flag that tells the other side to wake this one.</param>
    public FutexParker(int* sequence, int* sleeping)
    {
        _sequence = sequence;
        _sleeping = sleeping;
        _spinUntil = 0;
    }

    /// <summary>True until the first <see cref="Pause"/>: the caller's first look may do more.</summary>
    public readonly bool IsFirstPass => _spinUntil == 0;

    /// <summary>
    /// Called after a try that found nothing: false once the deadline has passed (nothing waited);
    /// otherwise spins a little, or parks (see the type), and returns true for the caller to try again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Pause<TCondition>(in TCondition condition, Deadline deadline, CancellationToken cancellationToken)
        where TCondition : struct, IParkCondition
    {
        long now = Stopwatch.GetTimestamp();
        if (deadline.HasPassedAt(now))
        {
            return false;
        }
        _spinUntil = _spinUntil == 0 ? now + SpinTicks : _spinUntil;
        if (now < _spinUntil)
        {
            Thread.SpinWait(4);
            return true;
        }
        Park(condition, deadline, cancellationToken);
        return true;
    }

    /// <summary>
    /// Bumps <paramref name="sequence"/> and wakes its sleepers, only if <paramref name="sleeping"/>
    /// says one sleeps. The caller published with a full fence first, so this read of the flag cannot
    /// pass the publication: a side that raised its flag after it sees the publication when it looks again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WakeIfSleeping(int* sequence, int* sleeping)
    {
        if (Volatile.Read(ref *sleeping) != 0)
        {
            Wake(sequence);
        }
    }

    /// <summary>
    /// Makes <paramref name="cancellationToken"/>'s cancellation wake every sleeper on <paramref name="word"/>
    /// (who then looks at its token); nothing for a token that cannot be cancelled. Dispose it before
    /// the word may be unmapped.
    /// </summary>
    public static CancellationTokenRegistration WakeOnCancel(int* word, CancellationToken cancellationToken) =>
        cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => Libc.FutexWake((int*)(nint)state!, int.MaxValue), (nint)word)
            : default;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Wake(int* sequence)
    {
        Interlocked.Increment(ref *sequence);
        Libc.FutexWake(sequence, int.MaxValue);
    }

    private readonly void Park<TCondition>(in TCondition condition, Deadline deadline, CancellationToken cancellationToken)
        where TCondition : struct, IParkCondition
    {
        int seen = Volatile.Read(ref *_sequence);
        Interlocked.Exchange(ref *_sleeping, 1);
        using CancellationTokenRegistration wake = WakeOnCancel(_sequence, cancellationToken);
        try
        {
            if (condition.IsMet)
            {
                return;
            }
            Libc.TimeSpec until = deadline.AtMost(SliceTicks).ToTimeSpec(Libc.CLOCK_MONOTONIC);
            Libc.FutexWait(_sequence, seen, &until);
        }
        finally
        {
            Volatile.Write(ref *_sleeping, 0);
        }
    }
}
