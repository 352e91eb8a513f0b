using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A forked child inherits copies of its parent's publishers and subscribers. Disposing a copy in the
/// child (closing what it inherited) must leave the parent's slot, references and queue alone, as a
/// blackboard writer's copy and a service's handle already do.
/// </summary>
public sealed class ServiceForkedCopyTests : IDisposable
{
    private static readonly PublishSubscribeConfig OnePublisher = ServiceHostilities.Default with { MaxPublishers = 1 };
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void A_child_disposing_its_copy_of_a_publisher_leaves_the_parent_its_slot()
    {
        using var g = new GuardedService(_names.Unique(), OnePublisher);
        g.Service.CreatePublisher().Dispose(); // the code the child runs, run here once
        using Subscriber subscriber = g.Service.CreateSubscriber();
        using Publisher publisher = g.Service.CreatePublisher();

        using (Child child = Child.Fork(() =>
        {
            publisher.Dispose();
            return 0;
        }))
        {
            Assert.Equal(0, child.WaitOrFail().ExitCode);
        }

        ulong owner = g.Bytes.Read<ulong>(g.Bytes.PublisherSlot(0));
        Assert.True(ServiceBytes.StateOf(owner) == 2 && ServiceBytes.PidOf(owner) == Environment.ProcessId, $"the parent's publisher slot holds 0x{owner:X16}");
        Assert.Throws<InvalidOperationException>(() => g.Service.CreatePublisher().Dispose()); // the one slot is the parent's still
        Payloads.Publish(publisher, 0, 0, 100);
        Assert.True(subscriber.TryReceive(out Sample sample, TimeSpan.FromSeconds(5)));
        using (sample)
        {
            Assert.Equal((0, 0L), Payloads.Check(sample.Span));
        }
    }

    [Fact]
    public void A_child_disposing_its_copy_of_a_subscriber_leaves_the_parent_its_slot_samples_and_queue()
    {
        using var g = new GuardedService(_names.Unique(), OnePublisher);
        g.Service.CreateSubscriber().Dispose(); // the code the child runs, run here once
        using Publisher publisher = g.Service.CreatePublisher();
        using Subscriber subscriber = g.Service.CreateSubscriber();
        Payloads.Publish(publisher, 0, 0, 100);
        Payloads.Publish(publisher, 0, 1, 100);
        Assert.True(subscriber.TryReceive(out Sample held, TimeSpan.FromSeconds(5)));

        using (Child child = Child.Fork(() =>
        {
            subscriber.Dispose();
            return 0;
        }))
        {
            Assert.Equal(0, child.WaitOrFail().ExitCode);
        }

        ulong owner = g.Bytes.Read<ulong>(g.Bytes.SubscriberSlot(subscriber.Index));
        Assert.True(ServiceBytes.StateOf(owner) == 2 && ServiceBytes.PidOf(owner) == Environment.ProcessId, $"the parent's subscriber slot holds 0x{owner:X16}");
        Assert.Equal((0, 0L), Payloads.Check(held.Span));
        held.Dispose(); // its reference is the parent's still: releasing it is no corruption
        Assert.True(subscriber.TryReceive(out Sample queued, TimeSpan.FromSeconds(5)), "the sample queued before the fork was taken by the child");
        using (queued)
        {
            Assert.Equal((0, 1L), Payloads.Check(queued.Span));
        }
    }
}
