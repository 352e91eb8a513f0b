using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Values a subscriber checked in shared memory and then read again: a peer that rewrites them between
/// the check and the use must not move what the victim is handed. Each victim is forked, its mapping
/// ends at a PROT_NONE page, and it reads every byte of what it received, as any consumer would.
/// </summary>
public sealed class ServiceRereadTests : IDisposable
{
    private const int Intact = 45;
    private const int Corrupted = 42;
    private const int Other = 47;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void A_history_sample_whose_header_length_a_peer_rewrites_after_the_check_is_delivered_as_published()
    {
        using var g = new GuardedService(_names.Unique(), ServiceHostilities.Default with { HistoryDepth = 2 });
        using Publisher peer = g.Service.CreatePublisher();
        Payloads.Publish(peer, 0, 0, 100);
        Assert.Equal(Intact, ReceiveOneWhole(g, inProcess: true)); // warm, and the clean case

        using Child victim = Child.Fork(() => ReceiveOneWhole(g, inProcess: false));
        Assert.True(g.Ready.TryWait(Bound), "the victim did not attach");
        g.Bytes.Write(g.Bytes.Pool(0) + ServiceBytes.Length, 0x7FFF_0000u); // after the victim checked the record (it took the history as it attached)
        g.Go.Set();
        ChildExit exit = victim.WaitOrFail(Bound);

        Assert.True(exit.Signal is null, $"the victim died of signal {exit.Signal}");
        Assert.True(exit.ExitCode is Intact or Corrupted, $"exit {exit.ExitCode}");
    }

    /// <summary>Subscribes (taking the history), says ready, waits for Go, receives one sample and reads all its bytes.</summary>
    private static int ReceiveOneWhole(GuardedService g, bool inProcess)
    {
        try
        {
            AppContext.SetSwitch("Shm.Interop.Services.GuardPage", true);
            using var service = PublishSubscribeService.Open(g.Name);
            using Subscriber subscriber = service.CreateSubscriber();
            if (!inProcess)
            {
                g.Ready.Set();
                g.Go.TryWait(Waits.Bound);
            }
            if (!subscriber.TryReceive(out Sample sample, TimeSpan.FromSeconds(2)))
            {
                return Other;
            }
            using (sample)
            {
                ulong sum = Checksum.Add(0, sample.Span); // every byte, as a consumer reads it
                return sum != 0 && Payloads.IsIntact(sample.Span, 0, 0) ? Intact : Other;
            }
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
