using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Serves every asynchronous wait on a shared semaphore, event or channel in this process with one
/// thread, which sleeps in futex_waitv (Linux 5.16+) on all the words waited for at once, plus a word
/// of its own that new registrations wake. Each word is waited on while it holds the value the
/// registration names (0 for a semaphore's count or an event's signal; the last sequence number seen
/// for a channel). On kernels without futex_waitv it wakes every 2 ms instead.
/// </summary>
internal static unsafe class FutexWatcher
{
    /// <summary>futex_waitv takes at most 128 words: ours and 127 others; beyond that the thread also wakes every 2 ms.</summary>
    private const int MaxWords = 128;

    private static readonly Lock Gate = new();
    private static readonly List<Registration> Pending = [];
    private static readonly int* WakeWord = (int*)NativeMemory.AllocZeroed(sizeof(int));
    private static bool s_started;

    public static Task<bool> Wait(object owner, SafeHandle mapping, int* word, int* waiters, Func<bool> tryTake, TimeSpan timeout, CancellationToken cancellationToken) =>
        Wait(owner, mapping, word, 0, waiters, tryTake, timeout, cancellationToken, pollEvery: 0);

    /// <summary>
    /// Completes when <paramref name="tryTake"/> succeeds (true) or <paramref name="timeout"/> passes
    /// (false); it is tried whenever <paramref name="word"/> stops holding <paramref name="value"/>,
    /// and every <paramref name="pollEvery"/> Stopwatch ticks if that is not 0 (to notice a dead peer).
    /// If <paramref name="tryTake"/> throws (a dead peer, corrupt shared memory), the task faults with
    /// that exception: nothing escapes the watcher's thread. <see cref="Abandon"/> with the same
    /// <paramref name="owner"/> ends the wait with <see cref="ObjectDisposedException"/>.
    /// </summary>
    public static Task<bool> Wait(object owner, SafeHandle mapping, int* word, int value, int* waiters, Func<bool> tryTake, TimeSpan timeout, CancellationToken cancellationToken, long pollEvery)
    {
        ArgumentNullException.ThrowIfNull(owner);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<bool>(cancellationToken);
        }
        try
        {
            if (tryTake())
            {
                return Task.FromResult(true);
            }
        }
        catch (Exception failure)
        {
            return Task.FromException<bool>(failure);
        }
        if (timeout == TimeSpan.Zero)
        {
            return Task.FromResult(false);
        }
        var registration = new Registration(owner, mapping, word, value, waiters, tryTake, Child.Deadline(timeout), pollEvery);
        Interlocked.Increment(ref *waiters);
        lock (Gate)
        {
            if (!s_started)
            {
                new Thread(Loop) { IsBackground = true, Name = "Shm futex watcher" }.Start();
                s_started = true;
            }
            Pending.Add(registration);
        }
        Wake();
        if (cancellationToken.CanBeCanceled)
        {
            registration.Cancellation = cancellationToken.UnsafeRegister(
                static (state, token) => ((Registration)state!).Finish(canceled: token),
                registration);
        }
        return registration.Task;
    }

    /// <summary>Ends the pending waits of <paramref name="owner"/> (a primitive, reader or writer being disposed) with <see cref="ObjectDisposedException"/>.</summary>
    public static void Abandon(object owner)
    {
        List<Registration> gone;
        lock (Gate)
        {
            gone = Pending.FindAll(registration => ReferenceEquals(registration.Owner, owner));
        }
        foreach (Registration registration in gone)
        {
            registration.Finish(disposed: true);
        }
    }

    private static void Wake()
    {
        Interlocked.Increment(ref *WakeWord);
        Libc.FutexWake(WakeWord, 1);
    }

    private static void Loop()
    {
        var waits = new Libc.FutexWaitv[MaxWords];
        var active = new List<Registration>();
        bool haveWaitv = true;
        while (true)
        {
            int wakeSeen = Volatile.Read(ref *WakeWord);
            active.Clear();
            lock (Gate)
            {
                Pending.RemoveAll(registration => registration.Task.IsCompleted);
                active.AddRange(Pending);
            }
            long now = Stopwatch.GetTimestamp();
            long nextDeadline = long.MaxValue;
            int count = 0;
            waits[count++] = new Libc.FutexWaitv { Address = (ulong)WakeWord, Value = (uint)wakeSeen, Flags = Libc.FUTEX2_SIZE_U32 };
            foreach (Registration registration in active)
            {
                if (registration.Take())
                {
                    continue;
                }
                if (now >= registration.Deadline)
                {
                    registration.Finish(result: false);
                    continue;
                }
                nextDeadline = Math.Min(nextDeadline, registration.Deadline);
                if (registration.PollEvery > 0)
                {
                    nextDeadline = Math.Min(nextDeadline, now + registration.PollEvery);
                }
                if (count < MaxWords && !Contains(waits, count, registration.Word, registration.Value))
                {
                    waits[count++] = new Libc.FutexWaitv { Address = (ulong)registration.Word, Value = (uint)registration.Value, Flags = Libc.FUTEX2_SIZE_U32 };
                }
                else if (count == MaxWords)
                {
                    nextDeadline = Math.Min(nextDeadline, now + (Stopwatch.Frequency / 500));
                }
            }
            if (!haveWaitv)
            {
                nextDeadline = Math.Min(nextDeadline, now + (Stopwatch.Frequency / 500));
            }
            Libc.TimeSpec deadline = Libc.DeadlineOn(Libc.CLOCK_MONOTONIC, nextDeadline == long.MaxValue
                ? TimeSpan.FromDays(1)
                : TimeSpan.FromTicks((long)((nextDeadline - now) * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
            if (haveWaitv)
            {
                fixed (Libc.FutexWaitv* vector = waits)
                {
                    if (Libc.futex_waitv(vector, count, &deadline) < 0 && Marshal.GetLastPInvokeError() == 38 /* ENOSYS */)
                    {
                        haveWaitv = false;
                    }
                }
            }
            else
            {
                Libc.FutexWaitUntil(WakeWord, wakeSeen, &deadline);
            }
        }
    }

    private static bool Contains(Libc.FutexWaitv[] waits, int count, int* word, int value)
    {
        for (int i = 0; i < count; i++)
        {
            if (waits[i].Address == (ulong)word && waits[i].Value == (uint)value)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// One asynchronous wait. It holds a reference on the region's mapping until it finishes, and
    /// touches the words only under its own lock while unfinished, so a primitive disposed (and its
    /// region unmapped) meanwhile is never read.
    /// </summary>
    private sealed class Registration : TaskCompletionSource<bool>
    {
        private readonly SafeHandle _mapping;
        private readonly int* _waiters;
        private readonly Func<bool> _tryTake;
        private bool _finished;

        public Registration(object owner, SafeHandle mapping, int* word, int value, int* waiters, Func<bool> tryTake, long deadline, long pollEvery)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            Owner = owner;
            bool added = false;
            mapping.DangerousAddRef(ref added);
            _mapping = mapping;
            Word = word;
            Value = value;
            PollEvery = pollEvery;
            _waiters = waiters;
            _tryTake = tryTake;
            Deadline = deadline;
        }

        public object Owner { get; }

        public int* Word { get; }

        public int Value { get; }

        public long PollEvery { get; }

        public long Deadline { get; }

        public CancellationTokenRegistration Cancellation;

        /// <summary>
        /// Takes a count or the signal if there is one, and finishes; false if it must go on waiting.
        /// A predicate that throws finishes the wait with its exception: it runs on the watcher's
        /// thread, where an escaping exception would end the process.
        /// </summary>
        public bool Take()
        {
            Exception? failure = null;
            lock (this)
            {
                try
                {
                    if (_finished || !_tryTake())
                    {
                        return _finished;
                    }
                }
                catch (Exception caught)
                {
                    failure = caught;
                }
            }
            Finish(result: true, failure: failure);
            return true;
        }

        public void Finish(bool result = false, CancellationToken canceled = default, bool disposed = false, Exception? failure = null)
        {
            lock (this)
            {
                if (_finished)
                {
                    return;
                }
                _finished = true;
                Interlocked.Decrement(ref *_waiters);
            }
            _mapping.DangerousRelease();
            Cancellation.Dispose();
            _ = disposed ? TrySetException(new ObjectDisposedException("The shared primitive was disposed while this wait was pending."))
                : failure is not null ? TrySetException(failure)
                : canceled.IsCancellationRequested ? TrySetCanceled(canceled)
                : TrySetResult(result);
            if (canceled.IsCancellationRequested || disposed || failure is not null)
            {
                Wake(); // so the thread drops it from the words it waits on
            }
        }
    }
}
