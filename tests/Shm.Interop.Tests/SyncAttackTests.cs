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
public sealed class SyncAttackTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    /// <summary>
    /// A worker's thread blocks in a primitive; its main thread disposes the primitive and the region
    /// (a shutdown); this process, the peer, then does what any peer may: releases, sets, broadcasts,
    /// unlocks, or nothing (the futex mutex's waiter wakes by itself to look at the owner), and for
    /// semaphore-cancel the worker cancels the wait's token. The blocked thread must end with
    /// <see cref="ObjectDisposedException"/> and the worker must exit normally.
    /// </summary>
    /// <remarks>
    /// Before the fix, disposing the region unmapped the word under the sleeping thread: the peer's wake
    /// (or the futex mutex's next look) made it read the unmapped word and the worker died (SIGABRT: the
    /// runtime's AccessViolationException is fatal; SIGSEGV inside glibc for the mutex); with semaphore-cancel the cancellation's wake hit the unmapped address (EFAULT), woke nobody, and
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
            Assert.True(SpinWait.SpinUntil(() => region.Read<int>(Shm.Worker.Program.DisposePhaseWord) == 2 || victim.TryWait(out _, TimeSpan.Zero), Bound),
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
    /// stay pending for ever, holding the mapping. Before the fix about 30% of the rounds left one
    /// pending (Dispose looked for the owner's waits before the new one was registered).
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
                    return ((SharedWaitable)opened).TryWaitAsync(Timeout.InfiniteTimeSpan);
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
    /// A thread blocks in <see cref="SharedWaitable.Wait"/> with no timeout; a peer
    /// wakes the count's sleepers without posting (as any peer may, and as a post another waiter
    /// takes first does), and the token is cancelled a moment later, swept over rounds so that
    /// some cancellations land while the woken thread is on its way back to sleep. Every wait must
    /// end with <see cref="OperationCanceledException"/> soon after its cancellation. Before the fix
    /// about 1 in 2,000 slept on for ever: the token's wake had come before the sleep, and was lost.
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

    /// <summary>
    /// This process holds a futex mutex; a waiter runs in another time namespace, whose boot-time
    /// offset shifts every start time it reads from /proc: a .NET worker, then a C program. Each
    /// must find the owner alive and time out. Before the fix each read the owner's start time
    /// shifted, took the live owner for a dead thread whose tid was reused, and took the mutex
    /// over (AbandonedMutexException, EOWNERDEAD) while it was held.
    /// </summary>
    [RootFact]
    public void A_waiter_in_another_time_namespace_does_not_take_a_live_owners_futex_mutex_over()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var mutex = SharedFutexMutex.Create(region, Shm.Worker.SyncVictim.PrimitiveOffset);
        string program = Sources.CompileC("timens-futex-mutex", CTimeNamespacePeer);
        var outcomes = new List<string>();
        foreach ((string who, string[] waiter) in new[] { (".NET", Worker.InTimeNamespace(TimeNamespaceOffset, "sync-victim", "futex-mutex", "500")), ("C", InTimeNamespace(program, "/" + name, "wait")) })
        {
            mutex.Lock();
            using Child child = Child.Spawn("unshare", waiter, region);
            ChildExit exit = child.WaitOrFail(Bound);
            bool stillOwned = (region.Read<int>(Shm.Worker.SyncVictim.PrimitiveOffset + 8) & 0x3F_FFFF) == Native.GetTid();
            if (stillOwned)
            {
                mutex.Unlock();
            }
            else
            {
                region.Write(Shm.Worker.SyncVictim.PrimitiveOffset + 8, 0); // the waiter took it over and ended holding it: free it for the next one
            }
            outcomes.Add($"{who} waiter: {(exit.Signal is int signal ? $"signal {signal}" : (Outcome)exit.ExitCode!.Value)}, this thread {(stillOwned ? "still owned it" : "had lost it")}");
        }

        Assert.True(outcomes.TrueForAll(outcome => outcome.EndsWith("TimedOut, this thread still owned it", StringComparison.Ordinal)), string.Join("; ", outcomes));
    }

    /// <summary>
    /// The other way round: the owner runs in another time namespace (a .NET worker, then a C
    /// program: each recorded its start time as it sees it), this process waits. Before the fix this
    /// process took each live owner's mutex over.
    /// </summary>
    [RootFact]
    public void An_owner_in_another_time_namespace_is_not_taken_for_dead()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var mutex = SharedFutexMutex.Create(region, Shm.Worker.SyncVictim.PrimitiveOffset);
        string program = Sources.CompileC("timens-futex-mutex", CTimeNamespacePeer);
        var outcomes = new List<string>();
        foreach ((string who, string[] holder) in new[] { (".NET", Worker.InTimeNamespace(TimeNamespaceOffset, "hold-futex-mutex")), ("C", InTimeNamespace(program, "/" + name, "hold")) })
        {
            region.Write(Shm.Worker.SyncVictim.HandshakeWord, 0);
            using Child owner = Child.Spawn("unshare", holder, region);
            Outcome outcome;
            try
            {
                Assert.True(SpinWait.SpinUntil(() => region.Read<int>(Shm.Worker.SyncVictim.HandshakeWord) == 1 || owner.TryWait(out _, TimeSpan.Zero), Bound),
                    $"the owner never locked: {Native.Describe(owner.Pid)}");
                try
                {
                    outcome = mutex.TryLock(TimeSpan.FromMilliseconds(500)) ? Outcome.Took : Outcome.TimedOut;
                }
                catch (AbandonedMutexException)
                {
                    outcome = Outcome.Abandoned;
                    mutex.Unlock();
                }
            }
            finally
            {
                region.Write(Shm.Worker.SyncVictim.HandshakeWord, 2);
            }
            ChildExit exit = owner.WaitOrFail(Bound);
            outcomes.Add($"{who} owner: this thread's lock {outcome}, the owner {(exit.Succeeded ? "held it to the end" : $"lost it ({exit})")}");
        }

        Assert.True(outcomes.TrueForAll(outcome => outcome.EndsWith("TimedOut, the owner held it to the end", StringComparison.Ordinal)), string.Join("; ", outcomes));
    }

    /// <summary>Seconds the time namespace's boot-time clock runs ahead (any offset shifts the start times read through /proc).</summary>
    private const int TimeNamespaceOffset = 100_000;

    /// <summary>unshare's arguments to run <paramref name="program"/> in a new time namespace.</summary>
    private static string[] InTimeNamespace(string program, params string[] arguments) =>
        ["--time", "--boottime", TimeNamespaceOffset.ToString(System.Globalization.CultureInfo.InvariantCulture), program, .. arguments];

    /// <summary>
    /// A C peer of the futex mutex at byte 64 of segment argv[1]: "wait" locks with a 500 ms timeout
    /// (exit 11 timed out, 14 took it over from a "dead" owner, 10 got it); "hold" locks, says so
    /// with a 1 at byte 4, holds until a 2 is there (60 s at most) and unlocks (exit 0 if that worked).
    /// </summary>
    private const string CTimeNamespacePeer = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <sys/mman.h>

        int main(int argc, char **argv)
        {
            if (argc != 3) return 2;
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); return 2; }
            char *base = (char *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); return 2; }
            struct shm_futex_mutex *m = (struct shm_futex_mutex *)(base + 64);
            volatile int *handshake = (volatile int *)(base + 4);
            if (!shm_is_ready(&m->header, SHM_FUTEX_MUTEX)) { fprintf(stderr, "not a ready futex mutex\n"); return 3; }
            if (!strcmp(argv[1 + 1], "wait")) {
                int error = shm_futex_mutex_timedlock(m, 500000000);
                return error == ETIMEDOUT ? 11 : error == EOWNERDEAD ? 14 : error == 0 ? 10 : 15;
            }
            if (shm_futex_mutex_lock(m) != 0) return 4;
            *handshake = 1;
            for (int64_t until = shm_monotonic_ns_() + 60000000000LL; *handshake != 2 && shm_monotonic_ns_() < until;) SHM_PAUSE();
            return shm_futex_mutex_unlock(m) == 0 ? 0 : 5;
        }
        """;

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
