using System;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>Reads whole byte messages from a transport: a <see cref="SharedChannel"/> here, or another one (see <see cref="IMessageWriter"/>).</summary>
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
