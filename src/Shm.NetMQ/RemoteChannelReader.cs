using System;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Reads a named stream a <see cref="RemoteChannelWriter"/> (or a bridge exporting the name) on
/// another host writes, over NetMQ: the <see cref="IMessageReader"/> a <see cref="SharedChannelReader"/>
/// is, across the network. It grants the writer credit for <see cref="RemoteTransportOptions.CreditWindow"/>
/// messages past the last one taken, so memory stays bounded. The writer's
/// <see cref="RemoteChannelWriter.Complete"/> ends the stream normally; a writer silent for the
/// heartbeat timeout, restarted, or a message lost in transit ends it, after the messages already
/// here, with <see cref="RemoteChannelException"/> naming the endpoint, as dead local writers do.
/// </summary>
public sealed class RemoteChannelReader : IMessageReader
{
    private readonly Link _link;
    private readonly IncomingStream _stream;

    private RemoteChannelReader(string endpoint, bool listen, string name, RemoteTransportOptions? options)
    {
        StreamHeader.ValidateName(name, nameof(name));
        _link = new Link(endpoint, listen, options ?? new RemoteTransportOptions());
        _stream = _link.AddIncoming(name, survive: false);
        _link.Start();
    }

    /// <summary>Connects to a writer listening at <paramref name="endpoint"/> (NetMQ DEALER).</summary>
    /// <param name="endpoint">For example <c>tcp://hostA:5555</c>.</param>
    /// <param name="name">The stream's name, as the writer knows it.</param>
    /// <param name="options">Heartbeats, credit window, CURVE.</param>
    /// <exception cref="ArgumentException">A bad name or option.</exception>
    /// <exception cref="global::NetMQ.NetMQException">NetMQ refused the endpoint.</exception>
    public static RemoteChannelReader Connect(string endpoint, string name, RemoteTransportOptions? options = null) => new(endpoint, listen: false, name, options);

    /// <summary>Listens at <paramref name="endpoint"/> for the writer to connect (NetMQ ROUTER).</summary>
    /// <param name="endpoint">For example <c>tcp://0.0.0.0:5555</c>.</param>
    /// <param name="name">The stream's name, as the writer sends it.</param>
    /// <param name="options">Heartbeats, credit window, CURVE.</param>
    /// <exception cref="ArgumentException">A bad name or option.</exception>
    /// <exception cref="global::NetMQ.NetMQException">NetMQ could not bind the endpoint (in use, for one).</exception>
    public static RemoteChannelReader Listen(string endpoint, string name, RemoteTransportOptions? options = null) => new(endpoint, listen: true, name, options);

    /// <summary>The endpoint connected to or listened at.</summary>
    public string Endpoint => _link.Endpoint;

    /// <summary>Takes the next message if one is here.</summary>
    /// <param name="message">The message (its bytes are its own; disposing it does nothing).</param>
    /// <returns>False if none is here yet, or the stream ended normally.</returns>
    /// <exception cref="RemoteChannelException">The stream failed (writer lost or restarted, messages lost) and every message before was taken.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public bool TryRead(out ReceivedMessage message)
    {
        bool taken = _stream.TryTake(out byte[] bytes, out _);
        message = taken ? new ReceivedMessage(bytes) : default;
        return taken;
    }

    /// <summary>Takes the next message, waiting as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The stream ended normally.</exception>
    /// <exception cref="RemoteChannelException">The stream failed and every message before was taken.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public ReceivedMessage Read(CancellationToken cancellationToken = default) =>
        TryRead(out ReceivedMessage message, Timeout.InfiniteTimeSpan, cancellationToken) ? message : throw Ended();

    /// <summary>Takes the next message, waiting up to <paramref name="timeout"/>.</summary>
    /// <param name="message">The message.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if the timeout passed first, or the stream ended normally.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="RemoteChannelException">The stream failed and every message before was taken.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public bool TryRead(out ReceivedMessage message, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        byte[]? bytes = _stream.Take(Signal.DeadlineAfter(timeout, nameof(timeout)), cancellationToken);
        message = bytes is null ? default : new ReceivedMessage(bytes);
        return bytes is not null;
    }

    /// <summary>Takes the next message without holding a thread, waiting as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ChannelClosedException">The stream ended normally.</exception>
    /// <exception cref="RemoteChannelException">The stream failed and every message before was taken.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<ReceivedMessage> ReadAsync(CancellationToken cancellationToken = default) =>
        await TryReadAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw Ended();

    /// <summary>Takes the next message without holding a thread, waiting up to <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The message; null if the timeout passed first or the stream ended normally.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="RemoteChannelException">The stream failed and every message before was taken.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<ReceivedMessage?> TryReadAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        byte[]? bytes = await _stream.TakeAsync(Signal.DeadlineAfter(timeout, nameof(timeout)), cancellationToken).ConfigureAwait(false);
        return bytes is null ? null : new ReceivedMessage(bytes);
    }

    /// <summary>Waits without holding a thread until a message can be taken (true) or the stream ended normally (false).</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="RemoteChannelException">The stream failed and every message before was taken.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task changed = _stream.Changed.Task;
            if (_stream.HasMessage(out bool ended))
            {
                return true;
            }
            if (ended)
            {
                return false;
            }
            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the connection at once; messages not taken are dropped.</summary>
    public void Dispose() => _link.Dispose();

    private ChannelClosedException Ended() => new($"The remote stream '{_stream.Name}' from {Endpoint} ended.");
}
