using System;
using System.Linq;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A bad value a peer writes into a service: <see cref="Before"/> runs before the victim opens it;
/// <see cref="AtPause"/> once the victim attached (after this process, the peer, published two samples
/// to a subscriber victim, unless <see cref="Quiet"/>). <see cref="Structure"/> is what the victim must
/// name (or "Refused" for an <see cref="InvalidOperationException"/>).
/// </summary>
internal sealed record ServiceHostility(string Name, ServiceVictim Victim, string Structure)
{
    public Func<GuardedService, IDisposable?>? Before { get; init; }

    public Action<GuardedService>? AtPause { get; init; }

    public PublishSubscribeConfig Config { get; init; } = ServiceHostilities.Default;

    /// <summary>The peer publishes nothing: the victim subscriber waits.</summary>
    public bool Quiet { get; init; }

    /// <summary>The victim meets the corruption as it attaches: it never says it is ready.</summary>
    public bool FailsOnAttach { get; init; }

    /// <summary>The peer's subscriber (for publisher victims) drops oldest instead of blocking.</summary>
    public bool DroppingPeer { get; init; }

    public override string ToString() => Name;
}

/// <summary>The table of corruptions the .NET victims face: one or more per structure.</summary>
internal static class ServiceHostilities
{
    public static readonly PublishSubscribeConfig Default = new() { MaxPublishers = 1, MaxSubscribers = 4, QueueCapacity = 4, MaxPayload = 1024 };

    public static readonly ServiceHostility[] All =
    [
        // The header and configuration, read once by Open.
        new("magic", ServiceVictim.Opener, "service magic") { Before = g => Header(g, ServiceBytes.Magic, 0u) },
        new("unknown kind", ServiceVictim.Opener, "service kind") { Before = g => Header(g, ServiceBytes.Kind, 7) },
        new("another layout version", ServiceVictim.Opener, "Refused") { Before = g => Header(g, ServiceBytes.Version, 2) },
        new("segment size in the header", ServiceVictim.Opener, "service segment size") { Before = g => Header(g, ServiceBytes.SegmentBytes, g.Bytes.Region.Length + 4096) },
        new("state neither ready nor initialising", ServiceVictim.Opener, "service state") { Before = g => Header(g, ServiceBytes.State, 0x1234_5678) },
        new("max subscribers 0", ServiceVictim.Opener, "service configuration max subscribers") { Before = g => Header(g, ServiceBytes.MaxSubscribersAt, 0) },
        new("max subscribers 65", ServiceVictim.Opener, "service configuration max subscribers") { Before = g => Header(g, ServiceBytes.MaxSubscribersAt, 65) },
        new("max publishers negative", ServiceVictim.Opener, "service configuration max publishers") { Before = g => Header(g, ServiceBytes.MaxPublishersAt, -1) },
        new("max payload of 2 GiB", ServiceVictim.Opener, "service configuration max payload") { Before = g => Header(g, ServiceBytes.MaxPayloadAt, 1L << 31) },
        new("queue capacity not a power of two", ServiceVictim.Opener, "service configuration queue capacity") { Before = g => Header(g, ServiceBytes.QueueCapacityAt, 3) },
        new("history depth past its bound", ServiceVictim.Opener, "service configuration history depth") { Before = g => Header(g, ServiceBytes.HistoryDepthAt, 1 << 20) },
        new("overflow policy 9", ServiceVictim.Opener, "service configuration overflow policy") { Before = g => Header(g, ServiceBytes.PolicyAt, 9) },
        new("pools larger than the segment", ServiceVictim.Opener, "service configuration size") { Before = g => Header(g, ServiceBytes.PoolBytesAt, 1L << 30) },
        new("pool bytes not a multiple of 4096", ServiceVictim.Opener, "service configuration pool bytes per publisher") { Before = g => Header(g, ServiceBytes.PoolBytesAt, 2048L) },
        new("handle slot naming no process", ServiceVictim.Opener, "service handle slot") { Before = g => FillHandles(g, 0xFFFF_FFFF_FFFF_FFFF) },
        new("retired flag 7", ServiceVictim.Opener, "service retired flag") { Before = g => Header(g, ServiceBytes.Retired, 7) },

        // Queue positions and descriptors, as a subscriber reads them.
        new("queue head a queue and more ahead", ServiceVictim.Subscriber, "subscriber queue head") { AtPause = g => Queue(g, ServiceBytes.Head, 4 + 1 + Queue<long>(g, ServiceBytes.Tail)) },
        new("queue head behind the tail", ServiceVictim.Subscriber, "subscriber queue head") { AtPause = g => Queue(g, ServiceBytes.Head, Queue<long>(g, ServiceBytes.Tail) - 8) },
        new("queue tail moved back", ServiceVictim.Subscriber, "subscriber queue tail") { AtPause = g => Queue(g, ServiceBytes.Tail, -1L) },
        new("descriptor offset not 64-aligned", ServiceVictim.Subscriber, "subscriber queue entry") { AtPause = g => Entry(g, 0, EntryField<uint>(g, 0) + 8) },
        new("descriptor offset past the pool", ServiceVictim.Subscriber, "subscriber queue entry") { AtPause = g => Entry(g, 0, (uint)g.Bytes.PoolBytes) },
        new("descriptor offset at the pool's last record, too long for it", ServiceVictim.Subscriber, "subscriber queue entry") { AtPause = g => Entry(g, 0, (uint)g.Bytes.PoolBytes - 64) },
        new("descriptor length past the max payload", ServiceVictim.Subscriber, "subscriber queue entry") { AtPause = g => Entry(g, 4, 1025u) },
        new("descriptor of another subscriber generation", ServiceVictim.Subscriber, "subscriber queue entry") { AtPause = g => Entry(g, 12, EntryField<uint>(g, 12) + 1) },
        new("descriptor naming another sequence", ServiceVictim.Subscriber, "sample record") { AtPause = g => Entry(g, 8, EntryField<uint>(g, 8) + 5) },
        new("first sequence past the sample", ServiceVictim.Subscriber, "sample sequence") { AtPause = g => Queue(g, ServiceBytes.First, 100L) },

        // Sample records and masks, as a subscriber reads them.
        new("sample sequence rewritten", ServiceVictim.Subscriber, "sample record") { AtPause = g => Record(g, ServiceBytes.Sequence, Record<long>(g, ServiceBytes.Sequence) + (1L << 40)) },
        new("sample length rewritten, its check left", ServiceVictim.Subscriber, "sample record") { AtPause = g => Record(g, ServiceBytes.Length, Record<uint>(g, ServiceBytes.Length) + 8) },
        new("padding flag on a sample", ServiceVictim.Subscriber, "sample record") { AtPause = g => Record(g, ServiceBytes.Flags, 1u) },
        new("check word rewritten", ServiceVictim.Subscriber, "sample record") { AtPause = g => Record(g, ServiceBytes.Check, Record<uint>(g, ServiceBytes.Check) ^ 1) },
        new("mask without the subscriber's bit", ServiceVictim.Subscriber, "sample mask") { AtPause = g => Record(g, ServiceBytes.Mask, 0UL) },
        new("mask with a bit of no subscriber slot", ServiceVictim.Subscriber, "sample mask") { AtPause = g => Record(g, ServiceBytes.Mask, Record<ulong>(g, ServiceBytes.Mask) | (1UL << 40)) },

        // A participant slot, as a waiting subscriber looks at it.
        new("publisher owner naming no state", ServiceVictim.Subscriber, "publisher slot owner") { Quiet = true, AtPause = g => g.Bytes.Write(g.Bytes.PublisherSlot(0), 0x0700_0001_0000_0000UL) },

        // What a publisher reads: subscriber slots, queue tails, masks of its own samples, pins.
        new("subscriber owner naming no state", ServiceVictim.Publisher, "subscriber slot owner") { AtPause = g => Changed(g, () => g.Bytes.Write(g.Bytes.SubscriberSlot(1), 0x0900_0001_0000_0001UL)) },
        new("subscriber owner with a negative pid", ServiceVictim.Publisher, "subscriber slot owner") { AtPause = g => Changed(g, () => g.Bytes.Write(g.Bytes.SubscriberSlot(2), 0x02FF_FFFF_0000_0001UL)) },
        new("subscriber overflow policy 7", ServiceVictim.Publisher, "subscriber overflow policy") { AtPause = g => NewGeneration(g, () => g.Bytes.Write(g.Bytes.SubscriberSlot(0) + ServiceBytes.Policy, 7)) },
        new("queue head a queue ahead of its tail", ServiceVictim.Publisher, "subscriber queue head") { AtPause = g => NewGeneration(g, () => Queue(g, ServiceBytes.Head, 100L)) },
        new("missed count negative", ServiceVictim.Publisher, "subscriber queue missed count") { AtPause = g => NewGeneration(g, () => Queue(g, ServiceBytes.Missed, -1L)) },
        new("queue tail ahead of the head", ServiceVictim.Publisher, "subscriber queue tail") { AtPause = g => Queue(g, ServiceBytes.Tail, Queue<long>(g, ServiceBytes.Head) + 5) },
        new("queue tail behind what was taken", ServiceVictim.Publisher, "subscriber queue tail") { AtPause = g => Queue(g, ServiceBytes.Tail, -1L) },
        new("own sample's mask with a bit of no subscriber slot", ServiceVictim.Publisher, "sample mask") { AtPause = g => Record(g, ServiceBytes.Mask, 1UL << 40) },
        new("history pins with a bit of no subscriber slot", ServiceVictim.Publisher, "publisher history pins")
        {
            Config = Default with { HistoryDepth = 1 },
            AtPause = g => g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.HistoryPins, 1UL << 40),
        },
        new("taken-back descriptor of another generation", ServiceVictim.Publisher, "subscriber queue entry") { DroppingPeer = true, AtPause = g => Entry(g, 12, EntryField<uint>(g, 12) + 1) },

        // The pool of a publisher that left, as a publisher attaching walks it to take the slot.
        new("departed publisher's sample rewritten", ServiceVictim.Publisher, "sample record") { FailsOnAttach = true, Before = g => Departed(g, () => Record(g, ServiceBytes.Length, 5000u)) },
        new("departed publisher's pool positions unaligned", ServiceVictim.Publisher, "pool positions") { FailsOnAttach = true, Before = g => Departed(g, () => g.Bytes.Write(g.Bytes.PublisherSlot(0) + ServiceBytes.PoolHead, 3L)) },
    ];

    public static TheoryData<string> Names() => [.. All.Select(h => h.Name)];

    public static ServiceHostility Named(string name) => All.Single(h => h.Name == name);

    private static IDisposable? Header<T>(GuardedService g, long offset, T value)
        where T : unmanaged
    {
        g.Bytes.Write(offset, value);
        return null;
    }

    private static IDisposable? FillHandles(GuardedService g, ulong value)
    {
        for (int i = 1; i < 256; i++)
        {
            g.Bytes.Write(4096 + (16L * i), value);
        }
        return null;
    }

    private static T Queue<T>(GuardedService g, int field)
        where T : unmanaged => g.Bytes.Read<T>(g.Bytes.Queue(0, 0) + field);

    private static void Queue<T>(GuardedService g, int field, T value)
        where T : unmanaged => g.Bytes.Write(g.Bytes.Queue(0, 0) + field, value);

    /// <summary>A field of the descriptor at queue (0, 0)'s tail.</summary>
    private static T EntryField<T>(GuardedService g, int field)
        where T : unmanaged => g.Bytes.Read<T>(g.Bytes.QueueEntry(0, 0, Queue<long>(g, ServiceBytes.Tail)) + field);

    private static void Entry<T>(GuardedService g, int field, T value)
        where T : unmanaged => g.Bytes.Write(g.Bytes.QueueEntry(0, 0, Queue<long>(g, ServiceBytes.Tail)) + field, value);

    /// <summary>The first record of pool 0 (where the first sample went).</summary>
    private static T Record<T>(GuardedService g, int field)
        where T : unmanaged => g.Bytes.Read<T>(g.Bytes.Pool(0) + field);

    private static void Record<T>(GuardedService g, int field, T value)
        where T : unmanaged => g.Bytes.Write(g.Bytes.Pool(0) + field, value);

    /// <summary>Writes, then moves the membership word, so that a publisher looks at the slots again.</summary>
    private static void Changed(GuardedService g, Action write)
    {
        write();
        g.Bytes.Write(ServiceBytes.Membership, g.Bytes.Read<int>(ServiceBytes.Membership) + 1);
    }

    /// <summary>As if subscriber 0 had been replaced by a new generation: the publisher reads its policy and queue afresh.</summary>
    private static void NewGeneration(GuardedService g, Action write) => Changed(g, () =>
    {
        write();
        g.Bytes.Write(g.Bytes.SubscriberSlot(0) + ServiceBytes.Generation, g.Bytes.Read<uint>(g.Bytes.SubscriberSlot(0) + ServiceBytes.Generation) + 1);
    });

    /// <summary>
    /// A publisher of this process publishes two samples to a subscriber of this process that keeps them,
    /// then its slot is made to say it departed, then the peer writes: the victim, attaching, must walk that pool.
    /// </summary>
    private static IDisposable Departed(GuardedService g, Action write)
    {
        Publisher left = g.Service.CreatePublisher();
        Payloads.Publish(left, 0, 0, 100);
        Payloads.Publish(left, 0, 1, 100);
        ulong owner = g.Bytes.Read<ulong>(g.Bytes.PublisherSlot(0));
        g.Bytes.Write(g.Bytes.PublisherSlot(0), (owner & 0x00FF_FFFF_FFFF_FFFFUL) | (4UL << 56));
        write();
        return left;
    }
}
