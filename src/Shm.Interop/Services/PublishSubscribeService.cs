using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A publish-subscribe service, found by name by any process (forked, spawned, unrelated, or C):
/// 1 to <see cref="PublishSubscribeConfig.MaxPublishers"/> publishers, 1 to 64 subscribers, and every
/// subscriber attached when a sample is published receives it, at its own pace. Zero copy at any size:
/// a publisher loans a sample from its pool, writes it in place and publishes it; subscribers read it
/// in place; it returns to the pool when every subscriber released it.
/// </summary>
/// <remarks>
/// <para>The service is the segment <c>/dev/shm/shm-service.NAME</c> (mode 0600, or 0660 with
/// <see cref="PublishSubscribeConfig.ShareWithGroup"/>) holding its configuration, its participants'
/// slots, a queue per publisher and subscriber, and a payload pool per publisher. The segment
/// lives while any process has the service open or attached; the last one to leave removes the name
/// (a process that died counts as gone).</para>
/// <para>Nothing lost silently: a <see cref="OverflowPolicy.Block"/> subscriber makes publishers wait
/// for it; a <see cref="OverflowPolicy.DropOldest"/> subscriber loses its oldest samples and is told
/// exactly how many (<see cref="Sample.Missed"/>, <see cref="Subscriber.Missed"/>). A participant that
/// dies never wedges the others: a dead subscriber's references return to the pool, a dead
/// publisher's samples are delivered and released as usual, and the others learn who died
/// (<see cref="Publisher.DeadSubscribers"/>, <see cref="Subscriber.DeadPublishers"/>).</para>
/// <para>The segment is untrusted: every value read from it is read once and checked; an impossible
/// one is reported with <see cref="SharedMemoryCorruptedException"/> and the participant that met it
/// refuses further use.</para>
/// </remarks>
public sealed unsafe class PublishSubscribeService : IDisposable
{
    private readonly List<object> _participants = [];
    private int _disposed;

    private PublishSubscribeService(ServiceSegment segment, PublishSubscribeConfig config, PubSubLayout layout)
    {
        Segment = segment;
        Config = config;
        Layout = layout;
        Base = segment.Base;
    }

    /// <summary>The service's name (its segment is <c>/dev/shm/shm-service.</c> and this name).</summary>
    public string Name => Segment.Name;

    /// <summary>The configuration stored in the segment.</summary>
    public PublishSubscribeConfig Config { get; }

    /// <summary>True if this process created the service (rather than opened it).</summary>
    public bool Created => Segment.Created;

    internal ServiceSegment Segment { get; }

    internal PubSubLayout Layout { get; }

    internal byte* Base { get; }

    /// <summary>Creates the service <paramref name="name"/>; fails if it exists.</summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">Its static configuration.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="ShmException">EEXIST if a service of that name exists; ENOSPC if /dev/shm lacks room; EACCES...</exception>
    public static PublishSubscribeService Create(string name, PublishSubscribeConfig config) => Acquire(name, config, create: true, open: false);

    /// <summary>Opens the existing service <paramref name="name"/>, waiting up to 5 s for a creator still initialising it.</summary>
    /// <param name="name">The service's name.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name, or /dev/shm holds something else under it.</exception>
    /// <exception cref="ShmException">ENOENT if there is no such service; EACCES if its mode forbids it.</exception>
    /// <exception cref="InvalidOperationException">It is another kind of service, or of another layout version.</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static PublishSubscribeService Open(string name) => Acquire(name, null, create: false, open: true);

    /// <summary>
    /// Opens the service <paramref name="name"/> if it exists, creates it otherwise: race-free between
    /// processes starting together (one creates, the others wait for it, up to 5 s).
    /// </summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">The configuration to create it with; an existing service must have exactly this one.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="InvalidOperationException">The existing service has another configuration (the message names the field, its value and the one asked for), or is another kind.</exception>
    /// <exception cref="ShmException">ENOSPC, EACCES...</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static PublishSubscribeService CreateOrOpen(string name, PublishSubscribeConfig config) => Acquire(name, config, create: true, open: true);

    private static PublishSubscribeService Acquire(string name, PublishSubscribeConfig? requested, bool create, bool open)
    {
        if (create)
        {
            ArgumentNullException.ThrowIfNull(requested);
        }
        PubSubLayout? wanted = requested?.Layout();
        PublishSubscribeConfig? stored = null;
        PubSubLayout? layout = null;
        UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | (requested?.ShareWithGroup == true ? UnixFileMode.GroupRead | UnixFileMode.GroupWrite : 0);
        ServiceSegment segment = ServiceSegment.Acquire(name, ServiceKind.PublishSubscribe, create, open, wanted?.TotalBytes ?? 0, mode,
            create ? header => PubSubConfig.Write((byte*)header, requested!) : null,
            opened =>
            {
                (stored, layout) = PubSubConfig.Read(opened);
                if (requested?.Mismatch(stored) is string mismatch)
                {
                    throw new InvalidOperationException($"The service '{name}' exists with another configuration: {mismatch}.");
                }
            });
        if (segment.Created)
        {
            (stored, layout) = (requested! with { ShareWithGroup = false, PoolBytesPerPublisher = requested!.ResolvedPoolBytes }, wanted);
        }
        return new PublishSubscribeService(segment, stored!, layout!);
    }

    /// <summary>Attaches a publisher: takes a free publisher slot and its pool.</summary>
    /// <exception cref="InvalidOperationException">Every publisher slot is in use (or still draining the samples of a dead publisher).</exception>
    /// <exception cref="SharedMemoryCorruptedException">A slot or queue of the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public Publisher CreatePublisher()
    {
        ThrowIfDisposed();
        return new Publisher(this);
    }

    /// <summary>Attaches a subscriber: it receives every sample published from now on (and the publishers' history, if asked).</summary>
    /// <param name="options">Its overflow policy and limits; null for the defaults.</param>
    /// <exception cref="InvalidOperationException">Every subscriber slot is in use (or still being cleaned after its subscriber died).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SubscriberOptions.MaxHeldSamples"/> is not from 1 to 1024.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A slot, queue or sample of the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public Subscriber CreateSubscriber(SubscriberOptions? options = null)
    {
        ThrowIfDisposed();
        return new Subscriber(this, options ?? new SubscriberOptions());
    }

    /// <summary>
    /// Releases this object's hold on the service and ends its participants' pending asynchronous
    /// waits (<see cref="ObjectDisposedException"/>); participants refuse further use but still leave
    /// their slots when disposed. The last holder in this process leaves the service, and removes its
    /// name if no other process uses it.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        object[] participants;
        lock (_participants)
        {
            participants = [.. _participants];
        }
        foreach (object participant in participants)
        {
            ServiceInterop.Abandon(participant);
        }
        Segment.Release();
    }

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>A participant holds the segment (mapped, and the service joined) until <see cref="Detach"/>.</summary>
    internal void Attach(object participant)
    {
        lock (_participants)
        {
            ThrowIfDisposed();
            if (!Segment.AddReference())
            {
                throw new ObjectDisposedException(nameof(PublishSubscribeService));
            }
            _participants.Add(participant);
        }
    }

    internal void Detach(object participant)
    {
        ServiceInterop.Abandon(participant);
        lock (_participants)
        {
            if (!_participants.Remove(participant))
            {
                return;
            }
        }
        Segment.Release();
    }

    internal byte* PublisherSlot(int p) => Base + Layout.PublisherSlot(p);

    internal byte* SubscriberSlot(int s) => Base + Layout.SubscriberSlot(s);

    internal byte* Queue(int p, int s) => Base + Layout.Queue(p, s);

    internal byte* Pool(int p) => Base + Layout.Pool(p);

    internal byte* HistoryRing(int p) => Base + Layout.HistoryRing(p);

    internal long OffsetOf(void* address) => (byte*)address - Base;

    /// <summary>
    /// The record a descriptor (from a queue or a history ring) names in pool <paramref name="p"/>, every
    /// value checked: the descriptor's offset and length inside the pool, and the record's header
    /// (sequence, length, flags, check word) matching it. <paramref name="where"/> is the descriptor's address.
    /// </summary>
    internal byte* CheckRecord(int p, ulong descriptor, uint sequenceLow, void* where, string structure, out long sequence, out uint generation)
    {
        uint offset = (uint)descriptor;
        uint length = (uint)(descriptor >> 32);
        if ((offset & (ServiceLayout.RecordAlignment - 1)) != 0 || length > Layout.MaxPayload || offset + ServiceLayout.RecordBytes(length) > Layout.PoolBytes)
        {
            throw Segment.Corrupt(structure, OffsetOf(where), (long)descriptor,
                $"a sample offset (low half) that is a multiple of 64 and a length (high half) of at most {Layout.MaxPayload} bytes, together inside the {Layout.PoolBytes}-byte pool", p);
        }
        byte* record = Pool(p) + offset;
        sequence = Volatile.Read(ref *(long*)(record + ServiceLayout.Sequence));
        uint stored = Volatile.Read(ref *(uint*)(record + ServiceLayout.Length));
        uint flags = Volatile.Read(ref *(uint*)(record + ServiceLayout.Flags));
        generation = Volatile.Read(ref *(uint*)(record + ServiceLayout.RecordGeneration));
        uint check = Volatile.Read(ref *(uint*)(record + ServiceLayout.Check));
        if ((uint)sequence != sequenceLow || stored != length || flags != 0 || check != ServiceLayout.CheckOf(offset, length, sequence, generation, 0))
        {
            throw Segment.Corrupt("sample record", OffsetOf(record), sequence,
                $"a published sample of sequence {sequenceLow} (low 32 bits) and {length} bytes, with the check word of its position, length, sequence and generation (0x{check:X8} read)", p);
        }
        return record;
    }

    /// <summary>A mask read from a record: only bits of configured subscriber slots.</summary>
    internal ulong CheckMask(ulong mask, byte* record, int p) =>
        (mask & ~Layout.SubscriberBits) == 0 ? mask : throw Segment.Corrupt("sample mask", OffsetOf(record), (long)mask, $"bits of the {Layout.MaxSubscribers} subscriber slots only", p);

    /// <summary>Bumps <paramref name="sequence"/> and wakes its sleepers, if <paramref name="sleeping"/> says there are any.</summary>
    internal static void Wake(byte* slot, int sequence, int sleeping)
    {
        if (Volatile.Read(ref *(int*)(slot + sleeping)) != 0)
        {
            Interlocked.Increment(ref *(int*)(slot + sequence));
            ServiceInterop.FutexWakeAll((int*)(slot + sequence));
        }
    }

    /// <summary>The owner word at <paramref name="slot"/>, read once and checked.</summary>
    internal ulong ReadOwner(byte* slot, string role, int index)
    {
        ulong word = Volatile.Read(ref *(ulong*)slot);
        return OwnerWord.IsValid(word) ? word : throw Segment.Corrupt($"{role} slot owner", OffsetOf(slot), (long)word, OwnerWord.Expected, index);
    }

    /// <summary>Marks a participant in state <paramref name="state"/> (attached, or leaving) whose process died as dead, if nobody changed its word meanwhile; true if this call did.</summary>
    internal bool MarkDeadIfGone(byte* slot, ulong word, int state = OwnerWord.Attached)
    {
        if (OwnerWord.StateOf(word) != state || ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word)))
        {
            return false;
        }
        if (Interlocked.CompareExchange(ref *(ulong*)slot, OwnerWord.WithState(word, OwnerWord.Dead), word) != word)
        {
            return false;
        }
        Segment.BumpMembership();
        ServiceInterop.CountDeadParticipant(OwnerWord.PidOf(word));
        return true;
    }

    /// <summary>
    /// A publisher that died publishing its newest sample (one past its published count: its pool's head
    /// says it, the count does not yet) may have pushed that sample to some queues and not to others. An
    /// attached subscriber whose queue never got it would hold its bit, and the pool, for ever: the bit is
    /// cleared where the queue's last entry does not name the sample (the dead publisher moves no head).
    /// </summary>
    private void ClearUndelivered(int p, byte* slot, ulong gone)
    {
        var walk = new PoolWalk(Base, Layout, p);
        while (walk.Next(out _, out _, out _))
        {
        }
        long published = Volatile.Read(ref *(long*)(slot + ServiceLayout.Published));
        byte* record = walk.Newest;
        if (walk.Problem is not null || record is null || walk.NewestSequence != published + 1)
        {
            return; // a problem is reported by the walk that clears the bits; otherwise every queue got the newest sample
        }
        uint offset = (uint)(record - Pool(p));
        ulong mask = CheckMask(Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)), record, p) & ~gone;
        for (ulong bits = mask; bits != 0; bits &= bits - 1)
        {
            int s = System.Numerics.BitOperations.TrailingZeroCount(bits);
            byte* queue = Queue(p, s);
            long head = Volatile.Read(ref *(long*)(queue + ServiceLayout.Head));
            byte* entry = queue + ServiceLayout.QueueHeaderBytes + ((head - 1) & (Layout.QueueCapacity - 1)) * ServiceLayout.DescriptorBytes;
            bool pushed = head > 0 && (uint)Volatile.Read(ref *(ulong*)entry) == offset && (uint)Volatile.Read(ref *(ulong*)(entry + 8)) == (uint)walk.NewestSequence;
            if (!pushed)
            {
                Interlocked.And(ref *(ulong*)(record + ServiceLayout.Mask), ~(1UL << s));
            }
        }
    }

    /// <summary>
    /// Takes a slot whose owner died attaching, for <paramref name="attaching"/>; true if this call took it.
    /// Before it says attached a participant references nothing and is delivered nothing, so its slot is
    /// as good as free; without this, one killed in that window would hold its slot for ever.
    /// </summary>
    internal static bool TakeIfDiedAttaching(byte* slot, ulong owner, ulong attaching) =>
        OwnerWord.StateOf(owner) == OwnerWord.Attaching && !ServiceInterop.IsAlive(OwnerWord.PidOf(owner), OwnerWord.StartOf(owner))
        && Interlocked.CompareExchange(ref *(ulong*)slot, attaching, owner) == owner;

    /// <summary>True if every publisher slot is free, attaching, or has cleaned subscriber <paramref name="s"/>'s generation <paramref name="generation"/>.</summary>
    internal bool IsCleanedEverywhere(int s, uint generation)
    {
        for (int p = 0; p < Layout.MaxPublishers; p++)
        {
            ulong owner = ReadOwner(PublisherSlot(p), "publisher", p);
            if (OwnerWord.StateOf(owner) is OwnerWord.Free or OwnerWord.Attaching)
            {
                continue;
            }
            if (Volatile.Read(ref *(uint*)(Queue(p, s) + ServiceLayout.Cleaned)) != generation)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Under the cleanup lock (skipped if a live process holds it): marks attached publishers whose
    /// process died as dead, clears the bits of subscribers that are not attached from the pools of
    /// dead or departed publishers (no publisher reclaims there, so nothing moves under the walk), says
    /// so in each such subscriber's queue, and frees a draining publisher slot once nothing in its
    /// pool is referenced or pinned.
    /// </summary>
    internal void CleanDeadPublishers()
    {
        if (!Segment.TryLockCleanup(out ulong me))
        {
            return;
        }
        try
        {
            // Bits of subscribers that are attached, or leaving (clearing their own), are theirs; the others' are stale here.
            ulong gone = 0, draining = 0;
            var generations = new uint[Layout.MaxSubscribers];
            for (int s = 0; s < Layout.MaxSubscribers; s++)
            {
                ulong owner = ReadOwner(SubscriberSlot(s), "subscriber", s);
                if (OwnerWord.StateOf(owner) is not (OwnerWord.Attached or OwnerWord.Leaving))
                {
                    gone |= 1UL << s;
                    draining |= OwnerWord.IsDraining(owner) ? 1UL << s : 0;
                    generations[s] = Volatile.Read(ref *(uint*)(SubscriberSlot(s) + ServiceLayout.Generation));
                }
            }
            for (int p = 0; p < Layout.MaxPublishers; p++)
            {
                byte* slot = PublisherSlot(p);
                ulong owner = ReadOwner(slot, "publisher", p);
                if (MarkDeadIfGone(slot, owner))
                {
                    owner = OwnerWord.WithState(owner, OwnerWord.Dead);
                }
                if (!OwnerWord.IsDraining(owner))
                {
                    continue;
                }
                if (OwnerWord.StateOf(owner) == OwnerWord.Dead)
                {
                    ClearUndelivered(p, slot, gone);
                }
                bool referenced = new PoolWalk(Base, Layout, p).ClearBits(gone, Segment);
                ulong pins = Interlocked.And(ref *(ulong*)(slot + ServiceLayout.HistoryPins), ~gone) & ~gone;
                for (int s = 0; s < Layout.MaxSubscribers; s++)
                {
                    if ((draining & (1UL << s)) != 0)
                    {
                        Volatile.Write(ref *(uint*)(Queue(p, s) + ServiceLayout.Cleaned), generations[s]);
                    }
                }
                if (!referenced && pins == 0 && Interlocked.CompareExchange(ref *(ulong*)slot, 0, owner) == owner)
                {
                    Segment.BumpMembership();
                }
            }
        }
        finally
        {
            Segment.UnlockCleanup(me);
        }
    }
}
