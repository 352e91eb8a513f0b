using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A publisher killed in the middle of a publish, after its descriptors reached the queues and before it
/// published its pool's new head: the memory it leaves is written here (a real, reaped process's pid in
/// its slot), and the record it was publishing must not be reused while a subscriber holds it.
/// </summary>
public sealed class ServiceMidPublishDeathTests : IDisposable
{
    private const ulong Attached = 2;
    private static readonly PublishSubscribeConfig OnePublisher = ServiceHostilities.Default with { MaxPublishers = 1 };
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void A_sample_held_from_a_publisher_that_died_publishing_it_is_not_overwritten_by_the_next_publisher()
    {
        using var g = new GuardedService(_names.Unique(), OnePublisher);
        using Subscriber subscriber = g.Service.CreateSubscriber();
        using Publisher dying = g.Service.CreatePublisher(); // disposed last: its slot is another's by then, which it leaves alone
        Payloads.Publish(dying, 0, 0, 100);
        DiedPublishing(g);

        Assert.True(subscriber.TryReceive(out Sample held, TimeSpan.FromSeconds(5)));
        using (held)
        {
            Assert.Equal((0, 0L), Payloads.Check(held.Span));
            try
            {
                using Publisher next = g.Service.CreatePublisher(); // the one slot: only if nothing of the dead one's pool is held
                Payloads.Publish(next, 1, 0, 100);
            }
            catch (InvalidOperationException)
            {
                // The slot is still held by the sample: the right answer while it is.
            }
            Assert.Equal((0, 0L), Payloads.Check(held.Span));
        }
    }

    [Fact]
    public void A_sample_a_publisher_died_publishing_before_it_reached_every_queue_does_not_hold_the_pool_for_ever()
    {
        using var g = new GuardedService(_names.Unique(), OnePublisher);
        using Subscriber reached = g.Service.CreateSubscriber();
        using Subscriber missed = g.Service.CreateSubscriber();
        using Publisher dying = g.Service.CreatePublisher(); // disposed last: its slot is another's by then, which it leaves alone
        Payloads.Publish(dying, 0, 0, 100);
        // Killed after pushing to the first subscriber's queue, before the second's: that descriptor is written, its head not moved.
        long head = g.Bytes.Read<long>(g.Bytes.Queue(0, missed.Index) + ServiceBytes.Head);
        g.Bytes.Write(g.Bytes.Queue(0, missed.Index) + ServiceBytes.Head, head - 1);
        DiedPublishing(g);

        Assert.True(reached.TryReceive(out Sample held, TimeSpan.FromSeconds(5)));
        Assert.False(missed.TryReceive(out _), "the subscriber whose head did not move received the sample");
        Assert.Throws<InvalidOperationException>(() => g.Service.CreatePublisher().Dispose()); // held: the pool is not free
        held.Dispose();

        using Publisher next = g.Service.CreatePublisher(); // released by the one that got it: the pool is free, whatever the other's bit said
        Payloads.Publish(next, 1, 0, 100);
        Assert.True(missed.TryReceive(out Sample sample, TimeSpan.FromSeconds(5)));
        using (sample)
        {
            Assert.Equal((1, 0L), Payloads.Check(sample.Span));
        }
    }

    /// <summary>
    /// What a publisher killed after pushing its descriptors leaves: its published count not moved, its
    /// owner naming a process that is gone. The pool's head is stored before the descriptors now; the
    /// library stored it after them, and the proof committed with this test rolled it back as that code left it.
    /// </summary>
    private static void DiedPublishing(GuardedService g)
    {
        g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.Published, g.Bytes.Read<long>(g.Bytes.PublisherSlot(0) + ServiceBytes.Published) - 1);
        g.Bytes.Write(g.Bytes.PublisherSlot(0), (Attached << 56) | ((ulong)(uint)DeadPid() << 32));
    }

    private static int DeadPid()
    {
        using Child dead = Child.Fork(static () => 0);
        Assert.Equal(0, dead.WaitOrFail().ExitCode);
        return dead.Pid;
    }
}
