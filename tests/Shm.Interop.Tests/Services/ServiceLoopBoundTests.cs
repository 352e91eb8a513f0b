using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Loops whose bounds come from shared memory: a peer that writes an extreme value must not make a
/// forked victim (its mapping ending at a PROT_NONE page) spin for ever or step outside its structure.
/// </summary>
public sealed class ServiceLoopBoundTests : IDisposable
{
    private const int Attached = 45;
    private const int Corrupted = 42;
    private const int Other = 47;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void A_publisher_slot_claiming_the_last_possible_sequence_does_not_make_a_joining_subscriber_walk_its_history_for_ever()
    {
        using var g = new GuardedService(_names.Unique(), ServiceHostilities.Default with { HistoryDepth = 2 });
        using Publisher peer = g.Service.CreatePublisher();
        Payloads.Publish(peer, 0, 0, 100);
        Assert.Equal(Attached, Join(g)); // warm, and the clean case
        g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.Published, long.MaxValue);

        using Child victim = Child.Fork(() => Join(g));
        ChildExit exit = victim.WaitOrFail(Bound);

        Assert.True(exit.Signal is null, $"the victim died of signal {exit.Signal}");
        Assert.True(exit.ExitCode is Attached or Corrupted, $"exit {exit.ExitCode}");
    }

    /// <summary>Opens the service with a guard page and attaches a subscriber, which takes the history.</summary>
    private static int Join(GuardedService g)
    {
        try
        {
            AppContext.SetSwitch("Shm.Interop.Services.GuardPage", true);
            using var service = PublishSubscribeService.Open(g.Name);
            using Subscriber subscriber = service.CreateSubscriber();
            return Attached;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
        catch (Exception)
        {
            return Other;
        }
    }
}
