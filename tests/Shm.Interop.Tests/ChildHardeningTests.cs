using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Issue 9, children: each test failed before its fix.</summary>
public class ChildHardeningTests
{
    private sealed class PoisonedMessage : Exception
    {
        public override string Message => throw new InvalidOperationException("the message itself throws");
    }

    [Fact]
    public void A_body_whose_exception_message_throws_still_ends_the_child_with_exit_70()
    {
        using Child child = Child.Fork(() => throw new PoisonedMessage());

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(Child.UnhandledExceptionExitCode, exit.ExitCode);
        Assert.False(Native.Exists(child.Pid));
    }

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
    public async Task Waiting_asynchronously_for_200_sleeping_children_costs_no_thread_per_child_and_little_CPU()
    {
        using Children children = Children.Fork(200, _ =>
        {
            Futex.Sleep(TimeSpan.FromSeconds(3));
            return 0;
        });
        int threadsBefore = ProcStatus.Threads();
        TimeSpan cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();

        Task<System.Collections.Generic.IReadOnlyList<ChildExit>> all = children.WaitAllAsync();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        int threadsWhileWaiting = ProcStatus.Threads();
        var exits = await all.WaitAsync(Waits.Bound);

        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        Assert.All(exits, exit => Assert.Equal(0, exit.ExitCode));
        Assert.True(threadsWhileWaiting - threadsBefore < 10, $"{threadsBefore} threads before, {threadsWhileWaiting} while 200 children were awaited");
        Assert.True(cpu < wall.Elapsed * 0.25, $"{cpu.TotalMilliseconds:0} ms of CPU in {wall.Elapsed.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task WaitAsync_with_no_deadline_is_cancelled_promptly_and_leaves_the_child_running()
    {
        using var cancel = new CancellationTokenSource();
        using Child child = Child.Fork(() =>
        {
            Futex.Sleep(TimeSpan.FromSeconds(60));
            return 0;
        });
        Task<ChildExit> waiting = child.WaitAsync(cancel.Token);
        var clock = Stopwatch.StartNew();

        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Waits.Bound));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
        Assert.True(Native.IsAlive(child.Pid));
    }

    [Fact]
    public void When_no_descriptor_is_left_for_the_pidfd_fork_fails_with_EMFILE_and_the_child_is_reaped()
    {
        ChildExit exit = Worker.RunWith("SHM_TEST", "emfile", "emfile");

        Assert.Equal(0, exit.ExitCode);
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

    [Fact]
    public void A_body_that_returns_256_fails_instead_of_reading_as_success()
    {
        using var stderr = SharedRegion.CreateMemfd("child-stderr", 4096);
        int fd = (int)stderr.Descriptor!.DangerousGetHandle();
        Native.Dup2(0, 0);
        using Child child = Child.Fork(() =>
        {
            Native.Dup2(fd, 2);
            return 256;
        });

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(Child.UnhandledExceptionExitCode, exit.ExitCode);
        Assert.Contains("returned 256", Encoding.UTF8.GetString(stderr.AsReadOnlySpan()), StringComparison.Ordinal);
    }

    [Fact]
    public void A_spawned_program_keeps_the_signals_this_process_ignores_ignored_as_exec_would()
    {
        const int SIGHUP = 1;
        string report = Path.Combine(Path.GetTempPath(), $"shm-sigign-{Guid.NewGuid():N}");
        nint previous = Native.Signal(SIGHUP, Native.SIG_IGN); // as under nohup
        try
        {
            using Child shell = Child.Spawn("/bin/sh", ["-c", $"grep SigIgn /proc/self/status > {report}"]);
            Assert.True(shell.WaitOrFail().Succeeded);
        }
        finally
        {
            Native.Signal(SIGHUP, previous);
        }
        ulong ignored = Convert.ToUInt64(File.ReadAllText(report).Split('\t')[1].Trim(), 16);
        File.Delete(report);

        Assert.NotEqual(0UL, ignored & (1UL << (SIGHUP - 1)));
    }

}
