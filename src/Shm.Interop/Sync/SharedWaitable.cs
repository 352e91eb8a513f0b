using System;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A primitive that is waited on until a shared word lets the waiter through: the base of
/// <see cref="SharedSemaphore"/> (a count to take) and <see cref="SharedEvent"/> (a signal). It holds
/// the four waits of the blocking-call rule, written once: <see cref="Wait"/> as long as it takes,
/// <see cref="TryWait"/> up to a timeout, and <see cref="WaitAsync"/> and <see cref="TryWaitAsync"/>,
/// which hold no thread while they wait (one watcher thread serves every asynchronous wait of the
/// process, through futex_waitv).
/// </summary>
/// <remarks>
/// Every wait takes a <see cref="CancellationToken"/>: a cancelled wait throws
/// <see cref="OperationCanceledException"/> (a blocking one within 100 ms of the cancellation). A wait
/// that takes a value from the shared word refuses an impossible one with
/// <see cref="SharedMemoryCorruptedException"/>, and every wait still ends by its timeout, whatever a
/// peer writes.
/// </remarks>
public abstract unsafe class SharedWaitable : SharedPrimitive
{
    private readonly Func<bool> _tryTake;

    private protected SharedWaitable(SharedRegion region, long offset, PrimitiveKind kind, bool create, TimeSpan initialisationTimeout, Action<nint>? initialise)
        : base(region, offset, kind, create, initialisationTimeout, initialise) => _tryTake = TryTake;

    /// <summary>The index of the word that lets waiters through while it is not 0 (a count, a signal): the futex they sleep on.</summary>
    private protected abstract int SignalIndex { get; }

    /// <summary>The index of the word counting the sleepers, so that a release makes a system call only when someone sleeps.</summary>
    private protected abstract int WaitersIndex { get; }

    /// <summary>Waits, as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A shared word is impossible.</exception>
    public void Wait(CancellationToken cancellationToken = default) => WaitCore(Deadline.Never, cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/>; false if it timed out.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A shared word is impossible (a blocking wait whose peer writes it without waking it reports it at its timeout).</exception>
    public bool TryWait(TimeSpan timeout, CancellationToken cancellationToken = default) => WaitCore(Deadline.After(timeout), cancellationToken);

    /// <summary>Waits as long as it takes, without holding a thread.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ObjectDisposedException">This object was disposed before the wait (the task faults with it if it is disposed during the wait).</exception>
    /// <remarks>The task is cancelled with the token, and faults with <see cref="SharedMemoryCorruptedException"/> for an impossible shared word.</remarks>
    public Task WaitAsync(CancellationToken cancellationToken = default) => WaitCoreAsync(Deadline.Never, cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/>, without holding a thread; false if it timed out.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed before the wait (the task faults with it if it is disposed during the wait).</exception>
    /// <remarks>The task is cancelled with the token, and faults with <see cref="SharedMemoryCorruptedException"/> for an impossible shared word.</remarks>
    public Task<bool> TryWaitAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => WaitCoreAsync(Deadline.After(timeout), cancellationToken);

    /// <summary>
    /// Takes what the signal word offers (a count; an auto-reset event's signal) or passes (a
    /// manual-reset event's); false only when it was read as 0. Refuses impossible values with
    /// <see cref="SharedMemoryCorruptedException"/>, so a word a peer keeps non-zero cannot make a wait spin.
    /// </summary>
    private protected abstract bool TryTake();

    private protected override void OnDispose() => FutexWatcher.Abandon(this);

    /// <summary>
    /// The blocking wait: sleeps on the signal word (a shared futex) while it is 0, until
    /// <see cref="TryTake"/> succeeds, the deadline passes or the token is cancelled (its callback
    /// wakes the word's sleepers, who look again; a cancellable wait also sleeps in slices of at most
    /// 100 ms, for a wake that came just before its sleep). Every pass checks the deadline. Once it
    /// sleeps, the memory stays mapped (<see cref="SharedPrimitive.PinMapping"/>), and a wake-up after
    /// this object was disposed ends it with <see cref="ObjectDisposedException"/>.
    /// </summary>
    private bool WaitCore(Deadline deadline, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        if (TryTake())
        {
            return true;
        }
        if (deadline.HasPassed)
        {
            return false; // a timeout of zero: looked once
        }
        int* word = &Words[SignalIndex];
        using SafeHandleLease pin = PinMapping();
        Interlocked.Increment(ref Words[WaitersIndex]);
        try
        {
            using CancellationTokenRegistration wakeOnCancel = FutexParker.WakeOnCancel(word, cancellationToken);
            while (true)
            {
                if (TryTake())
                {
                    return true;
                }
                cancellationToken.ThrowIfCancellationRequested();
                if (deadline.HasPassed)
                {
                    return false;
                }
                SleepWhile(word, 0, deadline.SliceFor(cancellationToken));
                ThrowIfDisposed();
            }
        }
        finally
        {
            Interlocked.Decrement(ref Words[WaitersIndex]);
        }
    }

    /// <summary>
    /// The asynchronous wait, on the futex watcher. A Dispose that runs while the wait is being
    /// registered may look for this object's waits (to end them) before this one is there: so once it
    /// is, disposal is looked at again, and the wait ended then if need be. With a full fence on each
    /// side (Dispose's exchange, the barrier here), one of the two sees the other.
    /// </summary>
    private Task<bool> WaitCoreAsync(Deadline deadline, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        Task<bool> waiting = FutexWatcher.Wait(this, Region.SafeMappingHandle, &Words[SignalIndex], &Words[WaitersIndex], _tryTake, deadline, cancellationToken);
        if (!waiting.IsCompleted)
        {
            Interlocked.MemoryBarrier();
            if (IsDisposed)
            {
                FutexWatcher.Abandon(this);
            }
        }
        return waiting;
    }
}
