using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public sealed class ChildDisposeAsyncTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromMilliseconds(800);

    [Fact]
    public async Task DisposeAsync_of_a_child_that_ignores_SIGTERM_returns_at_once_waits_the_grace_period_with_no_thread_blocked_then_kills()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        Native.Signal(-1, 0); // binds signal() in the parent, so the child does not resolve it
        var child = Child.Fork(() => IgnoreTermAndSpin(ready, 0), new ForkOptions { TerminateGracePeriod = Grace });
        WaitReady(ready, 1);
        int pid = child.Pid;
        int pollingBefore = ThreadsInPoll();

        var stopwatch = Stopwatch.StartNew();
        ValueTask pending = child.DisposeAsync();
        TimeSpan returnedAfter = stopwatch.Elapsed;

        Assert.False(pending.IsCompleted, $"DisposeAsync completed synchronously after {returnedAfter}");
        Assert.True(returnedAfter < Grace / 2, $"DisposeAsync returned after {returnedAfter}");
        Assert.True(Native.IsAlive(pid));
        // The kernel's view, through the first half of the grace period: no thread of ours entered poll for it (Dispose's way).
        int mostPolling = 0;
        while (stopwatch.Elapsed < Grace / 2)
        {
            mostPolling = Math.Max(mostPolling, ThreadsInPoll());
        }
        Assert.True(mostPolling <= pollingBefore, $"{mostPolling} threads in poll during the grace period, {pollingBefore} before");
        Assert.False(pending.IsCompleted);
        Assert.True(child.IsDisposed);

        await pending.AsTask().WaitAsync(Waits.Bound);

        Assert.True(stopwatch.Elapsed >= Grace, $"killed after {stopwatch.Elapsed}, before the grace period ended");
        Assert.Equal(Native.SIGKILL, child.Exit?.Signal);
        Assert.False(Native.Exists(pid));
        Assert.DoesNotContain(pid, Native.Children());
        await child.DisposeAsync(); // twice does nothing
        child.Dispose();
    }

    [Fact]
    public async Task DisposeAsync_of_a_group_shares_one_grace_period_and_reaps_every_child()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        Native.Signal(-1, 0);
        var children = Children.Fork(3, i => IgnoreTermAndSpin(ready, i), new ForkOptions { TerminateGracePeriod = Grace });
        WaitReady(ready, 3);
        int[] pids = [.. children.Pids];

        var stopwatch = Stopwatch.StartNew();
        ValueTask pending = children.DisposeAsync();
        Assert.False(pending.IsCompleted);
        await pending.AsTask().WaitAsync(Waits.Bound);

        Assert.InRange(stopwatch.Elapsed, Grace, Grace * 2.5); // one shared period, not three in a row
        Assert.All(children, child => Assert.Equal(Native.SIGKILL, child.Exit?.Signal));
        Assert.All(pids, pid => Assert.False(Native.Exists(pid)));
    }

    [Fact]
    public async Task DisposeAsync_of_a_child_that_obeys_SIGTERM_ends_without_waiting_the_grace_period()
    {
        using var ready = SharedRegion.CreateAnonymous(4096);
        var child = Child.Fork(
            () =>
            {
                ready.Write(0, 1);
                while (true)
                {
                    Thread.SpinWait(100);
                }
            },
            new ForkOptions { TerminateGracePeriod = TimeSpan.FromSeconds(30) });
        WaitReady(ready, 1);

        var stopwatch = Stopwatch.StartNew();
        await child.DisposeAsync().AsTask().WaitAsync(Waits.Bound);

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"took {stopwatch.Elapsed}");
        Assert.Equal(Native.SIGTERM, child.Exit?.Signal);
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public async Task DisposeAsync_of_a_child_that_ended_reaps_it_at_once()
    {
        var child = Child.Fork(() => 4);
        Assert.Equal(4, child.WaitOrFail().ExitCode); // ended and reaped

        ValueTask pending = child.DisposeAsync();

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Equal(4, child.Exit?.ExitCode);
    }

    private static int IgnoreTermAndSpin(SharedRegion ready, int index)
    {
        Native.Signal(Native.SIGTERM, Native.SIG_IGN);
        Interlocked.Increment(ref ready.As<int>(0));
        while (true)
        {
            Thread.SpinWait(100);
        }
    }

    private static void WaitReady(SharedRegion ready, int count) =>
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref ready.As<int>(0)) == count, Waits.Bound), $"{Volatile.Read(ref ready.As<int>(0))} of {count} children ready");

    /// <summary>Threads of this process inside poll/ppoll, as /proc/self/task/*/syscall shows them.</summary>
    private static int ThreadsInPoll()
    {
        int[] polls = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? [7, 271] : [73];
        int count = 0;
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                string first = File.ReadAllText(Path.Combine(task, "syscall")).Split(' ')[0];
                count += int.TryParse(first, out int number) && polls.Contains(number) ? 1 : 0;
            }
            catch (IOException)
            {
                // the thread ended meanwhile
            }
        }
        return count;
    }
}
