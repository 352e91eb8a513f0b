using System;
using System.Threading;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Sends a local publish-subscribe service's samples: the bridge subscribes with
/// <see cref="OverflowPolicy.Block"/>, so remote subscribers hold local publishers back through the
/// credits, as a slow local Block subscriber does. It never subscribes with DropOldest: its missed
/// counts could not reach the remote subscribers exactly (they see the samples of the importing
/// bridge's publisher, which missed nothing), so that promise is refused rather than broken.
/// </summary>
internal sealed class ServiceExportPump : Pump
{
    private readonly OutgoingStream _stream;
    private readonly Subscriber _subscriber;

    private ServiceExportPump(BridgedName name, Link link, ServiceParts parts)
        : base(name, parts, link)
    {
        _subscriber = parts.Subscriber!;
        _stream = link.AddOutgoing(ServiceWire.Name(name.Remote), survive: true);
    }

    /// <summary>Opens the existing service and subscribes now, so every sample published after the bridge started is carried.</summary>
    public static ServiceExportPump Start(BridgedName name, Link link)
    {
        var service = PublishSubscribeService.Open(name.Local);
        try
        {
            return new(name, link, new ServiceParts(service) { Subscriber = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.Block, ReceiveHistory = false }) });
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    public override string Direction => "export service";

    public override long Messages => _stream.Messages;

    public override int Backlog => _stream.Backlog;

    public override long Lost => 0;

    public override string? Peer => _stream.PeerName;

    protected override string StreamState => _stream.State;

    protected override async Task Run(CancellationToken stop)
    {
        while (true)
        {
            if (!_subscriber.TryReceive(out Sample sample))
            {
                sample = await _subscriber.ReceiveAsync(stop).ConfigureAwait(false);
            }
            byte[] copy;
            using (sample)
            {
                copy = sample.Span.ToArray();
            }
            await _stream.AcceptAsync(copy, long.MaxValue, Link, stop, owned: copy).ConfigureAwait(false);
        }
    }
}

/// <summary>A service and the bridge's participant in it, disposed together (participant first).</summary>
internal sealed class ServiceParts(PublishSubscribeService service) : IDisposable
{
    public PublishSubscribeService Service { get; } = service;

    public Subscriber? Subscriber { get; init; }

    public Publisher? Publisher { get; init; }

    public void Dispose()
    {
        Subscriber?.Dispose();
        Publisher?.Dispose();
        Service.Dispose();
    }
}

/// <summary>Services travel under their own names on the wire, apart from channels.</summary>
internal static class ServiceWire
{
    public static string Name(string remote) => "service:" + remote;
}
