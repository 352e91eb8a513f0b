using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Waiting on many sources at once: subscribers, channel readers, semaphores and children, made ready by other processes.</summary>
public sealed class WaitSetTests : IDisposable
{
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public async Task Each_kind_of_source_made_ready_by_another_process_is_the_one_returned()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 1, MaxPayload = 64 });
        using Subscriber subscriber = service.CreateSubscriber();
        using var region = SharedRegion.CreateAnonymous(1 << 20);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        using var channel = SharedChannel.Create(region, 4096, 64 * 1024, writers: 2);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter silent = channel.OpenWriter(); // the stream goes on when the forked writer ends
        using Child sleeper = Child.Fork(() => semaphore.TryWait(TimeSpan.FromSeconds(60)) ? 9 : 8); // parked on the semaphore
        var set = new WaitSet();
        Assert.Equal(0, set.Add(subscriber));
        Assert.Equal(1, set.Add(semaphore));
        Assert.Equal(2, set.Add(reader));
        Assert.Equal(3, set.Add(sleeper));
        Assert.Equal(4, set.Count);
        Assert.False(set.TryWaitAny(out int none, TimeSpan.FromMilliseconds(50)));
        Assert.Equal(-1, none);

        // A forked publisher: the subscriber is ready, and nothing was taken from it.
        using (Child publisher = Child.Fork(() =>
        {
            using Publisher p = service.CreatePublisher();
            Payloads.Publish(p, 1, 0, 32);
            return 0;
        }))
        {
            Assert.Equal(0, set.WaitAny(new CancellationTokenSource(Waits.Bound).Token));
            Assert.Equal(0, publisher.WaitOrFail().ExitCode);
        }
        Assert.True(subscriber.TryReceive(out Sample sample));
        sample.Dispose();

        // A forked writer: the channel reader is ready.
        using (Child writer = Child.Fork(() =>
        {
            using SharedChannelWriter w = channel.OpenWriter();
            return w.TryWrite("hello"u8, TimeSpan.FromSeconds(30)) ? 0 : 1;
        }))
        {
            Assert.Equal(0, writer.WaitOrFail().ExitCode);
            Assert.Equal(2, await set.WaitAnyAsync(new CancellationTokenSource(Waits.Bound).Token));
        }
        Assert.True(reader.TryRead(out ReceivedMessage message));
        message.Dispose();

        // The semaphore, released twice while the child is parked on it: the child takes one, the set the other.
        semaphore.Release(2);
        Assert.Equal(1, await set.TryWaitAnyAsync(Waits.Bound));
        Assert.Equal(9, sleeper.WaitOrFail().ExitCode);
        Assert.Equal(0, semaphore.CurrentCount);

        // The child has ended: the set says so.
        Assert.Equal(3, set.WaitAny(new CancellationTokenSource(Waits.Bound).Token));
    }

    [Fact]
    public async Task Exactly_one_semaphore_is_taken_when_another_process_releases_several_at_once()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var a = SharedSemaphore.Create(region, 0, 0);
        using var b = SharedSemaphore.Create(region, 64, 0);
        using var c = SharedSemaphore.Create(region, 128, 0);
        using var go = SharedSemaphore.Create(region, 192, 0);
        var set = new WaitSet();
        set.Add(a);
        set.Add(b);
        set.Add(c);
        for (int round = 0; round < 100; round++)
        {
            using Child releaser = Child.Fork(() =>
            {
                if (!go.TryWait(TimeSpan.FromSeconds(30)))
                {
                    return 1;
                }
                c.Release();
                b.Release();
                a.Release();
                return 0;
            });
            Task<int?> waiting = set.TryWaitAnyAsync(Waits.Bound).AsTask();
            go.Release();
            Assert.NotNull(await waiting.WaitAsync(Waits.Bound));
            Assert.Equal(0, releaser.WaitOrFail().ExitCode);
            Assert.Equal(2, a.CurrentCount + b.CurrentCount + c.CurrentCount);
            while (a.TryWait(TimeSpan.Zero) || b.TryWait(TimeSpan.Zero) || c.TryWait(TimeSpan.Zero))
            {
            }
        }
    }

    [Fact]
    public async Task Timeouts_and_cancellation_end_every_form_within_their_bound()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var semaphore = SharedSemaphore.Create(region, 0, 0);
        var set = new WaitSet();
        Assert.Throws<InvalidOperationException>(() => set.WaitAny());
        set.Add(semaphore);
        Assert.Throws<ArgumentOutOfRangeException>(() => set.TryWaitAny(out _, TimeSpan.FromSeconds(-2)));
        var clock = Stopwatch.StartNew();
        Assert.False(set.TryWaitAny(out _, TimeSpan.Zero));
        Assert.Null(await set.TryWaitAnyAsync(TimeSpan.FromMilliseconds(50)));
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => set.WaitAny(cancel.Token));
        }
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => set.WaitAnyAsync(cancel.Token).AsTask());
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"four short waits took {clock.Elapsed}");
        Assert.Equal(0, semaphore.CurrentCount);
        Assert.Equal(0, PendingWatcherWaits());
    }

    [Fact]
    public void A_hundred_thousand_waits_leave_no_registration_and_no_thread_behind()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 1, MaxPayload = 64 });
        using Subscriber subscriber = service.CreateSubscriber();
        using var region = SharedRegion.CreateAnonymous(1 << 20);
        using var idle = SharedSemaphore.Create(region, 0, 0);
        using var ready = SharedSemaphore.Create(region, 64, 0);
        using var channel = SharedChannel.Create(region, 4096, 64 * 1024);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter writer = channel.OpenWriter(); // open, silent: the stream goes on
        var set = new WaitSet();
        set.Add(subscriber);
        set.Add(idle);
        set.Add(reader);
        set.Add(ready);
        ready.Release();
        Assert.Equal(3, set.WaitAny()); // warm: the watcher's shard thread exists now
        int threads = Threads();

        for (int i = 0; i < 100_000; i++)
        {
            ready.Release();
            int index = set.WaitAny();
            if (index != 3)
            {
                Assert.Fail($"wait {i} returned source {index}");
            }
        }

        Assert.Equal(0, PendingWatcherWaits());
        Assert.InRange(Threads(), 1, threads + 64); // the thread pool may grow (tests run in parallel); a thread per wait would be 100,000
        Assert.Equal(0, ready.CurrentCount);
        Assert.Equal(0, idle.CurrentCount);
    }

    /// <summary>The futex watcher's count of pending waits (a private counter: no public view exists).</summary>
    private static int PendingWatcherWaits() =>
        (int)typeof(SharedSemaphore).Assembly.GetType("Shm.Interop.FutexWatcher", throwOnError: true)!
            .GetField("s_pending", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;

    /// <summary>This process's thread count, as the kernel counts it.</summary>
    private static int Threads() =>
        int.Parse(File.ReadLines("/proc/self/status").First(line => line.StartsWith("Threads:", StringComparison.Ordinal))["Threads:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
}
