using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Reaping and terminating children: as pid 1, one grace period for a group, a fork that fails half-way.</summary>
public class ChildReapingTests
{
    [Fact]
    public void As_pid_1_whose_runtime_reaps_every_child_waits_learn_the_status_and_terminate_reaches_every_child()
    {
        ChildExit exit = Worker.RunAsPidOne("pid1");

        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void Children_that_ignore_SIGTERM_share_one_grace_period()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        Native.Signal(-1, 0); // binds signal() in the parent
        var children = Children.Fork(
            4,
            i =>
            {
                Native.Signal(Native.SIGTERM, Native.SIG_IGN);
                ready.Write(i * sizeof(int), 1);
                while (true)
                {
                    Thread.SpinWait(1000);
                }
            },
            new ForkOptions { TerminateGracePeriod = TimeSpan.FromSeconds(1) });
        Assert.True(SpinWait.SpinUntil(() => ready.AsSpan<int>()[..4].ToArray().All(flag => flag == 1), Waits.Bound));
        var clock = Stopwatch.StartNew();

        children.Dispose();

        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 2.5); // not 4 x 1 s
        Assert.All(children, child => Assert.Equal(Native.SIGKILL, child.Exit!.Signal));
        Assert.All(children.Pids, pid => Assert.False(Native.Exists(pid)));
    }

    [Fact]
    public void When_no_descriptor_is_left_for_the_pidfd_fork_fails_with_EMFILE_and_the_child_is_reaped()
    {
        ChildExit exit = Worker.RunWith("SHM_TEST", "emfile", "emfile");

        Assert.Equal(0, exit.ExitCode);
    }
}
