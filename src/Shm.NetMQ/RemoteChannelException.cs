using System.IO;

namespace Shm.NetMQ;

/// <summary>
/// A remote stream failed: its peer went silent for longer than the heartbeat timeout (as a local
/// channel reports a dead writer or reader), restarted, lost messages, or refused the stream. The
/// message and <see cref="Endpoint"/> name the peer (for example <c>tcp://hostA:5555</c>).
/// </summary>
public sealed class RemoteChannelException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="endpoint">The peer: the endpoint connected to, or the peer's description and the endpoint it came in on.</param>
    /// <param name="message">What happened.</param>
    public RemoteChannelException(string endpoint, string message)
        : base($"{endpoint}: {message}") => Endpoint = endpoint;

    /// <summary>The peer, as the transport names it.</summary>
    public string Endpoint { get; }
}
