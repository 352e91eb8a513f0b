using System;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A condition variable in shared memory, used with a <see cref="SharedMutex"/>: <see cref="Wait"/>
/// unlocks the mutex, sleeps until <see cref="Signal"/> or <see cref="Broadcast"/> (or the timeout of
/// <see cref="TryWait"/>, or the token), and locks it again. As with every condition variable,
/// wake-ups may be spurious: wait in a loop that checks the condition under the mutex. There is no
/// asynchronous wait: the mutex is owned per thread, and an <c>await</c> may resume on another.
/// </summary>
public sealed unsafe class SharedCondition : SharedPrimitive
{
    private const int SequenceWord = 2;
    private const int WaitersWord = 3;

    private SharedCondition(SharedRegion region, long offset, bool create, TimeSpan timeout)
        : base(region, offset, PrimitiveKind.SharedCondition, create, timeout, static _ => { }) { }

    /// <summary>Initialises a new condition variable at <paramref name="offset"/> (64 zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region other processes map.</param>
    /// <param name="offset">Where, a multiple of 8.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the condition variable does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    public static SharedCondition Create(SharedRegion region, long offset) => new(region, offset, create: true, TimeSpan.Zero);

    /// <summary>Opens the condition variable another process created at <paramref name="offset"/>.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the condition variable does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a condition variable, is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedCondition Open(SharedRegion region, long offset = 0) => new(region, offset, create: false, DefaultInitialisationTimeout);

    /// <summary>Unlocks <paramref name="mutex"/>, waits for a signal, and locks it again.</summary>
    /// <param name="mutex">Held by this thread.</param>
    /// <param name="cancellationToken">Stops waiting; the mutex is locked again before <see cref="OperationCanceledException"/> leaves, as on every return.</param>
    /// <exception cref="ArgumentNullException"><paramref name="mutex"/> is null.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (this thread holds the mutex again).</exception>
    /// <exception cref="SynchronizationLockException">This thread does not hold <paramref name="mutex"/>.</exception>
    /// <exception cref="AbandonedMutexException">Relocking found the mutex's owner dead: this thread owns it, consistent.</exception>
    /// <exception cref="SharedMemoryCorruptedException">The shared waiter count is impossible (the mutex is still held).</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed.</exception>
    public void Wait(SharedMutex mutex, CancellationToken cancellationToken = default) => WaitCore(mutex, Deadline.Never, cancellationToken);

    /// <summary>Unlocks <paramref name="mutex"/>, waits up to <paramref name="timeout"/> for a signal, and locks it again; false if it timed out.</summary>
    /// <param name="mutex">Held by this thread.</param>
    /// <param name="timeout">How long; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting; the mutex is locked again before <see cref="OperationCanceledException"/> leaves, as on every return.</param>
    /// <exception cref="ArgumentNullException"><paramref name="mutex"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (this thread holds the mutex again).</exception>
    /// <exception cref="SynchronizationLockException">This thread does not hold <paramref name="mutex"/>.</exception>
    /// <exception cref="AbandonedMutexException">Relocking found the mutex's owner dead: this thread owns it, consistent.</exception>
    /// <exception cref="SharedMemoryCorruptedException">The shared waiter count is impossible (the mutex is still held).</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed.</exception>
    public bool TryWait(SharedMutex mutex, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitCore(mutex, Deadline.After(timeout), cancellationToken);

    /// <summary>Wakes one waiter.</summary>
    public void Signal() => Wake(1);

    /// <summary>Wakes every waiter.</summary>
    public void Broadcast() => Wake(int.MaxValue);

    /// <summary>
    /// Unlocks, sleeps once until the sequence moves, the deadline or (a cancellable wait, in slices
    /// of at most 100 ms) the token, and locks again. One sleep, as a condition variable may wake
    /// spuriously: the caller's loop checks its condition under the mutex.
    /// </summary>
    private bool WaitCore(SharedMutex mutex, Deadline deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(mutex);
        ThrowIfDisposed();
        bool signalled;
        using (PinMapping()) // the sleep below outlasts a Dispose of this object and its region: the words stay mapped until it has left
        {
            int* word = &Words[SequenceWord];
            int sequence = Volatile.Read(ref *word);
            int waiters = Interlocked.Increment(ref Words[WaitersWord]);
            try
            {
                if (waiters <= 0)
                {
                    throw Corrupted("waiter count", WaitersWord, waiters - 1, "0 or more"); // still holding the mutex, as on entry
                }
                mutex.Unlock();
                if (!cancellationToken.CanBeCanceled)
                {
                    SleepWhile(word, sequence, deadline);
                }
                else
                {
                    using CancellationTokenRegistration wake = FutexParker.WakeOnCancel(word, cancellationToken);
                    while (Volatile.Read(ref *word) == sequence && !deadline.HasPassed && !cancellationToken.IsCancellationRequested)
                    {
                        SleepWhile(word, sequence, deadline.SliceFor(cancellationToken));
                    }
                }
                signalled = Volatile.Read(ref *word) != sequence || !deadline.HasPassed;
            }
            finally
            {
                Interlocked.Decrement(ref Words[WaitersWord]);
            }
        }
        mutex.Lock();
        cancellationToken.ThrowIfCancellationRequested();
        return signalled;
    }

    private void Wake(int count)
    {
        ThrowIfDisposed();
        Interlocked.Increment(ref Words[SequenceWord]);
        // A negative waiter count is impossible; waking everyone is the safe answer to it.
        int waiters = Volatile.Read(ref Words[WaitersWord]);
        if (waiters != 0)
        {
            Libc.FutexWake(&Words[SequenceWord], waiters < 0 ? int.MaxValue : count);
        }
    }
}
