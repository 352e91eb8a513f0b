using System;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A counting semaphore in shared memory, on a shared futex: any process mapping the region may
/// release it or wait on it, with the waits every <see cref="SharedWaitable"/> has (a token on each,
/// a timeout on the Try forms, no thread held by the asynchronous ones).
/// </summary>
/// <remarks>
/// Layout after the header: the count, the number of waiters (so a release makes a system call only
/// when someone sleeps), the maximum. A semaphore has no owner, so a process that dies after taking a
/// count does not give it back: a waiter that depends on a peer should bound its wait, or cancel it
/// when the peer ends (<see cref="Child.WaitAsync"/> gives that moment).
/// <para>Every operation reads the shared words once and checks them: a count below 0 or above the
/// maximum, a maximum of 0 or less, or a negative waiter count (values no process following the
/// protocol writes) is reported as <see cref="SharedMemoryCorruptedException"/>, and waits still end
/// by their timeout.</para>
/// </remarks>
public sealed unsafe class SharedSemaphore : SharedWaitable
{
    private const int CountWord = 2;
    private const int WaitersWord = 3;
    private const int MaximumWord = 4;

    private SharedSemaphore(SharedRegion region, long offset, bool create, TimeSpan timeout, Action<nint>? initialise)
        : base(region, offset, PrimitiveKind.SharedSemaphore, create, timeout, initialise) { }

    private protected override int SignalIndex => CountWord;

    private protected override int WaitersIndex => WaitersWord;

    /// <summary>Initialises a new semaphore at <paramref name="offset"/> (64 zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region other processes map.</param>
    /// <param name="offset">Where, a multiple of 8.</param>
    /// <param name="initialCount">The count to start with, 0 to <paramref name="maximumCount"/>.</param>
    /// <param name="maximumCount">The most it may hold.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the semaphore does not fit in the region from there, or a count is out of range.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    public static SharedSemaphore Create(SharedRegion region, long offset, int initialCount, int maximumCount = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maximumCount);
        ArgumentOutOfRangeException.ThrowIfNegative(initialCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(initialCount, maximumCount);
        return new(region, offset, create: true, TimeSpan.Zero, words =>
        {
            ((int*)words)[CountWord] = initialCount;
            ((int*)words)[MaximumWord] = maximumCount;
        });
    }

    /// <summary>Opens the semaphore another process created at <paramref name="offset"/>.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the semaphore does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a semaphore, is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedSemaphore Open(SharedRegion region, long offset = 0) => new(region, offset, create: false, DefaultInitialisationTimeout, null);

    /// <summary>The count now (it may change at once).</summary>
    /// <exception cref="SharedMemoryCorruptedException">The shared count or maximum is impossible.</exception>
    public int CurrentCount => ReadCount(ReadMaximum());

    /// <summary>Adds <paramref name="releaseCount"/> and wakes as many waiters; returns the count before.</summary>
    /// <param name="releaseCount">At least 1.</param>
    /// <exception cref="SemaphoreFullException">The count would pass the maximum (nothing is added).</exception>
    /// <exception cref="SharedMemoryCorruptedException">The shared count or maximum is impossible (nothing is added).</exception>
    public int Release(int releaseCount = 1)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(releaseCount);
        int maximum = ReadMaximum();
        while (true)
        {
            int count = ReadCount(maximum);
            if (count > maximum - releaseCount)
            {
                throw new SemaphoreFullException($"Releasing {releaseCount} would take the shared semaphore past its maximum of {maximum} (it holds {count}).");
            }
            if (Interlocked.CompareExchange(ref Words[CountWord], count + releaseCount, count) == count)
            {
                // A negative waiter count is impossible; waking everyone is the safe answer to it.
                int waiters = Volatile.Read(ref Words[WaitersWord]);
                if (waiters != 0)
                {
                    Libc.FutexWake(&Words[CountWord], waiters < 0 ? int.MaxValue : releaseCount);
                }
                return count;
            }
        }
    }

    private int ReadMaximum()
    {
        int maximum = Volatile.Read(ref Words[MaximumWord]);
        return maximum > 0 ? maximum : throw Corrupted("maximum", MaximumWord, maximum, "1 or more");
    }

    private int ReadCount(int maximum)
    {
        int count = Volatile.Read(ref Words[CountWord]);
        return count >= 0 && count <= maximum ? count : throw Corrupted("count", CountWord, count, $"0 to the maximum, {maximum}");
    }

    // False only when the count was read as 0; a lost race reads again (someone else took or gave).
    private protected override bool TryTake()
    {
        int maximum = ReadMaximum();
        int waiters = Volatile.Read(ref Words[WaitersWord]);
        if (waiters < 0)
        {
            throw Corrupted("waiter count", WaitersWord, waiters, "0 or more");
        }
        while (true)
        {
            int count = ReadCount(maximum);
            if (count == 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref Words[CountWord], count - 1, count) == count)
            {
                return true;
            }
        }
    }
}
