using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public class ForkTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public void This_test_host_is_configured_for_fork_by_the_msbuild_switch()
    {
        Assert.True(ForkSupport.IsSupported, ForkSupport.WhyNotSupported);
        Assert.DoesNotContain(ProcMaps.Read(), m => m.Path.Contains("doublemapper", StringComparison.Ordinal));
    }

    [Fact]
    public void The_child_exits_with_the_bodys_value_and_is_reaped()
    {
        using Child child = Child.Fork(() => 42);

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(42, exit.ExitCode);
        Assert.Null(exit.Signal);
        Assert.False(exit.Succeeded);
        Assert.Equal(child.Pid, exit.Pid);
        Assert.DoesNotContain(child.Pid, Native.Children());
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public void A_child_writes_an_anonymous_region_the_parent_reads()
    {
        using var region = SharedRegion.CreateAnonymous(4096);

        using Child child = Child.Fork(() =>
        {
            region.Write(8, 0xC0FFEEL);
            return 0;
        });

        Assert.True(child.WaitOrFail().Succeeded);
        Assert.Equal(0xC0FFEEL, region.Read<long>(8));
    }

    [Fact]
    public void An_unhandled_exception_prints_its_message_to_stderr_and_exits_70()
    {
        using var stderr = SharedRegion.CreateMemfd("child-stderr", 4096);
        int fd = (int)stderr.Descriptor!.DangerousGetHandle();
        Native.Dup2(0, 0); // binds dup2 in the parent, so the child does not resolve it

        using Child child = Child.Fork(() =>
        {
            Native.Dup2(fd, 2);
            throw new InvalidOperationException("boom in the child");
        });
        ChildExit exit = child.WaitOrFail();

        Assert.Equal(Child.UnhandledExceptionExitCode, exit.ExitCode);
        Assert.Equal(70, exit.ExitCode);
        string text = Encoding.UTF8.GetString(stderr.AsReadOnlySpan()).TrimEnd('\0');
        Assert.Contains("System.InvalidOperationException: boom in the child", text, StringComparison.Ordinal);
    }

    [Fact]
    public void No_ProcessExit_handler_runs_in_the_child()
    {
        using var marks = SharedRegion.CreateAnonymous(4096);
        EventHandler handler = (_, _) => marks.Write(0, 1);
        AppDomain.CurrentDomain.ProcessExit += handler;
        try
        {
            using Child child = Child.Fork(() => 0);
            Assert.True(child.WaitOrFail().Succeeded);
        }
        finally
        {
            AppDomain.CurrentDomain.ProcessExit -= handler;
        }
        Assert.Equal(0, marks.Read<int>(0));
    }

    [Fact]
    public void Regions_the_child_disposes_stay_mapped_in_the_parent()
    {
        var region = SharedRegion.CreateAnonymous(3 * Environment.SystemPageSize);
        using Child child = Child.Fork(() =>
        {
            region.Dispose();
            return region.IsDisposed ? 0 : 1;
        });

        Assert.True(child.WaitOrFail().Succeeded);
        Assert.False(region.IsDisposed);
        Assert.True(ProcMaps.At(region.DangerousGetAddress()) is { IsAnonymousShared: true });
        region.Dispose();
    }

    [Fact]
    public void SIGTERM_sent_to_a_child_ends_the_child_and_not_the_parent()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        using Child child = Child.Fork(() =>
        {
            ready.Write(0, 1);
            while (true)
            {
                Thread.SpinWait(100);
            }
        });
        Assert.True(SpinWait.SpinUntil(() => ready.Read<int>(0) == 1, Bound));

        child.Signal(Native.SIGTERM);

        ChildExit exit = child.WaitOrFail();
        Assert.Equal(Native.SIGTERM, exit.Signal);
        Assert.Null(exit.ExitCode);
        Assert.Equal("killed by SIGTERM", exit.ToString());
        Assert.True(Native.IsAlive(Native.GetPid()));
    }

    [Fact]
    public void Wait_with_a_timeout_returns_null_while_the_child_runs_then_Dispose_terminates_and_reaps_it()
    {
        var child = Child.Fork(() =>
        {
            while (true)
            {
                Thread.SpinWait(100);
            }
        });
        int pid = child.Pid;

        Assert.False(child.TryWait(out _, TimeSpan.FromMilliseconds(20)));
        Assert.True(Native.IsAlive(pid));
        child.Dispose();
        child.Dispose();

        Assert.False(Native.Exists(pid));
        Assert.DoesNotContain(pid, Native.Children());
        Assert.Throws<ObjectDisposedException>(() => child.WaitOrFail());
    }

    [Fact]
    public void A_child_that_ignores_SIGTERM_is_killed_after_the_grace_period()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        Native.Signal(-1, 0); // binds signal() in the parent (EINVAL, no effect), so the child does not resolve it
        var child = Child.Fork(
            () =>
            {
                Native.Signal(Native.SIGTERM, Native.SIG_IGN);
                ready.Write(0, 1);
                while (true)
                {
                    Thread.SpinWait(100);
                }
            },
            new ForkOptions { TerminateGracePeriod = TimeSpan.FromMilliseconds(200) });
        Assert.True(SpinWait.SpinUntil(() => ready.Read<int>(0) == 1, Bound));
        int pid = child.Pid;

        child.Dispose();

        Assert.False(Native.Exists(pid));
        Assert.Equal(Native.SIGKILL, child.Exit?.Signal);
    }

    [Fact]
    public void A_forgotten_child_is_killed_and_reaped_when_collected()
    {
        int pid = ForkAndForget();
        Assert.True(Native.IsAlive(pid));

        GC.Collect();
        GC.WaitForPendingFinalizers();

        Assert.False(Native.Exists(pid));
        Assert.DoesNotContain(pid, Native.Children());
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ForkAndForget() => Child.Fork(() =>
    {
        while (true)
        {
            Thread.SpinWait(100);
        }
    }).Pid;

    [Fact]
    public async Task WaitAsync_completes_when_the_child_exits()
    {
        using Child child = Child.Fork(() => 7);

        ChildExit exit = await child.WaitAsync().WaitAsync(Waits.Bound);

        Assert.Equal(7, exit.ExitCode);
    }

    [Fact]
    public void Children_run_the_body_with_their_index_and_WaitAll_reaps_them()
    {
        using var region = SharedRegion.CreateAnonymous(4096);

        using Children children = Children.Fork(5, i =>
        {
            region.AsSpan<int>()[i] = (i + 1) * 100;
            return i;
        });
        var exits = children.WaitAllOrFail();

        Assert.Equal(5, children.Pids.Distinct().Count());
        Assert.Equal([0, 1, 2, 3, 4], exits.Select(e => e.ExitCode!.Value));
        Assert.Equal([100, 200, 300, 400, 500], region.AsSpan<int>()[..5].ToArray());
        Assert.All(children.Pids, pid => Assert.False(Native.Exists(pid)));
    }

    [Fact]
    public void Disposing_children_terminates_and_reaps_all_that_run()
    {
        var children = Children.Fork(3, _ =>
        {
            while (true)
            {
                Thread.SpinWait(100);
            }
        });
        int[] pids = [.. children.Pids];
        Assert.False(children.TryWaitAll(out IReadOnlyList<ChildExit?> exits, TimeSpan.FromMilliseconds(20)));
        Assert.All(exits, Assert.Null);

        children.Dispose();

        Assert.All(pids, pid => Assert.False(Native.Exists(pid)));
        Assert.All(children, child => Assert.Equal(Native.SIGTERM, child.Exit!.Signal));
    }

    [Fact]
    public void Bad_arguments_are_refused_before_any_fork()
    {
        int before = Native.Children().Length;

        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => Children.Fork(0, i => 0)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => Children.Fork(-1, i => 0));
        Assert.Throws<ArgumentNullException>(() => Child.Fork(null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => Child.Fork(() => 0, new ForkOptions { StartAttempts = 0 }));

        Assert.Equal(before, Native.Children().Length);
    }

    [Theory]
    [InlineData("DOTNET_TieredCompilation", "1")]
    [InlineData("DOTNET_EnableWriteXorExecute", "1")]
    public void Fork_refuses_a_runtime_not_configured_for_it_and_names_the_fix(string variable, string value)
    {
        ChildExit exit = Worker.RunWith(variable, value, "fork-refused");

        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void If_fork_k_fails_the_children_already_started_are_killed_and_reaped_first()
    {
        ChildExit exit = Worker.RunWith("SHM_TEST", "nproc", "nproc", "3");

        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void A_forked_child_dies_with_its_parent()
    {
        using var region = SharedRegion.CreateMemfd("orphan", 4096);
        using Child worker = Worker.Spawn(["orphan"], region);

        Assert.Equal(Native.SIGKILL, worker.WaitOrFail().Signal);
        int grandchild = region.Read<int>(0);
        Assert.NotEqual(0, grandchild);
        Assert.True(Native.WaitGone(grandchild, Bound), $"grandchild {grandchild} outlived its parent");
    }

    [Fact]
    public void A_forked_child_that_forks_is_refused_with_a_clear_exception()
    {
        using Child child = Child.Fork(() =>
        {
            try
            {
                Child.Fork(() => 0).Dispose();
                return 1;
            }
            catch (InvalidOperationException refused) when (refused.Message.Contains("forked child", StringComparison.Ordinal))
            {
                return 0;
            }
        });

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(0, exit.ExitCode);
        Assert.False(exit.Deadlocked);
    }
}
