using System;
using System.Threading;
using Shm.Interop;
using Outcome = Shm.Worker.SyncVictim.Outcome;

namespace Shm.Worker;

/// <summary>
/// A shutdown that disposes a primitive, and the region it lives in, while one of its threads is
/// still blocked in it: the memory must stay mapped under that thread, and its wait must end.
/// </summary>
public static partial class Program
{
    /// <summary>Report word, in the mapping that stays: 1 once the thread blocks, 2 once the primitive and its region are disposed.</summary>
    public const int DisposePhaseWord = 8;

    /// <summary>How long the blocked thread may wait at most (the peer wakes it well before).</summary>
    private static readonly TimeSpan BlockedWaitTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Inherited region 0 is mapped twice: the primitive at <see cref="SyncVictim.PrimitiveOffset"/> is
    /// opened on one mapping, whose region is disposed under the wait; the report words and the
    /// condition's mutex use the other, which stays. A thread blocks in <paramref name="primitive"/>
    /// (semaphore, semaphore-cancel, event, condition, futex-mutex, mutex); once it does (the shared
    /// word says so), this thread disposes the primitive and its region, and cancels the wait's token
    /// for semaphore-cancel. The exit code is how the blocked thread's wait ended (a
    /// <see cref="Outcome"/>), <see cref="Outcome.Hung"/> if it had not within 10 s.
    /// </summary>
    private static int DisposeUnderWait(string primitive)
    {
        using SharedRegion kept = SharedRegion.OpenInherited();
        SharedRegion doomed = SharedRegion.OpenInherited();
        using var cancel = new CancellationTokenSource();
        using SharedMutex? conditionMutex = primitive == "condition" ? SharedMutex.Open(kept, SyncVictim.MutexOffset) : null;
        IDisposable waitedOn = primitive switch
        {
            "semaphore" or "semaphore-cancel" => SharedSemaphore.Open(doomed, SyncVictim.PrimitiveOffset),
            "event" => SharedEvent.Open(doomed, SyncVictim.PrimitiveOffset),
            "condition" => SharedCondition.Open(doomed, SyncVictim.PrimitiveOffset),
            "futex-mutex" => SharedFutexMutex.Open(doomed, SyncVictim.PrimitiveOffset),
            "mutex" => SharedMutex.Open(doomed, SyncVictim.PrimitiveOffset),
            _ => throw new ArgumentException($"No primitive named {primitive}.", nameof(primitive)),
        };
        var outcome = Outcome.Hung;
        var blocked = new Thread(() =>
        {
            try
            {
                outcome = Block(waitedOn, conditionMutex, cancel.Token) ? Outcome.Took : Outcome.TimedOut;
            }
            catch (Exception failure)
            {
                outcome = SyncVictim.Of(failure);
            }
        })
        { IsBackground = true };
        blocked.Start();
        if (!SpinWait.SpinUntil(() => IsBlocked(kept, primitive) || !blocked.IsAlive, BlockedWaitTimeout))
        {
            Console.Error.WriteLine($"the thread never blocked in the {primitive}");
            return (int)Outcome.Failed;
        }
        kept.Write(DisposePhaseWord, 1);
        waitedOn.Dispose();
        doomed.Dispose();
        kept.Write(DisposePhaseWord, 2);
        if (primitive == "semaphore-cancel")
        {
            cancel.Cancel();
        }
        return (int)(blocked.Join(TimeSpan.FromSeconds(10)) ? outcome : Outcome.Hung);
    }

    /// <summary>The blocking call; a condition is waited on in a loop, as its callers do, until something other than a wake-up ends it.</summary>
    private static bool Block(IDisposable waitedOn, SharedMutex? conditionMutex, CancellationToken cancellationToken)
    {
        switch (waitedOn)
        {
            case SharedSemaphore semaphore:
                return semaphore.TryWait(BlockedWaitTimeout, cancellationToken);
            case SharedEvent signal:
                return signal.TryWait(BlockedWaitTimeout, cancellationToken);
            case SharedCondition condition:
                using (conditionMutex!.Lock())
                {
                    while (condition.TryWait(conditionMutex, BlockedWaitTimeout))
                    {
                    }
                    return false;
                }
            case SharedFutexMutex futexMutex:
                return futexMutex.TryLock(BlockedWaitTimeout);
            default:
                using (((SharedMutex)waitedOn).Lock())
                {
                    return true;
                }
        }
    }

    /// <summary>
    /// True once the thread is committed to sleeping: counted among the waiters (semaphore, event,
    /// condition), or having set the lock word's sleepers bit (bit 31 of the futex mutex's word, and
    /// of glibc's lock word, FUTEX_WAITERS).
    /// </summary>
    private static bool IsBlocked(SharedRegion kept, string primitive) => primitive switch
    {
        "futex-mutex" or "mutex" => kept.Read<int>(SyncVictim.PrimitiveOffset + 8) < 0,
        _ => kept.Read<int>(SyncVictim.PrimitiveOffset + 12) > 0,
    };
}
