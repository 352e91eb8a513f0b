using System;

namespace Shm.Interop;

/// <summary>
/// The static configuration of a <see cref="RequestResponseService"/>: stored in its segment by its
/// creator, fixed for its life, and compared field by field by every process that opens it with
/// <see cref="RequestResponseService.CreateOrOpen"/>.
/// </summary>
public sealed record RequestResponseConfig
{
    /// <summary>How many clients may be attached at once, 1 to 64. Default 8.</summary>
    public int MaxClients { get; init; } = 8;

    /// <summary>How many servers may be attached at once, 1 to 64. Default 4.</summary>
    public int MaxServers { get; init; } = 4;

    /// <summary>The largest request in bytes, 1 to 1,048,576. Default 4096.</summary>
    public int MaxRequestBytes { get; init; } = 4096;

    /// <summary>The largest response in bytes, 1 to 1,048,576. Default 4096.</summary>
    public int MaxResponseBytes { get; init; } = 4096;

    /// <summary>How many requests one client may have in flight (sent and not yet fully received or disposed), 1 to 256. Default 16.</summary>
    public int QueueDepth { get; init; } = 16;

    /// <summary>How many responses of one request may wait for its client before the server's next response waits for room, 1 to 256. Default 4.</summary>
    public int ResponseDepth { get; init; } = 4;

    /// <summary>
    /// True to create the segment with mode 0660 (the owner's group may open it) instead of 0600. Used
    /// only when the service is created; not part of the configuration compared on open.
    /// </summary>
    public bool ShareWithGroup { get; init; }

    /// <summary>The layout of this configuration, or <see cref="ArgumentOutOfRangeException"/> naming the field that makes it impossible.</summary>
    internal RequestResponseLayout Layout()
    {
        if (RequestResponseLayout.Check(MaxClients, MaxServers, MaxRequestBytes, MaxResponseBytes, QueueDepth, ResponseDepth, out int field, out long value, out string expected) is not null)
        {
            string property = RequestResponseLayout.NameOf(field);
            throw new ArgumentOutOfRangeException(property, value, $"The request-response configuration's {property} is {value}; expected {expected}.");
        }
        return new RequestResponseLayout(MaxClients, MaxServers, MaxRequestBytes, MaxResponseBytes, QueueDepth, ResponseDepth);
    }

    /// <summary>The first field in which <paramref name="stored"/> differs from this requested configuration, or null.</summary>
    internal string? Mismatch(RequestResponseConfig stored) =>
        stored.MaxClients != MaxClients ? $"MaxClients: the service has {stored.MaxClients}, this process asked for {MaxClients}"
        : stored.MaxServers != MaxServers ? $"MaxServers: the service has {stored.MaxServers}, this process asked for {MaxServers}"
        : stored.MaxRequestBytes != MaxRequestBytes ? $"MaxRequestBytes: the service has {stored.MaxRequestBytes}, this process asked for {MaxRequestBytes}"
        : stored.MaxResponseBytes != MaxResponseBytes ? $"MaxResponseBytes: the service has {stored.MaxResponseBytes}, this process asked for {MaxResponseBytes}"
        : stored.QueueDepth != QueueDepth ? $"QueueDepth: the service has {stored.QueueDepth}, this process asked for {QueueDepth}"
        : stored.ResponseDepth != ResponseDepth ? $"ResponseDepth: the service has {stored.ResponseDepth}, this process asked for {ResponseDepth}"
        : null;
}
