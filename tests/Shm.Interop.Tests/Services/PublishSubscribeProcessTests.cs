using System;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Publish-subscribe between real processes: forked subscribers, under block and drop-oldest, late
/// joiners with history, 64 subscribers at once, and a subscriber killed while it holds a publisher back.
/// </summary>
public sealed class PublishSubscribeProcessTests : IDisposable
{
    /// <summary>How many samples the four-subscriber load sends: 20,000 in CI; <c>SHM_PUBSUB_SAMPLES=1000000</c> for the full load.</summary>
    private static readonly long LoadSamples = long.TryParse(Environment.GetEnvironmentVariable("SHM_PUBSUB_SAMPLES"), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : 20_000;

    private readonly ServiceNames _names = new();

    /// <summary>Runs every child body once here (on a thread of this process), so that nothing compiles in a forked child.</summary>
    public PublishSubscribeProcessTests()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 4, QueueCapacity = 8, MaxPayload = 1024 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var results = SharedRegion.CreateAnonymous(64);
        using Publisher publisher = service.CreatePublisher();
        Func<int>[] bodies =
        [
            () => PubSubBodies.ReceiveAll(service, ready, 3, 0, region, 64),
            () => PubSubBodies.ReceiveAllOnMany(service, ready, 2, 3),
            () => PubSubBodies.ReceiveSlowly(service, ready, 2, 1, results),
        ];
        foreach (Func<int> body in bodies)
        {
            Task<int> running = Task.Run(body);
            Assert.True(ready.TryWait(Waits.Bound));
            for (int i = 0; i < 3; i++)
            {
                Payloads.Publish(publisher, 0, i, Payloads.LengthOf(0, i, 1024));
            }
            Assert.True(running.Wait(Waits.Bound));
            Assert.Equal(PubSubBodies.Ok, running.Result);
        }
    }

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Four_block_subscriber_processes_each_receive_every_sample_in_order_intact()
    {
        long count = LoadSamples;
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 4, MaxPayload = 1024, QueueCapacity = 64 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using Publisher publisher = service.CreatePublisher();

        using Children subscribers = Children.Fork(4, i => PubSubBodies.ReceiveAll(service, ready, count, 0, region, 64 + i));
        for (int i = 0; i < 4; i++)
        {
            Assert.True(ready.TryWait(Waits.Bound), "a subscriber did not attach");
        }
        ulong expected = Checksum.Start;
        for (long i = 0; i < count; i++)
        {
            Assert.True(publisher.TryLoan(Payloads.LengthOf(0, i, 1024), out SampleLoan loan, Waits.Bound), $"no room for sample {i} within the bound");
            Payloads.Fill(loan.Span, 0, i);
            expected = Checksum.Add(expected, loan.Span);
            loan.Publish();
        }

        Assert.All(subscribers.WaitAllOrFail(), exit => Assert.Equal(PubSubBodies.Ok, exit.ExitCode));
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(expected, region.Read<ulong>(512 + (8 * i))));
        Assert.Empty(publisher.DeadSubscribers);
    }

    [Fact]
    public void A_slow_drop_oldest_subscriber_is_told_exactly_how_many_samples_it_missed()
    {
        const long count = 20_000;
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 1, MaxPayload = 256, QueueCapacity = 8 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var results = SharedRegion.CreateAnonymous(64);
        using Publisher publisher = service.CreatePublisher();

        using Child subscriber = Child.Fork(() => PubSubBodies.ReceiveSlowly(service, ready, count - 1, 16, results));
        Assert.True(ready.TryWait(Waits.Bound), "the subscriber did not attach");
        for (long i = 0; i < count; i++)
        {
            Assert.True(publisher.TryLoan(Payloads.LengthOf(0, i, 256), out SampleLoan loan, Waits.Bound), "a drop-oldest subscriber held the publisher back");
            Payloads.Fill(loan.Span, 0, i);
            loan.Publish();
        }

        Assert.Equal(PubSubBodies.Ok, subscriber.WaitOrFail().ExitCode);
        long received = results.Read<long>(0), missed = results.Read<long>(8), missedPerSample = results.Read<long>(16);
        Assert.Equal(count, received + missed);
        Assert.Equal(missed, missedPerSample);
        Assert.True(missed > 0, "the publisher never outran the slow subscriber: the policy was not exercised");
    }

    [Fact]
    public void A_drop_oldest_subscriber_with_a_one_sample_queue_under_a_publisher_that_takes_back_all_the_time_sees_no_corruption()
    {
        const long count = 200_000;
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 1, MaxPayload = 64, QueueCapacity = 1 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var results = SharedRegion.CreateAnonymous(64);
        using Publisher publisher = service.CreatePublisher();

        using Child subscriber = Child.Fork(() => PubSubBodies.ReceiveSlowly(service, ready, count - 1, int.MaxValue, results));
        Assert.True(ready.TryWait(Waits.Bound), "the subscriber did not attach");
        for (long i = 0; i < count; i++)
        {
            Assert.True(publisher.TryLoan(32, out SampleLoan loan, Waits.Bound));
            Payloads.Fill(loan.Span, 0, i);
            loan.Publish();
        }

        Assert.Equal(PubSubBodies.Ok, subscriber.WaitOrFail().ExitCode);
        Assert.Equal(count, results.Read<long>(0) + results.Read<long>(8));
    }

    [Fact]
    public void A_late_joiner_receives_exactly_the_last_samples_each_publisher_kept_then_new_ones()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxPublishers = 2, HistoryDepth = 3, QueueCapacity = 4 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using Publisher first = service.CreatePublisher(), second = service.CreatePublisher();
        for (int i = 0; i < 10; i++)
        {
            Payloads.Publish(first, 1, i, 100 + i);
        }
        for (int i = 0; i < 2; i++)
        {
            Payloads.Publish(second, 2, i, 200 + i);
        }
        Assert.Equal(0, LateJoiner(service, ready, region)); // the joiner's path, run once here
        Assert.True(ready.TryWait(TimeSpan.Zero));

        using Child joiner = Child.Fork(() => LateJoiner(service, ready, region));
        Assert.True(ready.TryWait(Waits.Bound), "the late joiner did not take its history");
        Payloads.Publish(first, 1, 10, 110);

        Assert.Equal(0, joiner.WaitOrFail().ExitCode);
    }

    // The history: 7, 8, 9 of publisher 1 and 0, 1 of publisher 2, each publisher's in order; then nothing
    // until sample 10 of publisher 1, published once the joiner said it had its history.
    private static int LateJoiner(PublishSubscribeService service, SharedSemaphore ready, SharedRegion region)
    {
        using Subscriber subscriber = service.CreateSubscriber();
        var got = new System.Collections.Generic.List<(int, long)>();
        while (subscriber.TryReceive(out Sample sample))
        {
            using (sample)
            {
                got.Add(Payloads.IsIntact(sample.Span, BitConverter.ToInt32(sample.Span), BitConverter.ToInt64(sample.Span[8..]))
                    ? (BitConverter.ToInt32(sample.Span), BitConverter.ToInt64(sample.Span[8..])) : (-1, -1));
            }
        }
        bool history = got.Where(g => g.Item1 == 1).SequenceEqual([(1, 7L), (1, 8L), (1, 9L)]) && got.Where(g => g.Item1 == 2).SequenceEqual([(2, 0L), (2, 1L)]) && got.Count == 5;
        ready.Release();
        if (region.Read<int>(1024) == 0)
        {
            region.Write(1024, 1);
            return history ? 0 : 1; // the warm-up in the test's own process: nothing more comes
        }
        if (!subscriber.TryReceive(out Sample next, Waits.Bound))
        {
            return 2;
        }
        using (next)
        {
            return !history ? 1 : Payloads.IsIntact(next.Span, 1, 10) ? 0 : 3;
        }
    }

    [Fact]
    public void Sixty_four_subscribers_attached_at_once_each_receive_every_sample()
    {
        const long count = 300;
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 64, MaxPayload = 512, QueueCapacity = 8 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using Publisher publisher = service.CreatePublisher();

        using Children children = Children.Fork(8, _ => PubSubBodies.ReceiveAllOnMany(service, ready, 8, count));
        for (int i = 0; i < 8; i++)
        {
            Assert.True(ready.TryWait(Waits.Bound), "a child did not attach its subscribers");
        }
        Assert.Equal(64, Service.List().Single(s => s.Name == service.Name).Participants.Count(p => p.Role == ParticipantRole.Subscriber && p.IsAlive));
        for (long i = 0; i < count; i++)
        {
            Assert.True(publisher.TryLoan(Payloads.LengthOf(0, i, 512), out SampleLoan loan, Waits.Bound), $"no room for sample {i}");
            Payloads.Fill(loan.Span, 0, i);
            loan.Publish();
        }

        Assert.All(children.WaitAllOrFail(), exit => Assert.Equal(PubSubBodies.Ok, exit.ExitCode));
    }

    [Fact]
    public void A_block_subscriber_killed_with_a_full_queue_holds_the_publisher_back_no_more()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 2, QueueCapacity = 4, MaxPayload = 128 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var never = SharedEvent.Create(region, 64, EventResetMode.ManualReset);
        using Publisher publisher = service.CreatePublisher();
        using Subscriber alive = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.DropOldest });

        using Child stuck = Child.Fork(() =>
        {
            using Subscriber subscriber = service.CreateSubscriber();
            ready.Release();
            return never.TryWait(Waits.Bound) ? 1 : 2;
        });
        Assert.True(ready.TryWait(Waits.Bound));
        for (int i = 0; i < 4; i++)
        {
            Payloads.Publish(publisher, 0, i, 100);
        }
        Assert.False(publisher.TryLoan(100, out _, TimeSpan.FromMilliseconds(200)), "the block subscriber's queue is full: the publisher must wait");

        stuck.Signal(Native.SIGKILL);
        Assert.Equal(Native.SIGKILL, stuck.WaitOrFail().Signal);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(publisher.TryLoan(100, out SampleLoan loan, TimeSpan.FromSeconds(5)), "the dead subscriber still holds the publisher back");
        loan.Dispose();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
        Assert.Equal([stuck.Pid], publisher.DeadSubscribers);
        Assert.Equal(4, Enumerable.Range(0, 10).Count(_ => alive.TryReceive(out Sample s) && Dispose(s)));
    }

    private static bool Dispose(Sample sample)
    {
        sample.Dispose();
        return true;
    }
}
