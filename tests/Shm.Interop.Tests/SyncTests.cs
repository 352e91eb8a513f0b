using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Locks and signals across real processes: forked children, a C program, SIGKILLed owners.</summary>
public sealed class SyncTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void An_owner_killed_with_SIGKILL_hands_the_mutex_on_within_100_ms_three_times_then_it_works_normally()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 0);
        for (int round = 1; round <= 3; round++)
        {
            region.Write(64, 0);
            using Child holder = Child.Fork(() =>
            {
                mutex.Lock();
                region.Write(64, 1);
                while (true)
                {
                    Thread.SpinWait(1000);
                }
            });
            Assert.True(SpinWait.SpinUntil(() => region.Read<int>(64) == 1, Bound), "the child never held the mutex");
            Assert.False(mutex.TryLock(), "the mutex is held by the child");

            var clock = Stopwatch.StartNew();
            holder.Signal(Native.SIGKILL);
            var abandoned = Assert.Throws<AbandonedMutexException>(() => mutex.TryLock(Bound));
            TimeSpan handedOn = clock.Elapsed;

            Assert.True(handedOn < TimeSpan.FromMilliseconds(100), $"round {round}: took {handedOn.TotalMilliseconds:0} ms");
            Assert.Contains("died", abandoned.Message, StringComparison.Ordinal);
            mutex.Unlock(); // we own it after the exception, as with Mutex.WaitOne
            Assert.Equal(Native.SIGKILL, holder.WaitOrFail().Signal);
        }

        using (mutex.Lock())
        {
            region.Write(64, 2);
        }
        Assert.True(mutex.TryLock());
        mutex.Unlock();
    }

    [Fact]
    public void Four_processes_incrementing_100000_times_each_under_the_mutex_count_400000()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 0);

        using Children children = Children.Fork(4, _ =>
        {
            for (int i = 0; i < 100_000; i++)
            {
                using (mutex.Lock())
                {
                    region.Write(64, region.Read<long>(64) + 1);
                }
            }
            return 0;
        });
        children.TryWaitAll(out IReadOnlyList<ChildExit?> exits, TimeSpan.FromMinutes(2));

        Assert.All(exits, exit => Assert.True(exit is { Succeeded: true }, exit?.ToString() ?? "still running"));
        Assert.Equal(400_000L, region.Read<long>(64));
    }

    [Fact]
    public void A_C_program_and_this_process_lock_the_same_mutex_in_a_named_segment_and_count_together()
    {
        const int Each = 200_000;
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var mutex = SharedMutex.Create(region, 0);
        string program = Sources.CompileC("count", CCounter);

        using Child c = Child.Spawn(program, ["/" + name, Each.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        for (int i = 0; i < Each; i++)
        {
            using (mutex.Lock())
            {
                region.Write(64, region.Read<long>(64) + 1);
            }
        }
        ChildExit exit = c.WaitOrFail();

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(2L * Each, region.Read<long>(64));
    }

    [Fact]
    public void A_semaphore_released_in_one_process_wakes_a_waiter_in_another()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, initialCount: 0);
        using var done = SharedEvent.Create(region, 64, EventResetMode.ManualReset);

        using Child waiter = Child.Fork(() =>
        {
            bool took = semaphore.TryWait(Bound);
            done.Set();
            return took ? 0 : 1;
        });
        Assert.False(done.TryWait(TimeSpan.FromMilliseconds(200)), "the child passed before the release");
        semaphore.Release();

        Assert.Equal(0, waiter.WaitOrFail().ExitCode);
        Assert.True(done.IsSet);
        Assert.Equal(0, semaphore.CurrentCount);
    }

    [Fact]
    public void Events_auto_reset_let_one_waiter_through_per_set_and_manual_reset_let_all_through()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var auto = SharedEvent.Create(region, 0, EventResetMode.AutoReset);
        using var manual = SharedEvent.Create(region, 64, EventResetMode.ManualReset);
        using var passed = SharedSemaphore.Create(region, 128, 0);

        using Children waiters = Children.Fork(3, i =>
        {
            SharedEvent gate = i == 0 ? auto : manual;
            if (!gate.TryWait(Bound))
            {
                return 1;
            }
            passed.Release();
            return 0;
        });
        manual.Set();
        Assert.True(passed.TryWait(Bound) && passed.TryWait(Bound), "both manual waiters passed");
        Assert.False(passed.TryWait(TimeSpan.FromMilliseconds(100)), "the auto-reset waiter passed without a set");
        auto.Set();
        Assert.True(passed.TryWait(Bound));
        Assert.All(waiters.WaitAllOrFail(), exit => Assert.Equal(0, exit.ExitCode));
        Assert.False(auto.IsSet, "an auto-reset event resets as a waiter passes");
        Assert.True(manual.IsSet);
    }

    [Fact]
    public void Waits_time_out_and_are_cancelled()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        var clock = Stopwatch.StartNew();

        Assert.False(semaphore.TryWait(TimeSpan.FromMilliseconds(100)));
        Assert.InRange(clock.Elapsed.TotalMilliseconds, 95, 2000);

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        clock.Restart();
        Assert.ThrowsAny<OperationCanceledException>(() => semaphore.Wait(cancel.Token));
        Assert.InRange(clock.Elapsed.TotalMilliseconds, 95, 2000);
    }

    [Fact]
    public async Task A_waiter_whose_peer_died_stops_waiting_when_it_learns_so()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        using Child peer = Child.Fork(() =>
        {
            while (true)
            {
                Thread.SpinWait(1000); // would release one day, but is killed first
            }
        });
        using var peerGone = new CancellationTokenSource();
        _ = peer.WaitAsync().ContinueWith(_ => peerGone.Cancel(), TaskScheduler.Default);
        Task waiting = semaphore.WaitAsync(peerGone.Token);

        peer.Signal(Native.SIGKILL);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Bound));
    }

    [Fact]
    public async Task A_hundred_asynchronous_waiters_hold_no_thread_each_and_all_wake()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        int before = ProcStatus.Threads();

        Task<bool>[] waits = [.. Enumerable.Range(0, 100).Select(_ => semaphore.TryWaitAsync(Bound))];
        await Task.Delay(200);
        int during = ProcStatus.Threads();
        using Child releaser = Child.Fork(() =>
        {
            semaphore.Release(100);
            return 0;
        });
        bool[] results = await Task.WhenAll(waits).WaitAsync(Bound);

        Assert.True(during - before < 10, $"{before} threads before, {during} while a hundred waits were pending");
        Assert.All(results, Assert.True);
        Assert.Equal(0, releaser.WaitOrFail().ExitCode);
    }

    [Fact]
    public void A_condition_variable_wakes_a_waiter_in_another_process_under_the_mutex()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 0);
        using var ready = SharedCondition.Create(region, 64);

        using Child consumer = Child.Fork(() =>
        {
            using (mutex.Lock())
            {
                while (region.Read<int>(128) == 0)
                {
                    if (!ready.TryWait(mutex, Bound))
                    {
                        return 1;
                    }
                }
                return region.Read<int>(128);
            }
        });
        using (mutex.Lock())
        {
            region.Write(128, 42);
            ready.Signal();
        }

        Assert.Equal(42, consumer.WaitOrFail().ExitCode);
    }

    [Fact]
    public void Misuse_is_a_clear_exception()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 0);

        using (mutex.Lock())
        {
            Assert.Throws<LockRecursionException>(() => mutex.Lock());
            var other = new Thread(() => Assert.Throws<SynchronizationLockException>(mutex.Unlock));
            other.Start();
            Assert.True(other.Join(Bound));
        }
        Assert.Throws<SynchronizationLockException>(mutex.Unlock);

        Assert.Equal("offset", Assert.Throws<ArgumentException>(() => SharedMutex.Create(region, 12)).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => SharedMutex.Create(region, 4096 - 32)).ParamName);
        Assert.Contains("already initialised", Assert.Throws<InvalidOperationException>(() => SharedMutex.Create(region, 0)).Message, StringComparison.Ordinal);
        Assert.Contains("not a SharedSemaphore", Assert.Throws<InvalidOperationException>(() => SharedSemaphore.Open(region, 0)).Message, StringComparison.Ordinal);
        Assert.Contains("still zero", Assert.Throws<InvalidOperationException>(() => SharedMutex.Open(region, 256)).Message, StringComparison.Ordinal);
        "garbage!"u8.CopyTo(region.AsSpan(512, 8));
        Assert.Contains("not a Shm primitive", Assert.Throws<InvalidOperationException>(() => SharedEvent.Open(region, 512)).Message, StringComparison.Ordinal);
        Assert.Throws<SemaphoreFullException>(() =>
        {
            using var full = SharedSemaphore.Create(region, 1024, 1, maximumCount: 1);
            full.Release();
        });
        mutex.Dispose();
        Assert.Throws<ObjectDisposedException>(() => mutex.Lock());
    }

    [Fact]
    public void A_primitive_keeps_its_region_mapped_until_it_is_disposed()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();
        var semaphore = SharedSemaphore.Create(region, 0, 1);

        region.Dispose();
        Assert.NotNull(ProcMaps.At(address)); // the semaphore still holds the mapping
        Assert.True(semaphore.TryWait(TimeSpan.Zero));
        semaphore.Dispose();

        Assert.Null(ProcMaps.At(address));
    }

    [Fact]
    public async Task Disposing_a_primitive_ends_its_pending_asynchronous_waits_and_frees_the_mapping_after_them()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();
        var semaphore = SharedSemaphore.Create(region, 0, 0);
        Task<bool> pending = semaphore.TryWaitAsync(Bound);
        region.Dispose();

        semaphore.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(Bound));
        Assert.Null(ProcMaps.At(address));
    }


    /// <summary>Before the fix shm_semaphore_post returned nothing and took the count past its maximum, the state that made .NET waits spin.</summary>
    [Fact]
    public void C_posts_to_a_full_semaphore_are_refused_and_C_calls_refuse_impossible_shared_values()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var full = SharedSemaphore.Create(region, 0, initialCount: 2, maximumCount: 2);
        using var corrupt = SharedSemaphore.Create(region, 64, initialCount: 0, maximumCount: 2);
        using var signal = SharedEvent.Create(region, 128, EventResetMode.AutoReset);
        region.Write(64 + 8, 7); // a count past the maximum
        region.Write(128 + 8, 2); // a signal other than 0 or 1
        string program = Sources.CompileC("semaphore-checks", CChecks);

        using Child c = Child.Spawn(program, ["/" + name]);
        ChildExit exit = c.WaitOrFail();

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(2, full.CurrentCount);
        Assert.Equal(7, region.Read<int>(64 + 8)); // refused, not repaired
        Assert.Equal(2, region.Read<int>(128 + 8));
    }

    private const string CChecks = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <sys/mman.h>

        int main(int argc, char **argv)
        {
            if (argc != 2) return 2;
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); return 2; }
            char *base = (char *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); return 2; }
            struct shm_semaphore *full = (struct shm_semaphore *)base, *corrupt = (struct shm_semaphore *)(base + 64);
            struct shm_event *signal = (struct shm_event *)(base + 128);
            int post = shm_semaphore_post(full), bad_post = shm_semaphore_post(corrupt), bad_wait = shm_semaphore_wait(corrupt), bad_set = shm_event_set(signal);
            printf("post to a full semaphore: %d; post, wait on a count past the maximum: %d, %d; set of a signal of 2: %d\n", post, bad_post, bad_wait, bad_set);
            return post == EOVERFLOW && bad_post == EINVAL && bad_wait == EINVAL && bad_set == EINVAL ? 0 : 3;
        }
        """;

    private const string CCounter = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/mman.h>

        int main(int argc, char **argv)
        {
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); return 2; }
            char *base = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); return 2; }
            struct shm_mutex *m = (struct shm_mutex *)base;
            if (!shm_is_ready(&m->header, SHM_MUTEX)) { fprintf(stderr, "not a ready mutex\n"); return 3; }
            long *counter = (long *)(base + 64);
            for (long i = 0, n = atol(argv[2]); i < n; i++) {
                int error = shm_mutex_lock(m);
                if (error != 0 && error != EOWNERDEAD) { fprintf(stderr, "lock: %d\n", error); return 4; }
                ++*counter;
                shm_mutex_unlock(m);
            }
            return 0;
        }
        """;
}
