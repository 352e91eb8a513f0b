using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

/// <summary>
/// Issue 16, item 1: healthy children that wait, without a timeout, to be ended or woken by a
/// signal. With the default options each runs 10 s unharmed (the test waits with timed waits), then
/// ends by its signal with exactly the status the kernel gives it, and an untimed wait started after
/// the signal returns that status.
/// </summary>
public sealed unsafe class SignalWaitingChildTests(ITestOutputHelper output)
{
    private const int SIGUSR1 = 10;

    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(10);

    [Fact]
    public void A_child_in_sem_wait_on_a_private_semaphore_its_SIGUSR1_handler_posts_lives_and_exits_0()
    {
        WakeLibrary wake = WakeLibrary.Instance;
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(() =>
        {
            if (wake.InstallPost() != 0)
            {
                return 2;
            }
            ready.Write(0, 1);
            return wake.WaitPosted() == 0 ? 0 : 3;
        });

        bool suspected = LivesUntilSignalled(child, ready, SIGUSR1, exit => Assert.Equal(0, exit.ExitCode));

        Assert.False(suspected, "a child with a handler of its own for SIGUSR1 can be woken: never suspected");
    }

    [Fact]
    public void A_child_in_Thread_Sleep_Infinite_waiting_for_SIGTERM_lives_and_dies_by_SIGTERM()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(() =>
        {
            ready.Write(0, 1);
            Thread.Sleep(Timeout.Infinite);
            return 1;
        });

        LivesUntilSignalled(child, ready, Native.SIGTERM, exit => Assert.Equal(Native.SIGTERM, exit.Signal));
    }

    [Fact]
    public void A_child_in_ManualResetEventSlim_Wait_waiting_for_SIGTERM_lives_and_dies_by_SIGTERM()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        using (var warm = new ManualResetEventSlim())
        {
            warm.Wait(1); // the spin and the monitor wait, compiled in the parent
        }
        var never = new ManualResetEventSlim();
        using Child child = Child.Fork(() =>
        {
            ready.Write(0, 1);
            never.Wait();
            return 1;
        });

        LivesUntilSignalled(child, ready, Native.SIGTERM, exit => Assert.Equal(Native.SIGTERM, exit.Signal));
        never.Dispose();
    }

    [Fact]
    public void A_child_in_pause_lives_and_dies_by_the_default_action_of_SIGUSR1()
    {
        var pause = (delegate* unmanaged<int>)NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "pause");
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(() =>
        {
            ready.Write(0, 1);
            pause();
            return 1;
        });

        bool suspected = LivesUntilSignalled(child, ready, SIGUSR1, exit => Assert.Equal(SIGUSR1, exit.Signal));

        Assert.False(suspected, "pause is no futex wait");
    }

    [Fact]
    public void A_child_sleeping_for_ever_with_a_SIGTERM_handler_that_exits_7_lives_and_exits_7()
    {
        WakeLibrary wake = WakeLibrary.Instance;
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(() =>
        {
            if (wake.InstallExitOnTerm() != 0)
            {
                return 2;
            }
            ready.Write(0, 1);
            Thread.Sleep(Timeout.Infinite);
            return 1;
        });

        bool suspected = LivesUntilSignalled(child, ready, Native.SIGTERM, exit => Assert.Equal(7, exit.ExitCode));

        Assert.False(suspected, "a child with a handler of its own for SIGTERM can be woken: never suspected");
    }

    /// <summary>
    /// Waits (with timed waits only) until the child has run <see cref="Lifetime"/> in its wait, checks
    /// the kernel still lists it alive, signals it, and checks how it ended through an untimed wait on
    /// another thread. Returns whether the child was ever suspected meanwhile.
    /// </summary>
    private bool LivesUntilSignalled(Child child, SharedRegion ready, int signal, Action<ChildExit> expect)
    {
        Assert.True(SpinWait.SpinUntil(() => ready.Read<int>(0) == 1, Waits.Bound), $"the child did not get to its wait: {Native.Describe(child.Pid)}");
        var clock = Stopwatch.StartNew();
        bool suspected = false;
        while (clock.Elapsed < Lifetime)
        {
            child.TryWait(out ChildExit? early, TimeSpan.FromSeconds(1));
            Assert.True(early is null, $"the child ended after {clock.Elapsed.TotalMilliseconds:0} ms, before any signal: {early}");
            suspected |= child.IsDeadlockSuspected;
        }
        Assert.True(Native.IsAlive(child.Pid), Native.Describe(child.Pid));
        output.WriteLine($"after {clock.Elapsed.TotalSeconds:0.0} s: {Native.Describe(child.Pid)}; ever suspected: {suspected}");

        child.Signal(signal);
        Task<ChildExit> untimed = Task.Run(() => child.Wait());
        Assert.True(untimed.Wait(Waits.Bound), $"the untimed wait did not return: {Native.Describe(child.Pid)}");

        ChildExit exit = untimed.Result;
        output.WriteLine($"ended: {exit}");
        expect(exit);
        Assert.False(exit.Deadlocked);
        Assert.False(Native.Exists(child.Pid), "reaped");
        return suspected;
    }
}
