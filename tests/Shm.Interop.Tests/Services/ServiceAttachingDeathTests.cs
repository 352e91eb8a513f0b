using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A participant that dies between taking its slot (attaching) and saying it is attached: it references
/// nothing yet, so its slot must come back. The dead process is real (forked, ended and reaped); its
/// slot holds the attaching owner word it would have left, as a process killed at that instruction does.
/// </summary>
public sealed class ServiceAttachingDeathTests : IDisposable
{
    private const ulong Attaching = 1;
    private static readonly PublishSubscribeConfig OneEach = ServiceHostilities.Default with { MaxPublishers = 1, MaxSubscribers = 1 };
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void A_subscriber_slot_left_attaching_by_a_dead_process_is_taken_by_the_next_subscriber()
    {
        using var g = new GuardedService(_names.Unique(), OneEach);
        using Publisher publisher = g.Service.CreatePublisher();
        g.Bytes.Write(g.Bytes.SubscriberSlot(0), AttachingWordOfADeadProcess());
        Payloads.Publish(publisher, 0, 0, 100); // the publisher looked at the slots since

        using Subscriber subscriber = g.Service.CreateSubscriber();
        Payloads.Publish(publisher, 0, 1, 100);
        Assert.True(subscriber.TryReceive(out Sample sample, TimeSpan.FromSeconds(5)));
        using (sample)
        {
            Assert.Equal((0, 1L), Payloads.Check(sample.Span));
        }
    }

    [Fact]
    public void A_publisher_slot_left_attaching_by_a_dead_process_is_taken_by_the_next_publisher()
    {
        using var g = new GuardedService(_names.Unique(), OneEach);
        using Subscriber subscriber = g.Service.CreateSubscriber();
        g.Bytes.Write(g.Bytes.PublisherSlot(0), AttachingWordOfADeadProcess());

        using Publisher publisher = g.Service.CreatePublisher();
        Payloads.Publish(publisher, 0, 0, 100);
        Assert.True(subscriber.TryReceive(out Sample sample, TimeSpan.FromSeconds(5)));
        using (sample)
        {
            Assert.Equal((0, 0L), Payloads.Check(sample.Span));
        }
    }

    /// <summary>An attaching owner word naming a process that has ended and been reaped (start time 0: the pid alone says it is gone).</summary>
    private static ulong AttachingWordOfADeadProcess()
    {
        using Child dead = Child.Fork(static () => 0);
        Assert.Equal(0, dead.WaitOrFail().ExitCode);
        Assert.False(System.IO.Directory.Exists($"/proc/{dead.Pid}"), "the pid was reused at once");
        return (Attaching << 56) | ((ulong)(uint)dead.Pid << 32);
    }
}
