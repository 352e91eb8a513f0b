using System;

namespace Shm.Interop;

/// <summary>
/// The static configuration of a <see cref="PublishSubscribeService"/>: stored in its segment by its
/// creator, fixed for its life, and compared field by field by every process that opens it with
/// <see cref="PublishSubscribeService.CreateOrOpen"/>.
/// </summary>
public sealed record PublishSubscribeConfig
{
    /// <summary>Publishers attached at once, 1 to 64. Each owns a payload pool. Default 1.</summary>
    public int MaxPublishers { get; init; } = 1;

    /// <summary>Subscribers attached at once, 1 to 64 (one bit each in every sample's reference mask). Default 8.</summary>
    public int MaxSubscribers { get; init; } = 8;

    /// <summary>The largest sample in bytes, 1 byte to 1 GiB; a loan may be any size up to it. Default 4096.</summary>
    public int MaxPayload { get; init; } = 4096;

    /// <summary>
    /// Bytes of each publisher's pool, a multiple of 4096 up to 2 GiB; 0 (the default) for
    /// (queue capacity + history depth + 8) records of the largest sample. Samples of any size are
    /// carved from it in publication order and return to it when every subscriber released them.
    /// </summary>
    public long PoolBytesPerPublisher { get; init; }

    /// <summary>Samples queued for each subscriber by each publisher, a power of two from 1 to 65536. Default 16.</summary>
    public int QueueCapacity { get; init; } = 16;

    /// <summary>The last samples each publisher keeps for subscribers that join later, 0 to 65536. Default 0.</summary>
    public int HistoryDepth { get; init; }

    /// <summary>The overflow policy of subscribers that do not choose one. Default <see cref="OverflowPolicy.Block"/>.</summary>
    public OverflowPolicy OverflowPolicy { get; init; } = OverflowPolicy.Block;

    /// <summary>
    /// True to create the segment with mode 0660 (the owner's group may open it) instead of 0600. Used
    /// only when the service is created; not part of the configuration compared on open.
    /// </summary>
    public bool ShareWithGroup { get; init; }

    /// <summary>The pool size a configuration gets when <see cref="PoolBytesPerPublisher"/> is 0.</summary>
    internal long ResolvedPoolBytes =>
        PoolBytesPerPublisher != 0 ? PoolBytesPerPublisher
            : Math.Min(ServiceLayout.MaxPoolBytes, ((((long)QueueCapacity + HistoryDepth + 8) * ServiceLayout.RecordBytes(MaxPayload)) + ServiceLayout.PageSize - 1) & ~(long)(ServiceLayout.PageSize - 1));

    /// <summary>The layout of this configuration, or <see cref="ArgumentOutOfRangeException"/> naming the field that makes it impossible.</summary>
    internal PubSubLayout Layout()
    {
        if (PubSubLayout.Check(MaxPublishers, MaxSubscribers, MaxPayload, ResolvedPoolBytes, QueueCapacity, HistoryDepth, (int)OverflowPolicy, out string field, out long value, out string expected) is not null)
        {
            string property = field switch
            {
                "max publishers" => nameof(MaxPublishers),
                "max subscribers" => nameof(MaxSubscribers),
                "max payload" => nameof(MaxPayload),
                "queue capacity" => nameof(QueueCapacity),
                "history depth" => nameof(HistoryDepth),
                "overflow policy" => nameof(OverflowPolicy),
                _ => nameof(PoolBytesPerPublisher),
            };
            throw new ArgumentOutOfRangeException(property, value, $"The publish-subscribe configuration's {property} is {value}; expected {expected}.");
        }
        return new PubSubLayout(MaxPublishers, MaxSubscribers, MaxPayload, ResolvedPoolBytes, QueueCapacity, HistoryDepth);
    }

    /// <summary>The first field in which <paramref name="stored"/> differs from this requested configuration, or null.</summary>
    internal string? Mismatch(PublishSubscribeConfig stored) =>
        Differs("MaxPublishers", stored.MaxPublishers, MaxPublishers)
        ?? Differs("MaxSubscribers", stored.MaxSubscribers, MaxSubscribers)
        ?? Differs("MaxPayload", stored.MaxPayload, MaxPayload)
        ?? Differs("PoolBytesPerPublisher", stored.ResolvedPoolBytes, ResolvedPoolBytes)
        ?? Differs("QueueCapacity", stored.QueueCapacity, QueueCapacity)
        ?? Differs("HistoryDepth", stored.HistoryDepth, HistoryDepth)
        ?? (stored.OverflowPolicy != OverflowPolicy ? $"OverflowPolicy: the service has {stored.OverflowPolicy}, this process asked for {OverflowPolicy}" : null);

    private static string? Differs(string field, long stored, long requested) =>
        stored == requested ? null : $"{field}: the service has {stored}, this process asked for {requested}";
}

/// <summary>How one subscriber behaves (<see cref="PublishSubscribeService.CreateSubscriber"/>).</summary>
public sealed record SubscriberOptions
{
    /// <summary>What publishers do when this subscriber's queue is full; null for the service's default.</summary>
    public OverflowPolicy? OverflowPolicy { get; init; }

    /// <summary>Receive the history publishers kept (up to the service's history depth each) before new samples. Default true.</summary>
    public bool ReceiveHistory { get; init; } = true;

    /// <summary>
    /// How many received samples this subscriber may hold (not yet disposed) at once, 1 to 1024; a
    /// receive past it throws <see cref="InvalidOperationException"/>. Held samples keep their pool
    /// space, so a leak shows here instead of as a publisher waiting for space. Default 16.
    /// </summary>
    public int MaxHeldSamples { get; init; } = 16;
}
