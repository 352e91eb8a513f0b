using System;

namespace Shm.NetMQ;

/// <summary>How a remote writer or reader (and a bridge) talks over NetMQ.</summary>
public sealed record RemoteTransportOptions
{
    /// <summary>How often each side says it is alive (default 500 ms).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Silence after which a peer is taken for dead (default 3 s, at least two intervals).</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Messages a reader lets a writer send ahead of what it has taken (default 4096): the bound on
    /// the messages in flight and queued on each side, so memory stays bounded whatever the speeds.
    /// </summary>
    public int CreditWindow { get; init; } = 4096;

    /// <summary>The longest message (default 1 MiB); a longer one is refused by the writer and dropped by the reader as a protocol error.</summary>
    public int MaxMessageLength { get; init; } = 1 << 20;

    /// <summary>
    /// The listening side's CURVE key pair: set, traffic is encrypted and only clients that know its
    /// public key can talk to it. NetMQ 4.0 has no ZAP, so clients are not told apart by their own keys.
    /// </summary>
    public CurveKey? CurveServerKey { get; init; }

    /// <summary>The connecting side: the listener's CURVE public key. Set, the connection is encrypted and the listener must hold the matching secret key.</summary>
    public CurveKey? CurveServerPublicKey { get; init; }

    /// <summary>The connecting side's own CURVE key pair (a new one per connection if not set).</summary>
    public CurveKey? CurveClientKey { get; init; }

    /// <summary>Where the remote writer or reader reports what it refused or lost (default: nowhere).</summary>
    public Action<string>? Log { get; init; }

    internal RemoteTransportOptions Validated()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(HeartbeatInterval, TimeSpan.FromMilliseconds(10), nameof(HeartbeatInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(HeartbeatTimeout, 2 * HeartbeatInterval, nameof(HeartbeatTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(CreditWindow, 1, nameof(CreditWindow));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(CreditWindow, 1 << 20, nameof(CreditWindow));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxMessageLength, 1, nameof(MaxMessageLength));
        if (CurveServerKey is { HasSecretKey: false })
        {
            throw new ArgumentException("The CURVE server key needs its secret key (the _secret file).", nameof(CurveServerKey));
        }
        if (CurveClientKey is { HasSecretKey: false })
        {
            throw new ArgumentException("The CURVE client key needs its secret key (the _secret file).", nameof(CurveClientKey));
        }
        return this;
    }
}
