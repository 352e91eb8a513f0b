// Over 350 lines: the publisher's side of the protocol (attach, loan, publish, reclaim, the waits) reads best whole.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A publisher of a <see cref="PublishSubscribeService"/>: owns one publisher slot and its payload pool
/// while it is not disposed. It lends one sample at a time (<see cref="Loan"/>), of any size up to the
/// service's maximum, carved in place from its pool; <see cref="SampleLoan.Publish(int)"/> hands it to
/// every attached subscriber by offset, whatever its size. Use it from one thread at a time.
/// </summary>
/// <remarks>
/// <para>Waiting is done by the loan: it waits until its pool has room and every
/// <see cref="OverflowPolicy.Block"/> subscriber's queue has room, so publishing never waits. Space
/// comes back as subscribers release samples; a <see cref="OverflowPolicy.DropOldest"/> subscriber's
/// oldest queued sample is taken back (and counted) when its queue is full or the pool needs its
/// space. A subscriber that holds samples holds their space.</para>
/// <para>While it waits, the publisher looks every 50 ms whether the subscribers holding it back still
/// live: a dead one is marked, its references are cleared from this pool, and it holds nothing back
/// any more (<see cref="DeadSubscribers"/>).</para>
/// <para>Its pool's positions, records and queue heads are its own: it keeps private copies and only
/// publishes them. Each value it reads (tails, masks, pins, slots) is checked; an impossible one is
/// reported with <see cref="SharedMemoryCorruptedException"/> and the publisher refuses further use.</para>
/// </remarks>
public sealed unsafe partial class Publisher : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;
    private static readonly long LivenessEvery = Stopwatch.Frequency / 20;
    private static readonly TimeSpan ParkSlice = TimeSpan.FromMilliseconds(100);

    private readonly PublishSubscribeService _service;
    private readonly PubSubLayout _layout;
    private readonly byte* _slot;
    private readonly byte* _pool;
    private readonly byte* _history;
    private readonly long _poolBytes;
    private readonly int _capacity;
    private readonly int _depth;
    private readonly ulong _owner;
    private readonly uint _generation;
    private readonly Target[] _targets;
    private readonly int[] _attached;
    private readonly List<int> _deadSubscribers = [];
    private RecordRing _records = new();
    private int _attachedCount;
    private long _poolHead;
    private long _poolTail;
    private long _published;
    private int _membership;
    private long _loanPosition = -1;
    private int _loanSize;
    private long _loanNumber;
    private long _livenessCheckedAt;
    private bool _disposed;
    private SharedMemoryCorruptedException? _corruption;

    internal Publisher(PublishSubscribeService service)
    {
        _service = service;
        _layout = service.Layout;
        _poolBytes = _layout.PoolBytes;
        _capacity = _layout.QueueCapacity;
        _depth = _layout.HistoryDepth;
        _targets = new Target[_layout.MaxSubscribers];
        _attached = new int[_layout.MaxSubscribers];
        service.Attach(this);
        int index = -1;
        ulong attaching = 0;
        try
        {
            (int pid, uint start) = ServiceInterop.Self();
            attaching = OwnerWord.Of(OwnerWord.Attaching, pid, start);
            _owner = OwnerWord.Of(OwnerWord.Attached, pid, start);
            index = Claim(attaching);
            if (index < 0)
            {
                service.CleanDeadPublishers(); // frees the slots of dead publishers whose samples were all released
                index = Claim(attaching);
            }
            if (index < 0)
            {
                throw new InvalidOperationException($"All {_layout.MaxPublishers} publisher slots of the service '{service.Name}' are in use (or still hold samples of a publisher that left or died).");
            }
            Index = index;
            _slot = service.PublisherSlot(index);
            _pool = service.Pool(index);
            _history = service.HistoryRing(index);
            _generation = Volatile.Read(ref *(uint*)(_slot + ServiceLayout.Generation)) + 1;
            Volatile.Write(ref *(uint*)(_slot + ServiceLayout.Generation), _generation);
            Volatile.Write(ref *(long*)(_slot + ServiceLayout.PoolHead), 0);
            Volatile.Write(ref *(long*)(_slot + ServiceLayout.PoolTail), 0);
            Volatile.Write(ref *(long*)(_slot + ServiceLayout.Published), 0);
            if (Interlocked.CompareExchange(ref *(ulong*)_slot, _owner, attaching) != attaching)
            {
                throw Corrupt("publisher slot owner", _slot, (long)Volatile.Read(ref *(ulong*)_slot), $"0x{attaching:X16}, this publisher attaching (only it moves its slot on)");
            }
            attaching = _owner;
            if (service.Segment.IsRetired())
            {
                throw new InvalidOperationException($"The service '{service.Name}' is being removed by its last participant: open it again.");
            }
            _membership = service.Segment.Membership - 1;
            Rescan();
        }
        catch
        {
            if (index >= 0)
            {
                Interlocked.CompareExchange(ref *(ulong*)service.PublisherSlot(index), 0, attaching); // nothing was published: free at once
            }
            service.Detach(this);
            throw;
        }
    }

    /// <summary>Which publisher slot (and pool) this publisher owns.</summary>
    public int Index { get; }

    /// <summary>The largest sample it may loan.</summary>
    public int MaxPayload => (int)_layout.MaxPayload;

    /// <summary>Samples this publisher published.</summary>
    public long Published => _published;

    /// <summary>Processes whose subscribers died while attached, as this publisher found them (their references were cleared from its pool).</summary>
    public IReadOnlyList<int> DeadSubscribers => _deadSubscribers;

    /// <summary>Lends <paramref name="size"/> bytes of the pool, waiting as long as it takes for room.</summary>
    /// <param name="size">0 to <see cref="MaxPayload"/> bytes.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is negative or larger than <see cref="MaxPayload"/>.</exception>
    /// <exception cref="InvalidOperationException">A loan is open already.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible: the publisher is not used further.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed.</exception>
    public SampleLoan Loan(int size, CancellationToken cancellationToken = default) =>
        TryLoan(size, out SampleLoan loan, Timeout.InfiniteTimeSpan, cancellationToken) ? loan : throw new TimeoutException();

    /// <summary>Lends <paramref name="size"/> bytes if there is room now; false otherwise.</summary>
    /// <param name="size">0 to <see cref="MaxPayload"/> bytes.</param>
    /// <param name="loan">The space to fill.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is negative or larger than <see cref="MaxPayload"/>.</exception>
    /// <exception cref="InvalidOperationException">A loan is open already.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed.</exception>
    public bool TryLoan(int size, out SampleLoan loan) => TryLoan(size, out loan, TimeSpan.Zero);

    /// <summary>Lends <paramref name="size"/> bytes, waiting up to <paramref name="timeout"/> for room; false if none came.</summary>
    /// <param name="size">0 to <see cref="MaxPayload"/> bytes.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="loan">The space to fill.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> or <paramref name="timeout"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">A loan is open already.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed.</exception>
    public bool TryLoan(int size, out SampleLoan loan, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        BeginLoan(size);
        long deadline = ServiceInterop.Deadline(timeout);
        long spinUntil = 0;
        while (true)
        {
            if (TryAllocate(size, out loan))
            {
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline)
            {
                return false;
            }
            CheckLiveness(now);
            spinUntil = spinUntil == 0 ? now + SpinTicks : spinUntil;
            if (now < spinUntil)
            {
                Thread.SpinWait(4);
                continue;
            }
            Park(size, deadline, cancellationToken);
        }
    }

    /// <summary>
    /// Leaves the slot: an open loan is given back; samples published stay deliverable and return to the
    /// pool as subscribers release them (the slot is free for another publisher once they all did).
    /// Ends pending asynchronous waits with <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _loanPosition = -1;
        try
        {
            ulong departed = OwnerWord.WithState(_owner, OwnerWord.Departed);
            if (OwnerWord.IsThisProcess(_owner) && Interlocked.CompareExchange(ref *(ulong*)_slot, departed, _owner) == _owner) // a forked child's copy: the slot is its parent's
            {
                _service.Segment.BumpMembership();
                Interlocked.MemoryBarrier(); // the owner changed before pins are read: a subscriber pinning later sees it and takes nothing
                // Freed only under the cleanup lock: a cleaner may be walking this (now draining) pool, and a
                // slot freed under it could be taken by a new publisher mid-walk. Without the lock the slot
                // stays departed, and the next cleaner frees it.
                if (_corruption is null && !AnyReferenced() && Volatile.Read(ref *(ulong*)(_slot + ServiceLayout.HistoryPins)) == 0
                    && _service.Segment.TryLockCleanup(out ulong me))
                {
                    try
                    {
                        if (Interlocked.CompareExchange(ref *(ulong*)_slot, 0, departed) == departed)
                        {
                            _service.Segment.BumpMembership();
                        }
                    }
                    finally
                    {
                        _service.Segment.UnlockCleanup(me);
                    }
                }
            }
        }
        catch (SharedMemoryCorruptedException)
        {
            // Leaving must not throw: the slot stays departed, and is cleaned like a dead one's.
        }
        finally
        {
            _service.Detach(this);
        }
    }

    internal bool IsOpen(long number) => !_disposed && _loanPosition >= 0 && number == _loanNumber;

    internal void Publish(long number, int length)
    {
        ThrowIfUnusable();
        if (!IsOpen(number))
        {
            throw new InvalidOperationException("This loan was published or discarded already.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _loanSize);
        int* publishing = (int*)(_slot + ServiceLayout.Publishing);
        int started = Interlocked.Increment(ref *publishing); // odd, and a full fence before membership is read
        try
        {
            PublishCore(length);
        }
        finally
        {
            Volatile.Write(ref *publishing, started + 1);
        }
    }

    private void PublishCore(int length)
    {
        if (_service.Segment.Membership != _membership)
        {
            Rescan();
        }
        long position = _loanPosition;
        long offset = position % _poolBytes;
        byte* record = _pool + offset;
        long size = ServiceLayout.RecordBytes(length);
        _records.Newest.Size = size; // a shorter sample gives the rest of its loan back
        _poolHead = position + size;
        long sequence = _published + 1;
        ulong mask = 0;
        for (int i = 0; i < _attachedCount; i++)
        {
            int s = _attached[i];
            ref Target target = ref _targets[s];
            while (target.Head - target.TailSeen >= _capacity && target.Head - (target.TailSeen = ReadTail(s)) >= _capacity)
            {
                if (!target.DropOldest)
                {
                    throw Corrupt("subscriber queue tail", _service.Queue(Index, s) + ServiceLayout.Tail, target.TailSeen,
                        $"room in a block subscriber's queue (the loan waited for it): a tail from {target.Head - _capacity + 1} to {target.Head}", s);
                }
                TakeBack(s, 0, 0);
            }
            mask |= 1UL << s;
        }
        *(long*)(record + ServiceLayout.Sequence) = sequence;
        *(uint*)(record + ServiceLayout.Length) = (uint)length;
        *(uint*)(record + ServiceLayout.Flags) = 0;
        *(uint*)(record + ServiceLayout.RecordGeneration) = _generation;
        *(long*)(record + ServiceLayout.Timestamp) = Stopwatch.GetTimestamp();
        *(uint*)(record + ServiceLayout.Check) = ServiceLayout.CheckOf(offset, (uint)length, sequence, _generation, 0);
        Volatile.Write(ref *(ulong*)(record + ServiceLayout.Mask), mask); // before any descriptor names it
        // The pool's head before any descriptor: a walker of this pool after this process died here must see
        // the record that queues may name (it was after them: a sample held was reused by the next publisher).
        Volatile.Write(ref *(long*)(_slot + ServiceLayout.PoolHead), _poolHead);
        ulong descriptor = (uint)offset | ((ulong)(uint)length << 32);
        for (int i = 0; i < _attachedCount; i++)
        {
            int s = _attached[i];
            ref Target target = ref _targets[s];
            byte* queue = _service.Queue(Index, s);
            byte* entry = queue + ServiceLayout.QueueHeaderBytes + ((target.Head & (_capacity - 1)) * ServiceLayout.DescriptorBytes);
            *(ulong*)entry = descriptor;
            *(ulong*)(entry + 8) = (uint)sequence | ((ulong)target.Generation << 32);
            Volatile.Write(ref *(long*)(queue + ServiceLayout.Head), ++target.Head);
        }
        if (_depth > 0)
        {
            // The descriptor's sequence is 0 while it changes: a subscriber that reads the same sequence
            // before and after its offset and length read a whole descriptor.
            byte* entry = _history + ((sequence - 1) % _depth * ServiceLayout.DescriptorBytes);
            Volatile.Write(ref *(long*)(entry + 8), 0);
            Interlocked.MemoryBarrier();
            *(ulong*)entry = descriptor;
            Volatile.Write(ref *(long*)(entry + 8), sequence);
        }
        _published = sequence;
        Volatile.Write(ref *(long*)(_slot + ServiceLayout.Published), sequence);
        _loanPosition = -1;
        Interlocked.MemoryBarrier(); // the heads before the sleep flags: a subscriber that announced its sleep after is seen
        for (int i = 0; i < _attachedCount; i++)
        {
            PublishSubscribeService.Wake(_service.SubscriberSlot(_attached[i]), ServiceLayout.WakeSequence, ServiceLayout.SubscriberSleeping);
        }
    }

    /// <summary>Gives an unpublished loan's space back (it is the newest record).</summary>
    internal void Discard(long number)
    {
        if (IsOpen(number))
        {
            _records.RemoveNewest();
            _poolHead = _loanPosition;
            _loanPosition = -1;
        }
    }

    private void BeginLoan(int size)
    {
        ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        if (size > _layout.MaxPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"A sample of the service '{_service.Name}' holds at most {_layout.MaxPayload} bytes.");
        }
        if (_loanPosition >= 0)
        {
            throw new InvalidOperationException("A loan of this publisher is open: publish or dispose it first.");
        }
    }

    private bool TryAllocate(int size, out SampleLoan loan)
    {
        loan = default;
        if (!HasRoom(size, out long padding))
        {
            return false;
        }
        if (padding > 0)
        {
            long offset = _poolHead % _poolBytes;
            byte* pad = _pool + offset;
            uint length = (uint)(padding - ServiceLayout.RecordHeaderBytes);
            *(ulong*)(pad + ServiceLayout.Mask) = 0;
            *(long*)(pad + ServiceLayout.Sequence) = 0;
            *(uint*)(pad + ServiceLayout.Length) = length;
            *(uint*)(pad + ServiceLayout.Flags) = ServiceLayout.Padding;
            *(uint*)(pad + ServiceLayout.RecordGeneration) = _generation;
            *(uint*)(pad + ServiceLayout.Check) = ServiceLayout.CheckOf(offset, length, 0, _generation, ServiceLayout.Padding);
            _records.Add(_poolHead, padding, 0);
            _poolHead += padding;
        }
        long position = _poolHead;
        byte* record = _pool + (position % _poolBytes);
        *(ulong*)(record + ServiceLayout.Mask) = 0;
        *(uint*)(record + ServiceLayout.Check) = 0; // not a sample until published
        _records.Add(position, ServiceLayout.RecordBytes(size), _published + 1);
        _poolHead += ServiceLayout.RecordBytes(size);
        _loanPosition = position;
        _loanSize = size;
        loan = new SampleLoan(this, record + ServiceLayout.RecordHeaderBytes, size, ++_loanNumber);
        return true;
    }

    /// <summary>
    /// True if a sample of <paramref name="size"/> bytes can be loaned now: every block subscriber's queue
    /// has room, and the pool has room once released samples are reclaimed (and, if that is not enough,
    /// the oldest samples only drop-oldest queues hold are taken back). <paramref name="padding"/>: the
    /// bytes to the pool's end the record must skip first.
    /// </summary>
    private bool HasRoom(int size, out long padding)
    {
        padding = 0;
        if (_service.Segment.Membership != _membership)
        {
            Rescan();
        }
        for (int i = 0; i < _attachedCount; i++)
        {
            int s = _attached[i];
            ref Target target = ref _targets[s];
            if (!target.DropOldest && target.Head - target.TailSeen >= _capacity && target.Head - (target.TailSeen = ReadTail(s)) >= _capacity)
            {
                return false;
            }
        }
        long record = ServiceLayout.RecordBytes(size);
        Reclaim();
        while (!Fits(record, out padding))
        {
            if (!DropOldestForSpace())
            {
                return false;
            }
            Reclaim();
        }
        return true;
    }

    private bool Fits(long record, out long padding)
    {
        long offset = _poolHead % _poolBytes;
        padding = offset + record > _poolBytes ? _poolBytes - offset : 0;
        return padding + record <= _poolBytes - (_poolHead - _poolTail);
    }

    /// <summary>
    /// Frees records from the pool's tail whose mask is 0, that left the history window, while no
    /// subscriber pins the history; publishes the new tail.
    /// </summary>
    private void Reclaim()
    {
        bool freed = false;
        ulong pins = 0;
        bool pinsRead = false;
        while (_records.Count > 0)
        {
            ref RecordRing.Entry oldest = ref _records.Oldest;
            if (oldest.Position == _loanPosition)
            {
                break;
            }
            if (!oldest.IsPadding)
            {
                if (_depth > 0)
                {
                    if (oldest.Sequence > _published - _depth)
                    {
                        break;
                    }
                    if (!pinsRead)
                    {
                        pins = ReadPins();
                        pinsRead = true;
                    }
                    if (pins != 0)
                    {
                        break;
                    }
                }
                byte* record = _pool + (oldest.Position % _poolBytes);
                if (_service.CheckMask(Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)), record, Index) != 0)
                {
                    break;
                }
            }
            _poolTail += oldest.Size;
            _records.RemoveOldest();
            freed = true;
        }
        if (freed)
        {
            Volatile.Write(ref *(long*)(_slot + ServiceLayout.PoolTail), _poolTail);
        }
    }

    /// <summary>
    /// The oldest record holds the pool: if only drop-oldest subscribers reference it, each through the
    /// oldest entry of its queue, takes those entries back (counted as missed). False if it cannot.
    /// </summary>
    private bool DropOldestForSpace()
    {
        int at = 0;
        while (at < _records.Count && _records[at].IsPadding)
        {
            at++;
        }
        if (at == _records.Count)
        {
            return false;
        }
        RecordRing.Entry oldest = _records[at];
        if (oldest.Position == _loanPosition || (_depth > 0 && oldest.Sequence > _published - _depth))
        {
            return false;
        }
        byte* record = _pool + (oldest.Position % _poolBytes);
        ulong mask = _service.CheckMask(Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)), record, Index);
        if (mask == 0)
        {
            return false; // held by the history's pins, not by a queue
        }
        for (ulong bits = mask; bits != 0; bits &= bits - 1)
        {
            int s = System.Numerics.BitOperations.TrailingZeroCount(bits);
            if (!_targets[s].Attached || !_targets[s].DropOldest || !TakeBack(s, oldest.Position, oldest.Sequence))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Takes the oldest entry of subscriber <paramref name="s"/>'s queue back (compare-and-swap of its
    /// tail: the subscriber may pop it first), clears the subscriber's bit in its sample and counts it
    /// missed. With <paramref name="sequence"/> not 0, only if the entry names that record.
    /// </summary>
    private bool TakeBack(int s, long position, long sequence)
    {
        ref Target target = ref _targets[s];
        byte* queue = _service.Queue(Index, s);
        long tail = target.TailSeen = ReadTail(s);
        if (tail == target.Head)
        {
            return false;
        }
        byte* entry = queue + ServiceLayout.QueueHeaderBytes + ((tail & (_capacity - 1)) * ServiceLayout.DescriptorBytes);
        ulong descriptor = Volatile.Read(ref *(ulong*)entry);
        ulong names = Volatile.Read(ref *(ulong*)(entry + 8));
        if (sequence != 0 && ((uint)descriptor != (uint)(position % _poolBytes) || (uint)names != (uint)sequence))
        {
            return false;
        }
        if (Interlocked.CompareExchange(ref *(long*)(queue + ServiceLayout.Tail), tail + 1, tail) != tail)
        {
            target.TailSeen = ReadTail(s);
            return false; // popped meanwhile: room came anyway
        }
        target.TailSeen = tail + 1;
        if ((uint)(names >> 32) != target.Generation)
        {
            throw Corrupt("subscriber queue entry", entry + 12, (long)(names >> 32), $"{target.Generation}, the generation of the subscriber it was pushed for", s);
        }
        byte* record = _service.CheckRecord(Index, descriptor, (uint)names, entry, "subscriber queue entry", out _, out _);
        ulong bit = 1UL << s;
        ulong was = Interlocked.And(ref *(ulong*)(record + ServiceLayout.Mask), ~bit);
        if ((_service.CheckMask(was, record, Index) & bit) == 0)
        {
            throw Corrupt("sample mask", record, (long)was, $"bit {s} set: subscriber {s}'s queue still named the sample", s);
        }
        Volatile.Write(ref *(long*)(queue + ServiceLayout.Missed), ++target.Missed);
        return true;
    }

    /// <summary>True if any record of the pool is still referenced by a subscriber.</summary>
    private bool AnyReferenced()
    {
        for (int i = 0; i < _records.Count; i++)
        {
            if (!_records[i].IsPadding && _records[i].Position != _loanPosition)
            {
                byte* record = _pool + (_records[i].Position % _poolBytes);
                if (Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)) != 0)
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>
    /// Reads every subscriber slot again (membership moved): attached ones become targets (a new
    /// generation with its queue's head, tail and missed count), and for each draining one not yet
    /// cleaned here, its bit is cleared in every record of this pool and in the pins, then the queue
    /// says this publisher cleaned that generation.
    /// </summary>
    private void Rescan()
    {
        int membership = _service.Segment.Membership;
        _attachedCount = 0;
        for (int s = 0; s < _layout.MaxSubscribers; s++)
        {
            byte* slot = _service.SubscriberSlot(s);
            ulong owner = _service.ReadOwner(slot, "subscriber", s);
            ref Target target = ref _targets[s];
            int state = OwnerWord.StateOf(owner);
            if (state == OwnerWord.Attached)
            {
                uint generation = Volatile.Read(ref *(uint*)(slot + ServiceLayout.Generation));
                if (!target.Attached || target.Generation != generation)
                {
                    target = NewTarget(s, slot, generation);
                }
                _attached[_attachedCount++] = s;
                continue;
            }
            target.Attached = false;
            if (state == OwnerWord.Leaving && _service.MarkDeadIfGone(slot, owner, OwnerWord.Leaving))
            {
                owner = OwnerWord.WithState(owner, state = OwnerWord.Dead); // it died clearing its own references: they are this publisher's to clear
            }
            if (state is OwnerWord.Dead or OwnerWord.Departed)
            {
                uint generation = Volatile.Read(ref *(uint*)(slot + ServiceLayout.Generation));
                uint* cleaned = (uint*)(_service.Queue(Index, s) + ServiceLayout.Cleaned);
                if (Volatile.Read(ref *cleaned) != generation)
                {
                    Sweep(s);
                    if (_depth > 0)
                    {
                        Interlocked.And(ref *(ulong*)(_slot + ServiceLayout.HistoryPins), ~(1UL << s)); // before `cleaned`: a new subscriber in the slot pins only after it
                    }
                    Volatile.Write(ref *cleaned, generation);
                    if (state == OwnerWord.Dead)
                    {
                        _deadSubscribers.Add(OwnerWord.PidOf(owner));
                    }
                }
            }
        }
        _membership = membership;
    }

    private Target NewTarget(int s, byte* slot, uint generation)
    {
        int policy = Volatile.Read(ref *(int*)(slot + ServiceLayout.Policy));
        if ((uint)policy > 1)
        {
            throw Corrupt("subscriber overflow policy", slot + ServiceLayout.Policy, policy, "0 (block) or 1 (drop oldest)", s);
        }
        byte* queue = _service.Queue(Index, s);
        long head = Volatile.Read(ref *(long*)(queue + ServiceLayout.Head));
        long tail = Volatile.Read(ref *(long*)(queue + ServiceLayout.Tail));
        long missed = Volatile.Read(ref *(long*)(queue + ServiceLayout.Missed));
        if (head < 0 || (ulong)(head - tail) > (ulong)_capacity)
        {
            throw Corrupt("subscriber queue head", queue + ServiceLayout.Head, head, $"from the tail {tail} to {tail + _capacity} (one queue ahead)", s);
        }
        if (missed < 0)
        {
            throw Corrupt("subscriber queue missed count", queue + ServiceLayout.Missed, missed, "0 or more", s);
        }
        Volatile.Write(ref *(long*)(queue + ServiceLayout.First), _published + 1); // before anything is pushed for it
        return new Target { Attached = true, Generation = generation, DropOldest = policy == 1, Head = head, TailSeen = tail, Missed = missed };
    }

    /// <summary>Clears subscriber <paramref name="s"/>'s bit in every record of this pool: only this publisher reclaims here, so no record moves under it.</summary>
    private void Sweep(int s)
    {
        ulong bit = 1UL << s;
        for (int i = 0; i < _records.Count; i++)
        {
            if (!_records[i].IsPadding && _records[i].Position != _loanPosition)
            {
                byte* record = _pool + (_records[i].Position % _poolBytes);
                _service.CheckMask(Interlocked.And(ref *(ulong*)(record + ServiceLayout.Mask), ~bit), record, Index);
            }
        }
    }

    /// <summary>Subscriber <paramref name="s"/>'s queue tail, read and checked: not behind what was seen, not ahead of the head.</summary>
    private long ReadTail(int s)
    {
        ref Target target = ref _targets[s];
        byte* at = _service.Queue(Index, s) + ServiceLayout.Tail;
        long tail = Volatile.Read(ref *(long*)at);
        if (tail < target.TailSeen || tail > target.Head)
        {
            throw Corrupt("subscriber queue tail", at, tail, $"from {target.TailSeen} (taken already) to the head {target.Head}", s);
        }
        return tail;
    }

    private ulong ReadPins()
    {
        byte* at = _slot + ServiceLayout.HistoryPins;
        ulong pins = Volatile.Read(ref *(ulong*)at);
        return (pins & ~_layout.SubscriberBits) == 0 ? pins : throw Corrupt("publisher history pins", at, (long)pins, $"bits of the {_layout.MaxSubscribers} subscriber slots only");
    }

    /// <summary>Every 50 ms of waiting: attached subscribers whose process died are marked dead (the next look clears their references).</summary>
    private void CheckLiveness(long now)
    {
        if (now - _livenessCheckedAt < LivenessEvery)
        {
            return;
        }
        _livenessCheckedAt = now;
        for (int i = 0; i < _attachedCount; i++)
        {
            byte* slot = _service.SubscriberSlot(_attached[i]);
            _service.MarkDeadIfGone(slot, _service.ReadOwner(slot, "subscriber", _attached[i]), OwnerWord.Attached);
        }
    }

    private void Park(int size, long deadline, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_slot + ServiceLayout.SpaceSequence);
        int* sleeping = (int*)(_slot + ServiceLayout.PublisherSleeping);
        int seen = Volatile.Read(ref *sequence);
        Interlocked.Increment(ref *sleeping);
        using CancellationTokenRegistration wake = ServiceInterop.WakeOnCancel(cancellationToken, sequence);
        try
        {
            if (!HasRoom(size, out _))
            {
                // At most 100 ms at a time: a subscriber that died wakes nobody.
                ServiceInterop.FutexWait(sequence, seen, Math.Min(deadline, ServiceInterop.Deadline(ParkSlice)));
            }
        }
        finally
        {
            Interlocked.Decrement(ref *sleeping);
        }
    }

    private Task<bool> WaitForRoomAsync(int size, TimeSpan timeout, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_slot + ServiceLayout.SpaceSequence);
        return ServiceInterop.WatchAsync(this, _service.Segment.Mapping, sequence, Volatile.Read(ref *sequence), (int*)(_slot + ServiceLayout.PublisherSleeping), () =>
        {
            ThrowIfUnusable();
            CheckLiveness(Stopwatch.GetTimestamp());
            return HasRoom(size, out _);
        }, timeout, cancellationToken, TimeSpan.FromMilliseconds(50));
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _service.ThrowIfDisposed();
        if (_corruption is not null)
        {
            ExceptionDispatchInfo.Throw(_corruption);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private SharedMemoryCorruptedException Corrupt(string structure, void* where, long value, string expected, int? slot = null) =>
        _corruption = _service.Segment.Corrupt(structure, _service.OffsetOf(where), value, expected, slot ?? Index);

    private int Claim(ulong attaching)
    {
        for (int p = 0; p < _layout.MaxPublishers; p++)
        {
            byte* slot = _service.PublisherSlot(p);
            ulong owner = _service.ReadOwner(slot, "publisher", p);
            if ((owner == 0 && Interlocked.CompareExchange(ref *(ulong*)slot, attaching, 0) == 0) || PublishSubscribeService.TakeIfDiedAttaching(slot, owner, attaching))
            {
                return p;
            }
        }
        return -1;
    }

    /// <summary>What this publisher knows of one subscriber slot.</summary>
    private struct Target
    {
        public bool Attached;
        public bool DropOldest;
        public uint Generation;
        public long Head;
        public long TailSeen;
        public long Missed;
    }
}
