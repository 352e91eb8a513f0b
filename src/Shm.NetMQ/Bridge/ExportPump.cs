using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Reads the local channel (the bridge is its reader) and sends each message on the link, as the
/// remote reader's credit allows: while there is none, the local ring fills and the local writers
/// wait, as they would for a slow local reader. The local stream's end ends the remote one.
/// </summary>
internal sealed class ExportPump(BridgedName name, NamedChannel local, Link link) : Pump(name, local, link)
{
    private readonly NamedChannel _channel = local;
    private readonly OutgoingStream _stream = link.AddOutgoing(name.Remote, survive: true);

    public override string Direction => "export";

    public override long Messages => _stream.Messages;

    public override int Backlog => _stream.Backlog;

    public override long Lost => 0;

    public override string? Peer => _stream.PeerName;

    protected override string StreamState => _stream.State;

    protected override async Task Run(CancellationToken stop)
    {
        using SharedChannelReader reader = _channel.Channel.OpenReader();
        while (true)
        {
            byte[] copy;
            try
            {
                if (!reader.TryRead(out ReceivedMessage message))
                {
                    message = await reader.ReadAsync(stop).ConfigureAwait(false);
                }
                using (message)
                {
                    copy = message.ToArray();
                }
            }
            catch (ChannelClosedException ended)
            {
                if (reader.DeadWriters.Count > 0)
                {
                    Link.Report($"export of '{Name}': {ended.Message} The remote stream is ended normally.");
                }
                _stream.Complete();
                Link.Wake();
                return;
            }
            await _stream.AcceptAsync(copy, long.MaxValue, Link, stop, owned: copy).ConfigureAwait(false); // ours alone: queued without a second copy
        }
    }
}
