using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// The futex mutex for processes that do not trust each other, across real processes: SIGKILLed
/// owners, counting processes, a C program, a thread that ends holding it, and misuse.
/// </summary>
public sealed class FutexMutexTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>The owner's tid in the lock word (bits 0 to 21; the word is at byte 8), per include/shm/shm.h.</summary>
    private const int TidBits = 0x3F_FFFF;

    private readonly DevShm _shm = new();

    /// <summary>Runs the paths forked children take once in this process, so that nothing compiles in them.</summary>
    public FutexMutexTests()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        using (mutex.Lock())
        {
        }
        mutex.TryLock(TimeSpan.FromSeconds(1));
        mutex.Unlock();
    }

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void An_owner_killed_with_SIGKILL_is_taken_over_within_a_second_three_times_then_it_works_normally()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
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
            Assert.False(mutex.TryLock(), "the mutex is held by a live child");
            Assert.Equal(holder.Pid, region.Read<int>(8) & TidBits); // the child's only thread: its tid is its pid

            var clock = Stopwatch.StartNew();
            holder.Signal(Native.SIGKILL);
            var abandoned = Assert.Throws<AbandonedMutexException>(() => mutex.TryLock(Bound));
            TimeSpan takenOver = clock.Elapsed;

            Assert.True(takenOver < TimeSpan.FromSeconds(1), $"round {round}: took {takenOver.TotalMilliseconds:0} ms");
            Assert.Contains($"thread {holder.Pid}, process {holder.Pid}", abandoned.Message, StringComparison.Ordinal);
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
        using var mutex = SharedFutexMutex.Create(region, 0);

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
    public void A_C_program_and_this_process_lock_the_same_futex_mutex_and_count_together()
    {
        const int Each = 200_000;
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        string program = Sources.CompileC("futex-count", CCounter);

        using Child c = Child.Spawn(program, ["/" + name, "count", Each.ToString(CultureInfo.InvariantCulture)]);
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
    public void A_C_owner_killed_is_taken_over_here_and_an_owner_killed_here_is_taken_over_by_C()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        string program = Sources.CompileC("futex-owner", CCounter);

        using (Child c = Child.Spawn(program, ["/" + name, "hold", "0"]))
        {
            Assert.True(SpinWait.SpinUntil(() => region.Read<int>(64) == 1 || c.TryWait(out _, TimeSpan.Zero), Bound), "the C program never held the mutex");
            c.Signal(Native.SIGKILL);
            Assert.Throws<AbandonedMutexException>(() => mutex.TryLock(Bound));
            Assert.Equal(Native.SIGKILL, c.WaitOrFail().Signal);
        }
        mutex.Unlock();

        region.Write(64, 0);
        using (Child holder = Child.Fork(() =>
        {
            mutex.Lock();
            region.Write(64, 1);
            while (true)
            {
                Thread.SpinWait(1000);
            }
        }))
        {
            Assert.True(SpinWait.SpinUntil(() => region.Read<int>(64) == 1, Bound), "the child never held the mutex");
            holder.Signal(Native.SIGKILL);
            Assert.Equal(Native.SIGKILL, holder.WaitOrFail().Signal);
        }
        using Child taker = Child.Spawn(program, ["/" + name, "take", "0"]);
        Assert.Equal(0, taker.WaitOrFail().ExitCode); // it got EOWNERDEAD, then unlocked
        Assert.True(mutex.TryLock());
        mutex.Unlock();
    }

    [Fact]
    public void A_thread_that_ends_holding_the_mutex_is_found_dead_by_the_next_locker()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        var owner = new Thread(() => mutex.Lock());
        owner.Start();
        Assert.True(owner.Join(Bound));
        int tid = region.Read<int>(8) & TidBits;
        Assert.True(SpinWait.SpinUntil(() => !System.IO.Directory.Exists($"/proc/self/task/{tid}"), Bound), $"thread {tid} is still in /proc");

        Assert.Throws<AbandonedMutexException>(() => mutex.TryLock());
        mutex.Unlock();
        Assert.True(mutex.TryLock());
        mutex.Unlock();
    }

    [Fact]
    public void Misuse_is_a_clear_exception()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);

        using (mutex.Lock())
        {
            Assert.Throws<LockRecursionException>(() => mutex.Lock());
            Assert.False(mutex.TryLock()); // as SharedMutex.TryLock by its owner
            Assert.Throws<LockRecursionException>(() => mutex.TryLock(TimeSpan.FromSeconds(1)));
            var other = new Thread(() =>
            {
                Assert.Throws<SynchronizationLockException>(mutex.Unlock);
                Assert.False(mutex.TryLock()); // held by a live thread of this process
                Assert.False(mutex.TryLock(TimeSpan.FromMilliseconds(50)));
            });
            other.Start();
            Assert.True(other.Join(Bound));
        }
        Assert.Throws<SynchronizationLockException>(mutex.Unlock);

        Assert.Equal("offset", Assert.Throws<ArgumentException>(() => SharedFutexMutex.Create(region, 12)).ParamName);
        Assert.Contains("already initialised", Assert.Throws<InvalidOperationException>(() => SharedFutexMutex.Create(region, 0)).Message, StringComparison.Ordinal);
        Assert.Contains("not a SharedMutex", Assert.Throws<InvalidOperationException>(() => SharedMutex.Open(region, 0)).Message, StringComparison.Ordinal);
        using (var opened = SharedFutexMutex.Open(region, 0))
        using (opened.Lock())
        {
            Assert.Throws<LockRecursionException>(() => mutex.Lock()); // the same mutex through another object: the same owner
        }
        mutex.Dispose();
        Assert.Throws<ObjectDisposedException>(() => mutex.Lock());
    }

    /// <summary>An owner thread of this process, for a locker in a forked child: the child's own tid goes in the word, not a cached one.</summary>
    [Fact]
    public void A_forked_child_locks_as_itself_not_as_the_thread_it_was_forked_from()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        mutex.Lock(); // this thread's identity is cached now
        mutex.Unlock();
        using Child child = Child.Fork(() =>
        {
            using (mutex.Lock())
            {
                region.Write(64, region.Read<int>(8) & TidBits);
            }
            return 0;
        });

        Assert.Equal(0, child.WaitOrFail().ExitCode);
        Assert.Equal(child.Pid, region.Read<int>(64));
    }

    /// <summary>argv: name, then "count N" (N increments under the mutex), "hold" (lock, report, spin until killed) or "take" (expect EOWNERDEAD).</summary>
    private const string CCounter = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/mman.h>

        int main(int argc, char **argv)
        {
            if (argc != 4) return 2;
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); return 2; }
            char *base = (char *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); return 2; }
            struct shm_futex_mutex *m = (struct shm_futex_mutex *)base;
            if (!shm_is_ready(&m->header, SHM_FUTEX_MUTEX)) { fprintf(stderr, "not a ready futex mutex\n"); return 3; }
            volatile long *counter = (volatile long *)(base + 64);
            if (!strcmp(argv[2], "hold")) {
                if (shm_futex_mutex_lock(m) != 0) return 4;
                *(volatile int *)(base + 64) = 1;
                for (;;) SHM_PAUSE();
            }
            if (!strcmp(argv[2], "take")) {
                int error = shm_futex_mutex_lock(m);
                if (error != EOWNERDEAD) { fprintf(stderr, "lock: %d, not EOWNERDEAD\n", error); return 5; }
                return shm_futex_mutex_unlock(m) == 0 ? 0 : 6;
            }
            for (long i = 0, n = atol(argv[3]); i < n; i++) {
                int error = shm_futex_mutex_lock(m);
                if (error != 0) { fprintf(stderr, "lock: %d\n", error); return 4; }
                ++*counter;
                error = shm_futex_mutex_unlock(m);
                if (error != 0) { fprintf(stderr, "unlock: %d\n", error); return 5; }
            }
            return 0;
        }
        """;
}
