using System;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Writes whole byte messages to a transport: today a <see cref="SharedChannel"/> lane in shared
/// memory; code written against this interface runs unchanged over another transport (a messaging
/// engine between hosts, such as NetMQ) that implements it.
/// </summary>
public interface IMessageWriter : IDisposable
{
    /// <summary>The longest message this writer accepts.</summary>
    int MaxMessageLength { get; }

    /// <summary>Writes <paramref name="message"/> if there is room now; false if the transport is full.</summary>
    /// <param name="message">The bytes, copied.</param>
    bool TryWrite(ReadOnlySpan<byte> message);

    /// <summary>Writes <paramref name="message"/>, waiting for room without holding a thread.</summary>
    /// <param name="message">The bytes, copied.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default);

    /// <summary>Says no more messages will come from this writer.</summary>
    void Complete();
}

/// <summary>Reads whole byte messages from a transport (see <see cref="IMessageWriter"/>).</summary>
public interface IMessageReader : IDisposable
{
    /// <summary>Takes the next message if one is there; false if none is (or the stream ended).</summary>
    /// <param name="message">The message; dispose it to release it.</param>
    bool TryRead(out ReceivedMessage message);

    /// <summary>Waits without holding a thread until a message can be read (true) or the stream ended (false).</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default);

    /// <summary>Takes the next message, waiting without holding a thread.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="System.Threading.Channels.ChannelClosedException">The stream ended.</exception>
    ValueTask<ReceivedMessage> ReadAsync(CancellationToken cancellationToken = default);
}
