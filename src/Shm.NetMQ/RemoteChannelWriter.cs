using System;
using System.Threading;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// Writes a named stream to a <see cref="RemoteChannelReader"/> (or a bridge importing the name) on
/// another host, over NetMQ: the <see cref="IMessageWriter"/> a <see cref="SharedChannelWriter"/>
/// is, across the network. It sends only with the reader's credit, so a slow reader holds it back
/// as a full ring does; order is kept; <see cref="Complete"/> ends the reader's stream normally. A
/// reader silent for the heartbeat timeout (or one that restarted, or refused the name) fails every
/// later call with <see cref="RemoteChannelException"/> naming the endpoint, as a dead local reader does.
/// </summary>
/// <remarks>Messages handed to this writer and sent before its reader was lost are lost with it: at most once.</remarks>
public sealed class RemoteChannelWriter : IMessageWriter
{
    private readonly Link _link;
    private readonly OutgoingStream _stream;

    private RemoteChannelWriter(string endpoint, bool listen, string name, RemoteTransportOptions? options)
    {
        options ??= new RemoteTransportOptions();
        StreamHeader.ValidateName(name, nameof(name));
        _link = new Link(endpoint, listen, options);
        _stream = _link.AddOutgoing(name, survive: false);
        MaxMessageLength = options.MaxMessageLength;
        _link.Start();
    }

    /// <summary>Connects to a reader listening at <paramref name="endpoint"/> (NetMQ DEALER).</summary>
    /// <param name="endpoint">For example <c>tcp://hostA:5555</c>.</param>
    /// <param name="name">The stream's name, as the reader knows it.</param>
    /// <param name="options">Heartbeats, credit window, CURVE.</param>
    /// <exception cref="ArgumentException">A bad name or option.</exception>
    /// <exception cref="global::NetMQ.NetMQException">NetMQ refused the endpoint.</exception>
    public static RemoteChannelWriter Connect(string endpoint, string name, RemoteTransportOptions? options = null) => new(endpoint, listen: false, name, options);

    /// <summary>Listens at <paramref name="endpoint"/> for the reader to connect (NetMQ ROUTER).</summary>
    /// <param name="endpoint">For example <c>tcp://0.0.0.0:5555</c>.</param>
    /// <param name="name">The stream's name, as the reader asks for it.</param>
    /// <param name="options">Heartbeats, credit window, CURVE.</param>
    /// <exception cref="ArgumentException">A bad name or option.</exception>
    /// <exception cref="global::NetMQ.NetMQException">NetMQ could not bind the endpoint (in use, for one).</exception>
    public static RemoteChannelWriter Listen(string endpoint, string name, RemoteTransportOptions? options = null) => new(endpoint, listen: true, name, options);

    /// <inheritdoc/>
    public int MaxMessageLength { get; }

    /// <summary>The endpoint connected to or listened at.</summary>
    public string Endpoint => _link.Endpoint;

    /// <summary>Writes <paramref name="message"/> if the reader's credit allows now.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <returns>False if there is no credit (no reader yet, or it is behind).</returns>
    /// <exception cref="ArgumentException">Longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="RemoteChannelException">The reader was lost, restarted or refused the stream.</exception>
    /// <exception cref="System.Threading.Channels.ChannelClosedException">The writer was completed.</exception>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    public bool TryWrite(ReadOnlySpan<byte> message)
    {
        CheckLength(message.Length);
        if (!_stream.TryAccept(message))
        {
            return false;
        }
        _link.Wake();
        return true;
    }

    /// <summary>Writes <paramref name="message"/>, waiting for credit as long as it takes.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentException">Longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="RemoteChannelException">The reader was lost, restarted or refused the stream.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public void Write(ReadOnlySpan<byte> message, CancellationToken cancellationToken = default) =>
        TryWrite(message, Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Writes <paramref name="message"/>, waiting for credit up to <paramref name="timeout"/>.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if the timeout passed first.</returns>
    /// <exception cref="ArgumentException">Longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="RemoteChannelException">The reader was lost, restarted or refused the stream.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public bool TryWrite(ReadOnlySpan<byte> message, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        CheckLength(message.Length);
        return _stream.Accept(message, Signal.DeadlineAfter(timeout, nameof(timeout)), _link, cancellationToken);
    }

    /// <summary>Writes <paramref name="message"/>, waiting for credit without holding a thread.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentException">Longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="RemoteChannelException">The reader was lost, restarted or refused the stream.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default) =>
        await TryWriteAsync(message, Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);

    /// <summary>Writes <paramref name="message"/>, waiting for credit without holding a thread, up to <paramref name="timeout"/>.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if the timeout passed first.</returns>
    /// <exception cref="ArgumentException">Longer than <see cref="MaxMessageLength"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="RemoteChannelException">The reader was lost, restarted or refused the stream.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<bool> TryWriteAsync(ReadOnlyMemory<byte> message, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        CheckLength(message.Length);
        return await _stream.AcceptAsync(message, Signal.DeadlineAfter(timeout, nameof(timeout)), _link, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>No more messages: the reader's stream ends normally once it has every message written before.</summary>
    /// <exception cref="RemoteChannelException">The reader was lost.</exception>
    /// <exception cref="System.Threading.Channels.ChannelClosedException">Completed already.</exception>
    public void Complete()
    {
        _stream.Complete();
        _link.Wake();
    }

    private void CheckLength(int length)
    {
        if (length > MaxMessageLength)
        {
            throw new ArgumentException($"The message is {length} bytes; at most {MaxMessageLength}.", "message");
        }
    }

    /// <summary>Closes the connection at once: what was not sent yet is dropped (complete and wait for the reader's end first to deliver all).</summary>
    public void Dispose() => _link.Dispose();
}
