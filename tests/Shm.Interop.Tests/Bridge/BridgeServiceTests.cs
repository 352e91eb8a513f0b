using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Threading.Tasks;
using Shm.NetMQ;
using Xunit;

namespace Shm.Interop.Tests.Bridge;

/// <summary>Publish-subscribe across two bridges: each of two subscribers on the far side gets every sample, in order.</summary>
[Collection("bridge")]
public sealed class BridgeServiceTests
{
    private const int Samples = 2000;

    [Fact]
    public async Task Two_remote_subscribers_each_get_every_sample_in_order_through_two_bridges()
    {
        string here = BridgeTransferTests.Unique("svc-a"), there = BridgeTransferTests.Unique("svc-b");
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using var source = PublishSubscribeService.Create(here, new PublishSubscribeConfig { MaxPayload = 64, QueueCapacity = 16 });
        using Publisher publisher = source.CreatePublisher();
        var transport = new RemoteTransportOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(100), HeartbeatTimeout = TimeSpan.FromSeconds(1), CreditWindow = 64 };
        await using ShmBridge exporter = ShmBridge.Start(new() { Listen = endpoint, ExportServices = [new("telemetry", here)], Transport = transport });
        await using ShmBridge importer = ShmBridge.Start(new()
        {
            Connect = endpoint,
            ImportServices = [new("telemetry", there)],
            ServiceConfig = new PublishSubscribeConfig { MaxPayload = 64, QueueCapacity = 16 },
            Transport = transport,
        });
        using var target = PublishSubscribeService.Open(there);
        using Subscriber first = target.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.Block });
        using Subscriber second = target.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.Block });

        // Both bridges hold a window each and the services a queue each: the publisher is held back, not flooding memory.
        Task publishing = Task.Run(() =>
        {
            for (long i = 1; i <= Samples; i++)
            {
                Assert.True(publisher.TryLoan(8, out SampleLoan loan, Waits.Bound), $"no loan for sample {i}");
                BinaryPrimitives.WriteInt64LittleEndian(loan.Span, i);
                loan.Publish();
            }
        });
        var clock = Stopwatch.StartNew();
        for (long expected = 1; expected <= Samples; expected++)
        {
            foreach (Subscriber subscriber in new[] { first, second })
            {
                Assert.True(subscriber.TryReceive(out Sample sample, Waits.Bound), $"sample {expected} did not reach subscriber {subscriber.Index}\n{importer.GetStatus()}\n{exporter.GetStatus()}");
                using (sample)
                {
                    Assert.Equal(expected, BinaryPrimitives.ReadInt64LittleEndian(sample.Span));
                    Assert.Equal(0, sample.Missed);
                }
            }
        }
        await publishing.WaitAsync(Waits.Bound);
        Assert.Equal(Samples, importer.GetStatus().Channels[0].Messages);
    }
}
