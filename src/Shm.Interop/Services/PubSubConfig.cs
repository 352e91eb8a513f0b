using System.Threading;

namespace Shm.Interop;

/// <summary>Writes and reads the publish-subscribe configuration in a service header (bytes 64 to 127).</summary>
internal static unsafe class PubSubConfig
{
    public static void Write(byte* header, PublishSubscribeConfig config)
    {
        *(int*)(header + ServiceLayout.MaxPublishersAt) = config.MaxPublishers;
        *(int*)(header + ServiceLayout.MaxSubscribersAt) = config.MaxSubscribers;
        *(long*)(header + ServiceLayout.MaxPayloadAt) = config.MaxPayload;
        *(long*)(header + ServiceLayout.PoolBytesAt) = config.ResolvedPoolBytes;
        *(int*)(header + ServiceLayout.QueueCapacityAt) = config.QueueCapacity;
        *(int*)(header + ServiceLayout.HistoryDepthAt) = config.HistoryDepth;
        *(int*)(header + ServiceLayout.OverflowPolicyAt) = (int)config.OverflowPolicy;
    }

    /// <summary>The stored configuration, each field read once, checked, and the layout it makes checked against the segment's size.</summary>
    public static (PublishSubscribeConfig Config, PubSubLayout Layout) Read(ServiceSegment segment)
    {
        if (Read(segment.Base, segment.Length, out PublishSubscribeConfig? config, out PubSubLayout? layout, out string field, out long offset, out long value, out string expected))
        {
            return (config!, layout!);
        }
        throw segment.Corrupt($"service configuration {field}", offset, value, expected);
    }

    /// <summary>As <see cref="Read(ServiceSegment)"/>, without throwing: false for a configuration that cannot be.</summary>
    public static bool TryRead(ServiceSegment segment, out PublishSubscribeConfig? config, out PubSubLayout? layout) =>
        Read(segment.Base, segment.Length, out config, out layout, out _, out _, out _, out _);

    public static bool Read(byte* header, long length, out PublishSubscribeConfig? config, out PubSubLayout? layout, out string field, out long offset, out long value, out string expected)
    {
        int publishers = Volatile.Read(ref *(int*)(header + ServiceLayout.MaxPublishersAt));
        int subscribers = Volatile.Read(ref *(int*)(header + ServiceLayout.MaxSubscribersAt));
        long payload = Volatile.Read(ref *(long*)(header + ServiceLayout.MaxPayloadAt));
        long pool = Volatile.Read(ref *(long*)(header + ServiceLayout.PoolBytesAt));
        int capacity = Volatile.Read(ref *(int*)(header + ServiceLayout.QueueCapacityAt));
        int history = Volatile.Read(ref *(int*)(header + ServiceLayout.HistoryDepthAt));
        int policy = Volatile.Read(ref *(int*)(header + ServiceLayout.OverflowPolicyAt));
        config = null;
        layout = null;
        if (PubSubLayout.Check(publishers, subscribers, payload, pool, capacity, history, policy, out field, out value, out expected) is not null)
        {
            offset = field switch
            {
                "max publishers" => ServiceLayout.MaxPublishersAt,
                "max subscribers" => ServiceLayout.MaxSubscribersAt,
                "max payload" => ServiceLayout.MaxPayloadAt,
                "queue capacity" => ServiceLayout.QueueCapacityAt,
                "history depth" => ServiceLayout.HistoryDepthAt,
                "overflow policy" => ServiceLayout.OverflowPolicyAt,
                _ => ServiceLayout.PoolBytesAt,
            };
            return false;
        }
        layout = new PubSubLayout(publishers, subscribers, payload, pool, capacity, history);
        if (layout.TotalBytes != length)
        {
            (field, offset, value, expected) = ("size", ServiceLayout.SegmentBytes, length, $"{layout.TotalBytes} bytes, what its configuration lays out");
            layout = null;
            return false;
        }
        config = new PublishSubscribeConfig
        {
            MaxPublishers = publishers,
            MaxSubscribers = subscribers,
            MaxPayload = (int)payload,
            PoolBytesPerPublisher = pool,
            QueueCapacity = capacity,
            HistoryDepth = history,
            OverflowPolicy = (OverflowPolicy)policy,
        };
        offset = 0;
        return true;
    }
}
