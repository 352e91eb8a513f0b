using System;
using System.Diagnostics;

namespace Shm.Interop;

/// <summary>
/// Watches one forked child, after its body started, for the state "cannot wake without a signal":
/// its only thread waits without a timeout on a private futex (see <see cref="ThreadSample"/>), and it
/// has no handler of its own for a signal it does not block. A reading that shows it is confirmed by
/// a later one, at least <see cref="ConfirmAfter"/> apart, that shows the same wait and no wake-up in
/// between.
/// </summary>
/// <remarks>
/// That state is a deadlock if the lock was held by another parent thread at the fork, and a healthy
/// wait if the child's code means to be ended by a signal (<c>Thread.Sleep(Timeout.Infinite)</c> until
/// SIGTERM): both wait on the runtime's own condition variable, on the same word, with the same
/// futex operation, so no outside reading tells them apart. Hence the name: a suspicion, which
/// <see cref="ChildDeadlockPolicy"/> turns into a report or a kill.
/// </remarks>
internal sealed class DeadlockWatch(int pid, ulong uncountedHandlers)
{
    /// <summary>How far apart two readings of the same wait must be (250 ms).</summary>
    public static readonly long ConfirmAfter = Stopwatch.Frequency / 4;

    /// <summary>How often waits read a forked child's state (100 ms): detection takes 250 to 400 ms.</summary>
    public const int SampleMilliseconds = 100;

    // The runtime keeps handlers for the hardware faults (it turns them into exceptions on the
    // faulting thread) and the child keeps them; nobody wakes a waiting thread with a SIGSEGV.
    private const ulong HardwareFaults =
        (1UL << (Libc.SIGILL - 1)) | (1UL << (Libc.SIGTRAP - 1)) | (1UL << (Libc.SIGBUS - 1)) | (1UL << (Libc.SIGFPE - 1)) | (1UL << (Libc.SIGSEGV - 1));

    // Signals 32 to 64. The child resets the classic signals only; the real-time ones keep what
    // this process had at the fork (glibc's and the runtime's own, for thread suspension).
    private const ulong RealTime = ~0UL << 31;

    private ThreadSample _suspect;
    private long _suspectSince;

    public ProcPaths Paths { get; } = new(pid);

    /// <summary>
    /// The handlers a child forked now has without installing them itself, which therefore say
    /// nothing about whether its code expects a signal: the hardware faults, and the real-time
    /// signals this process catches (all real-time signals if its status cannot be read).
    /// </summary>
    public static ulong UncountedHandlers() =>
        HardwareFaults | (ThreadSample.CaughtSignalsOfThisProcess() is ulong caught ? caught & RealTime : RealTime);

    /// <summary>
    /// The interval between readings when <paramref name="children"/> forked children are waited for:
    /// 100 ms, and 1 ms more per child past 100, so that reading their state costs about one /proc
    /// read per millisecond however many there are (detection stays within about a second up to
    /// several hundred children).
    /// </summary>
    public static long SampleInterval(int children) =>
        Stopwatch.Frequency * Math.Max(SampleMilliseconds, children) / 1000;

    /// <summary>Takes a reading; what the confirming readings saw once the state is confirmed (and as long as it lasts), else null.</summary>
    public DeadlockSuspicion? Check()
    {
        ThreadSample sample = ThreadSample.Read(Paths, full: false);
        long now = Stopwatch.GetTimestamp();
        lock (this)
        {
            if (!sample.CannotWake || WakeableBySignal(sample))
            {
                _suspectSince = 0;
                return null;
            }
            if (_suspectSince != 0 && sample.SameWaitAs(_suspect))
            {
                long lasted = now - _suspectSince;
                return lasted >= ConfirmAfter
                    ? new DeadlockSuspicion(sample, TimeSpan.FromSeconds((double)lasted / Stopwatch.Frequency), uncountedHandlers)
                    : null;
            }
            (_suspect, _suspectSince) = (sample, now);
            return null;
        }
    }

    // A handler the child installed itself, for a signal it does not block, can end the wait:
    // e.g. a SIGUSR1 handler that posts the semaphore the child waits on.
    private bool WakeableBySignal(in ThreadSample sample) =>
        (sample.CaughtSignals & ~sample.BlockedSignals & ~uncountedHandlers) != 0;
}

/// <summary>What a confirmed suspicion saw: the wait, how long it lasted without a wake-up, and the handlers.</summary>
internal readonly record struct DeadlockSuspicion(ThreadSample Sample, TimeSpan For, ulong UncountedHandlers);
