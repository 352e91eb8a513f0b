using System.Threading;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Takes the remote stream's messages and writes them into the local channel (the bridge is one of
/// its writers): while the local ring is full it takes no more, so the remote writer gets no more
/// credit and waits. The remote stream's end completes the local writer.
/// </summary>
internal sealed class ImportPump(BridgedName name, NamedChannel local, Link link) : Pump(name, local, link)
{
    private readonly NamedChannel _channel = local;
    private readonly IncomingStream _stream = link.AddIncoming(name.Remote, survive: true);

    public override string Direction => "import";

    public override long Messages => _stream.Messages;

    public override int Backlog => _stream.Backlog;

    public override long Lost => _stream.Lost;

    public override string? Peer => _stream.PeerName;

    protected override string StreamState => _stream.State;

    protected override async Task Run(CancellationToken stop)
    {
        using SharedChannelWriter writer = _channel.Channel.OpenWriter();
        while (true)
        {
            if (!_stream.TryTake(out byte[] message, out bool ended))
            {
                message = (ended ? null : await _stream.TakeAsync(long.MaxValue, stop).ConfigureAwait(false))!;
                if (message is null)
                {
                    writer.Complete();
                    return;
                }
            }
            if (message.Length > writer.MaxMessageLength)
            {
                Link.Report($"import of '{Name}': a message of {message.Length} bytes does not fit the local channel (at most {writer.MaxMessageLength}); dropped");
                continue;
            }
            if (!writer.TryWrite(message))
            {
                await writer.WriteAsync(message, stop).ConfigureAwait(false);
            }
        }
    }
}
