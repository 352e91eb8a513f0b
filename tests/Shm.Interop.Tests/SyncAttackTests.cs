using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;
using Outcome = Shm.Worker.SyncVictim.Outcome;

namespace Shm.Interop.Tests;

/// <summary>
/// Attacks on the locks and signals that <see cref="HostilePeerSyncTests"/> and <see cref="FutexWatcherTests"/>
/// do not make: each test is a proof, with real processes, of a way a peer (or the victim's own
/// shutdown racing a peer) could crash a process that uses Shm or keep one of its waits past its bound.
/// </summary>
public sealed class SyncAttackTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A worker's thread blocks in a primitive; its main thread disposes the primitive and the region
    /// (a shutdown); this process, the peer, then does what any peer may: releases, sets, broadcasts,
    /// unlocks, or nothing (the futex mutex's waiter wakes by itself to look at the owner), and for
    /// semaphore-cancel the worker cancels the wait's token. The blocked thread must end with
    /// <see cref="ObjectDisposedException"/> and the worker must exit normally.
    /// </summary>
    /// <remarks>
    /// Before the fix, disposing the region unmapped the word under the sleeping thread: the peer's wake
    /// (or the futex mutex's next look) made it read the unmapped word and the worker died by SIGSEGV;
    /// with semaphore-cancel the cancellation's wake hit the unmapped address (EFAULT), woke nobody, and
    /// the wait outlived its cancellation (Hung).
    /// </remarks>
    [Theory]
    [InlineData("semaphore")]
    [InlineData("semaphore-cancel")]
    [InlineData("event")]
    [InlineData("condition")]
    [InlineData("futex-mutex")]
    [InlineData("mutex")]
    public void Disposing_a_primitive_and_its_region_under_a_blocked_thread_ends_its_wait_with_ObjectDisposedException_never_a_crash(string primitive)
    {
        using var region = SharedRegion.CreateMemfd("dispose-under-wait", 4096);
        List<IDisposable> held = [];
        try
        {
            Action wake = Prepare(region, primitive, held);
            using Child victim = Worker.Spawn(["dispose-under-wait", primitive], region);
            Assert.True(SpinWait.SpinUntil(() => region.Read<int>(Shm.Worker.Program.DisposePhaseWord) == 2 || victim.Wait(TimeSpan.Zero) is not null, Bound),
                $"the victim never disposed under its blocked thread: {Native.Describe(victim.Pid)}");
            wake();
            ChildExit exit = victim.WaitOrFail(Bound);

            Assert.True(exit.Signal is null, $"{primitive}: the victim died by signal {exit.Signal}: its blocked thread touched the unmapped primitive");
            Assert.Equal(Outcome.Disposed, (Outcome)exit.ExitCode!.Value);
        }
        finally
        {
            for (int i = held.Count - 1; i >= 0; i--)
            {
                held[i].Dispose(); // a held lock before its primitive
            }
        }
    }

    /// <summary>
    /// WaitAsync on one thread, Dispose of the same primitive on another, at the same moment, many
    /// times: once Dispose has returned, every wait that was accepted must have ended (with
    /// <see cref="ObjectDisposedException"/>), as the watcher promises for a disposed owner; none may
    /// stay pending for ever, holding the mapping.
    /// </summary>
    [Theory]
    [InlineData("semaphore")]
    [InlineData("event")]
    public async Task An_asynchronous_wait_that_races_Dispose_of_its_primitive_never_stays_pending(string primitive)
    {
        const int Rounds = 5_000;
        using var region = SharedRegion.CreateAnonymous(4096);
        using SharedPrimitive created = primitive == "semaphore" ? SharedSemaphore.Create(region, 0, 0) : SharedEvent.Create(region, 0, EventResetMode.AutoReset);
        using var start = new Barrier(2);
        var stranded = new List<Task<bool>>();
        var clock = Stopwatch.StartNew();
        int rounds = 0;
        for (; rounds < Rounds && clock.Elapsed < TimeSpan.FromSeconds(5); rounds++)
        {
            SharedPrimitive opened = primitive == "semaphore" ? SharedSemaphore.Open(region, 0) : SharedEvent.Open(region, 0);
            Task<Task<bool>?> waiting = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                try
                {
                    return opened is SharedSemaphore semaphore ? semaphore.WaitAsync(Timeout.InfiniteTimeSpan) : ((SharedEvent)opened).WaitAsync(Timeout.InfiniteTimeSpan);
                }
                catch (ObjectDisposedException)
                {
                    return null; // refused at the door: Dispose came first
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            start.SignalAndWait();
            opened.Dispose();
            if (await waiting.WaitAsync(Bound) is Task<bool> accepted && !accepted.IsCompleted)
            {
                stranded.Add(accepted);
            }
        }
        await Task.WhenAny(Task.WhenAll(stranded), Task.Delay(TimeSpan.FromSeconds(2)));

        Assert.True(stranded.TrueForAll(task => task.IsCompleted),
            $"in {rounds} rounds, {stranded.Count(task => !task.IsCompleted)} waits accepted while their primitive was being disposed were still pending 2 s after Dispose returned");
        Assert.All(stranded, task => Assert.IsType<ObjectDisposedException>(task.Exception?.InnerException));
    }

    /// <summary>
    /// A thread blocks in <see cref="SharedSemaphore.Wait(CancellationToken)"/> with no timeout; a peer
    /// wakes the count's sleepers without posting (as any peer may, and as a post another waiter
    /// takes first does), and the token is cancelled a moment later, swept over rounds so that
    /// some cancellations land while the woken thread is on its way back to sleep. Every wait must
    /// end with <see cref="OperationCanceledException"/> soon after its cancellation.
    /// </summary>
    [Fact]
    public unsafe void A_blocking_wait_cancelled_as_it_goes_back_to_sleep_still_ends()
    {
        const int Rounds = 10_000;
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        int* count = (int*)region.DangerousGetAddress() + 2;
        string asleep = $"{Syscalls.Futex} 0x{(nint)count:x} ";
        var clock = Stopwatch.StartNew();
        int rounds = 0, stranded = 0;
        string seen = "";
        for (; rounds < Rounds && clock.Elapsed < TimeSpan.FromSeconds(10); rounds++)
        {
            using var cancel = new CancellationTokenSource();
            using var ended = new ManualResetEventSlim();
            int tid = 0;
            var waiter = new Thread(() =>
            {
                Volatile.Write(ref tid, Native.GetTid());
                try
                {
                    semaphore.Wait(cancel.Token);
                }
                catch (OperationCanceledException)
                {
                }
                ended.Set();
            });
            waiter.Start();
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref tid) != 0 && Syscalls.Of(tid).StartsWith(asleep, StringComparison.Ordinal), Bound), "the waiter never slept on the count");

            Futex.WakeShared(count);
            Thread.SpinWait(rounds % 400);
            cancel.Cancel();

            if (!ended.Wait(TimeSpan.FromSeconds(1)))
            {
                stranded++;
                seen = Syscalls.Of(tid).Trim();
                semaphore.Release(); // a post wakes it: it takes the count, and the next round starts clean
                Assert.True(ended.Wait(Bound), "the stranded waiter did not take a posted count either");
            }
            waiter.Join();
        }

        Assert.True(stranded == 0, $"{stranded} of {rounds} cancelled waits were still asleep 1 s after their cancellation (in \"{seen}\"; the count is at 0x{(nint)count:x})");
    }

    /// <summary>Creates the primitive (and, for a lock, holds it on this thread); returns the peer's move once the victim has disposed.</summary>
    private static Action Prepare(SharedRegion region, string primitive, List<IDisposable> held)
    {
        long at = Shm.Worker.SyncVictim.PrimitiveOffset;
        switch (primitive)
        {
            case "semaphore" or "semaphore-cancel":
                var semaphore = SharedSemaphore.Create(region, at, 0);
                held.Add(semaphore);
                return primitive == "semaphore" ? () => semaphore.Release() : () => { };
            case "event":
                var signal = SharedEvent.Create(region, at, EventResetMode.AutoReset);
                held.Add(signal);
                return signal.Set;
            case "condition":
                var condition = SharedCondition.Create(region, at);
                held.Add(condition);
                held.Add(SharedMutex.Create(region, Shm.Worker.SyncVictim.MutexOffset));
                return condition.Broadcast;
            case "futex-mutex":
                var futexMutex = SharedFutexMutex.Create(region, at);
                held.Add(futexMutex);
                held.Add(futexMutex.Lock()); // released last: the victim's thread waits on a live owner
                return () => { };
            default:
                var mutex = SharedMutex.Create(region, at);
                held.Add(mutex);
                mutex.Lock();
                return mutex.Unlock;
        }
    }

    /// <summary>What <c>/proc/self/task/TID/syscall</c> says a thread of this process is blocked in.</summary>
    private static class Syscalls
    {
        /// <summary>futex(2)'s number on this architecture.</summary>
        public static readonly int Futex = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? 98 : 202;

        /// <summary>The number and arguments of the call thread <paramref name="tid"/> is in ("running" if none).</summary>
        public static string Of(int tid)
        {
            try
            {
                return System.IO.File.ReadAllText($"/proc/self/task/{tid}/syscall");
            }
            catch (System.IO.IOException)
            {
                return "gone";
            }
        }
    }
}
