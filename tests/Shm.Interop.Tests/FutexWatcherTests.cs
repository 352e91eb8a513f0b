using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

/// <summary>
/// The process's futex watcher, which serves every asynchronous wait: it never lets an exception out
/// of its threads, lets go of memory whose region was disposed, never spins on a word a peer keeps
/// changing, honours every timeout, and stays cheap with ten thousand waits pending.
/// </summary>
public sealed class FutexWatcherTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>Before the fix, the dead reader's exception escaped the watcher thread and the runtime aborted the writer (SIGABRT, exit 134).</summary>
    [Fact]
    public void A_writer_awaiting_room_whose_reader_process_is_killed_faults_with_ChannelClosedException_and_exits_normally()
    {
        const int Capacity = 16 * 1024;
        long control = SharedChannel.RequiredLength(Capacity);
        using var region = SharedRegion.CreateMemfd("dead-reader", control + 64);
        using var channel = SharedChannel.Create(region, 0, Capacity);
        using Child reader = Child.Fork(() =>
        {
            using SharedChannelReader attached = channel.OpenReader();
            region.Write(control + 8, 1);
            while (true)
            {
                Thread.SpinWait(1000); // attached, reading nothing
            }
        });
        Assert.True(SpinWait.SpinUntil(() => region.Read<int>(control + 8) == 1, Bound), "the reader never attached");

        using Child writer = Worker.Spawn(["await-dead-reader", control.ToString(System.Globalization.CultureInfo.InvariantCulture)], region);
        Assert.True(SpinWait.SpinUntil(() => region.Read<int>(control) != 0 || writer.Exit is not null, Bound), "the writer never started its asynchronous write");
        Assert.Equal(1, region.Read<int>(control)); // 1: pending, so the watcher, not the caller, finds the reader dead
        reader.Signal(Native.SIGKILL);
        Assert.Equal(Native.SIGKILL, reader.WaitOrFail().Signal);
        ChildExit exit = writer.WaitOrFail();

        Assert.True(exit.Signal is null, $"the writer died by signal {exit.Signal}: an exception escaped the watcher thread");
        Assert.Equal(0, exit.ExitCode);
    }

    /// <summary>Before the fix, the wait stayed pending (and kept the mapping) until the primitive itself was disposed.</summary>
    [Fact]
    public async Task Disposing_the_region_ends_a_pending_asynchronous_wait_with_ObjectDisposedException()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        using var other = SharedSemaphore.Create(region, 64, 0);
        Task<bool> pending = semaphore.TryWaitAsync(Bound);
        Task<bool> alsoPending = other.TryWaitAsync(Bound);

        region.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(TimeSpan.FromSeconds(5)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => alsoPending.WaitAsync(TimeSpan.FromSeconds(5)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => semaphore.TryWaitAsync(Bound)); // a new one is refused at once
        Assert.False(semaphore.TryWait(TimeSpan.Zero)); // the semaphore itself still holds the memory until it is disposed
        semaphore.Dispose();
        other.Dispose();
        Assert.Null(ProcMaps.At(address));
    }

    /// <summary>Before the fix, the watcher spun on the negative count for ever (futex_waitv answered EAGAIN) and the wait never ended.</summary>
    [Fact]
    public async Task A_peer_that_makes_a_semaphore_count_negative_faults_that_wait_and_the_watcher_goes_on_without_spinning()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var corrupted = SharedSemaphore.Create(region, 0, 0);
        using var healthy = SharedSemaphore.Create(region, 64, 0);
        Task<bool> doomed = corrupted.TryWaitAsync(Bound);
        Task<bool> fine = healthy.TryWaitAsync(Bound);

        using Child peer = Child.Fork(() => Store(region, 8, -1));
        Assert.Equal(0, peer.WaitOrFail().ExitCode);

        var corruption = await Assert.ThrowsAsync<SharedMemoryCorruptedException>(() => doomed.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(8, corruption.Offset);
        Assert.Equal(-1, corruption.Value);
        TimeSpan cpu = CpuOver(TimeSpan.FromSeconds(1));
        Assert.True(cpu < TimeSpan.FromMilliseconds(150), $"{cpu.TotalMilliseconds} ms of CPU in 1 s: something spins");
        healthy.Release();
        Assert.True(await fine.WaitAsync(Bound));
    }

    /// <summary>
    /// A channel's reader sequence bumped (and woken) without a message: the waiting reader must sleep
    /// on the new value, not spin on the old one. Before the fix the watcher spun until a message came.
    /// </summary>
    [Fact]
    public async Task A_peer_that_bumps_a_sequence_without_writing_does_not_make_the_watcher_spin()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter writer = channel.OpenWriter();
        ValueTask<bool> waiting = reader.WaitToReadAsync();

        using Child peer = Child.Fork(() => Bump(region, 64, times: 1000));
        Assert.Equal(0, peer.WaitOrFail().ExitCode);
        TimeSpan cpu = CpuOver(TimeSpan.FromSeconds(1));
        bool stillWaiting = !waiting.IsCompleted;
        writer.Write([1, 2, 3]); // ends the wait before anything is disposed, whatever the outcome
        bool woke = await waiting.AsTask().WaitAsync(Bound);

        output.WriteLine($"{cpu.TotalMilliseconds} ms of CPU in the second after the bumps");
        Assert.True(cpu < TimeSpan.FromMilliseconds(150), $"{cpu.TotalMilliseconds} ms of CPU in 1 s: the watcher spins on the bumped sequence");
        Assert.True(stillWaiting, "no message was written, yet the wait ended");
        Assert.True(woke);
    }

    [Fact]
    public void An_asynchronous_wait_in_a_forked_child_fails_at_once_instead_of_waiting_for_a_watcher_that_is_not_there()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        using Child child = Child.Fork(() =>
        {
            Task<bool> waiting = semaphore.TryWaitAsync(TimeSpan.FromSeconds(5));
            return waiting.IsFaulted && waiting.Exception!.InnerException is NotSupportedException ? 0 : 1;
        });

        Assert.Equal(0, child.WaitOrFail().ExitCode);
    }

    /// <summary>
    /// Ten thousand semaphores, each with a pending WaitAsync: the process must stay idle, and a
    /// release must reach its waiter quickly. Before the fix: about 24% of a core, and 17 ms a wake.
    /// </summary>
    [Fact]
    public void Ten_thousand_idle_asynchronous_waits_cost_almost_no_CPU_and_a_release_wakes_its_waiter_quickly()
    {
        const int Waits = 10_000;
        using var region = SharedRegion.CreateAnonymous((long)Waits * SharedPrimitive.Size);
        SharedSemaphore[] semaphores = [.. Enumerable.Range(0, Waits).Select(i => SharedSemaphore.Create(region, (long)i * SharedPrimitive.Size, 0))];
        try
        {
            int threadsBefore = ProcStatus.Threads();
            Task<bool>[] pending = [.. semaphores.Select(semaphore => semaphore.TryWaitAsync(TimeSpan.FromMinutes(5)))];
            int threadsDuring = ProcStatus.Threads();
            CpuOver(TimeSpan.FromMilliseconds(200)); // the shards take their words in

            TimeSpan cpu = CpuOver(TimeSpan.FromSeconds(2));
            double share = cpu.TotalSeconds / 2;

#pragma warning disable xUnit1031 // blocking on purpose: the wake-up is measured up to the waiting thread, without a thread-pool hop
            var latencies = new double[100];
            for (int i = 0; i < latencies.Length; i++)
            {
                int index = (i * 97) % Waits;
                long start = Stopwatch.GetTimestamp();
                semaphores[index].Release();
                Assert.True(pending[index].Wait(Bound) && pending[index].Result, $"wait {index} did not wake");
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
#pragma warning restore xUnit1031
            Array.Sort(latencies);
            output.WriteLine($"{Waits} pending waits: {share:P2} of a core over 2 s idle ({cpu.TotalMilliseconds:0} ms CPU); " +
                $"threads {threadsBefore} -> {threadsDuring}; wake-up p50 {latencies[50]:0} us, p90 {latencies[90]:0} us, max {latencies[^1]:0} us");

            Assert.True(share < 0.05, $"{share:P2} of a core while {Waits} waits were idle");
            Assert.True(latencies[50] < 50_000, $"wake-up p50 {latencies[50]:0} us");
            Assert.Equal(latencies.Length, pending.Count(task => task.IsCompleted)); // the others still wait
        }
        finally
        {
            foreach (SharedSemaphore semaphore in semaphores)
            {
                semaphore.Dispose(); // ends the rest with ObjectDisposedException
            }
        }
    }

    /// <summary>The fallback for kernels without futex_waitv, forced by its switch in a process of its own.</summary>
    [Fact]
    public void Under_the_polling_fallback_waits_time_out_on_time_wake_on_release_and_cancel()
    {
        using Child worker = Worker.Spawn(["watcher-polling"]);

        Assert.Equal(0, worker.WaitOrFail().ExitCode);
    }

    /// <summary>
    /// Many waits at once on a few words, with random timeouts, cancellations and releases (seeded):
    /// every count released is taken by exactly one wait or still in its semaphore, no wait reports
    /// success without a count, and none ends before its timeout or long after it.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Waits_with_random_timeouts_cancellations_and_releases_each_end_as_they_should(int seed)
    {
        const int Semaphores = 40, Waits = 600;
        var random = new Random(seed);
        using var region = SharedRegion.CreateAnonymous(Semaphores * SharedPrimitive.Size);
        SharedSemaphore[] semaphores = [.. Enumerable.Range(0, Semaphores).Select(i => SharedSemaphore.Create(region, i * SharedPrimitive.Size, 0))];
        var cancels = new List<CancellationTokenSource>();
        try
        {
            var waits = new List<(int Semaphore, TimeSpan Timeout, long Start, Task<bool> Task, Task<long> Ended)>();
            for (int i = 0; i < Waits; i++)
            {
                int which = random.Next(Semaphores);
                TimeSpan timeout = TimeSpan.FromMilliseconds(random.Next(20, 400));
                CancellationToken token = CancellationToken.None;
                if (random.Next(5) == 0)
                {
                    var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(random.Next(1, 300)));
                    cancels.Add(cancel);
                    token = cancel.Token;
                }
                long start = Stopwatch.GetTimestamp();
                Task<bool> task = semaphores[which].TryWaitAsync(timeout, token);
                // Noted when the continuation runs, a little after the end: a lower bound on "not before its timeout".
                Task<long> ended = task.ContinueWith(_ => Stopwatch.GetTimestamp(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                waits.Add((which, timeout, start, task, ended));
            }
            var released = new int[Semaphores];
            for (int i = 0; i < Waits / 3; i++)
            {
                int which = random.Next(Semaphores);
                semaphores[which].Release();
                released[which]++;
            }
            long[] endedAt = await Task.WhenAll(waits.Select(wait => wait.Ended)).WaitAsync(Bound);

            for (int s = 0; s < Semaphores; s++)
            {
                int took = waits.Count(wait => wait.Semaphore == s && wait.Task is { IsCompletedSuccessfully: true, Result: true });
                Assert.Equal(released[s], took + semaphores[s].CurrentCount);
            }
            for (int i = 0; i < waits.Count; i++)
            {
                (_, TimeSpan timeout, long start, Task<bool> task, _) = waits[i];
                if (task.IsCompletedSuccessfully && !await task)
                {
                    TimeSpan took = Stopwatch.GetElapsedTime(start, endedAt[i]);
                    Assert.True(took >= timeout, $"wait {i} timed out after {took.TotalMilliseconds:0} ms, before its {timeout.TotalMilliseconds} ms");
                    Assert.True(took < timeout + TimeSpan.FromSeconds(2), $"wait {i} timed out after {took.TotalMilliseconds:0} ms, long after its {timeout.TotalMilliseconds} ms");
                }
                else if (!task.IsCompletedSuccessfully)
                {
                    Assert.True(task.IsCanceled, $"wait {i} ended {task.Status}: {task.Exception}");
                }
            }
        }
        finally
        {
            cancels.ForEach(cancel => cancel.Dispose());
            Array.ForEach(semaphores, semaphore => semaphore.Dispose());
        }
    }

    /// <summary>A peer's write: stores <paramref name="value"/> in the word at <paramref name="offset"/>, and wakes its sleepers.</summary>
    private static unsafe int Store(SharedRegion region, long offset, int value)
    {
        int* word = (int*)(region.DangerousGetAddress() + (nint)offset);
        *word = value;
        Futex.WakeShared(word);
        return 0;
    }

    /// <summary>A peer's writes: adds 1 to the word at <paramref name="offset"/> and wakes its sleepers, <paramref name="times"/> times.</summary>
    private static unsafe int Bump(SharedRegion region, long offset, int times)
    {
        int* word = (int*)(region.DangerousGetAddress() + (nint)offset);
        for (int i = 0; i < times; i++)
        {
            Interlocked.Increment(ref *word);
            Futex.WakeShared(word);
        }
        return 0;
    }

    /// <summary>The CPU time this process used while the calling thread slept for <paramref name="window"/> (a measurement, not a synchronisation).</summary>
    private static TimeSpan CpuOver(TimeSpan window)
    {
        TimeSpan before = ProcStatus.CpuTime();
        Thread.Sleep(window);
        return ProcStatus.CpuTime() - before;
    }
}
