using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

internal static unsafe partial class FutexWatcher
{
    /// <summary>
    /// One asynchronous wait. It holds a reference on the region's mapping until it finishes, and runs
    /// its predicate only under its own lock while unfinished, so memory it no longer holds is never
    /// read. It finishes exactly once: a count taken and a cancellation cannot both win.
    /// </summary>
    private sealed class Registration : TaskCompletionSource<bool>
    {
        private readonly int* _waiters;
        private readonly Func<bool> _tryTake;
        private volatile bool _finished;

        public Registration(object owner, SafeHandle mapping, int* word, bool sequence, int* waiters, Func<bool> tryTake, long deadline, long pollEvery)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            Owner = owner;
            Mapping = mapping;
            Word = word;
            IsSequence = sequence;
            _waiters = waiters;
            _tryTake = tryTake;
            Deadline = deadline;
            PollEvery = pollEvery;
        }

        public object Owner { get; }

        /// <summary>Referenced (DangerousAddRef) by the caller of the constructor; released once, when the wait finishes.</summary>
        public SafeHandle Mapping { get; }

        public int* Word { get; }

        /// <summary>A sequence wait (tried when the word changes) rather than a level wait (tried while it is not 0).</summary>
        public bool IsSequence { get; }

        /// <summary>The slot it belongs in: waits on one word share a slot, level waits apart from sequence waits.</summary>
        public (nint Word, long Key) SlotKey(int seen) => ((nint)Word, IsSequence ? long.MinValue : seen);

        /// <summary>The Stopwatch timestamp at which it times out; <see cref="long.MaxValue"/> for never.</summary>
        public long Deadline { get; }

        /// <summary>Stopwatch ticks between tries that no wake prompted; 0 for none.</summary>
        public long PollEvery { get; }

        /// <summary>When the shard's timer queue holds this registration for: the entry that does not match is stale.</summary>
        public long Due { get; set; } = long.MaxValue;

        /// <summary>Its slot while it is in one (guarded by the gate).</summary>
        public Slot? Slot { get; set; }

        /// <summary>Its place in the slot's list (guarded by the gate).</summary>
        public LinkedListNode<Registration>? Node { get; set; }

        public CancellationTokenRegistration Cancellation;

        public bool IsFinished => _finished;

        /// <summary>The next moment a timer must look at it, after <paramref name="now"/>: its deadline or its next poll.</summary>
        public long NextDue(long now) =>
            PollEvery > 0 && now + PollEvery < Deadline ? now + PollEvery : Deadline;

        /// <summary>
        /// Tries the predicate once, unless the wait is over; finishes it if the predicate succeeded
        /// or threw (a throwing predicate faults this wait only: it runs on a shard thread, where an
        /// escaping exception would end the process), or if the region was disposed meanwhile.
        /// </summary>
        public void Take()
        {
            Outcome outcome;
            Exception? failure = null;
            lock (this)
            {
                if (_finished)
                {
                    return;
                }
                if (IsDisposed(Mapping))
                {
                    outcome = Outcome.Unmapped;
                }
                else
                {
                    try
                    {
                        if (!_tryTake())
                        {
                            return;
                        }
                        outcome = Outcome.Took;
                    }
                    catch (Exception caught)
                    {
                        failure = caught;
                        outcome = Outcome.Failed;
                    }
                }
                _finished = true;
            }
            Complete(outcome, failure, default);
        }

        /// <summary>Ends the wait with <paramref name="outcome"/> unless it already ended.</summary>
        public void Finish(Outcome outcome, Exception? failure = null, CancellationToken canceled = default)
        {
            lock (this)
            {
                if (_finished)
                {
                    return;
                }
                _finished = true;
            }
            Complete(outcome, failure, canceled);
        }

        // Out of its slot first, then the waiter count and the mapping: after the release the word may be unmapped.
        private void Complete(Outcome outcome, Exception? failure, CancellationToken canceled)
        {
            Remove(this);
            Interlocked.Decrement(ref *_waiters);
            Mapping.DangerousRelease();
            Cancellation.Dispose();
            _ = outcome switch
            {
                Outcome.Took => TrySetResult(true),
                Outcome.TimedOut => TrySetResult(false),
                Outcome.Canceled => TrySetCanceled(canceled),
                Outcome.Abandoned => TrySetException(new ObjectDisposedException(Owner.GetType().Name, "It was disposed while this wait was pending.")),
                Outcome.Unmapped => TrySetException(RegionDisposed()),
                _ => TrySetException(failure ?? new InvalidOperationException("The wait failed.")),
            };
        }
    }

    /// <summary>The waits on one word, in the order they came. Guarded by the gate.</summary>
    private sealed class Slot
    {
        private readonly LinkedList<Registration> _waits = new();

        public Slot(int* word, int expected, bool sequence, Shard shard)
        {
            Word = word;
            Expected = expected;
            SleepValue = expected;
            IsSequence = sequence;
            Shard = shard;
        }

        /// <summary>Mapped while the slot has a wait: each holds the mapping until it has left.</summary>
        public int* Word { get; }

        /// <summary>
        /// The value the shard sleeps on: 0 for level waits; for sequence waits, the word as read just
        /// before they were last tried.
        /// </summary>
        public int Expected { get; set; }

        /// <summary>Sequence waits follow the word; level waits keep sleeping on 0.</summary>
        public bool IsSequence { get; }

        /// <summary>
        /// The value the shard thread sleeps on: <see cref="Expected"/>, except for a level slot whose
        /// word stayed non-zero through many tries that satisfied nobody (a predicate refusing what the
        /// word holds): that one sleeps on what it read, so it waits for a change instead of spinning.
        /// </summary>
        public int SleepValue { get; set; }

        /// <summary>Tries in a row in which a level slot's word was not 0 and nobody was satisfied.</summary>
        public int Fruitless { get; set; }

        public (nint Word, long Key) Key => ((nint)Word, IsSequence ? long.MinValue : Expected);

        public Shard Shard { get; }

        /// <summary>Its index in the shard's list (and, plus one, in the futex_waitv vector once rebuilt).</summary>
        public int Index { get; set; }

        /// <summary>Counts joins, so a try that overlapped one runs again (the newcomer may have seen an older value).</summary>
        public int Joins { get; private set; }

        /// <summary>True once it left its shard: its word may be unmapped.</summary>
        public bool Gone { get; set; }

        /// <summary>True while it is in its shard's list of slots to try again.</summary>
        public bool RetryPending { get; set; }

        public bool IsEmpty => _waits.Count == 0;

        public void Join(Registration registration)
        {
            registration.Slot = this;
            registration.Node = _waits.AddLast(registration);
            Joins++;
        }

        public void Leave(Registration registration)
        {
            _waits.Remove(registration.Node!);
            registration.Node = null;
            registration.Slot = null;
        }

        public void CopyTo(List<Registration> list) => list.AddRange(_waits);
    }
}
