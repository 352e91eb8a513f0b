using System;
using System.Collections.Generic;

namespace Shm.NetMQ;

/// <summary>What a <see cref="ShmBridge"/> carries, and how.</summary>
public sealed record ShmBridgeOptions
{
    /// <summary>The endpoint to listen at (for example <c>tcp://0.0.0.0:5555</c>); exactly one of this and <see cref="Connect"/>.</summary>
    public string? Listen { get; init; }

    /// <summary>The endpoint of the other bridge to connect to (for example <c>tcp://hostA:5555</c>).</summary>
    public string? Connect { get; init; }

    /// <summary>
    /// Local channels sent to the other side: the allow-list of what it may import. A request for any
    /// other name is refused, and the refusal is logged and shown in the status.
    /// </summary>
    public IReadOnlyList<BridgedName> Exports { get; init; } = [];

    /// <summary>Remote channels written into local ones: the allow-list of what is accepted from the other side.</summary>
    public IReadOnlyList<BridgedName> Imports { get; init; } = [];

    /// <summary>
    /// Local publish-subscribe services sent to the other side (they must exist when the bridge
    /// starts): the bridge subscribes with Block, so the remote subscribers' pace holds local
    /// publishers back through the credits. Samples published before the bridge subscribed are not sent.
    /// </summary>
    public IReadOnlyList<BridgedName> ExportServices { get; init; } = [];

    /// <summary>Remote services published into local ones (created with <see cref="ServiceConfig"/> if absent), for any number of local subscribers.</summary>
    public IReadOnlyList<BridgedName> ImportServices { get; init; } = [];

    /// <summary>The configuration of an imported service the bridge creates (default: the services' defaults with 64 KiB samples).</summary>
    public Shm.Interop.PublishSubscribeConfig ServiceConfig { get; init; } = new() { MaxPayload = 64 * 1024 };

    /// <summary>Heartbeats, credit window, CURVE keys (and the log).</summary>
    public RemoteTransportOptions Transport { get; init; } = new();

    /// <summary>Bytes per writer's ring of a local channel the bridge creates (default 1 MiB).</summary>
    public long LaneCapacity { get; init; } = 1 << 20;

    /// <summary>Writers at once on a local channel the bridge creates (default 4).</summary>
    public int Writers { get; init; } = 4;

    /// <summary>A file the bridge rewrites every second with its <see cref="ShmBridgeStatus"/> as JSON, and removes at dispose; null for none.</summary>
    public string? StatusPath { get; init; }

    internal void Validate()
    {
        if ((Listen is null) == (Connect is null))
        {
            throw new ArgumentException("A bridge either listens or connects: set exactly one of Listen and Connect.");
        }
        if (Exports.Count + Imports.Count + ExportServices.Count + ImportServices.Count == 0)
        {
            throw new ArgumentException("A bridge with nothing to export or import has nothing to do.");
        }
    }
}
