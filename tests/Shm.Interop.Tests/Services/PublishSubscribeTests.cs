using System;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>A publish-subscribe service found by name: its segment, configuration, lifetime, and samples in one process and across forked ones.</summary>
public sealed class PublishSubscribeTests : IDisposable
{
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Samples_of_every_size_reach_a_subscriber_in_order_intact_and_in_place()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = 10_000, QueueCapacity = 8 });
        using Publisher publisher = service.CreatePublisher();
        using Subscriber subscriber = service.CreateSubscriber();

        for (int round = 0; round < 50; round++)
        {
            int[] lengths = [.. Enumerable.Range(0, 8).Select(i => Payloads.LengthOf(0, (round * 8) + i, 10_000))];
            for (int i = 0; i < lengths.Length; i++)
            {
                Payloads.Publish(publisher, 0, (round * 8) + i, lengths[i]);
            }
            for (int i = 0; i < lengths.Length; i++)
            {
                Assert.True(subscriber.TryReceive(out Sample sample));
                using (sample)
                {
                    Assert.Equal((0, (long)((round * 8) + i)), Payloads.Check(sample.Span));
                    Assert.Equal((round * 8) + i + 1, sample.Sequence);
                    Assert.Equal(0, sample.Missed);
                }
            }
            Assert.False(subscriber.TryReceive(out _));
        }
    }

    [Fact]
    public unsafe void A_4_MiB_sample_is_received_at_the_address_it_was_loaned_at()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = 4 << 20, QueueCapacity = 2 });
        using Publisher publisher = service.CreatePublisher();
        using Subscriber subscriber = service.CreateSubscriber();

        SampleLoan loan = publisher.Loan(4 << 20);
        nint loaned = (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref loan.Span[0]);
        Payloads.Fill(loan.Span, 3, 7);
        loan.Publish();

        using Sample sample = subscriber.Receive();
        fixed (byte* received = sample.Span)
        {
            Assert.Equal(loaned, (nint)received);
        }
        Assert.Equal((3, 7L), Payloads.Check(sample.Span));
        Assert.Equal(0, loaned % 64);
    }

    [Fact]
    public void The_segment_is_0600_by_default_0660_on_request_and_gone_when_the_last_participant_leaves()
    {
        string privateName = _names.Unique(), sharedName = _names.Unique();
        using (var service = PublishSubscribeService.Create(privateName, new PublishSubscribeConfig()))
        using (var shared = PublishSubscribeService.Create(sharedName, new PublishSubscribeConfig { ShareWithGroup = true }))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ServiceNames.PathOf(privateName)));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(ServiceNames.PathOf(sharedName)));
            Assert.False(shared.Config.ShareWithGroup);
        }
        Assert.False(ServiceNames.Exists(privateName));
        Assert.False(ServiceNames.Exists(sharedName));
    }

    [Fact]
    public void Opening_with_another_configuration_names_the_field_the_stored_value_and_the_one_asked_for()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxSubscribers = 4 });

        var refused = Assert.Throws<InvalidOperationException>(() => PublishSubscribeService.CreateOrOpen(name, new PublishSubscribeConfig { MaxSubscribers = 5 }));

        Assert.Contains("MaxSubscribers: the service has 4, this process asked for 5", refused.Message, StringComparison.Ordinal);
        using var same = PublishSubscribeService.CreateOrOpen(name, new PublishSubscribeConfig { MaxSubscribers = 4 });
        Assert.False(same.Created);
        using var opened = PublishSubscribeService.Open(name);
        Assert.Equal(4, opened.Config.MaxSubscribers);
    }

    [Fact]
    public void Bad_names_and_configurations_are_refused_before_anything_is_made()
    {
        Assert.Throws<ArgumentException>(() => PublishSubscribeService.Create("a/b", new PublishSubscribeConfig()));
        Assert.Throws<ArgumentException>(() => PublishSubscribeService.Create("", new PublishSubscribeConfig()));
        Assert.Throws<ArgumentOutOfRangeException>(() => PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 65 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { QueueCapacity = 3 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { PoolBytesPerPublisher = 4096, MaxPayload = 4096 }));
        var missing = Assert.Throws<ShmException>(() => PublishSubscribeService.Open(_names.Unique()));
        Assert.Equal(LinuxErrno.ENOENT, missing.Errno);
        Assert.Empty(_names.Leftovers());
    }

    [Fact]
    public void The_service_outlives_its_creator_while_a_forked_subscriber_uses_it()
    {
        string name = _names.Unique();
        var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig());
        using var region = SharedRegion.CreateAnonymous(128);
        using var ready = SharedEvent.Create(region, 0, EventResetMode.AutoReset);
        using var go = SharedEvent.Create(region, 64, EventResetMode.AutoReset);
        RunOpenedElsewhere(name, ready, go, warm: true);

        using Child child = Child.Fork(() => RunOpenedElsewhere(name, ready, go, warm: false));
        Assert.True(ready.TryWait(Waits.Bound), "the child did not open the service");
        service.Dispose();
        Assert.True(ServiceNames.Exists(name), "the name went with its creator while the child still had it open");
        go.Set();

        Assert.Equal(0, child.WaitOrFail().ExitCode);
        Assert.False(ServiceNames.Exists(name), "the child was the last to leave: the name should be gone");
    }

    private static int RunOpenedElsewhere(string name, SharedEvent ready, SharedEvent go, bool warm)
    {
        using var opened = warm ? PublishSubscribeService.CreateOrOpen(name, new PublishSubscribeConfig()) : PublishSubscribeService.Open(name);
        using Subscriber subscriber = opened.CreateSubscriber();
        if (!warm)
        {
            ready.Set();
            go.TryWait(Waits.Bound);
        }
        return subscriber.TryReceive(out _) ? 1 : 0;
    }

    [Fact]
    public void Eight_processes_starting_together_make_one_service_and_all_join_it()
    {
        string name = _names.Unique();
        var config = new PublishSubscribeConfig { MaxSubscribers = 16 };
        using var region = SharedRegion.CreateAnonymous(4096);
        using var go = SharedEvent.Create(region, 0, EventResetMode.ManualReset);
        using var all = SharedEvent.Create(region, 64, EventResetMode.ManualReset);
        region.Write(128, 7); // the warm-up below is the eighth and last to join: it sets "all" for itself
        Join(name, config, region, go, all, warm: true, slot: 0);
        all.Reset();
        region.Write(128, 0);
        Assert.False(ServiceNames.Exists(name));

        using Children racers = Children.Fork(8, i => Join(name, config, region, go, all, warm: false, slot: i));
        go.Set();
        Assert.All(racers.WaitAllOrFail(), exit => Assert.Equal(0, exit.ExitCode));

        Assert.Equal(1, Enumerable.Range(0, 8).Count(i => region.Read<int>(256 + (4 * i)) == 2));
        Assert.Equal(7, Enumerable.Range(0, 8).Count(i => region.Read<int>(256 + (4 * i)) == 1));
        Assert.False(ServiceNames.Exists(name));
    }

    // Each racer records 2 if it created, 1 if it opened, and stays attached until all eight have joined.
    private static int Join(string name, PublishSubscribeConfig config, SharedRegion region, SharedEvent go, SharedEvent all, bool warm, int slot)
    {
        if (!warm && !go.TryWait(Waits.Bound))
        {
            return 3;
        }
        using var service = PublishSubscribeService.CreateOrOpen(name, config);
        using Subscriber subscriber = service.CreateSubscriber();
        region.Write(256 + (4 * slot), service.Created ? 2 : 1);
        if (Interlocked.Increment(ref region.As<int>(128)) == 8)
        {
            all.Set();
        }
        return all.TryWait(Waits.Bound) ? 0 : 4;
    }

    [Fact]
    public void A_subscriber_that_leaves_frees_its_slot_at_once_though_the_publisher_is_idle()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig { MaxSubscribers = 1 });
        using Publisher idle = service.CreatePublisher();
        Payloads.Publish(idle, 0, 0, 100);

        for (int i = 0; i < 5; i++)
        {
            using Subscriber subscriber = service.CreateSubscriber(); // the one slot, taken again and again
            Payloads.Publish(idle, 0, i + 1, 100);
            Assert.True(subscriber.TryReceive(out Sample sample));
            sample.Dispose();
        }
        using Subscriber last = service.CreateSubscriber();
        Assert.False(last.TryReceive(out _));
    }

    [Fact]
    public void A_creator_that_died_initialising_is_noticed_and_the_next_process_creates_the_service_afresh()
    {
        string name = _names.Unique();
        int dead;
        using (Child child = Child.Fork(() => 0))
        {
            dead = child.Pid;
            child.WaitOrFail();
        }
        // What a creator killed between "initialising" and "ready" leaves: its identity, the state, nothing else.
        using (var left = SharedRegion.CreateNamed(Service.SegmentPrefix + name, 64 * 1024))
        {
            left.Write(24, (2UL << 56) | ((ulong)(uint)dead << 32));
            left.Write(0, 0x54494E49); // "INIT"
            using var service = PublishSubscribeService.CreateOrOpen(name, new PublishSubscribeConfig());

            Assert.True(service.Created, "the dead creator's segment should have been removed and made again");
            Assert.Equal(0x44414544, left.Read<int>(0)); // the old segment marked abandoned ("DEAD"), its name given to a new one
        }
        Assert.False(ServiceNames.Exists(name));
    }

    [Fact]
    public void Opening_a_service_whose_creator_never_finishes_times_out_and_says_what_to_do()
    {
        string name = _names.Unique();
        using var stuck = SharedRegion.CreateNamed(Service.SegmentPrefix + name, 64 * 1024); // sized, never initialised
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var timedOut = Assert.Throws<TimeoutException>(() => PublishSubscribeService.Open(name));

        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(15));
        Assert.Contains($"shm rm {Service.SegmentPrefix}{name}", timedOut.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_publisher_that_died_is_named_to_a_subscriber_that_waits_and_its_samples_are_delivered()
    {
        using var service = PublishSubscribeService.Create(_names.Unique(), new PublishSubscribeConfig());
        using Subscriber subscriber = service.CreateSubscriber();
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedEvent.Create(region, 0, EventResetMode.AutoReset);
        using var never = SharedEvent.Create(region, 64, EventResetMode.AutoReset);
        using (Publisher warm = service.CreatePublisher())
        {
            Payloads.Publish(warm, 1, 0, 100);
        }
        subscriber.Receive().Dispose();

        using Child publisher = Child.Fork(() =>
        {
            using Publisher p = service.CreatePublisher();
            Payloads.Publish(p, 2, 0, 100);
            ready.Set();
            return never.TryWait(Waits.Bound) ? 1 : 2; // killed before that
        });
        Assert.True(ready.TryWait(Waits.Bound));
        publisher.Signal(Native.SIGKILL);
        publisher.WaitOrFail();

        Assert.True(subscriber.TryReceive(out Sample sample, Waits.Bound));
        using (sample)
        {
            Assert.Equal((2, 0L), Payloads.Check(sample.Span));
        }
        Assert.False(subscriber.TryReceive(out _, TimeSpan.FromMilliseconds(300))); // it waits, and looks at the publishers meanwhile
        Assert.Equal([publisher.Pid], subscriber.DeadPublishers);
    }

    [Fact]
    public void An_opener_that_meets_a_corrupt_retired_word_gives_its_handle_slot_back()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig());
        using var bytes = new ServiceBytes(name);
        bytes.Write(ServiceBytes.Retired, 7);

        var corrupt = Assert.Throws<SharedMemoryCorruptedException>(() => PublishSubscribeService.Open(name));

        Assert.Equal("service retired flag", corrupt.Structure);
        int mine = Enumerable.Range(0, 256).Count(i => ServiceBytes.PidOf(bytes.Read<ulong>(4096 + (16L * i))) == Environment.ProcessId);
        Assert.Equal(1, mine); // the creator's own handle; the failed opener's went back
        bytes.Write(ServiceBytes.Retired, 0);
    }

    [Fact]
    public void A_publisher_never_clears_the_history_pin_of_a_subscriber_slot_it_has_not_cleaned()
    {
        // A subscriber taking a slot pins the history only once attached; a publisher that looked at the
        // slot just before (free, attaching) must not clear that pin later, or it would reclaim a sample
        // the new subscriber is about to reference.
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxSubscribers = 2, HistoryDepth = 2 });
        using var bytes = new ServiceBytes(name);
        using Publisher publisher = service.CreatePublisher();
        long pins = bytes.PublisherSlot(0) + ServiceBytes.HistoryPins;

        bytes.Write(pins, 1UL << 1); // subscriber slot 1, still free as the publisher sees it, pins
        bytes.Write(ServiceBytes.Membership, bytes.Read<int>(ServiceBytes.Membership) + 1);
        for (int i = 0; i < 4; i++)
        {
            Payloads.Publish(publisher, 0, i, 100);
        }

        Assert.Equal(1UL << 1, bytes.Read<ulong>(pins));
        Assert.Equal(0L, bytes.Read<long>(bytes.PublisherSlot(0) + ServiceBytes.PoolTail)); // and, pinned, nothing was reclaimed
        bytes.Write(pins, 0UL);
    }

    [Fact]
    public async Task Asynchronous_receive_and_loan_wait_without_a_thread_and_end_when_disposed()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { QueueCapacity = 1 });
        using Publisher publisher = service.CreatePublisher();
        Subscriber subscriber = service.CreateSubscriber();

        ValueTask<Sample> pending = subscriber.ReceiveAsync();
        Assert.False(pending.IsCompleted);
        Payloads.Publish(publisher, 0, 0, 100);
        using (Sample sample = await pending.AsTask().WaitAsync(Waits.Bound))
        {
            Assert.Equal((0, 0L), Payloads.Check(sample.Span));
        }

        Payloads.Publish(publisher, 0, 1, 100); // the queue (1) is full: the next loan waits for the block subscriber
        ValueTask<SampleLoan> loan = publisher.LoanAsync(100);
        Assert.False(loan.IsCompleted);
        subscriber.Receive().Dispose();
        using (SampleLoan got = await loan.AsTask().WaitAsync(Waits.Bound))
        {
            Assert.Equal(100, got.Length);
        }

        ValueTask<Sample> abandoned = subscriber.ReceiveAsync();
        subscriber.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => abandoned.AsTask().WaitAsync(Waits.Bound));
    }
}
