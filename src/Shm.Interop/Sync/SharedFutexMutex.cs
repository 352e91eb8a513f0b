using System;
using System.Diagnostics;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A mutex in shared memory for processes that do not trust each other: a bare futex word and the
/// owner's identity, no pointer anywhere in shared memory, so whatever a peer writes there can at
/// worst break the mutual exclusion it takes part in, never make this process read or write
/// elsewhere. C locks the same mutex with <c>shm_futex_mutex_lock</c> (<c>include/shm/shm.h</c>).
/// </summary>
/// <remarks>
/// <para><b>Which mutex.</b> <see cref="SharedMutex"/> is glibc's robust <c>pthread_mutex_t</c>: C
/// programs lock it with plain <c>pthread_mutex_lock</c>, and the kernel hands it on the instant an
/// owner dies; but glibc keeps the owner's robust-list pointers inside the shared bytes, so a peer that
/// rewrites them makes the unlocking process write a value of the peer's choosing at an address of the
/// peer's choosing. Use it between processes that trust each other. Use this one when a peer may be
/// buggy or hostile.</para>
/// <para><b>Layout</b> after the 8-byte header: the lock word (bit 31: someone sleeps; bits 22 to 30:
/// a generation bumped by every acquisition; bits 0 to 21: the owner's tid, 0 when free), the owner's
/// pid, and the owner's record (the lock word it took, without bit 31, and the low 32 bits of its
/// thread's start time). The generation ties the record to the acquisition it describes, so a stale
/// record never condemns a live owner, and a takeover (a compare-and-swap of the exact word seen)
/// cannot take a later acquisition by mistake.</para>
/// <para><b>A dead owner.</b> Waiters sleep on the word in slices; once the same owner has held it
/// for 10 ms, and every 100 ms after that, and once more before a timed lock gives up, they ask the kernel whether the owner thread still exists
/// (<c>tgkill(pid, tid, 0)</c>, then its <c>/proc</c> state and start time). Only "no such thread", a
/// zombie, or another start time count as dead; a thread this process may not look at counts as alive.
/// The first locker to see it dead takes the mutex over and gets <see cref="AbandonedMutexException"/>,
/// owning it, as <see cref="SharedMutex"/> does. Peers must share a pid namespace (tids are compared);
/// they may live in different time namespaces (start times are compared as the initial one counts them).</para>
/// <para><b>Ownership is per thread</b>, as for <see cref="SharedMutex"/>: <see cref="SynchronizationLockException"/>
/// and <see cref="LockRecursionException"/> report misuse.</para>
/// <para><b>Impossible values</b> (a free word with the sleepers bit, a tid at or past the kernel's
/// pid_max, an owner record naming an impossible pid, a word that changes under its owner) are
/// reported as <see cref="SharedMemoryCorruptedException"/>; every wait still ends by its timeout.</para>
/// </remarks>
public sealed unsafe class SharedFutexMutex : SharedPrimitive
{
    /// <summary>How long the same owner may hold the mutex before a waiter first asks whether it lives.</summary>
    internal static readonly TimeSpan FirstLivenessCheck = TimeSpan.FromMilliseconds(10);

    /// <summary>How often a waiter asks again after that.</summary>
    internal static readonly TimeSpan LivenessInterval = TimeSpan.FromMilliseconds(100);

    internal const int LockWord = 2;
    internal const int PidWord = 3;
    internal const int RecordWord = 4; // a 64-bit record at byte 16, 8-byte aligned
    internal const int Sleepers = unchecked((int)0x8000_0000);
    internal const int TidMask = 0x003F_FFFF;
    internal const int GenerationMask = 0x7FC0_0000;
    private const int GenerationUnit = 0x0040_0000;
    private const int SpinLimit = 100;

    private static readonly long FirstCheckTicks = Deadline.Ticks(FirstLivenessCheck);
    private static readonly long CheckTicks = Deadline.Ticks(LivenessInterval);

    private SharedFutexMutex(SharedRegion region, long offset, bool create, TimeSpan timeout)
        : base(region, offset, PrimitiveKind.SharedFutexMutex, create, timeout, static _ => { }) { }

    private int* Word => &Words[LockWord];

    private long* Record => (long*)&Words[RecordWord];

    /// <summary>Initialises a new mutex at <paramref name="offset"/> of <paramref name="region"/> (64 zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region other processes map.</param>
    /// <param name="offset">Where, a multiple of 8; <see cref="SharedPrimitive.Size"/> bytes from there must be zero.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the futex mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    public static SharedFutexMutex Create(SharedRegion region, long offset = 0) => new(region, offset, create: true, TimeSpan.Zero);

    /// <summary>Opens the mutex another process created at <paramref name="offset"/>, waiting up to 5 s for one being initialised.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the futex mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a futex mutex, is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedFutexMutex Open(SharedRegion region, long offset = 0) => new(region, offset, create: false, DefaultInitialisationTimeout);

    /// <summary>Opens the mutex at <paramref name="offset"/>, creating it if the bytes there are still zero.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the futex mutex does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Something other than a futex mutex is there, or the bytes are neither zero nor a primitive.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedFutexMutex OpenOrCreate(SharedRegion region, long offset = 0)
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
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="OperationCanceledException">Cancelled before the lock was taken.</exception>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now.</exception>
    /// <exception cref="LockRecursionException">This thread holds it already.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A shared word is impossible.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    public Releaser Lock(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        ThreadIdentity.Self self = ThreadIdentity.Current;
        if (!TryTakeFree(self))
        {
            LockSlowly(self, Deadline.Never, trying: false, cancellationToken);
        }
        return new Releaser(this);
    }

    /// <summary>
    /// Locks if it is free now, or if its owner is dead (then <see cref="AbandonedMutexException"/>);
    /// false if a live owner holds it, this thread included (as <see cref="SharedMutex.TryLock()"/>).
    /// Finding it held costs a look at the owner (a system call, and a read of its <c>/proc</c> entry).
    /// </summary>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A shared word is impossible.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed.</exception>
    public bool TryLock()
    {
        ThrowIfDisposed();
        ThreadIdentity.Self self = ThreadIdentity.Current;
        return TryTakeFree(self) || LockSlowly(self, Deadline.At(Stopwatch.GetTimestamp()), trying: true, CancellationToken.None);
    }

    /// <summary>
    /// Locks, waiting up to <paramref name="timeout"/> (on the monotonic clock); false if it timed out.
    /// Unlike <see cref="Lock"/> it returns no releaser: the caller unlocks (<see cref="Unlock"/>) when it got the lock.
    /// </summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting (as <see cref="TryLock()"/>), <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the lock was taken.</exception>
    /// <exception cref="AbandonedMutexException">The previous owner died holding it: you own it now.</exception>
    /// <exception cref="LockRecursionException">This thread holds it already (and <paramref name="timeout"/> is not zero).</exception>
    /// <exception cref="SharedMemoryCorruptedException">A shared word is impossible.</exception>
    /// <exception cref="ObjectDisposedException">This object was disposed, before or during the wait.</exception>
    public bool TryLock(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        if (timeout == TimeSpan.Zero)
        {
            return TryLock();
        }
        ThreadIdentity.Self self = ThreadIdentity.Current;
        return TryTakeFree(self) || LockSlowly(self, deadline, trying: false, cancellationToken);
    }

    /// <summary>Unlocks.</summary>
    /// <exception cref="SynchronizationLockException">This thread does not own the mutex.</exception>
    /// <exception cref="SharedMemoryCorruptedException">The lock word or the owner record changed under its owner (nothing is written).</exception>
    public void Unlock()
    {
        ThrowIfDisposed();
        ThreadIdentity.Self self = ThreadIdentity.Current;
        int word = Volatile.Read(ref *Word);
        if ((word & TidMask) != self.Tid)
        {
            throw NotOwner();
        }
        int held = word & ~Sleepers;
        long record = Volatile.Read(ref *Record);
        if ((int)record != held)
        {
            throw Corrupted("owner record", RecordWord, record, $"the lock word its owner took (0x{held:X8}) in its low 32 bits");
        }
        if ((uint)(record >> 32) != self.Start)
        {
            throw NotOwner(); // an earlier thread with this tid: it died holding the mutex
        }
        int free = word & GenerationMask;
        while (true)
        {
            int seen = Interlocked.CompareExchange(ref *Word, free, word);
            if (seen == word)
            {
                break;
            }
            if ((seen & ~Sleepers) != held)
            {
                throw Corrupted("lock word", LockWord, seen, $"0x{held:X8}, held by this thread, with or without the sleepers bit");
            }
            word = seen; // a waiter set the sleepers bit: release, then wake it
        }
        if ((word & Sleepers) != 0)
        {
            Libc.FutexWake(Word, 1);
        }
    }

    // The uncontended path: one read and one compare-and-swap.
    private bool TryTakeFree(ThreadIdentity.Self self)
    {
        int word = Volatile.Read(ref *Word);
        if ((word & TidMask) != 0 || word < 0)
        {
            return false;
        }
        int taken = NextGeneration(word) | self.Tid;
        if (Interlocked.CompareExchange(ref *Word, taken, word) != word)
        {
            return false;
        }
        Own(self, taken);
        return true;
    }

    /// <summary>
    /// Waits for the word to be free, in slices, looking at the owner now and then; false at the
    /// deadline. Held by this thread: <see cref="LockRecursionException"/>, or false when <paramref name="trying"/>.
    /// Once it sleeps the memory stays mapped, and a slice that ends after this object was disposed
    /// throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    private bool LockSlowly(ThreadIdentity.Self self, Deadline deadline, bool trying, CancellationToken cancellationToken)
    {
        bool slept = false;
        SafeHandleLease pin = default;
        CancellationTokenRegistration wakeOnCancel = default;
        int spins = 0;
        int watched = 0;
        long nextCheck = 0;
        try
        {
            while (true)
            {
                int word = Volatile.Read(ref *Word);
                int owner = word & TidMask;
                if (owner == 0)
                {
                    if (word < 0)
                    {
                        throw Corrupted("lock word", LockWord, word, "no sleepers bit (bit 31) while the mutex is free");
                    }
                    // One who slept keeps the sleepers bit: others may still sleep.
                    int taken = NextGeneration(word) | self.Tid | (slept ? Sleepers : 0);
                    if (Interlocked.CompareExchange(ref *Word, taken, word) == word)
                    {
                        Own(self, taken & ~Sleepers);
                        return true;
                    }
                    continue;
                }
                ValidateTid(word);
                long now = Stopwatch.GetTimestamp();
                int held = word & ~Sleepers;
                if (held != watched)
                {
                    watched = held; // a new acquisition: its owner gets the full grace before it is looked at
                    nextCheck = now + FirstCheckTicks;
                }
                if (owner == self.Tid || now >= nextCheck || deadline.HasPassedAt(now))
                {
                    switch (Owner(self, word))
                    {
                        case Holder.Dead:
                            TakeOver(self, word); // throws AbandonedMutexException once it owns the mutex; returns if it lost the race
                            continue;
                        case Holder.ThisThread:
                            return trying ? false : throw new LockRecursionException("This thread already holds the shared futex mutex.");
                    }
                    if (deadline.HasPassedAt(now))
                    {
                        return false;
                    }
                    nextCheck = now + CheckTicks;
                }
                if (spins < SpinLimit)
                {
                    spins++;
                    Thread.SpinWait(1);
                    continue;
                }
                cancellationToken.ThrowIfCancellationRequested();
                if (!pin.IsHeld)
                {
                    pin = PinMapping(); // before the first sleep: a shutdown may dispose this object and its region under it
                    wakeOnCancel = FutexParker.WakeOnCancel(Word, cancellationToken); // its sleeps last at most until the next look at the owner, 100 ms
                }
                if (word > 0 && Interlocked.CompareExchange(ref *Word, word | Sleepers, word) != word)
                {
                    continue;
                }
                slept = true;
                SleepWhile(Word, word | Sleepers, deadline.Or(Deadline.At(nextCheck)));
                ThrowIfDisposed();
            }
        }
        finally
        {
            wakeOnCancel.Dispose();
            pin.Dispose();
        }
    }

    /// <summary>
    /// Who holds the acquisition in <paramref name="word"/>: this thread, a live thread, or a dead one.
    /// The owner record counts only if it describes this very acquisition (the same tid and
    /// generation); otherwise the tid alone is asked about.
    /// </summary>
    private Holder Owner(ThreadIdentity.Self self, int word)
    {
        int held = word & ~Sleepers;
        int tid = word & TidMask;
        long record = Volatile.Read(ref *Record);
        bool described = (int)record == held;
        uint start = (uint)(record >> 32);
        if (tid == self.Tid)
        {
            if (!described)
            {
                // This thread writes its record before Lock returns: a word with its tid and no record is not its doing.
                throw Corrupted("owner record", RecordWord, record, $"the lock word its owner took (0x{held:X8}) in its low 32 bits");
            }
            // Another start time: a thread that had this tid before, which is not running (this one is).
            return start == self.Start ? Holder.ThisThread : Holder.Dead;
        }
        if (!described)
        {
            return ThreadIdentity.IsAlive(0, tid, null, self.BoottimeOffset) ? Holder.Alive : Holder.Dead;
        }
        int pid = Volatile.Read(ref Words[PidWord]);
        if (pid <= 0 || (pid >= ThreadIdentity.PidMax && pid >= ThreadIdentity.RefreshPidMax()))
        {
            throw Corrupted("owner pid", PidWord, pid, $"a process id from 1 to the kernel's pid_max ({ThreadIdentity.PidMax})");
        }
        return ThreadIdentity.IsAlive(pid, tid, start, self.BoottimeOffset) ? Holder.Alive : Holder.Dead;
    }

    /// <summary>Takes the mutex from its dead owner (exactly the acquisition in <paramref name="word"/>) and says so; returns if another got there first.</summary>
    private void TakeOver(ThreadIdentity.Self self, int word)
    {
        int taken = NextGeneration(word) | self.Tid | Sleepers; // others may sleep on the word
        if (Interlocked.CompareExchange(ref *Word, taken, word) != word)
        {
            return;
        }
        int pid = Volatile.Read(ref Words[PidWord]);
        Own(self, taken & ~Sleepers);
        ShmDiagnostics.DeadPeer("futex_mutex_owner", pid);
        throw new AbandonedMutexException(
            $"The previous owner of the shared futex mutex (thread {word & TidMask}, process {pid} by its record) died holding it. " +
            "This thread owns it now: repair the data it guards, then Unlock.");
    }

    private void Own(ThreadIdentity.Self self, int taken)
    {
        Words[PidWord] = self.Pid;
        Volatile.Write(ref *Record, (uint)taken | ((long)self.Start << 32));
    }

    private void ValidateTid(int word)
    {
        int tid = word & TidMask;
        if (tid >= ThreadIdentity.PidMax && tid >= ThreadIdentity.RefreshPidMax())
        {
            throw Corrupted("lock word", LockWord, word, $"an owner tid (bits 0 to 21) below the kernel's pid_max ({ThreadIdentity.PidMax})");
        }
    }

    private enum Holder
    {
        Alive,
        Dead,
        ThisThread,
    }

    private static int NextGeneration(int word) => ((word & GenerationMask) + GenerationUnit) & GenerationMask;

    private static SynchronizationLockException NotOwner() =>
        new("This thread does not own the shared futex mutex: another thread locked it, or it was held across an await that resumed on another thread.");

    /// <summary>Unlocks the mutex when disposed: <c>using (mutex.Lock()) { ... }</c>.</summary>
    public readonly struct Releaser : IDisposable
    {
        private readonly SharedFutexMutex? _mutex;

        internal Releaser(SharedFutexMutex mutex) => _mutex = mutex;

        /// <summary>Unlocks.</summary>
        /// <exception cref="SynchronizationLockException">This thread does not own the mutex (held across an await?).</exception>
        public void Dispose() => _mutex?.Unlock();
    }
}
