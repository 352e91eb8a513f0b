using System;

namespace Shm.NetMQ;

/// <summary>
/// A channel a bridge carries: <see cref="Remote"/>, the name on the wire (what the other bridge
/// asks for or offers), and <see cref="Local"/>, the named channel here (<see cref="NamedChannel"/>).
/// Written <c>NAME</c> (both the same) or <c>REMOTE=LOCAL</c>.
/// </summary>
/// <param name="Remote">The name on the wire.</param>
/// <param name="Local">The local channel's name.</param>
public sealed record BridgedName(string Remote, string Local)
{
    /// <summary>Reads <c>NAME</c> or <c>REMOTE=LOCAL</c>.</summary>
    /// <param name="text">The text.</param>
    /// <exception cref="ArgumentException">Empty, or an empty side, or a name too long for the wire.</exception>
    public static BridgedName Parse(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        string remote = equals < 0 ? text : text[..equals];
        string local = equals < 0 ? text : text[(equals + 1)..];
        if (remote.Length == 0 || local.Length == 0)
        {
            throw new ArgumentException($"'{text}' is not NAME or REMOTE=LOCAL.", nameof(text));
        }
        return new(StreamHeader.ValidateName(remote, nameof(text)), local);
    }

    /// <summary>As written on a command line.</summary>
    public override string ToString() => Remote == Local ? Remote : $"{Remote}={Local}";
}
