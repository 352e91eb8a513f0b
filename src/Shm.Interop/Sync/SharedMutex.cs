using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A mutex in shared memory that C can use too: a glibc <c>pthread_mutex_t</c> made
/// <c>PTHREAD_PROCESS_SHARED</c>, <c>PTHREAD_MUTEX_ROBUST</c> and error-checking, after the
/// 8-byte header every <see cref="SharedPrimitive"/> has. A C program locks the same mutex with
/// <c>pthread_mutex_lock</c> (see <c>include/shm/shm.h</c>).
/// </summary>
/// <remarks>
/// <para><b>For processes that trust each other.</b> glibc keeps the owner's robust-list links
/// inside the shared <c>pthread_mutex_t</c>, and a locker's thread-local address is visible there
/// to every process that maps the region: a peer that rewrites those bytes makes the process that
/// unlocks (or dies holding) the mutex write a value of the peer's choosing at an address of the
/// peer's choosing. Use it between processes you trust (your own workers, C programs you ship);
/// between processes that do not trust each other use <see cref="SharedFutexMutex"/>, which keeps
/// no pointer in shared memory.</para>
/// <para><b>A dead owner.</b> When the owner dies holding the mutex (any process, <c>kill -9</c>
/// included), the next locker gets it: the mutex is made consistent (<c>pthread_mutex_consistent</c>)
/// and the call throws <see cref="AbandonedMutexException"/>, exactly as <see cref="WaitHandle.WaitOne()"/> on a <see cref="Mutex"/>
/// does. The caller owns the mutex in the handler: repair what it guards, then <see cref="Unlock"/>.
/// The mutex stays usable after any number of dead owners (unlike Boost.Interprocess's, which never
/// makes it consistent).</para>
/// <para><b>Ownership is per thread.</b> Unlocking from a thread that does not own it, including a
/// continuation after an <c>await</c>, throws <see cref="SynchronizationLockException"/>; locking it
/// again from the owning thread throws <see cref="LockRecursionException"/>. So there is no
/// <c>LockAsync</c>: an <c>await</c> may resume on another thread, which could not unlock.</para>
/// </remarks>
public sealed unsafe class SharedMutex : SharedPrimitive
{
    private SharedMutex(SharedRegion region, long offset, bool create, TimeSpan timeout)
        : base(region, offset, PrimitiveKind.SharedMutex, create, timeout, Initialise) { }

    private void* Mutex => Words + 2;

    /// <summary>Initialises a new mutex at <paramref name="offset"/> of <paramref name="region"/> (64 zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region other processes map.</param>
    /// <param name="offset">Where, a multiple of 8; <see cref="SharedPrimitive.Size"/> bytes from there must be zero.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    /// <exception cref="ShmException">glibc refused to initialise the <c>pthread_mutex_t</c>.</exception>
    public static SharedMutex Create(SharedRegion region, long offset = 0) => new(region, offset, create: true, TimeSpan.Zero);

    /// <summary>Opens the mutex another process created at <paramref name="offset"/>, waiting up to 5 s for one being initialised.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a mutex, is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedMutex Open(SharedRegion region, long offset = 0) => new(region, offset, create: false, DefaultInitialisationTimeout);

    /// <summary>Opens the mutex at <paramref name="offset"/>, creating it if the bytes there are still zero.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Something other than a mutex is there, or the bytes are neither zero nor a primitive.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    /// <exception cref="ShmException">glibc refused to initialise the <c>pthread_mutex_t</c>.</exception>
    public static SharedMutex OpenOrCreate(SharedRegion region, long offset = 0)
    {
        try
        {
            return Create(region, offset);
        }
        catch (InvalidOperationException)
        {
            return Open(region, offset);
        }
    }

    /// <summary>Locks, waiting as long as it takes; dispose the result (or call <see cref="Unlock"/>) to release.</summary>
    /// <param name="cancellationToken">Stops waiting; a blocked wait looks at it every 100 ms.</param>
    /// <exception cref="OperationCanceledException">Cancelled before the lock was taken.</exception>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now, and it is consistent.</exception>
    /// <exception cref="LockRecursionException">This thread holds it already.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    public Releaser Lock(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        // A try first, without a GC transition: the uncontended case never blocks.
        int error = Libc.pthread_mutex_trylock_fast(Mutex);
        if (error == LinuxErrno.EBUSY)
        {
            error = LockContended(cancellationToken);
        }
        Check(error, "pthread_mutex_lock");
        return new Releaser(this);
    }

    // Out of line: its try/finally (the pinned mapping) would otherwise make every uncontended Lock
    // pay for a frame with exception handling (paired quick runs against the library before issue 15:
    // 1.18x its ratio to C with the slow path inline, 1.02x with it here).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int LockContended(CancellationToken cancellationToken)
    {
        using (PinMapping())
        {
            return cancellationToken.CanBeCanceled
                ? TimedLock(Deadline.Never, cancellationToken)
                : LeaveIfDisposed(Libc.pthread_mutex_lock(Mutex));
        }
    }

    /// <summary>Locks if it is free now; false if another owner holds it (this thread included).</summary>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now, and it is consistent.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed.</exception>
    public bool TryLock()
    {
        ThrowIfDisposed();
        return Check(Libc.pthread_mutex_trylock_fast(Mutex), "pthread_mutex_trylock");
    }

    /// <summary>
    /// Locks, waiting up to <paramref name="timeout"/> (on the monotonic clock); false if it timed out.
    /// Unlike <see cref="Lock"/> it returns no releaser: the caller unlocks (<see cref="Unlock"/>) when it got the lock.
    /// </summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting (as <see cref="TryLock()"/>), <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting; a blocked wait looks at it every 100 ms.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the lock was taken.</exception>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now, and it is consistent.</exception>
    /// <exception cref="LockRecursionException">This thread holds it already (and <paramref name="timeout"/> is not zero).</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    public bool TryLock(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        // As Lock: a try first, so only a wait that may block pays for holding the mapping.
        int error = Libc.pthread_mutex_trylock_fast(Mutex);
        if (error != LinuxErrno.EBUSY || timeout == TimeSpan.Zero)
        {
            return Check(error, "pthread_mutex_trylock");
        }
        using SafeHandleLease pin = PinMapping();
        if (deadline.IsNever && !cancellationToken.CanBeCanceled)
        {
            return Check(LeaveIfDisposed(Libc.pthread_mutex_lock(Mutex)), "pthread_mutex_lock");
        }
        return Check(TimedLock(deadline, cancellationToken), Libc.pthread_mutex_clocklock is not null ? "pthread_mutex_clocklock" : "pthread_mutex_timedlock");
    }

    /// <summary>
    /// Under <see cref="SharedPrimitive.PinMapping"/>: waits for the lock until <paramref name="deadline"/>,
    /// in slices of at most 100 ms when the token can be cancelled (glibc's wait cannot be woken for it).
    /// The last attempt's error, ETIMEDOUT once the deadline passed, through <see cref="LeaveIfDisposed"/>.
    /// </summary>
    private int TimedLock(Deadline deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Deadline until = deadline.SliceFor(cancellationToken);
            int error;
            if (Libc.pthread_mutex_clocklock is not null)
            {
                Libc.TimeSpec monotonic = until.ToTimeSpec(Libc.CLOCK_MONOTONIC);
                error = Libc.pthread_mutex_clocklock(Mutex, Libc.CLOCK_MONOTONIC, &monotonic);
            }
            else
            {
                Libc.TimeSpec wall = until.ToTimeSpec(Libc.CLOCK_REALTIME); // glibc before 2.30
                error = Libc.pthread_mutex_timedlock(Mutex, &wall);
            }
            if (error != LinuxErrno.ETIMEDOUT || deadline.HasPassed)
            {
                return LeaveIfDisposed(error);
            }
        }
    }

    /// <summary>
    /// After a blocking lock (under <see cref="SharedPrimitive.PinMapping"/>): if this object was disposed
    /// while it waited, gives the mutex back (consistent, if its owner had died) and throws
    /// <see cref="ObjectDisposedException"/>, rather than hand out a lock nobody can unlock through this object.
    /// </summary>
    private int LeaveIfDisposed(int error)
    {
        if (error is (0 or LinuxErrno.EOWNERDEAD) && IsDisposed)
        {
            if (error == LinuxErrno.EOWNERDEAD)
            {
                Libc.pthread_mutex_consistent(Mutex);
            }
            Libc.pthread_mutex_unlock(Mutex);
            ThrowIfDisposed();
        }
        return error;
    }

    /// <summary>Unlocks.</summary>
    /// <exception cref="SynchronizationLockException">This thread does not own the mutex.</exception>
    public void Unlock()
    {
        ThrowIfDisposed();
        int error = Libc.pthread_mutex_unlock(Mutex);
        if (error == LinuxErrno.EPERM)
        {
            throw new SynchronizationLockException(
                "This thread does not own the shared mutex: another thread locked it, or it was held across an await that resumed on another thread.");
        }
        Libc.CheckError(error, "pthread_mutex_unlock");
    }

    // No disposed check here: the lock may be held by now, and throwing would leak it.
    private bool Check(int error, string call)
    {
        switch (error)
        {
            case 0:
                return true;
            case LinuxErrno.EBUSY or LinuxErrno.ETIMEDOUT:
                return false;
            case LinuxErrno.EOWNERDEAD:
                ShmDiagnostics.DeadPeer("mutex_owner", 0); // the robust list names no pid
                Libc.CheckError(Libc.pthread_mutex_consistent(Mutex), "pthread_mutex_consistent");
                throw new AbandonedMutexException(
                    "The previous owner of the shared mutex died holding it. This thread owns it now and it was made consistent: " +
                    "repair the data it guards, then Unlock.");
            case LinuxErrno.EDEADLK:
                throw new LockRecursionException("This thread already holds the shared mutex.");
            default:
                Libc.CheckError(error, call, error == LinuxErrno.ENOTRECOVERABLE ? "the mutex was left inconsistent by a C owner that never called pthread_mutex_consistent" : null);
                return false;
        }
    }

    private static void Initialise(nint words)
    {
        byte* attributes = stackalloc byte[16];
        Libc.CheckError(Libc.pthread_mutexattr_init(attributes), "pthread_mutexattr_init");
        try
        {
            Libc.CheckError(Libc.pthread_mutexattr_setpshared(attributes, Libc.PTHREAD_PROCESS_SHARED), "pthread_mutexattr_setpshared");
            Libc.CheckError(Libc.pthread_mutexattr_setrobust(attributes, Libc.PTHREAD_MUTEX_ROBUST), "pthread_mutexattr_setrobust");
            Libc.CheckError(Libc.pthread_mutexattr_settype(attributes, Libc.PTHREAD_MUTEX_ERRORCHECK), "pthread_mutexattr_settype");
            Libc.CheckError(Libc.pthread_mutex_init((int*)words + 2, attributes), "pthread_mutex_init");
        }
        finally
        {
            Libc.pthread_mutexattr_destroy(attributes);
        }
    }

    /// <summary>Unlocks the mutex when disposed: <c>using (mutex.Lock()) { ... }</c>.</summary>
    public readonly struct Releaser : IDisposable
    {
        private readonly SharedMutex? _mutex;

        internal Releaser(SharedMutex mutex) => _mutex = mutex;

        /// <summary>Unlocks.</summary>
        /// <exception cref="SynchronizationLockException">This thread does not own the mutex (held across an await?).</exception>
        public void Dispose() => _mutex?.Unlock();
    }
}
