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
        Publisher dying = g.Service.CreatePublisher();
        Payloads.Publish(dying, 0, 0, 100);
        // What a publisher killed before its last two stores leaves: the descriptor is queued, the pool's head and published count are not moved.
        g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.PoolHead, 0L);
        g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.Published, 0L);
        g.Bytes.Write(g.Bytes.PublisherSlot(0), (Attached << 56) | ((ulong)(uint)DeadPid() << 32));

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
        GC.KeepAlive(dying); // its slot was taken over above: never disposed
    }

    private static int DeadPid()
    {
        using Child dead = Child.Fork(static () => 0);
        Assert.Equal(0, dead.WaitOrFail().ExitCode);
        return dead.Pid;
    }
}
