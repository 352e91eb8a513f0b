using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

internal static unsafe partial class FutexWatcher
{
    /// <summary>
    /// Up to <see cref="WordsPerShard"/> slots and the thread that watches them. The fields marked
    /// "gate" are shared with other threads under the gate; the rest belong to the shard's thread.
    /// </summary>
    private sealed class Shard
    {
        private const int VectorLength = WordsPerShard + 1;

        /// <summary>Fruitless tries of a level slot before it sleeps on the value it read rather than on 0.</summary>
        private const int FruitlessTries = 64;

        /// <summary>Private memory, freed when the shard retires (under the gate, once no slot can name it).</summary>
        private readonly int* _wakeWord = (int*)NativeMemory.AllocZeroed(sizeof(int));

        // Gate: the slots, what arrived, what to try again, whether the vector is stale.
        private readonly List<Slot> _slots = [];
        private readonly List<Slot> _retry = [];
        private bool _dirty = true;

        // The thread's own.
        private readonly Slot?[] _bound = new Slot?[VectorLength];
        private readonly PriorityQueue<Registration, long> _timers = new();
        private readonly List<Registration> _arrived = [];
        private readonly List<Registration> _tries = [];
        private readonly List<Slot> _toRetry = [];
        private Libc.FutexWaitv* _vector;
        private int _watched;
        private long _idleSince;
        private int _compactAt = 64;

        /// <summary>Registrations whose timers the thread has yet to set (gate).</summary>
        public List<Registration> Incoming { get; } = [];

        public int SlotCount => _slots.Count;

        public void Start() =>
            new Thread(Run, maxStackSize: 256 * 1024) { IsBackground = true, Name = "Shm futex watcher" }.UnsafeStart();

        /// <summary>Wakes the thread. Under the gate: the word is freed under it when the shard retires.</summary>
        public void Wake()
        {
            Interlocked.Increment(ref *_wakeWord);
            Libc.FutexWake(_wakeWord, 1);
        }

        /// <summary>Gate.</summary>
        public void AddSlot(Slot slot)
        {
            slot.Index = _slots.Count;
            _slots.Add(slot);
            _dirty = true;
        }

        /// <summary>Gate. Wakes the thread so it stops sleeping on a word that may be unmapped next.</summary>
        public void RemoveSlot(Slot slot)
        {
            Slot last = _slots[^1];
            _slots[slot.Index] = last;
            last.Index = slot.Index;
            _slots.RemoveAt(_slots.Count - 1);
            slot.Gone = true;
            _dirty = true;
            Wake();
        }

        /// <summary>Gate.</summary>
        public void RetryLater(Slot slot)
        {
            if (!slot.RetryPending)
            {
                slot.RetryPending = true;
                _retry.Add(slot);
            }
        }

        private void Run()
        {
            _vector = (Libc.FutexWaitv*)NativeMemory.AllocZeroed((nuint)(VectorLength * sizeof(Libc.FutexWaitv)));
            try
            {
                while (true)
                {
                    try
                    {
                        if (!Pass())
                        {
                            return;
                        }
                    }
                    catch (Exception unexpected)
                    {
                        Fail(unexpected);
                    }
                }
            }
            catch
            {
                // Nothing may leave this thread: the runtime would end the process.
            }
            finally
            {
                NativeMemory.Free(_vector);
            }
        }

        /// <summary>One round: take what arrived, try the words that moved, run the timers, sleep. False once retired.</summary>
        private bool Pass()
        {
            int wakeSeen = Volatile.Read(ref *_wakeWord);
            lock (Gate)
            {
                if (_slots.Count == 0 && Incoming.Count == 0 && _retry.Count == 0)
                {
                    long now = Stopwatch.GetTimestamp();
                    _idleSince = _idleSince == 0 ? now : _idleSince;
                    if (now - _idleSince >= LingerTicks)
                    {
                        Retire();
                        return false;
                    }
                }
                else
                {
                    _idleSince = 0;
                }
                _arrived.AddRange(Incoming);
                Incoming.Clear();
                foreach (Slot slot in _retry)
                {
                    slot.RetryPending = false;
                    _toRetry.Add(slot);
                }
                _retry.Clear();
            }
            long start = Stopwatch.GetTimestamp();
            foreach (Registration registration in _arrived)
            {
                Schedule(registration, start);
            }
            _arrived.Clear();
            foreach (Slot slot in _toRetry)
            {
                TrySlot(slot);
            }
            _toRetry.Clear();
            RunTimers();
            Sleep(wakeSeen);
            return true;
        }

        /// <summary>Gate. Leaves the list of shards; the wake word goes with it (no slot names this shard any more).</summary>
        private void Retire()
        {
            Shards.Remove(this);
            NativeMemory.Free(_wakeWord);
        }

        private void Schedule(Registration registration, long now)
        {
            long due = registration.NextDue(now);
            if (due != long.MaxValue && !registration.IsFinished)
            {
                registration.Due = due;
                _timers.Enqueue(registration, due);
            }
        }

        /// <summary>Tries every wait on <paramref name="slot"/>'s word; a sequence slot then sleeps on the value read before the tries.</summary>
        private void TrySlot(Slot slot)
        {
            int seen, joins;
            lock (Gate)
            {
                if (slot.Gone)
                {
                    return;
                }
                seen = Volatile.Read(ref *slot.Word); // mapped: a wait in the slot holds it
                joins = slot.Joins;
                slot.CopyTo(_tries);
            }
            int satisfied = 0;
            try
            {
                foreach (Registration registration in _tries)
                {
                    registration.Take();
                    satisfied += registration.IsFinished ? 1 : 0;
                }
            }
            finally
            {
                _tries.Clear();
            }
            lock (Gate)
            {
                if (slot.Gone)
                {
                    return;
                }
                if (!slot.IsSequence)
                {
                    // Every predicate refuses impossible values by throwing, so this is a safety net only.
                    slot.Fruitless = seen != slot.Expected && satisfied == 0 ? slot.Fruitless + 1 : 0;
                    SleepOn(slot, slot.Fruitless > FruitlessTries ? seen : slot.Expected);
                    return;
                }
                if (slot.Expected != seen)
                {
                    slot.Expected = seen;
                    SleepOn(slot, seen);
                }
                if (slot.Joins != joins)
                {
                    RetryLater(slot); // a newcomer may have looked before the value this slot now sleeps on
                }
            }
        }

        /// <summary>Gate.</summary>
        private void SleepOn(Slot slot, int value)
        {
            if (slot.SleepValue != value)
            {
                slot.SleepValue = value;
                _dirty = true;
            }
        }

        private void RunTimers()
        {
            long now = Stopwatch.GetTimestamp();
            while (_timers.TryPeek(out Registration? registration, out long due) && due <= now)
            {
                _timers.Dequeue();
                if (registration.IsFinished || registration.Due != due)
                {
                    continue; // finished, or queued again for another moment
                }
                registration.Take();
                if (registration.IsFinished)
                {
                    continue;
                }
                if (now >= registration.Deadline)
                {
                    registration.Finish(Outcome.TimedOut);
                    continue;
                }
                Schedule(registration, now);
            }
            // Finished waits leave their entries behind: when the queue has doubled since it was last
            // cleaned, keep only the live ones (amortised O(log n) per entry, whatever the churn).
            if (_timers.Count > _compactAt)
            {
                var live = new List<(Registration, long)>();
                foreach ((Registration registration, long due) in _timers.UnorderedItems)
                {
                    if (!registration.IsFinished && registration.Due == due)
                    {
                        live.Add((registration, due));
                    }
                }
                _timers.Clear();
                _timers.EnqueueRange(live);
                _compactAt = (2 * live.Count) + 64;
            }
        }

        /// <summary>The earliest live timer, dropping finished ones from the front; <see cref="long.MaxValue"/> if none.</summary>
        private long NextDue()
        {
            while (_timers.TryPeek(out Registration? registration, out long due))
            {
                if (!registration.IsFinished && registration.Due == due)
                {
                    return due;
                }
                _timers.Dequeue();
            }
            return long.MaxValue;
        }

        /// <summary>Sleeps until a word moves, the wake word is bumped, or the next timer; notes the words to try.</summary>
        private void Sleep(int wakeSeen)
        {
            long due = NextDue();
            bool polling = s_polling;
            lock (Gate)
            {
                if (_slots.Count == 0)
                {
                    due = Math.Min(due, _idleSince == 0 ? Stopwatch.GetTimestamp() : _idleSince + LingerTicks);
                }
                if (!polling && _dirty)
                {
                    Rebuild();
                }
            }
            if (polling)
            {
                Libc.TimeSpec until = Deadline.At(due).AtMost(PollTicks).ToTimeSpec(Libc.CLOCK_MONOTONIC);
                Libc.FutexWait(_wakeWord, wakeSeen, &until);
                ScanAll();
                return;
            }
            _vector[0].Value = (uint)wakeSeen;
            int woken;
            if (due == long.MaxValue)
            {
                woken = Libc.futex_waitv(_vector, _watched + 1, null);
            }
            else
            {
                Libc.TimeSpec until = Deadline.At(due).ToTimeSpec(Libc.CLOCK_MONOTONIC);
                woken = Libc.futex_waitv(_vector, _watched + 1, &until);
            }
            if (woken > 0 && woken <= _watched && _bound[woken - 1] is Slot moved)
            {
                _toRetry.Add(moved);
                return;
            }
            if (woken >= 0)
            {
                return; // the wake word: the next pass takes what arrived
            }
            switch (Marshal.GetLastPInvokeError())
            {
                case LinuxErrno.EAGAIN: // some word (or the wake word) did not hold its value: which one, the kernel does not say
                case LinuxErrno.EFAULT: // a word left while the vector was being read; the rebuild drops it
                    ScanAll();
                    break;
                case LinuxErrno.ETIMEDOUT or LinuxErrno.EINTR:
                    break;
                case LinuxErrno.ENOSYS or LinuxErrno.EPERM:
                    s_polling = true; // futex_waitv vanished (a seccomp profile?): poll from now on
                    break;
                case int error:
                    throw new ShmException("futex_waitv", error, $"watching {_watched} shared words");
            }
        }

        /// <summary>Gate. Writes the vector: the wake word, then each slot's word and the value it sleeps on.</summary>
        private void Rebuild()
        {
            _vector[0] = new Libc.FutexWaitv { Address = (ulong)_wakeWord, Flags = Libc.FUTEX2_SIZE_U32 };
            Array.Clear(_bound);
            _watched = Math.Min(_slots.Count, WordsPerShard);
            for (int i = 0; i < _watched; i++)
            {
                Slot slot = _slots[i];
                _vector[i + 1] = new Libc.FutexWaitv { Address = (ulong)slot.Word, Value = (uint)slot.SleepValue, Flags = Libc.FUTEX2_SIZE_U32 };
                _bound[i] = slot;
            }
            _dirty = false;
        }

        /// <summary>Notes every slot whose word no longer holds the value it sleeps on.</summary>
        private void ScanAll()
        {
            lock (Gate)
            {
                foreach (Slot slot in _slots)
                {
                    if (Volatile.Read(ref *slot.Word) != slot.SleepValue)
                    {
                        _toRetry.Add(slot);
                    }
                }
            }
        }

        /// <summary>Something failed outside any predicate (a bug, or memory ran out): the shard's waits fault with it, the thread goes on.</summary>
        private void Fail(Exception unexpected)
        {
            try
            {
                var waits = new List<Registration>();
                lock (Gate)
                {
                    foreach (Slot slot in _slots)
                    {
                        slot.CopyTo(waits);
                    }
                }
                foreach (Registration registration in waits)
                {
                    registration.Finish(Outcome.Failed, unexpected);
                }
                _toRetry.Clear();
                _arrived.Clear();
                _tries.Clear();
            }
            catch
            {
                // Memory may be short; the next pass starts afresh.
            }
            Thread.Sleep(1); // a fault that repeats must not spin
        }
    }
}
