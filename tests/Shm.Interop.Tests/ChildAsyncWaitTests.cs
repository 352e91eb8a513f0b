using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Waiting for children without holding a thread: cost and cancellation.</summary>
public class ChildAsyncWaitTests
{
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
}
