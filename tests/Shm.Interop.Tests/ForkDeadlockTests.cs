using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A forked child whose only thread waits for ever on a private futex, with no handler of its own for
/// a signal, can never continue unless signalled. Every wait must see it: under
/// <see cref="ChildDeadlockPolicy.Kill"/> kill and reap it, and say so; under
/// <see cref="ChildDeadlockPolicy.Report"/> (the default) leave it running and refuse to wait for ever;
/// and never mistake a child that merely waits.
/// </summary>
public class ForkDeadlockTests
{
    /// <summary>Detection takes 250 to 400 ms; anything under this bound is "about a second".</summary>
    private static readonly TimeSpan Detected = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static readonly ForkOptions Kill = new() { DeadlockPolicy = ChildDeadlockPolicy.Kill };

    private static readonly ForkOptions LongGrace = new() { TerminateGracePeriod = TimeSpan.FromSeconds(30) };

    private static readonly ForkOptions LongGraceKill = new() { TerminateGracePeriod = TimeSpan.FromSeconds(30), DeadlockPolicy = ChildDeadlockPolicy.Kill };

    [Fact]
    public void Wait_kills_reaps_and_reports_a_child_deadlocked_on_a_lock_another_thread_held_at_the_fork()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(
            () =>
            {
                held.Take();
                return 0;
            },
            Kill);
        var clock = Stopwatch.StartNew();

        ChildExit exit = Bounded(() => child.Wait());

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
        using Child child = ForkPrivateFutexWaiter(Kill);
        var clock = Stopwatch.StartNew();

        child.TryWait(out ChildExit? exit, Bound);

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed}");
        Assert.True(exit is { Deadlocked: true }, exit?.ToString());
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public async Task WaitAsync_reports_the_deadlock()
    {
        using Child child = ForkPrivateFutexWaiter(Kill);
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
            using Children children = Children.Fork(
                3,
                i =>
                {
                    if (i == 1)
                    {
                        held.Take();
                    }
                    return i + 10;
                },
                Kill);

            var exits = asynchronous
                ? await children.WaitAllAsync().WaitAsync(Bound)
                : [.. children.WaitAllOrFail(Bound)];

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
            LongGraceKill);
        // Fork returns once the body started, not once it ignored SIGTERM: a Dispose before that ends it by the signal.
        Assert.True(SpinWait.SpinUntil(() => Native.Ignores(child.Pid, Native.SIGTERM), Bound), $"the child never ignored SIGTERM: {Native.Describe(child.Pid)}");
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
    public void Under_Report_Dispose_still_kills_at_once_a_stuck_child_that_ignores_SIGTERM()
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
        Assert.True(SpinWait.SpinUntil(() => Native.Ignores(child.Pid, Native.SIGTERM), Bound), $"the child never ignored SIGTERM: {Native.Describe(child.Pid)}");
        var clock = Stopwatch.StartNew();

        Bounded(() =>
        {
            child.Dispose();
            return child.Exit;
        });

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed} of a 30 s grace period");
        Assert.Equal(Native.SIGKILL, child.Exit!.Signal);
        Assert.False(child.Exit.Deadlocked, "killed because it was disposed, not found deadlocked");
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public void Under_Report_an_untimed_Wait_throws_the_suspicion_within_seconds_and_leaves_the_child_running()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(() =>
        {
            held.Take();
            return 0;
        });
        var clock = Stopwatch.StartNew();

        Task<ChildExit> waiting = Task.Run(() => child.Wait());
        var suspected = Assert.Throws<AggregateException>(() => waiting.Wait(Bound)).InnerException as ChildDeadlockSuspectedException;

        Assert.True(clock.Elapsed < Detected, $"took {clock.Elapsed}");
        Assert.NotNull(suspected);
        Assert.Equal((child.Pid, 0, 1), (suspected.Pid, suspected.Index, suspected.Threads));
        Assert.NotEqual(0UL, suspected.FutexAddress);
        Assert.NotEqual(0, suspected.FutexOperation & 128); // FUTEX_PRIVATE_FLAG
        Assert.True(suspected.SuspectedFor >= TimeSpan.FromMilliseconds(250), suspected.SuspectedFor.ToString());
        Assert.Contains($"pid {child.Pid}", suspected.Message, StringComparison.Ordinal);
        Assert.Contains("left running", suspected.Message, StringComparison.Ordinal);
        Assert.True(Native.IsAlive(child.Pid), Native.Describe(child.Pid));
        Assert.Null(child.Exit);
        Assert.True(child.IsDeadlockSuspected);
    }

    [Fact]
    public void Under_Report_a_timed_Wait_returns_null_at_its_bound_and_the_child_lives_on()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(() =>
        {
            held.Take();
            return 0;
        });
        var clock = Stopwatch.StartNew();

        child.TryWait(out ChildExit? exit, TimeSpan.FromSeconds(1.5));

        Assert.Null(exit);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"returned after {clock.Elapsed}");
        Assert.True(Native.IsAlive(child.Pid), Native.Describe(child.Pid));
        Assert.True(child.IsDeadlockSuspected, "the wait saw it; the property reports it");
    }

    [Fact]
    public async Task Under_Report_WaitAsync_without_a_token_faults_and_with_one_waits_until_cancelled()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(() =>
        {
            held.Take();
            return 0;
        });
        using var cancel = new CancellationTokenSource();
        Task<ChildExit> bounded = child.WaitAsync(cancel.Token);

        var suspected = await Assert.ThrowsAsync<ChildDeadlockSuspectedException>(() => child.WaitAsync().WaitAsync(Bound));

        Assert.Equal(child.Pid, suspected.Pid);
        Assert.False(bounded.IsCompleted, "a wait the caller can cancel keeps waiting");
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => bounded.WaitAsync(Bound));
        Assert.True(Native.IsAlive(child.Pid), Native.Describe(child.Pid));
    }

    [Fact]
    public async Task Under_Report_WaitAll_and_WaitAllAsync_reap_the_others_then_throw_for_the_stuck_one()
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

            ChildDeadlockSuspectedException suspected = asynchronous
                ? await Assert.ThrowsAsync<ChildDeadlockSuspectedException>(() => children.WaitAllAsync().WaitAsync(Bound))
                : Assert.IsType<ChildDeadlockSuspectedException>(Assert.Throws<AggregateException>(() => Task.Run(() => children.WaitAll()).Wait(Bound)).InnerException);

            Assert.Equal((1, children[1].Pid), (suspected.Index, suspected.Pid));
            children.TryWaitAll(out IReadOnlyList<ChildExit?> exits, TimeSpan.Zero);
            Assert.Equal([10, 12], new[] { exits[0]!.ExitCode!.Value, exits[2]!.ExitCode!.Value });
            Assert.Null(exits[1]);
            Assert.True(Native.IsAlive(children[1].Pid), Native.Describe(children[1].Pid));
        }
    }

    [Fact]
    public void A_child_that_sleeps_is_not_deadlocked()
    {
        using Child child = Child.Fork(() =>
        {
            Futex.Sleep(TimeSpan.FromSeconds(1.5));
            return 3;
        });

        ChildExit exit = child.TryWait(out ChildExit? ended, Bound) ? ended : throw new TimeoutException("child still running");

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

        ChildExit exit = child.TryWait(out ChildExit? ended, Bound) ? ended : throw new TimeoutException("child still running");

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

        Assert.False(child.TryWait(out _, TimeSpan.FromSeconds(1.5))); // a second and a half of untimed shared waiting: left alone
        Volatile.Write(ref *word, 1);
        Futex.WakeShared(word);
        ChildExit exit = child.TryWait(out ChildExit? ended, Bound) ? ended : throw new TimeoutException("child still running");

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

        Assert.False(child.TryWait(out _, TimeSpan.FromSeconds(1.5)));
        Assert.True(Native.IsAlive(child.Pid));
    }

    [Fact]
    public void Even_under_Kill_a_child_in_sem_wait_whose_own_SIGUSR1_handler_can_post_is_left_alone()
    {
        WakeLibrary wake = WakeLibrary.Instance;
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(
            () =>
            {
                if (wake.InstallPost() != 0)
                {
                    return 2;
                }
                ready.Write(0, 1);
                return wake.WaitPosted();
            },
            Kill);
        Assert.True(SpinWait.SpinUntil(() => ready.Read<int>(0) == 1, Bound));

        Assert.False(child.TryWait(out _, TimeSpan.FromSeconds(1.5)));
        Assert.False(child.IsDeadlockSuspected);
        child.Signal(10); // SIGUSR1: the handler posts, sem_wait returns
        ChildExit exit = child.WaitOrFail();

        Assert.Equal(0, exit.ExitCode);
        Assert.False(exit.Deadlocked);
    }

    [Fact]
    public void A_handler_for_a_signal_the_child_blocks_wakes_nothing_so_the_child_is_suspected()
    {
        WakeLibrary wake = WakeLibrary.Instance;
        using Child child = Child.Fork(() => wake.InstallPost() != 0 || wake.BlockUsr1() != 0 ? 2 : wake.WaitPosted());

        Task<ChildExit> waiting = Task.Run(() => child.Wait());

        Assert.IsType<ChildDeadlockSuspectedException>(Assert.Throws<AggregateException>(() => waiting.Wait(Bound)).InnerException);
        Assert.True(Native.IsAlive(child.Pid), Native.Describe(child.Pid));
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

    private static unsafe Child ForkPrivateFutexWaiter(ForkOptions options) => Child.Fork(
        () =>
        {
            int word = 0;
            Futex.WaitPrivateForever(&word, 0);
            return 0;
        },
        options);
}
