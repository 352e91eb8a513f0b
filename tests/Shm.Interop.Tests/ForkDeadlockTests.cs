using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A forked child whose only thread waits for ever on a private futex can never continue. Every wait
/// must see it, kill and reap it, and say so; and must not mistake a child that merely waits.
/// </summary>
public class ForkDeadlockTests
{
    /// <summary>Detection takes 250 to 400 ms; anything under this bound is "about a second".</summary>
    private static readonly TimeSpan Detected = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static readonly ForkOptions LongGrace = new() { TerminateGracePeriod = TimeSpan.FromSeconds(30) };

    [Fact]
    public void Wait_kills_reaps_and_reports_a_child_deadlocked_on_a_lock_another_thread_held_at_the_fork()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(() =>
        {
            held.Take();
            return 0;
        });
        var clock = Stopwatch.StartNew();

        ChildExit exit = Bounded(child.Wait);

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed}");
        Assert.True(exit.Deadlocked);
        Assert.Equal(Native.SIGKILL, exit.Signal);
        Assert.Contains("Child.Spawn", exit.ToString(), StringComparison.Ordinal);
        Assert.Contains("once in the parent", exit.ToString(), StringComparison.Ordinal);
        Assert.False(Native.Exists(child.Pid), "no zombie");
    }

    [Fact]
    public void Wait_with_a_timeout_reports_the_deadlock_long_before_the_timeout()
    {
        using Child child = ForkPrivateFutexWaiter();
        var clock = Stopwatch.StartNew();

        ChildExit? exit = child.Wait(Bound);

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed}");
        Assert.True(exit is { Deadlocked: true }, exit?.ToString());
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public async Task WaitAsync_reports_the_deadlock()
    {
        using Child child = ForkPrivateFutexWaiter();
        var clock = Stopwatch.StartNew();

        ChildExit exit = await child.WaitAsync().WaitAsync(Bound);

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed}");
        Assert.True(exit.Deadlocked);
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public async Task WaitAll_and_WaitAllAsync_report_the_deadlocked_child_and_the_others_exit_normally()
    {
        foreach (bool asynchronous in new[] { false, true })
        {
            using var held = new HeldLock();
            using Children children = Children.Fork(3, i =>
            {
                if (i == 1)
                {
                    held.Take();
                }
                return i + 10;
            });

            var exits = asynchronous
                ? await children.WaitAllAsync().WaitAsync(Bound)
                : children.WaitAll(Bound).Select(exit => exit ?? throw new TimeoutException("WaitAll did not return")).ToArray();

            Assert.Equal([10, 12], new[] { exits[0].ExitCode!.Value, exits[2].ExitCode!.Value });
            Assert.True(exits[1].Deadlocked, exits[1].ToString());
            Assert.All(children.Pids, pid => Assert.False(Native.Exists(pid)));
        }
    }

    [Fact]
    public void Dispose_does_not_wait_out_the_grace_period_of_a_deadlocked_child_that_ignores_SIGTERM()
    {
        using var held = new HeldLock();
        Native.Signal(-1, 0); // binds signal() in the parent
        var child = Child.Fork(
            () =>
            {
                Native.Signal(Native.SIGTERM, Native.SIG_IGN);
                held.Take();
                return 0;
            },
            LongGrace);
        var clock = Stopwatch.StartNew();

        Bounded(() =>
        {
            child.Dispose();
            return child.Exit;
        });

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed} of a 30 s grace period");
        Assert.True(child.Exit!.Deadlocked);
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public void A_child_that_sleeps_is_not_deadlocked()
    {
        using Child child = Child.Fork(() =>
        {
            Futex.Sleep(TimeSpan.FromSeconds(1.5));
            return 3;
        });

        ChildExit exit = child.Wait(Bound) ?? throw new TimeoutException("child still running");

        Assert.Equal(3, exit.ExitCode);
        Assert.False(exit.Deadlocked);
    }

    [Fact]
    public unsafe void A_child_in_timed_private_futex_waits_is_not_deadlocked()
    {
        using Child child = Child.Fork(() =>
        {
            int word = 0;
            for (int i = 0; i < 30; i++)
            {
                Futex.WaitPrivate(&word, 0, TimeSpan.FromMilliseconds(50));
            }
            return 4;
        });

        ChildExit exit = child.Wait(Bound) ?? throw new TimeoutException("child still running");

        Assert.Equal(4, exit.ExitCode);
        Assert.False(exit.Deadlocked);
    }

    [Fact]
    public unsafe void A_child_waiting_on_a_shared_futex_the_parent_wakes_later_is_not_deadlocked()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        int* word = (int*)region.DangerousGetAddress();
        using Child child = Child.Fork(() =>
        {
            Volatile.Write(ref word[1], 1);
            while (Volatile.Read(ref *word) == 0)
            {
                Futex.WaitSharedForever(word, 0);
            }
            return 5;
        });
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref word[1]) == 1, Bound));

        Assert.Null(child.Wait(TimeSpan.FromSeconds(1.5))); // a second and a half of untimed shared waiting: left alone
        Volatile.Write(ref *word, 1);
        Futex.WakeShared(word);
        ChildExit exit = child.Wait(Bound) ?? throw new TimeoutException("child still running");

        Assert.Equal(5, exit.ExitCode);
        Assert.False(exit.Deadlocked);
    }

    [Fact]
    public unsafe void A_child_with_a_second_thread_is_not_deadlocked_even_in_an_untimed_private_wait()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        int* ready = (int*)region.DangerousGetAddress();
        using Child child = Child.Fork(() =>
        {
            Futex.StartPausingThread();
            Volatile.Write(ref *ready, 1);
            int word = 0;
            Futex.WaitPrivateForever(&word, 0); // another thread exists: it could wake this one
            return 6;
        });
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref *ready) == 1, Bound));

        Assert.Null(child.Wait(TimeSpan.FromSeconds(1.5)));
        Assert.True(Native.IsAlive(child.Pid));
    }

    [Fact]
    public void The_runtime_lock_probe_compiles_in_the_child_before_the_body_and_ProbeRuntimeLocks_false_skips_it()
    {
        // Each body stores how many methods its thread (the child's copy of the fork thread) has compiled.
        using var region = SharedRegion.CreateAnonymous(4096);
        Func<int> body = () =>
        {
            region.Write(0, System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true));
            return 0;
        };
        var plain = new ForkOptions { ProbeRuntimeLocks = false };
        long Count(ForkOptions options)
        {
            using Child child = Child.Fork(body, options);
            Assert.Equal(0, child.WaitOrFail().ExitCode);
            return region.Read<long>(0);
        }

        Count(plain);
        long probed = Count(ForkOptions.Default);
        long without = Count(plain); // measured last: compilations on the parent's fork thread in between only raise it

        Assert.True(probed >= without + 3, $"with the probe the child had compiled {probed} methods, without it {without}");
    }

    /// <summary>Runs a blocking wait on another thread, so that a wait that never returns fails the test instead of hanging it.</summary>
    private static T Bounded<T>(Func<T> wait)
    {
        Task<T> waiting = Task.Run(wait);
        return waiting.Wait(Bound) ? waiting.Result : throw new TimeoutException($"the wait did not return within {Bound.TotalSeconds} s");
    }

    private static unsafe Child ForkPrivateFutexWaiter() => Child.Fork(() =>
    {
        int word = 0;
        Futex.WaitPrivateForever(&word, 0);
        return 0;
    });
}
