using System;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Writes whole byte messages to a transport: today a <see cref="SharedChannel"/> lane in shared
/// memory; code written against this interface runs unchanged over another transport that
/// implements it, such as the NetMQ one between hosts in the Shm.NetMQ package.
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
