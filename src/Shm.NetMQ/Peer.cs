using System;

namespace Shm.NetMQ;

/// <summary>
/// One live session with the process at the other end: a new object each time it is heard again
/// after it was lost, so a stream bound to an old session never takes a new one for it.
/// </summary>
internal sealed class Peer(byte[]? identity, string name)
{
    /// <summary>The ROUTER routing id; null on a DEALER (one peer: the endpoint connected to).</summary>
    public byte[]? Identity { get; } = identity;

    /// <summary>How messages name it: the endpoint, or its description and the endpoint it came in on.</summary>
    public string Name { get; set; } = name;

    /// <summary>When anything was last heard from it (<see cref="Environment.TickCount64"/>).</summary>
    public long LastHeard { get; set; } = Environment.TickCount64;

    /// <summary>False once its heartbeat timeout passed: streams bound to it were told.</summary>
    public bool Alive { get; set; } = true;
}
