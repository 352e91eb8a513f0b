// Over 350 lines: the layout of a service segment and the reasons for it are one document, kept whole.
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Shm.Interop;

/*
 * THE SERVICE SEGMENT (layout version 1). Documented for C in include/shm/shm.h, section "Services";
 * any change here is a new Version there and here.
 *
 * A service is one named POSIX segment, /dev/shm/shm-service.NAME, mode 0600 (0660 on request). Its
 * size is fixed at creation and recorded in the header; every offset below is computed from the
 * configuration and checked against the segment's real size (statx), never read from shared memory.
 * All integers are little-endian; all offsets in bytes from the segment's start.
 *
 *   [0, 4096)                header and configuration                       (one page)
 *   [4096, 8192)             handle table: 256 x 16 bytes                    (who has the service open)
 *   PublisherSlots  8192     MaxPublishers x 256 bytes
 *   SubscriberSlots          MaxSubscribers x 128 bytes
 *   History                  MaxPublishers x align64(HistoryDepth x 16)
 *   Queues                   MaxPublishers x MaxSubscribers x QueueStride, queue (p, s) at index p * MaxSubscribers + s
 *   Pools  (page aligned)    MaxPublishers x PoolBytes
 *
 * HEADER
 *    0 u32 state        0, INITIALISING ("INIT"), READY ("REDY"), ABANDONED ("DEAD": its creator died initialising)
 *    4 u32 magic        "SHMS"
 *    8 u32 version      1
 *   12 u32 kind         1 publish-subscribe, 3 blackboard (BlackboardLayout.cs), 2 request-response (RequestResponseLayout.cs)
 *   16 u64 segment      the segment's size in bytes
 *   24 u64 creator      owner word of the creating process (below), written before INITIALISING
 *   32 u32 retired      0; 1 once the last participant leaving has decided to remove the name
 *   40 u64 cleanup      owner word of the process cleaning dead publishers' pools, or 0 (a lock a dead owner loses)
 *   64 configuration (publish-subscribe):
 *      64 u32 max publishers 1..64     68 u32 max subscribers 1..64     72 u64 max payload 1..2^30
 *      80 u64 pool bytes per publisher, a multiple of 4096, from (history + 2) records of the max payload to 2^31
 *      88 u32 queue capacity, a power of two 1..65536     92 u32 history depth 0..65536
 *      96 u32 default overflow policy (0 block, 1 drop oldest)
 *  128 u32 membership   bumped after every change of a participant slot: a publisher rescans the slots when it moved
 *
 * OWNER WORD (u64), how a slot names its process: bits 56-63 state, bits 32-55 pid, bits 0-31 the low 32
 * bits of the process's start time (field 22 of /proc/PID/stat, clock ticks, less the reader's boot-time
 * offset so that time namespaces agree; 0 if unreadable). A free slot is exactly 0. States: 1 attaching,
 * 2 attached, 3 dead (its process died: draining), 4 departed (it left: draining). One compare-and-swap
 * changes state and owner together, so no window shows a new owner beside an old start time. A process
 * is dead only when the kernel says so (ESRCH, a zombie, another start time). A subscriber that leaves is
 * 5 leaving while it clears its own references (no publisher delivers to it or sweeps it then), then departed.
 *
 * HANDLE SLOT (16): u64 owner (state attached while a process has the service open).
 *
 * PUBLISHER SLOT (256)
 *    0 u64 owner        8 u32 generation (bumped by every publisher that takes the slot)
 *   16 u64 pool head    24 u64 pool tail   (byte positions, published by the publisher for walkers; it keeps its own)
 *   32 u64 published    samples published so far: the last sequence, and the history ring's head
 *   40 u32 publishing   odd while a publish is in flight (incremented with a full fence before it reads
 *                       `membership`, again when its descriptors are pushed)
 *   64 u32 space sequence (futex: bumped by a subscriber that frees room while the publisher sleeps)
 *   68 u32 sleeping     128 u64 history pins (bit s: subscriber s is taking samples from this history)
 *
 * SUBSCRIBER SLOT (128)
 *    0 u64 owner        8 u32 generation   12 u32 overflow policy (0 block, 1 drop oldest)
 *   64 u32 wake sequence (futex: bumped by a publisher that pushed while the subscriber sleeps)   68 u32 sleeping
 *
 * QUEUE (p, s): a ring of descriptors from publisher p to subscriber s. QueueStride = align64(128 + 16 x capacity).
 *    0 u64 head         (publisher)        8 u64 missed (publisher: entries it took back, drop oldest)
 *   16 u32 cleaned      (publisher: the generation of subscriber s whose references it has cleared)
 *   24 u64 first        (publisher: the sequence of the first sample it delivered to this generation of s;
 *                        0 until it looked at s; a subscriber taking the slot sets tail = head, missed = first = 0)
 *   64 u64 tail         (compare-and-swap: the subscriber pops; the publisher takes the oldest back)
 *  128 entries: u32 offset of the sample in pool p, u32 length, u32 sequence (low 32 bits), u32 generation of s
 *
 * HISTORY RING of publisher p: HistoryDepth descriptors (u32 offset, u32 length, u64 sequence); the sample
 * of sequence q is at index (q - 1) mod depth, and the ring holds the last min(published, depth).
 *
 * POOL of publisher p: records, each 64-byte aligned, carved at the pool's head in publication order:
 *    0 u64 mask         bit s: subscriber s still references the sample
 *    8 u64 sequence    16 u32 length (payload bytes)   20 u32 flags (1: padding to the pool's end)
 *   24 u32 generation (the publisher slot's)   28 u32 check: Check(position, length, sequence, generation, flags)
 *   32 i64 publish timestamp (CLOCK_MONOTONIC ns)   64 the payload
 * A record never wraps: padding fills the end of the pool first.
 *
 * PROTOCOL
 * - Only the publisher writes its pool's records and positions, its queues' heads and missed counts,
 *   its history; it keeps private copies and only publishes them. Only a subscriber pops its queues.
 * - Publish: the record's mask gets a bit for every attached subscriber (full drop-oldest queues give
 *   their oldest entry back first: compare-and-swap of the tail, that sample's bit cleared, missed + 1),
 *   then the pool's head (so a walker of a publisher that dies from here on sees the record), then a
 *   descriptor goes into each queue and the head moves, then the history ring and `published`,
 *   then a full fence and a wake of each subscriber that said it sleeps. Block subscribers never find
 *   their queue full at publish: the loan waited for room.
 * - Receive: the subscriber takes the tail's descriptor with a compare-and-swap, checks it and the
 *   record (check word, sequence, its bit), and hands out the payload in place. Releasing clears its
 *   bit (an atomic and); a publisher sleeping for space is woken.
 * - Reclaim: the publisher frees records from its pool's tail whose mask is 0 and which have left the
 *   history window (sequence <= published - depth) while no subscriber pins its history.
 * - History: a subscriber that joins sets its bit in the publisher's pins, reads `published` and then
 *   `first` of its queue, takes each record of the window older than `first` (newer ones come through
 *   its queue) whose check and sequence match by setting its bit, then clears its pin. A pinned window
 *   cannot be reclaimed. So a late joiner receives the history, then the queue, with nothing twice; and
 *   Sample.Missed is the gap in sequences since the last sample (or since `first`): exact.
 * - Dead subscriber s: its slot goes from attached to dead (whoever sees it dead) and `membership` moves.
 *   Each live publisher, at its next publish or wait, clears bit s in every record of its own pool and
 *   its pins (only the publisher may: it alone reclaims, so no record changes under it), and writes the
 *   subscriber's generation to `cleaned` of queue (p, s). Pools of dead publishers are cleared the same
 *   way by the holder of the cleanup lock. The slot is free again once every publisher slot is free,
 *   attaching, or has cleaned it.
 * - Departing subscriber s (its dispose): releases what it holds and what is queued, marks its slot
 *   leaving and moves `membership` (publishers neither deliver to it nor sweep it: only it touches its
 *   bits); then, for each attached publisher, waits (up to 1 s) for a publish in flight to end
 *   (`publishing` even or moved on: any later publish reads the new membership and delivers nothing
 *   more), drains its queue again and writes `cleaned` itself; then marks its slot departed and moves
 *   `membership` again. So a subscriber that leaves frees its slot without waiting for idle publishers;
 *   one it could not wait for is cleaned by that publisher as for a dead subscriber. A leaving
 *   subscriber that dies is marked dead by the first publisher that sees it so.
 * - A subscriber's pin in a publisher's history is cleared only by itself, or, once it is dead or
 *   departed, by that publisher just before it writes `cleaned` (so a new subscriber in the slot, which
 *   needs `cleaned`, never loses its own pin).
 * - Dead publisher p: its unpublished loan is simply never published; its samples are delivered and
 *   released normally. A sample it died publishing (its sequence is one past `published`) may be in
 *   some queues and not in others: the cleaner clears the bit of each attached subscriber whose queue's
 *   last entry does not name it. A new publisher takes the slot, under the cleanup lock, once every mask in the
 *   pool is 0 and no pin is held, and starts the pool afresh with a new generation.
 * - The name: a process joins by taking a handle slot and then reading `retired`; the last to leave
 *   (no live handle nor participant) sets `retired`, looks at the slots once more, and unlinks the name
 *   (if it still names this segment) or, if someone joined meanwhile, puts `retired` back. A joiner that
 *   read `retired` set gives its slot back and starts again. Crashed processes count as gone.
 */

/// <summary>Offsets and sizes of a service segment; see the comment above this class.</summary>
internal static class ServiceLayout
{
    public const int Version = 1;

    /// <summary>"SHMS", little-endian.</summary>
    public const uint Magic = 0x534D_4853;

    /// <summary>Every service's segment is named this prefix and the service's name.</summary>
    public const string Prefix = "shm-service.";

    public const int Uninitialised = 0;
    public const int Initialising = 0x54494E49; // "INIT", as primitives
    public const int Ready = 0x59444552; // "REDY"
    public const int Abandoned = 0x44414544; // "DEAD"

    public const int PageSize = 4096;
    public const int HeaderBytes = 4096;
    public const int HandleSlots = 256;
    public const int HandleSlotBytes = 16;
    public const int HandlesOffset = 4096;
    public const int PublisherSlotsOffset = 8192;
    public const int PublisherSlotBytes = 256;
    public const int SubscriberSlotBytes = 128;
    public const int DescriptorBytes = 16;
    public const int QueueHeaderBytes = 128;
    public const int RecordHeaderBytes = 64;
    public const int RecordAlignment = 64;

    // Header.
    public const int State = 0;
    public const int MagicAt = 4;
    public const int VersionAt = 8;
    public const int KindAt = 12;
    public const int SegmentBytes = 16;
    public const int Creator = 24;
    public const int Retired = 32;
    public const int CleanupLock = 40;
    public const int Membership = 128;

    // Publish-subscribe configuration.
    public const int MaxPublishersAt = 64;
    public const int MaxSubscribersAt = 68;
    public const int MaxPayloadAt = 72;
    public const int PoolBytesAt = 80;
    public const int QueueCapacityAt = 88;
    public const int HistoryDepthAt = 92;
    public const int OverflowPolicyAt = 96;

    // Publisher slot.
    public const int Owner = 0;
    public const int Generation = 8;
    public const int PoolHead = 16;
    public const int PoolTail = 24;
    public const int Published = 32;
    public const int Publishing = 40;
    public const int SpaceSequence = 64;
    public const int PublisherSleeping = 68;
    public const int HistoryPins = 128;

    // Subscriber slot (Owner and Generation as above).
    public const int Policy = 12;
    public const int WakeSequence = 64;
    public const int SubscriberSleeping = 68;

    // Queue.
    public const int Head = 0;
    public const int Missed = 8;
    public const int Cleaned = 16;
    public const int First = 24;
    public const int Tail = 64;

    // Record.
    public const int Mask = 0;
    public const int Sequence = 8;
    public const int Length = 16;
    public const int Flags = 20;
    public const int RecordGeneration = 24;
    public const int Check = 28;
    public const int Timestamp = 32;

    /// <summary>Bit 0 of a record's flags: padding that fills the pool to its end.</summary>
    public const uint Padding = 1;

    public const int MaxParticipants = 64;
    public const long MaxPayloadLimit = 1L << 30;
    public const long MaxPoolBytes = 1L << 31;
    public const int MaxQueueCapacity = 1 << 16;
    public const int MaxHistoryDepth = 1 << 16;

    public static long Align64(long value) => (value + 63) & ~63L;

    /// <summary>A record of <paramref name="length"/> payload bytes: header and payload, 64-byte aligned.</summary>
    public static long RecordBytes(long length) => RecordHeaderBytes + Align64(length);

    public static long QueueStride(int capacity) => Align64(QueueHeaderBytes + ((long)capacity * DescriptorBytes));

    public static long HistoryStride(int depth) => Align64((long)depth * DescriptorBytes);

    /// <summary>
    /// A record's check word: a hash of where it starts in its pool, its length, sequence, publisher
    /// generation and flags. A header overwritten, left over from an earlier use of the space, or a
    /// descriptor pointing into the middle of a payload does not match (but for a 2^-32 chance).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint CheckOf(long position, uint length, long sequence, uint generation, uint flags)
    {
        ulong z = unchecked(((ulong)position ^ (length * 0x9E37_79B9_7F4A_7C15UL) ^ ((ulong)sequence * 0xC2B2_AE3D_27D4_EB4FUL) ^ ((ulong)generation << 40) ^ flags) * 0xD6E8_FEB8_6659_FD93UL);
        return (uint)(z >> 32) ^ (uint)z;
    }
}

/// <summary>A slot's owner word: state, pid and start time in one 64-bit value, changed by compare-and-swap.</summary>
internal static class OwnerWord
{
    public const int Free = 0;
    public const int Attaching = 1;
    public const int Attached = 2;
    public const int Dead = 3;
    public const int Departed = 4;
    public const int Leaving = 5;

    public static ulong Of(int state, int pid, uint start) => ((ulong)(uint)state << 56) | ((ulong)(uint)pid << 32) | start;

    public static int StateOf(ulong word) => (int)(word >> 56);

    public static int PidOf(ulong word) => (int)((word >> 32) & 0xFF_FFFF);

    public static uint StartOf(ulong word) => (uint)word;

    public static ulong WithState(ulong word, int state) => (word & 0x00FF_FFFF_FFFF_FFFFUL) | ((ulong)(uint)state << 56);

    /// <summary>True if a process following the protocol could have written <paramref name="word"/>: free is exactly 0, any other state names a pid.</summary>
    public static bool IsValid(ulong word) => word == 0 || (StateOf(word) is >= Attaching and <= Leaving && PidOf(word) is > 0 and < ServiceInterop.PidMaxLimit);

    /// <summary>True if <paramref name="word"/> names this process: false in a forked child for its parent's slots, which its copies must leave alone.</summary>
    public static bool IsThisProcess(ulong word) => PidOf(word) == ServiceInterop.Self().Pid;

    /// <summary>True for a slot that is draining: its owner died or left, and its references are being cleared.</summary>
    public static bool IsDraining(ulong word) => StateOf(word) is Dead or Departed;

    public static string Describe(ulong word) => StateOf(word) switch
    {
        Free => "free",
        Attaching => $"attaching (process {PidOf(word)})",
        Attached => $"attached (process {PidOf(word)})",
        Dead => $"dead (process {PidOf(word)})",
        Departed => $"departed (process {PidOf(word)})",
        Leaving => $"leaving (process {PidOf(word)})",
        _ => $"state {StateOf(word)}",
    };

    public const string Expected = "0 (free) or a state from 1 to 5 with a pid from 1 to 4194303";
}

/// <summary>
/// Where everything of one publish-subscribe service lives, computed once from its configuration
/// (never from shared memory), with the checks that bound every offset.
/// </summary>
internal sealed class PubSubLayout
{
    public PubSubLayout(int maxPublishers, int maxSubscribers, long maxPayload, long poolBytes, int queueCapacity, int historyDepth)
    {
        MaxPublishers = maxPublishers;
        MaxSubscribers = maxSubscribers;
        MaxPayload = maxPayload;
        PoolBytes = poolBytes;
        QueueCapacity = queueCapacity;
        HistoryDepth = historyDepth;
        SubscriberSlots = ServiceLayout.PublisherSlotsOffset + ((long)maxPublishers * ServiceLayout.PublisherSlotBytes);
        History = SubscriberSlots + ((long)maxSubscribers * ServiceLayout.SubscriberSlotBytes);
        HistoryStride = ServiceLayout.HistoryStride(historyDepth);
        Queues = History + (maxPublishers * HistoryStride);
        QueueStride = ServiceLayout.QueueStride(queueCapacity);
        Pools = (Queues + ((long)maxPublishers * maxSubscribers * QueueStride) + ServiceLayout.PageSize - 1) & ~(long)(ServiceLayout.PageSize - 1);
        TotalBytes = Pools + (maxPublishers * poolBytes);
        SubscriberBits = maxSubscribers == 64 ? ulong.MaxValue : (1UL << maxSubscribers) - 1;
    }

    public int MaxPublishers { get; }

    public int MaxSubscribers { get; }

    public long MaxPayload { get; }

    public long PoolBytes { get; }

    public int QueueCapacity { get; }

    public int HistoryDepth { get; }

    public long SubscriberSlots { get; }

    public long History { get; }

    public long HistoryStride { get; }

    public long Queues { get; }

    public long QueueStride { get; }

    public long Pools { get; }

    public long TotalBytes { get; }

    /// <summary>The bits a mask may hold: one per configured subscriber slot.</summary>
    public ulong SubscriberBits { get; }

    public long PublisherSlot(int p) => ServiceLayout.PublisherSlotsOffset + ((long)p * ServiceLayout.PublisherSlotBytes);

    public long SubscriberSlot(int s) => SubscriberSlots + ((long)s * ServiceLayout.SubscriberSlotBytes);

    public long HistoryRing(int p) => History + (p * HistoryStride);

    public long Queue(int p, int s) => Queues + (((long)p * MaxSubscribers) + s) * QueueStride;

    public long Pool(int p) => Pools + (p * PoolBytes);

    /// <summary>The smallest pool that holds a full history of the largest samples, a loan and the padding a wrap may cost.</summary>
    public static long MinimumPoolBytes(long maxPayload, int historyDepth) => (historyDepth + 2) * ServiceLayout.RecordBytes(maxPayload);

    /// <summary>The number of bytes a layout of this configuration needs, or why it cannot exist.</summary>
    public static string? Check(int maxPublishers, int maxSubscribers, long maxPayload, long poolBytes, int queueCapacity, int historyDepth, int policy, out string field, out long value, out string expected)
    {
        (field, value, expected) = maxPublishers is < 1 or > ServiceLayout.MaxParticipants ? ("max publishers", maxPublishers, "1 to 64")
            : maxSubscribers is < 1 or > ServiceLayout.MaxParticipants ? ("max subscribers", maxSubscribers, "1 to 64")
            : maxPayload is < 1 or > ServiceLayout.MaxPayloadLimit ? ("max payload", maxPayload, "1 byte to 1 GiB")
            : queueCapacity is < 1 or > ServiceLayout.MaxQueueCapacity || !BitOperations.IsPow2(queueCapacity) ? ("queue capacity", queueCapacity, "a power of two from 1 to 65536")
            : historyDepth is < 0 or > ServiceLayout.MaxHistoryDepth ? ("history depth", historyDepth, "0 to 65536")
            : policy is < 0 or > 1 ? ("overflow policy", policy, "0 (block) or 1 (drop oldest)")
            : poolBytes % ServiceLayout.PageSize != 0 || poolBytes > ServiceLayout.MaxPoolBytes || poolBytes < MinimumPoolBytes(maxPayload, historyDepth)
                ? ("pool bytes per publisher", poolBytes, $"a multiple of 4096 from {MinimumPoolBytes(maxPayload, historyDepth)} (history depth + 2 records of the max payload) to 2 GiB")
            : ("", 0, "");
        return field.Length == 0 ? null : $"{field} is {value}; expected {expected}";
    }
}
