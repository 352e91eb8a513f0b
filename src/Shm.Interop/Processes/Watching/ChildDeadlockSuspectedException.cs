using System;
using System.Globalization;

namespace Shm.Interop;

/// <summary>
/// A wait without a bound found a forked child that cannot wake without a signal (see
/// <see cref="ChildDeadlockPolicy.Report"/>): it would have waited for ever. The child was left
/// running: dispose it to kill it, send it the signal it waits for, or wait again with a timeout.
/// </summary>
public sealed class ChildDeadlockSuspectedException : Exception
{
    internal ChildDeadlockSuspectedException(int pid, int index, DeadlockSuspicion suspicion, int othersSuspected)
        : base(Describe(pid, index, suspicion, othersSuspected))
    {
        Pid = pid;
        Index = index;
        FutexAddress = suspicion.Sample.FutexAddress;
        FutexOperation = suspicion.Sample.FutexOperation;
        Threads = suspicion.Sample.Threads;
        SuspectedFor = suspicion.For;
    }

    /// <summary>The child's process id.</summary>
    public int Pid { get; }

    /// <summary>The child's index in its group (0 for a single child).</summary>
    public int Index { get; }

    /// <summary>The address, in the child, of the futex word its thread waits on.</summary>
    public ulong FutexAddress { get; }

    /// <summary>The futex operation of the wait, flags included (e.g. 0x189: FUTEX_WAIT_BITSET, private, CLOCK_REALTIME).</summary>
    public int FutexOperation { get; }

    /// <summary>How many threads the child had (1: nobody else in it can wake the waiter).</summary>
    public int Threads { get; }

    /// <summary>How long the child had been seen in that same wait, with no wake-up, when the wait gave up.</summary>
    public TimeSpan SuspectedFor { get; }

    private static string Describe(int pid, int index, DeadlockSuspicion suspicion, int othersSuspected)
    {
        ThreadSample sample = suspicion.Sample;
        string others = othersSuspected == 0 ? "" : $" ({othersSuspected} other child(ren) of the same wait are in the same state.)";
        string seconds = suspicion.For.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
        return $"Forked child {index} (pid {pid}) cannot wake without a signal: its only thread has waited {seconds} s without a timeout " +
            $"and without a wake-up on the private futex 0x{sample.FutexAddress:x} (futex op 0x{sample.FutexOperation:x}), and it has no " +
            $"handler of its own for a signal it does not block (SigCgt 0x{sample.CaughtSignals:x16}, SigBlk 0x{sample.BlockedSignals:x16}, " +
            $"inherited or the runtime's 0x{suspicion.UncountedHandlers:x16}). Either it deadlocked on a lock another thread of the parent held " +
            "at the instant of the fork, or it waits on purpose to be ended by a signal (e.g. Thread.Sleep(Timeout.Infinite) until SIGTERM): " +
            "the two look the same from outside. It was left running: dispose it to kill it, signal it, or wait with a timeout; " +
            $"ForkOptions.DeadlockPolicy = ChildDeadlockPolicy.Kill kills and reports such children instead.{others} If it deadlocked: {ChildExit.DeadlockAdvice}";
    }
}
