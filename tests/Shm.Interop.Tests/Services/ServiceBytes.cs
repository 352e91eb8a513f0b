using System;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A service's segment as raw bytes, mapped a second time by name: what a peer (hostile or not) sees
/// and may write. The offsets are the layout documented in shm.h and ServiceLayout.cs, written again
/// here, so a change to the layout that forgets the documentation fails these tests.
/// </summary>
internal sealed class ServiceBytes : IDisposable
{
    // Header and configuration.
    public const int State = 0, Magic = 4, Version = 8, Kind = 12, SegmentBytes = 16, Creator = 24, Retired = 32, CleanupLock = 40, Membership = 128;
    public const int MaxPublishersAt = 64, MaxSubscribersAt = 68, MaxPayloadAt = 72, PoolBytesAt = 80, QueueCapacityAt = 88, HistoryDepthAt = 92, PolicyAt = 96;

    // Slots, queues, records.
    public const int Owner = 0, Generation = 8, PoolHead = 16, PoolTail = 24, Published = 32, SpaceSequence = 64, PublisherSleeping = 68, HistoryPins = 128;
    public const int Policy = 12, WakeSequence = 64, SubscriberSleeping = 68;
    public const int Head = 0, Missed = 8, Cleaned = 16, First = 24, Tail = 64, Entries = 128;
    public const int Mask = 0, Sequence = 8, Length = 16, Flags = 20, RecordGeneration = 24, Check = 28;

    public ServiceBytes(string name)
    {
        Region = SharedRegion.OpenNamed(Service.SegmentPrefix + name);
        MaxPublishers = Region.Read<int>(MaxPublishersAt);
        MaxSubscribers = Region.Read<int>(MaxSubscribersAt);
        PoolBytes = Region.Read<long>(PoolBytesAt);
        QueueCapacity = Region.Read<int>(QueueCapacityAt);
        HistoryDepth = Region.Read<int>(HistoryDepthAt);
        long subscribers = 8192 + (MaxPublishers * 256L);
        long history = subscribers + (MaxSubscribers * 128L);
        long historyStride = Align64(HistoryDepth * 16L);
        long queues = history + (MaxPublishers * historyStride);
        long queueStride = Align64(128 + (QueueCapacity * 16L));
        long pools = (queues + (MaxPublishers * (long)MaxSubscribers * queueStride) + 4095) & ~4095L;
        Assert.Equal(pools + (MaxPublishers * PoolBytes), Region.Length); // the documented layout is the one in the segment
        (SubscriberSlots, HistoryRings, HistoryStride, Queues, QueueStride, Pools) = (subscribers, history, historyStride, queues, queueStride, pools);
    }

    public SharedRegion Region { get; }

    public int MaxPublishers { get; }

    public int MaxSubscribers { get; }

    public long PoolBytes { get; }

    public int QueueCapacity { get; }

    public int HistoryDepth { get; }

    private long SubscriberSlots { get; }

    private long HistoryRings { get; }

    private long HistoryStride { get; }

    private long Queues { get; }

    private long QueueStride { get; }

    private long Pools { get; }

    public static long Align64(long value) => (value + 63) & ~63L;

    public long PublisherSlot(int p) => 8192 + (p * 256L);

    public long SubscriberSlot(int s) => SubscriberSlots + (s * 128L);

    public long HistoryRing(int p) => HistoryRings + (p * HistoryStride);

    public long Queue(int p, int s) => Queues + (((p * (long)MaxSubscribers) + s) * QueueStride);

    public long QueueEntry(int p, int s, long position) => Queue(p, s) + Entries + ((position & (QueueCapacity - 1)) * 16);

    public long Pool(int p) => Pools + (p * PoolBytes);

    public T Read<T>(long offset)
        where T : unmanaged => Region.Read<T>(offset);

    public void Write<T>(long offset, T value)
        where T : unmanaged => Region.Write(offset, value);

    /// <summary>The state byte of an owner word (0 free, 1 attaching, 2 attached, 3 dead, 4 departed).</summary>
    public static int StateOf(ulong owner) => (int)(owner >> 56);

    public static int PidOf(ulong owner) => (int)((owner >> 32) & 0xFF_FFFF);

    /// <summary>
    /// Bytes of every pool still referenced, counted from the shared memory itself: each pool walked from
    /// the tail its publisher published to its head, record by record (a padding record runs to the end of
    /// the pool; a sample is 64 bytes of header and its length rounded up to 64), summing the records whose
    /// reference mask is not 0. History is not counted (a service with history keeps samples on purpose).
    /// </summary>
    public long ReferencedPoolBytes(out string where)
    {
        long referenced = 0;
        where = "";
        for (int p = 0; p < MaxPublishers; p++)
        {
            long tail = Read<long>(PublisherSlot(p) + PoolTail), head = Read<long>(PublisherSlot(p) + PoolHead);
            Assert.True(tail % 64 == 0 && head % 64 == 0 && head - tail >= 0 && head - tail <= PoolBytes, $"pool {p}: tail {tail}, head {head}");
            for (long position = tail; position < head;)
            {
                long offset = position % PoolBytes, record = Pool(p) + offset;
                bool padding = Read<uint>(record + Flags) == 1;
                long size = padding ? PoolBytes - offset : 64 + Align64(Read<uint>(record + Length));
                ulong mask = Read<ulong>(record + Mask);
                if (mask != 0)
                {
                    referenced += size;
                    where += $"pool {p} record at {offset} (sequence {Read<long>(record + Sequence)}) mask 0x{mask:X}; ";
                }
                position += size;
            }
        }
        return referenced;
    }

    public void Dispose() => Region.Dispose();
}
