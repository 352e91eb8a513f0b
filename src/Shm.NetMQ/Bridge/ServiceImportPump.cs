using System;
using System.Threading;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Publishes a remote service's samples into a local one (created with the bridge's
/// <see cref="ShmBridgeOptions.ServiceConfig"/> if nobody has yet): the local subscribers each get
/// every sample by their own policy; while a Block one is full the bridge's publisher waits, takes
/// no more, and the remote side gets no credit.
/// </summary>
internal sealed class ServiceImportPump : Pump
{
    private readonly IncomingStream _stream;
    private readonly Publisher _publisher;

    private ServiceImportPump(BridgedName name, Link link, ServiceParts parts)
        : base(name, parts, link)
    {
        _publisher = parts.Publisher!;
        _stream = link.AddIncoming(ServiceWire.Name(name.Remote), survive: true);
    }

    public static ServiceImportPump Start(BridgedName name, Link link, PublishSubscribeConfig config)
    {
        var service = PublishSubscribeService.CreateOrOpen(name.Local, config);
        try
        {
            return new(name, link, new ServiceParts(service) { Publisher = service.CreatePublisher() });
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    public override string Direction => "import service";

    public override long Messages => _stream.Messages;

    public override int Backlog => _stream.Backlog;

    public override long Lost => _stream.Lost;

    public override string? Peer => _stream.PeerName;

    protected override string StreamState => _stream.State;

    protected override async Task Run(CancellationToken stop)
    {
        while (true)
        {
            byte[]? message = await _stream.TakeAsync(long.MaxValue, stop).ConfigureAwait(false);
            if (message is null)
            {
                return; // a service has no end of stream; an exporter never sends one
            }
            if (message.Length > _publisher.MaxPayload)
            {
                Link.Report($"import of service '{Name}': a sample of {message.Length} bytes is over the local MaxPayload ({_publisher.MaxPayload}); dropped");
                continue;
            }
            using SampleLoan loan = await _publisher.LoanAsync(message.Length, stop).ConfigureAwait(false);
            message.AsSpan().CopyTo(loan.Span);
            loan.Publish();
        }
    }
}
