using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Serves every asynchronous wait on a shared word (a semaphore's count, an event's signal, a
/// channel's sequence) in this process, without a thread per wait. Waits on the same word share one
/// slot; slots are grouped in shards of up to <see cref="WordsPerShard"/>, each served by a thread of
/// its own that sleeps in futex_waitv (Linux 5.16+) on its words plus a private wake word. A wake names
/// the word that changed, so only that word's waits are tried again; deadlines and polls sit in the
/// shard's priority queue, so a pass costs O(words of the shard), never O(every wait). Shard threads
/// start on demand and end after <see cref="Linger"/> without a word to watch.
/// </summary>
/// <remarks>
/// <para>Two kinds of wait. A level wait (a semaphore's count, an event's signal) is tried whenever its
/// word is not 0: its predicate takes what the word offers, and refuses impossible values by throwing.
/// A sequence wait (a channel's sequence number) is tried whenever its word changes; after a try that
/// fails it waits for a change from the value read just before that try, so a word a peer bumps without
/// satisfying anyone is slept on at its new value, never spun on. Waits on the same word and of the
/// same kind share one slot.</para>
/// <para>On kernels without futex_waitv (before 5.16, or where seccomp refuses it), or with the
/// AppContext switch <c>Shm.Interop.FutexWatcher.Polling</c> set, one shard holds every word and looks
/// at them every <see cref="PollInterval"/>: timeouts and cancellations are honoured the same, a
/// wake-up takes up to that long, and the thread costs a little CPU while any wait is pending.</para>
/// <para>Nothing run on a shard thread lets an exception escape it (that would end the process): a
/// predicate that throws faults its own wait, and anything else that fails in a pass faults the waits
/// of that shard.</para>
/// </remarks>
internal static unsafe partial class FutexWatcher
{
    /// <summary>futex_waitv takes at most 128 words: the shard's wake word and 127 others.</summary>
    internal const int WordsPerShard = 127;

    /// <summary>How often the fallback looks at the words, without futex_waitv.</summary>
    internal static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(2);

    private static readonly long PollTicks = Deadline.Ticks(PollInterval);

    /// <summary>How long a shard thread with nothing to watch waits for new work before it ends.</summary>
    internal static readonly TimeSpan Linger = TimeSpan.FromSeconds(5);

    private static readonly long LingerTicks = Deadline.Ticks(Linger);

    private const string PollingSwitch = "Shm.Interop.FutexWatcher.Polling";

    /// <summary>Guards every structure below and each shard's shared fields; never held across a predicate or a sleep.</summary>
    private static readonly Lock Gate = new();
    private static readonly List<Shard> Shards = [];
    private static readonly Dictionary<(nint Word, long Key), Slot> Slots = [];
    private static readonly Dictionary<object, HashSet<Registration>> ByOwner = new(ReferenceEqualityComparer.Instance);
    private static readonly Dictionary<SafeHandle, HashSet<Registration>> ByMapping = new(ReferenceEqualityComparer.Instance);
    private static readonly Action<SafeMappingHandle> WhenMappingDisposed = MappingDisposed;
    private static int s_pending;
    private static volatile bool s_polling = (AppContext.TryGetSwitch(PollingSwitch, out bool polling) && polling) || !FutexWaitvWorks();

    /// <summary>
    /// A level wait: completes when <paramref name="tryTake"/> succeeds (true) or <paramref name="deadline"/>
    /// passes (false); it is tried whenever <paramref name="word"/> is not 0. See <see cref="Wait(object, SafeHandle, int*, int, int*, Func{bool}, Deadline, CancellationToken, long)"/>
    /// for what ends it otherwise.
    /// </summary>
    public static Task<bool> Wait(object owner, SafeHandle mapping, int* word, int* waiters, Func<bool> tryTake, Deadline deadline, CancellationToken cancellationToken) =>
        Register(owner, mapping, word, 0, sequence: false, waiters, tryTake, deadline, cancellationToken, pollEvery: 0);

    /// <summary>
    /// A sequence wait: completes when <paramref name="tryTake"/> succeeds (true) or <paramref name="deadline"/>
    /// passes (false). It is tried whenever <paramref name="word"/> changes (from <paramref name="value"/>,
    /// what the caller saw before its own check, and then from what the watcher read before each try),
    /// and every <paramref name="pollEvery"/> Stopwatch ticks if that is not 0 (to notice a dead peer, who
    /// wakes nobody).
    /// </summary>
    /// <remarks>
    /// If <paramref name="tryTake"/> throws (a dead peer, corrupt shared memory), the task faults with
    /// that exception. <see cref="Abandon"/> with the same <paramref name="owner"/>, or disposing the
    /// region whose <paramref name="mapping"/> holds the word, ends the wait with
    /// <see cref="ObjectDisposedException"/>; either way the wait stops holding the mapping. In a
    /// forked child (one thread, no watcher) the task faults with <see cref="NotSupportedException"/>.
    /// <paramref name="waiters"/> is incremented for as long as the wait is pending.
    /// </remarks>
    public static Task<bool> Wait(object owner, SafeHandle mapping, int* word, int value, int* waiters, Func<bool> tryTake, Deadline deadline, CancellationToken cancellationToken, long pollEvery) =>
        Register(owner, mapping, word, value, sequence: true, waiters, tryTake, deadline, cancellationToken, pollEvery);

    private static Task<bool> Register(object owner, SafeHandle mapping, int* word, int value, bool sequence, int* waiters, Func<bool> tryTake, Deadline deadline, CancellationToken cancellationToken, long pollEvery)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(tryTake);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<bool>(cancellationToken);
        }
        if (!TryPin(mapping))
        {
            return Task.FromException<bool>(RegionDisposed());
        }
        bool handedOver = false, counted = false;
        try
        {
            if (tryTake())
            {
                return Task.FromResult(true);
            }
            if (deadline.HasPassed)
            {
                return Task.FromResult(false); // a timeout of zero: looked once
            }
            if (ForkedChild.IsThisProcess)
            {
                return Task.FromException<bool>(new NotSupportedException(
                    "A forked child has one thread and no futex watcher: wait synchronously there (Wait with a timeout), or spawn a process for asynchronous code."));
            }
            // Counted before the last look, so a peer that changes the word after it sees a sleeper and wakes.
            Interlocked.Increment(ref *waiters);
            counted = true;
            int seen = sequence ? Volatile.Read(ref *word) : value;
            if (tryTake())
            {
                return Task.FromResult(true);
            }
            var registration = new Registration(owner, mapping, word, sequence, waiters, tryTake, deadline.Timestamp, pollEvery);
            handedOver = true;
            try
            {
                // Before it is placed, so no shard can finish it before its cancellation is known.
                if (cancellationToken.CanBeCanceled)
                {
                    registration.Cancellation = cancellationToken.UnsafeRegister(
                        static (state, token) => ((Registration)state!).Finish(Outcome.Canceled, canceled: token),
                        registration);
                }
                Place(registration, seen);
            }
            catch (Exception failure)
            {
                registration.Finish(Outcome.Failed, failure); // a disposed token source, a shard thread that could not start
            }
            return registration.Task;
        }
        catch (Exception failure)
        {
            return Task.FromException<bool>(failure);
        }
        finally
        {
            if (!handedOver)
            {
                if (counted)
                {
                    Interlocked.Decrement(ref *waiters);
                }
                mapping.DangerousRelease();
            }
        }
    }

    /// <summary>Ends the pending waits of <paramref name="owner"/> (a primitive, reader or writer being disposed) with <see cref="ObjectDisposedException"/>.</summary>
    public static void Abandon(object owner)
    {
        if (ForkedChild.IsThisProcess || Volatile.Read(ref s_pending) == 0)
        {
            return; // a forked child has no waits of its own, and may have inherited the gate held
        }
        List<Registration> gone;
        lock (Gate)
        {
            if (!ByOwner.TryGetValue(owner, out HashSet<Registration>? owned))
            {
                return;
            }
            gone = [.. owned];
        }
        gone.ForEach(registration => registration.Finish(Outcome.Abandoned));
    }

    /// <summary>
    /// Called as a region's mapping is disposed: its pending waits end with <see cref="ObjectDisposedException"/>
    /// and let go of it, so the memory is unmapped once nothing else holds it.
    /// </summary>
    internal static void MappingDisposed(SafeHandle mapping)
    {
        if (ForkedChild.IsThisProcess || Volatile.Read(ref s_pending) == 0)
        {
            return;
        }
        List<Registration> gone;
        lock (Gate)
        {
            if (!ByMapping.TryGetValue(mapping, out HashSet<Registration>? holding))
            {
                return;
            }
            gone = [.. holding];
        }
        gone.ForEach(registration => registration.Finish(Outcome.Unmapped));
    }

    /// <summary>True once the region that owns <paramref name="mapping"/> was disposed, even while references keep it mapped.</summary>
    private static bool IsDisposed(SafeHandle mapping) => mapping.IsClosed || mapping is SafeMappingHandle { IsDisposed: true };

    private static bool TryPin(SafeHandle mapping)
    {
        if (IsDisposed(mapping))
        {
            return false;
        }
        bool added = false;
        try
        {
            mapping.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        return added;
    }

    private static ObjectDisposedException RegionDisposed() =>
        new("SharedRegion", "The region holding this wait's word was disposed: the wait ended and let go of its memory.");

    /// <summary>Puts a registration in the slot of its word (in a shard with room, started if need be) and wakes that shard.</summary>
    private static void Place(Registration registration, int seen)
    {
        lock (Gate)
        {
            if (registration.IsFinished)
            {
                return; // cancelled while being registered
            }
            if (!Slots.TryGetValue(registration.SlotKey(seen), out Slot? slot))
            {
                slot = new Slot(registration.Word, seen, registration.IsSequence, ShardWithRoom());
                Slots.Add(registration.SlotKey(seen), slot);
                slot.Shard.AddSlot(slot);
            }
            else if (slot.Expected != seen)
            {
                // A sequence that moved since the slot last looked: the others may have missed it.
                slot.Shard.RetryLater(slot);
            }
            slot.Join(registration);
            if (registration.Mapping is SafeMappingHandle mapping && mapping.MarkWatched(WhenMappingDisposed))
            {
                slot.Shard.RetryLater(slot); // disposed meanwhile, its hook maybe too early for this wait: the try ends it
            }
            Add(ByOwner, registration.Owner, registration);
            Add(ByMapping, registration.Mapping, registration);
            s_pending++;
            slot.Shard.Incoming.Add(registration);
            slot.Shard.Wake();
        }
    }

    /// <summary>Takes a finished registration out of its slot, before it lets go of the mapping: no shard reads a word nobody holds mapped.</summary>
    private static void Remove(Registration registration)
    {
        lock (Gate)
        {
            if (registration.Slot is not Slot slot)
            {
                return;
            }
            slot.Leave(registration);
            if (slot.IsEmpty)
            {
                Slots.Remove(slot.Key);
                slot.Shard.RemoveSlot(slot);
            }
            RemoveFrom(ByOwner, registration.Owner, registration);
            RemoveFrom(ByMapping, registration.Mapping, registration);
            s_pending--;
        }
    }

    private static Shard ShardWithRoom()
    {
        int capacity = s_polling ? int.MaxValue : WordsPerShard;
        foreach (Shard shard in Shards)
        {
            if (shard.SlotCount < capacity)
            {
                return shard;
            }
        }
        var started = new Shard();
        started.Start();
        Shards.Add(started);
        return started;
    }

    private static void Add<TKey>(Dictionary<TKey, HashSet<Registration>> index, TKey key, Registration registration)
        where TKey : notnull
    {
        if (!index.TryGetValue(key, out HashSet<Registration>? set))
        {
            index.Add(key, set = new HashSet<Registration>(ReferenceEqualityComparer.Instance));
        }
        set.Add(registration);
    }

    private static void RemoveFrom<TKey>(Dictionary<TKey, HashSet<Registration>> index, TKey key, Registration registration)
        where TKey : notnull
    {
        if (index.TryGetValue(key, out HashSet<Registration>? set) && set.Remove(registration) && set.Count == 0)
        {
            index.Remove(key);
        }
    }

    /// <summary>futex_waitv with no words answers EINVAL where it exists, ENOSYS (or seccomp's EPERM) where it does not.</summary>
    private static bool FutexWaitvWorks() =>
        Libc.futex_waitv(null, 0, null) >= 0 || Marshal.GetLastPInvokeError() == LinuxErrno.EINVAL;

    /// <summary>How a wait ended.</summary>
    private enum Outcome
    {
        Took,
        TimedOut,
        Canceled,
        Abandoned,
        Unmapped,
        Failed,
    }
}
