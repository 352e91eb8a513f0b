// Over 350 lines: the subscriber's side of the protocol (attach, history, receive, release, the waits) reads best whole.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A subscriber of a <see cref="PublishSubscribeService"/>: owns one subscriber slot while it is not
/// disposed, and receives every sample published while it is attached, from every publisher, in each
/// publisher's order, in place (zero copy). Use it from one thread at a time.
/// </summary>
/// <remarks>
/// <para>Its overflow policy says what a publisher does when this subscriber's queue is full:
/// <see cref="OverflowPolicy.Block"/>, the publisher waits; <see cref="OverflowPolicy.DropOldest"/>,
/// this subscriber loses its oldest queued sample and is told: <see cref="Sample.Missed"/> per
/// sample, <see cref="Missed"/> in total, exactly.</para>
/// <para>With history, a subscriber first receives the last samples each attached publisher kept
/// (up to the service's history depth), then new ones.</para>
/// <para>Each value it reads (queue heads and tails, descriptors, sample headers and masks, slots) is
/// checked; an impossible one is reported with <see cref="SharedMemoryCorruptedException"/> and the
/// subscriber refuses further use.</para>
/// </remarks>
public sealed unsafe partial class Subscriber : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;
    private static readonly long LivenessEvery = Stopwatch.Frequency / 20;
    private static readonly TimeSpan ParkSlice = TimeSpan.FromMilliseconds(100);

    private readonly PublishSubscribeService _service;
    private readonly PubSubLayout _layout;
    private readonly byte* _slot;
    private readonly int _capacity;
    private readonly bool _dropOldest;
    private readonly ulong _bit;
    private readonly ulong _owner;
    private readonly uint _generation;
    private readonly long[] _tails;
    private readonly uint[] _publisherGenerations;
    private readonly long[] _lastSequences;
    private readonly ulong[] _reported;
    private readonly Held[] _held;
    private readonly Queue<Held> _history = new();
    private readonly List<int> _deadPublishers = [];
    private int _heldCount;
    private long _nextToken;
    private int _next;
    private long _livenessCheckedAt;
    private bool _disposed;
    private SharedMemoryCorruptedException? _corruption;

    internal Subscriber(PublishSubscribeService service, SubscriberOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxHeldSamples, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxHeldSamples, 1024, nameof(options));
        _service = service;
        _layout = service.Layout;
        _capacity = _layout.QueueCapacity;
        OverflowPolicy = options.OverflowPolicy ?? service.Config.OverflowPolicy;
        if (OverflowPolicy is not (OverflowPolicy.Block or OverflowPolicy.DropOldest))
        {
            throw new ArgumentOutOfRangeException(nameof(options), OverflowPolicy, "Block or DropOldest.");
        }
        _dropOldest = OverflowPolicy == OverflowPolicy.DropOldest;
        int publishers = _layout.MaxPublishers;
        _tails = new long[publishers];
        _publisherGenerations = new uint[publishers];
        _lastSequences = new long[publishers];
        _reported = new ulong[publishers];
        _held = new Held[options.MaxHeldSamples];
        service.Attach(this);
        int index = -1;
        ulong claimed = 0;
        try
        {
            (int pid, uint start) = ServiceInterop.Self();
            ulong attaching = OwnerWord.Of(OwnerWord.Attaching, pid, start);
            _owner = OwnerWord.Of(OwnerWord.Attached, pid, start);
            index = Claim(attaching);
            if (index < 0)
            {
                service.CleanDeadPublishers(); // dead publishers' pools say which dead subscribers they no longer reference
                index = Claim(attaching);
            }
            if (index < 0)
            {
                throw new InvalidOperationException($"All {_layout.MaxSubscribers} subscriber slots of the service '{service.Name}' are in use (a slot whose subscriber died or left is free again once every live publisher published or waited since).");
            }
            claimed = attaching;
            Index = index;
            _bit = 1UL << index;
            _slot = service.SubscriberSlot(index);
            _generation = Volatile.Read(ref *(uint*)(_slot + ServiceLayout.Generation)) + 1;
            Volatile.Write(ref *(uint*)(_slot + ServiceLayout.Generation), _generation);
            Volatile.Write(ref *(int*)(_slot + ServiceLayout.Policy), (int)OverflowPolicy);
            for (int p = 0; p < publishers; p++)
            {
                // No publisher delivers to a slot that is not attached: the queues are this subscriber's to start.
                byte* queue = service.Queue(p, index);
                long head = Volatile.Read(ref *(long*)(queue + ServiceLayout.Head));
                if (head < 0)
                {
                    throw Corrupt("subscriber queue head", queue + ServiceLayout.Head, head, "0 or more", p);
                }
                Volatile.Write(ref *(long*)(queue + ServiceLayout.Tail), head);
                Volatile.Write(ref *(long*)(queue + ServiceLayout.Missed), 0);
                Volatile.Write(ref *(long*)(queue + ServiceLayout.First), 0);
                _tails[p] = head;
            }
            if (Interlocked.CompareExchange(ref *(ulong*)_slot, _owner, attaching) != attaching)
            {
                throw Corrupt("subscriber slot owner", _slot, (long)Volatile.Read(ref *(ulong*)_slot), $"0x{attaching:X16}, this subscriber attaching (only it moves its slot on)", null);
            }
            claimed = _owner;
            service.Segment.BumpMembership();
            if (service.Segment.IsRetired())
            {
                throw new InvalidOperationException($"The service '{service.Name}' is being removed by its last participant: open it again.");
            }
            if (options.ReceiveHistory && _layout.HistoryDepth > 0)
            {
                TakeHistory();
            }
        }
        catch
        {
            if (claimed == _owner && claimed != 0)
            {
                Leave();
            }
            else if (claimed != 0)
            {
                Interlocked.CompareExchange(ref *(ulong*)service.SubscriberSlot(index), 0, claimed); // never attached: nothing was delivered
            }
            service.Detach(this);
            throw;
        }
    }

    /// <summary>Which subscriber slot this subscriber owns (its bit in every sample's reference mask).</summary>
    public int Index { get; }

    /// <summary>What publishers do when this subscriber's queue is full.</summary>
    public OverflowPolicy OverflowPolicy { get; }

    /// <summary>Samples this subscriber lost under <see cref="OverflowPolicy.DropOldest"/> since it attached, from every publisher: exact.</summary>
    /// <exception cref="SharedMemoryCorruptedException">A missed count in shared memory is impossible.</exception>
    public long Missed
    {
        get
        {
            ThrowIfUnusable();
            long total = 0;
            for (int p = 0; p < _layout.MaxPublishers; p++)
            {
                byte* at = _service.Queue(p, Index) + ServiceLayout.Missed;
                long missed = Volatile.Read(ref *(long*)at);
                total += missed >= 0 && (_dropOldest || missed == 0) ? missed : throw Corrupt("subscriber queue missed count", at, missed, _dropOldest ? "0 or more" : "0: nothing is dropped from a block subscriber's queue", p);
            }
            return total;
        }
    }

    /// <summary>Processes whose publishers died while attached, as this subscriber found them (their samples were delivered all the same).</summary>
    public IReadOnlyList<int> DeadPublishers => _deadPublishers;

    /// <summary>Takes the next sample if one is there; false otherwise.</summary>
    /// <param name="sample">The sample; dispose it to release it.</param>
    /// <exception cref="InvalidOperationException">This subscriber holds <see cref="SubscriberOptions.MaxHeldSamples"/> samples: dispose one first.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible: the subscriber is not used further.</exception>
    /// <exception cref="ObjectDisposedException">The subscriber or its service object was disposed.</exception>
    public bool TryReceive(out Sample sample)
    {
        ThrowIfUnusable();
        if (_heldCount == _held.Length)
        {
            throw new InvalidOperationException($"This subscriber holds {_held.Length} samples (SubscriberOptions.MaxHeldSamples): dispose one before receiving the next.");
        }
        if (_history.Count > 0)
        {
            Held taken = _history.Dequeue();
            sample = Hold(taken.Publisher, taken.Record, taken.Length, taken.Sequence, 0);
            return true;
        }
        int publishers = _layout.MaxPublishers;
        for (int k = 0, p = _next; k < publishers; k++, p = p + 1 == publishers ? 0 : p + 1)
        {
            if (TryPop(p, out byte* record, out uint length, out long sequence, out uint generation))
            {
                long previous = _publisherGenerations[p] == generation && _lastSequences[p] > 0 ? _lastSequences[p] : FirstDelivered(p) - 1;
                long missed = sequence - previous - 1;
                if (missed < 0 || (!_dropOldest && missed != 0))
                {
                    throw Corrupt("sample sequence", record + ServiceLayout.Sequence, sequence, $"{previous + 1}{(_dropOldest ? " or later" : "")}: the next sample of this publisher (after {previous})", p);
                }
                _publisherGenerations[p] = generation;
                _lastSequences[p] = sequence;
                _next = p + 1 == publishers ? 0 : p + 1;
                sample = Hold(p, record, length, sequence, missed);
                return true;
            }
        }
        sample = default;
        return false;
    }

    /// <summary>Takes the next sample, waiting as long as it takes (spinning briefly, then parked on a shared futex).</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="InvalidOperationException">This subscriber holds <see cref="SubscriberOptions.MaxHeldSamples"/> samples.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The subscriber or its service object was disposed.</exception>
    public Sample Receive(CancellationToken cancellationToken = default) =>
        TryReceive(out Sample sample, Timeout.InfiniteTimeSpan, cancellationToken) ? sample : throw new TimeoutException();

    /// <summary>Takes the next sample, waiting up to <paramref name="timeout"/>; false if none came.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="sample">The sample; dispose it to release it.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">This subscriber holds <see cref="SubscriberOptions.MaxHeldSamples"/> samples.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The subscriber or its service object was disposed.</exception>
    public bool TryReceive(out Sample sample, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long deadline = ServiceInterop.Deadline(timeout);
        long spinUntil = 0;
        while (true)
        {
            if (TryReceive(out sample))
            {
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline)
            {
                return false;
            }
            CheckPublishers(now);
            spinUntil = spinUntil == 0 ? now + SpinTicks : spinUntil;
            if (now < spinUntil)
            {
                Thread.SpinWait(4);
                continue;
            }
            Park(deadline, cancellationToken);
        }
    }

    /// <summary>
    /// Leaves the slot: releases every sample it holds or has queued (samples received and not disposed
    /// must not be read any more), then marks the slot departed; publishers clear what was pushed after
    /// and the slot is free again. Ends pending asynchronous waits with <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            if (OwnerWord.IsThisProcess(_owner) && Volatile.Read(ref *(ulong*)_slot) == _owner) // a forked child's copy: the slot, its samples and queue are its parent's
            {
                Leave();
            }
        }
        finally
        {
            _service.Detach(this);
        }
    }

    /// <summary>Releases the sample of <paramref name="token"/> if this subscriber holds it; a stale copy's release does nothing.</summary>
    internal void Release(long token)
    {
        if (_disposed || token == 0)
        {
            return;
        }
        for (int i = 0; i < _held.Length; i++)
        {
            if (_held[i].Token == token)
            {
                Held held = _held[i];
                _held[i] = default;
                _heldCount--;
                Unreference(held.Publisher, held.Record);
                return;
            }
        }
    }

    /// <summary>
    /// Hands out a record checked already: its length and sequence are the checked copies, never read
    /// again from its header (a peer may have rewritten it since, to move the span past the pool).
    /// </summary>
    private Sample Hold(int p, byte* record, uint length, long sequence, long missed)
    {
        long token = ++_nextToken;
        int free = 0;
        while (_held[free].Token != 0)
        {
            free++;
        }
        _held[free] = new Held(token, p, record, length, sequence);
        _heldCount++;
        return new Sample(this, record + ServiceLayout.RecordHeaderBytes, (int)length, token, p, sequence, missed, Volatile.Read(ref *(long*)(record + ServiceLayout.Timestamp)));
    }

    /// <summary>Clears this subscriber's bit in a record it references; wakes the publisher if that freed it.</summary>
    private void Unreference(int p, byte* record)
    {
        ulong was = _service.CheckMask(Interlocked.And(ref *(ulong*)(record + ServiceLayout.Mask), ~_bit), record, p);
        if ((was & _bit) == 0)
        {
            throw Corrupt("sample mask", record, (long)was, $"bit {Index} set: this subscriber held the sample (another process cleared it, and the publisher may have reused its space)", p);
        }
        if (was == _bit)
        {
            PublishSubscribeService.Wake(_service.PublisherSlot(p), ServiceLayout.SpaceSequence, ServiceLayout.PublisherSleeping);
        }
    }

    /// <summary>
    /// Pops the oldest descriptor of publisher <paramref name="p"/>'s queue (compare-and-swap of the tail:
    /// under drop-oldest the publisher may take it back first) and checks it and the record it names.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryPop(int p, out byte* record, out uint length, out long sequence, out uint generation)
    {
        byte* queue = _service.Queue(p, Index);
        for (int attempt = 0; attempt <= _capacity + 1; attempt++)
        {
            // The tail first: under drop-oldest the publisher moves it too, always before the head, so a tail
            // read before the head is never ahead of it; and more than a queue between them is corruption only
            // if the tail did not move meanwhile.
            long tail = _dropOldest ? ReadTail(p, queue) : _tails[p];
            long head = Volatile.Read(ref *(long*)(queue + ServiceLayout.Head));
            if (head == tail)
            {
                break;
            }
            if ((ulong)(head - tail) > (ulong)_capacity)
            {
                if (_dropOldest && ReadTail(p, queue) != tail)
                {
                    continue;
                }
                throw Corrupt("subscriber queue head", queue + ServiceLayout.Head, head, $"from the tail {tail} to {tail + _capacity} (one queue ahead)", p);
            }
            byte* entry = queue + ServiceLayout.QueueHeaderBytes + ((tail & (_capacity - 1)) * ServiceLayout.DescriptorBytes);
            ulong descriptor = Volatile.Read(ref *(ulong*)entry);
            ulong names = Volatile.Read(ref *(ulong*)(entry + 8));
            long seen = Interlocked.CompareExchange(ref *(long*)(queue + ServiceLayout.Tail), tail + 1, tail);
            if (seen != tail)
            {
                if (!_dropOldest)
                {
                    throw Corrupt("subscriber queue tail", queue + ServiceLayout.Tail, seen, $"{tail}, where this subscriber left it (only it moves a block subscriber's tail)", p);
                }
                continue; // the publisher took the oldest back: try the next
            }
            _tails[p] = tail + 1;
            PublishSubscribeService.Wake(_service.PublisherSlot(p), ServiceLayout.SpaceSequence, ServiceLayout.PublisherSleeping);
            if ((uint)(names >> 32) != _generation)
            {
                throw Corrupt("subscriber queue entry", entry + 12, (long)(names >> 32), $"{_generation}, this subscriber's generation", p);
            }
            record = _service.CheckRecord(p, descriptor, (uint)names, entry, "subscriber queue entry", out sequence, out generation);
            length = (uint)(descriptor >> 32); // checked against the record's header and the pool by CheckRecord
            ulong mask = _service.CheckMask(Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)), record, p);
            if ((mask & _bit) == 0)
            {
                throw Corrupt("sample mask", record, (long)mask, $"bit {Index} set: the sample was delivered to this subscriber", p);
            }
            return true;
        }
        record = null;
        length = 0;
        sequence = 0;
        generation = 0;
        return false;
    }

    /// <summary>The sequence of the first sample publisher <paramref name="p"/> delivered to this subscriber (read once a sample of it came).</summary>
    private long FirstDelivered(int p)
    {
        byte* at = _service.Queue(p, Index) + ServiceLayout.First;
        long first = Volatile.Read(ref *(long*)at);
        return first >= 1 ? first : throw Corrupt("subscriber queue first sequence", at, first, "1 or more once a sample was delivered", p);
    }

    private long ReadTail(int p, byte* queue)
    {
        long tail = Volatile.Read(ref *(long*)(queue + ServiceLayout.Tail));
        return tail >= _tails[p] ? tail : throw Corrupt("subscriber queue tail", queue + ServiceLayout.Tail, tail, $"{_tails[p]} or more (a tail only moves on)", p);
    }

    /// <summary>
    /// Takes the history of every attached publisher: pins it (the publisher reclaims nothing of it
    /// meanwhile), reads its published count, and takes each sample of the window that did not come
    /// through this subscriber's queue by setting its bit.
    /// </summary>
    private void TakeHistory()
    {
        int depth = _layout.HistoryDepth;
        for (int p = 0; p < _layout.MaxPublishers; p++)
        {
            byte* slot = _service.PublisherSlot(p);
            ulong owner = _service.ReadOwner(slot, "publisher", p);
            if (OwnerWord.StateOf(owner) != OwnerWord.Attached)
            {
                continue;
            }
            ulong* pins = (ulong*)(slot + ServiceLayout.HistoryPins);
            Interlocked.Or(ref *pins, _bit);
            try
            {
                if (Volatile.Read(ref *(ulong*)slot) != owner)
                {
                    continue; // it left after we looked: its history is not ours to take
                }
                uint generation = Volatile.Read(ref *(uint*)(slot + ServiceLayout.Generation));
                long published = Volatile.Read(ref *(long*)(slot + ServiceLayout.Published));
                if (published < 0)
                {
                    throw Corrupt("publisher published count", slot + ServiceLayout.Published, published, "0 or more", p);
                }
                // Read after `published`: 0 means the publisher had not yet looked at this subscriber then, so
                // everything up to `published` is history; otherwise, samples from `first` on come through the queue.
                long first = Volatile.Read(ref *(long*)(_service.Queue(p, Index) + ServiceLayout.First));
                if (first < 0)
                {
                    throw Corrupt("subscriber queue first sequence", _service.Queue(p, Index) + ServiceLayout.First, first, "0 or more", p);
                }
                long last = first == 0 ? published : Math.Min(published, first - 1);
                byte* ring = _service.HistoryRing(p);
                // Counted, not compared with `last`: a peer's `published` of long.MaxValue would make the sequence wrap and the walk never end.
                long oldest = Math.Max(1, published - depth + 1);
                long count = Math.Max(0, last - oldest + 1); // at most depth: both are 0 or more, and oldest is within depth of published
                for (long i = 0; i < count; i++)
                {
                    long sequence = oldest + i;
                    byte* entry = ring + ((sequence - 1) % depth * ServiceLayout.DescriptorBytes);
                    long before = Volatile.Read(ref *(long*)(entry + 8));
                    ulong descriptor = Volatile.Read(ref *(ulong*)entry);
                    Interlocked.MemoryBarrier();
                    if (before != sequence || Volatile.Read(ref *(long*)(entry + 8)) != sequence)
                    {
                        continue; // being replaced by a newer one: that sample left the window
                    }
                    byte* record = _service.CheckRecord(p, descriptor, (uint)sequence, entry, "publisher history entry", out long stored, out uint recordGeneration);
                    if (stored != sequence || recordGeneration != generation)
                    {
                        throw Corrupt("sample record", record + ServiceLayout.Sequence, stored, $"sequence {sequence} of publisher generation {generation}, as the history names it", p);
                    }
                    ulong mask = _service.CheckMask(Volatile.Read(ref *(ulong*)(record + ServiceLayout.Mask)), record, p);
                    if ((mask & _bit) != 0)
                    {
                        continue; // delivered through the queue: it comes from there
                    }
                    Interlocked.Or(ref *(ulong*)(record + ServiceLayout.Mask), _bit);
                    _history.Enqueue(new Held(0, p, record, (uint)(descriptor >> 32), sequence));
                }
            }
            finally
            {
                Interlocked.And(ref *pins, ~_bit);
                PublishSubscribeService.Wake(slot, ServiceLayout.SpaceSequence, ServiceLayout.PublisherSleeping);
            }
        }
    }

    /// <summary>True if a sample may be there: history left, or a queue whose head is not its tail (an impossible head is reported by the receive).</summary>
    private bool HasData()
    {
        if (_history.Count > 0)
        {
            return true;
        }
        for (int p = 0; p < _layout.MaxPublishers; p++)
        {
            byte* queue = _service.Queue(p, Index);
            long tail = _dropOldest ? Volatile.Read(ref *(long*)(queue + ServiceLayout.Tail)) : _tails[p];
            if (Volatile.Read(ref *(long*)(queue + ServiceLayout.Head)) != tail)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Every 50 ms of waiting: publishers whose process died are marked dead and named in <see cref="DeadPublishers"/>.</summary>
    private void CheckPublishers(long now)
    {
        if (now - _livenessCheckedAt < LivenessEvery)
        {
            return;
        }
        _livenessCheckedAt = now;
        for (int p = 0; p < _layout.MaxPublishers; p++)
        {
            byte* slot = _service.PublisherSlot(p);
            ulong owner = _service.ReadOwner(slot, "publisher", p);
            if (_service.MarkDeadIfGone(slot, owner))
            {
                owner = OwnerWord.WithState(owner, OwnerWord.Dead);
            }
            if (OwnerWord.StateOf(owner) == OwnerWord.Dead && _reported[p] != owner)
            {
                _reported[p] = owner;
                _deadPublishers.Add(OwnerWord.PidOf(owner));
            }
        }
    }

    /// <summary>Releases everything this subscriber references (held, history, queued), then marks its slot departed and tells the publishers.</summary>
    private void Leave()
    {
        try
        {
            for (int i = 0; i < _held.Length; i++)
            {
                if (_held[i].Token != 0)
                {
                    Held held = _held[i];
                    _held[i] = default;
                    Unreference(held.Publisher, held.Record);
                }
            }
            _heldCount = 0;
            while (_history.Count > 0)
            {
                Held held = _history.Dequeue();
                Unreference(held.Publisher, held.Record);
            }
            for (int p = 0; p < _layout.MaxPublishers; p++)
            {
                while (TryPop(p, out byte* record, out _, out _, out _))
                {
                    Unreference(p, record);
                }
            }
        }
        catch (SharedMemoryCorruptedException)
        {
            // Leaving must not throw: what is left is cleared by the publishers, as for a dead subscriber.
        }
        finally
        {
            ulong leaving = OwnerWord.WithState(_owner, OwnerWord.Leaving);
            if (Interlocked.CompareExchange(ref *(ulong*)_slot, leaving, _owner) == _owner)
            {
                _service.Segment.BumpMembership();
                CleanAfterLeaving();
                Interlocked.CompareExchange(ref *(ulong*)_slot, OwnerWord.WithState(_owner, OwnerWord.Departed), leaving);
                _service.Segment.BumpMembership();
            }
            for (int p = 0; p < _layout.MaxPublishers; p++)
            {
                PublishSubscribeService.Wake(_service.PublisherSlot(p), ServiceLayout.SpaceSequence, ServiceLayout.PublisherSleeping); // a block publisher waiting for this queue
            }
        }
    }

    /// <summary>
    /// While the slot says leaving (no publisher delivers here or sweeps this subscriber's bits, so only it
    /// touches them): for each attached publisher, waits for a publish in flight to end
    /// (any later one reads the new membership and delivers nothing here), drains what it pushed, and
    /// says this generation is cleaned, so the slot is free without waiting for that publisher to publish
    /// again. A publisher that does not finish within 1 s, or dies, is left to clean it itself.
    /// </summary>
    private void CleanAfterLeaving()
    {
        long deadline = ServiceInterop.Deadline(TimeSpan.FromSeconds(1));
        for (int p = 0; p < _layout.MaxPublishers; p++)
        {
            try
            {
                byte* slot = _service.PublisherSlot(p);
                ulong owner = _service.ReadOwner(slot, "publisher", p);
                if (OwnerWord.StateOf(owner) != OwnerWord.Attached)
                {
                    continue;
                }
                int* publishing = (int*)(slot + ServiceLayout.Publishing);
                int seen = Volatile.Read(ref *publishing);
                while ((seen & 1) != 0 && Volatile.Read(ref *publishing) == seen)
                {
                    if (Stopwatch.GetTimestamp() >= deadline || Volatile.Read(ref *(ulong*)slot) != owner || !ServiceInterop.IsAlive(OwnerWord.PidOf(owner), OwnerWord.StartOf(owner)))
                    {
                        goto next; // its publisher cleans this slot when it next looks
                    }
                    Thread.Sleep(1);
                }
                while (TryPop(p, out byte* record, out _, out _, out _))
                {
                    Unreference(p, record);
                }
                if (Volatile.Read(ref *(ulong*)slot) == owner)
                {
                    Volatile.Write(ref *(uint*)(_service.Queue(p, Index) + ServiceLayout.Cleaned), _generation);
                }
            }
            catch (SharedMemoryCorruptedException)
            {
                // Left to the publisher, as for a dead subscriber.
            }
        next:;
        }
    }

    private void Park(long deadline, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_slot + ServiceLayout.WakeSequence);
        int* sleeping = (int*)(_slot + ServiceLayout.SubscriberSleeping);
        int seen = Volatile.Read(ref *sequence);
        Interlocked.Increment(ref *sleeping);
        using CancellationTokenRegistration wake = ServiceInterop.WakeOnCancel(cancellationToken, sequence);
        try
        {
            if (!HasData())
            {
                // At most 100 ms at a time: a publisher that died wakes nobody.
                ServiceInterop.FutexWait(sequence, seen, Math.Min(deadline, ServiceInterop.Deadline(ParkSlice)));
            }
        }
        finally
        {
            Interlocked.Decrement(ref *sleeping);
        }
    }

    /// <summary>Waits without a thread until a sample can be received (true), without taking it; the futex watcher's registration ends with the task.</summary>
    internal Task<bool> WaitForSampleAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(_slot + ServiceLayout.WakeSequence);
        return ServiceInterop.WatchAsync(this, _service.Segment.Mapping, sequence, Volatile.Read(ref *sequence), (int*)(_slot + ServiceLayout.SubscriberSleeping), () =>
        {
            ThrowIfUnusable();
            CheckPublishers(Stopwatch.GetTimestamp());
            return HasData();
        }, timeout, cancellationToken, TimeSpan.FromMilliseconds(100));
    }

    private int Claim(ulong attaching)
    {
        for (int s = 0; s < _layout.MaxSubscribers; s++)
        {
            byte* slot = _service.SubscriberSlot(s);
            ulong owner = _service.ReadOwner(slot, "subscriber", s);
            if (owner == 0)
            {
                if (Interlocked.CompareExchange(ref *(ulong*)slot, attaching, 0) == 0)
                {
                    return s;
                }
                continue;
            }
            if (PublishSubscribeService.TakeIfDiedAttaching(slot, owner, attaching))
            {
                return s;
            }
            if (OwnerWord.StateOf(owner) is OwnerWord.Attached or OwnerWord.Leaving && _service.MarkDeadIfGone(slot, owner, OwnerWord.StateOf(owner)))
            {
                owner = OwnerWord.WithState(owner, OwnerWord.Dead);
            }
            if (OwnerWord.IsDraining(owner) && _service.IsCleanedEverywhere(s, Volatile.Read(ref *(uint*)(slot + ServiceLayout.Generation)))
                && Interlocked.CompareExchange(ref *(ulong*)slot, attaching, owner) == owner)
            {
                return s;
            }
        }
        return -1;
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
    private SharedMemoryCorruptedException Corrupt(string structure, void* where, long value, string expected, int? publisher) =>
        _corruption = _service.Segment.Corrupt(structure, _service.OffsetOf(where), value, expected, publisher);

    /// <summary>A record this subscriber references: a received sample (token) or a history sample not yet received (token 0).</summary>
    private readonly struct Held(long token, int publisher, byte* record, uint length, long sequence)
    {
        public long Token { get; } = token;

        public int Publisher { get; } = publisher;

        public byte* Record { get; } = record;

        /// <summary>The payload's length as checked when the record was taken.</summary>
        public uint Length { get; } = length;

        /// <summary>The sample's sequence as checked when the record was taken.</summary>
        public long Sequence { get; } = sequence;
    }
}
