using System;
using System.Collections.Generic;
using System.Text.Json.Serialization;

namespace Shm.NetMQ;

/// <summary>What a bridge is doing: its peers, each channel's flow, and what went wrong lately.</summary>
/// <param name="Pid">The bridge's process.</param>
/// <param name="Endpoint">Listened at or connected to.</param>
/// <param name="Listening">True if it listens.</param>
/// <param name="Peers">The peers heard from within the heartbeat timeout.</param>
/// <param name="Channels">One per export and import.</param>
/// <param name="Recent">The last refusals, losses and errors, oldest first.</param>
/// <param name="UpdatedUtc">When this was taken.</param>
public sealed record ShmBridgeStatus(int Pid, string Endpoint, bool Listening, IReadOnlyList<string> Peers, IReadOnlyList<BridgedChannelStatus> Channels, IReadOnlyList<string> Recent, DateTime UpdatedUtc);

/// <summary>One channel a bridge carries.</summary>
/// <param name="Remote">The name on the wire.</param>
/// <param name="Local">The local channel.</param>
/// <param name="Direction"><c>export</c> or <c>import</c>.</param>
/// <param name="State">Streaming, waiting for a peer, ended, or failed (with why).</param>
/// <param name="Peer">The peer streaming it, if any.</param>
/// <param name="Messages">Messages carried since the bridge started.</param>
/// <param name="MessagesPerSecond">Over the last status period.</param>
/// <param name="Backlog">Messages held in the bridge's memory (bounded by the credit window).</param>
/// <param name="Lost">Messages known lost in transit (gaps in a session's numbers).</param>
public sealed record BridgedChannelStatus(string Remote, string Local, string Direction, string State, string? Peer, long Messages, double MessagesPerSecond, int Backlog, long Lost);

[JsonSerializable(typeof(ShmBridgeStatus))]
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class StatusJson : JsonSerializerContext;
