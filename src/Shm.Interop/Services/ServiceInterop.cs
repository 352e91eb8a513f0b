using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

/// <summary>
/// The one place where the services reach the library's internal helpers: futex wait and wake,
/// deadlines, the identity and liveness of processes, the futex watcher, the forked-child flag and
/// the libc calls that make and map a named segment. The rest of <c>Services/</c> calls only this,
/// so a restructuring of those helpers is fixed here alone.
/// </summary>
internal static unsafe class ServiceInterop
{
    /// <summary>The kernel's largest pid limit (PID_MAX_LIMIT): a pid at or above it is impossible.</summary>
    public const int PidMaxLimit = ThreadIdentity.PidMaxLimit;

    public const int ENOENT = LinuxErrno.ENOENT;
    public const int EEXIST = LinuxErrno.EEXIST;

    /// <summary>The Stopwatch timestamp <paramref name="timeout"/> from now; <see cref="long.MaxValue"/> for <see cref="Timeout.InfiniteTimeSpan"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    public static long Deadline(TimeSpan timeout) => global::Shm.Interop.Deadline.After(timeout).Timestamp;

    /// <summary>Counts a participant found dead (<c>shm.peers.dead</c>, kind <c>service_participant</c>, and its event).</summary>
    public static void CountDeadParticipant(int pid) => ShmDiagnostics.DeadPeer("service_participant", pid);

    /// <summary>True in a forked child: one thread, no futex watcher, no process-exit hooks.</summary>
    public static bool InForkedChild => ForkedChild.IsThisProcess;

    /// <summary>
    /// This process as a peer names it: its pid and the low 32 bits of its start time (clock ticks
    /// since boot, as the initial time namespace counts them, so that peers in other time namespaces
    /// agree). Read now: a forked child must not reuse its parent's.
    /// </summary>
    public static (int Pid, uint Start) Self()
    {
        (int pid, long start) = PeerIdentity.Self();
        return (pid, (uint)start);
    }

    /// <summary>
    /// False only when the kernel says process <paramref name="pid"/> is gone: no such process (ESRCH),
    /// a zombie, or a process of that pid started at another time than <paramref name="start"/> (0: not
    /// recorded, any process of that pid counts). One we may not look into counts as alive.
    /// </summary>
    public static bool IsAlive(int pid, uint start) =>
        pid > 0 && ThreadIdentity.IsAlive(0, pid, start == 0 ? null : start, ThreadIdentity.Current.BoottimeOffset);

    /// <summary>Sleeps while <c>*word == expected</c>, until woken or <paramref name="deadline"/> (a Stopwatch timestamp).</summary>
    public static void FutexWait(int* word, int expected, long deadline)
    {
        Libc.TimeSpec until = global::Shm.Interop.Deadline.At(deadline).ToTimeSpec(Libc.CLOCK_MONOTONIC);
        Libc.FutexWait(word, expected, &until);
    }

    /// <summary>Wakes every sleeper on the shared futex <paramref name="word"/>.</summary>
    public static void FutexWakeAll(int* word) => Libc.FutexWake(word, int.MaxValue);

    /// <summary>A cancellation registration that wakes the sleepers of <paramref name="word"/>, so a parked wait sees its token.</summary>
    public static CancellationTokenRegistration WakeOnCancel(CancellationToken cancellationToken, int* word) =>
        cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => Libc.FutexWake((int*)(nint)state!, int.MaxValue), (nint)word)
            : default;

    /// <summary>
    /// An asynchronous wait on the futex watcher: tried whenever <paramref name="word"/> changes from
    /// <paramref name="seen"/> and every <paramref name="pollEvery"/>; <paramref name="waiters"/> counts
    /// it while it is pending (the word a peer reads to decide whether to wake). A predicate that
    /// throws faults the task; <see cref="Abandon"/> ends it with <see cref="ObjectDisposedException"/>.
    /// </summary>
    public static Task<bool> WatchAsync(object owner, SafeHandle mapping, int* word, int seen, int* waiters, Func<bool> tryTake, TimeSpan timeout, CancellationToken cancellationToken, TimeSpan pollEvery) =>
        FutexWatcher.Wait(owner, mapping, word, seen, waiters, tryTake, global::Shm.Interop.Deadline.After(timeout), cancellationToken, global::Shm.Interop.Deadline.Ticks(pollEvery));

    /// <summary>Ends <paramref name="owner"/>'s pending asynchronous waits with <see cref="ObjectDisposedException"/>.</summary>
    public static void Abandon(object owner) => FutexWatcher.Abandon(owner);

    /// <summary>The path of a POSIX shared memory object named <paramref name="bare"/> (no slash).</summary>
    public static string PathOf(string bare) => Libc.ShmDirectory + bare;

    /// <summary>Opens (or, with <paramref name="create"/>, exclusively creates with exactly <paramref name="mode"/>) /dev/shm/<paramref name="bare"/>; an invalid handle with errno set on failure.</summary>
    public static SafeFileHandle OpenSegment(string bare, bool create, bool writable, UnixFileMode mode) =>
        Libc.shm_open("/" + bare, (create ? Libc.O_CREAT | Libc.O_EXCL : 0) | (writable ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_NONBLOCK, (uint)mode);

    /// <summary>The errno of the last failed call.</summary>
    public static int LastError => Marshal.GetLastPInvokeError();

    /// <summary>Throws the errno of a failed <paramref name="call"/> as <see cref="ShmException"/>.</summary>
    public static ShmException Failure(string call, string detail) => ShmException.FromLastError(call, detail);

    /// <summary>Sets exactly <paramref name="mode"/> (the umask does not apply), reserves <paramref name="length"/> bytes (ENOSPC now, not SIGBUS later) and sizes the segment.</summary>
    public static void SizeSegment(SafeFileHandle fd, long length, UnixFileMode mode, string what)
    {
        Libc.CheckIo(Libc.fchmod(fd, (uint)mode), "fchmod", what);
        Libc.CheckError(Libc.posix_fallocate(fd, 0, length), "posix_fallocate", $"{what}, {length} bytes");
        Libc.CheckIo(Libc.ftruncate(fd, length), "ftruncate", what);
    }

    /// <summary>The object behind <paramref name="fd"/>: size, type, device and inode.</summary>
    public static (long Size, bool IsRegularFile, (ulong Device, ulong Inode) Id) Status(SafeFileHandle fd)
    {
        Libc.FileId file = Libc.FileStatus(fd);
        return (file.Size, file.IsRegularFile, file.Id);
    }

    /// <summary>The device and inode at <paramref name="path"/>, or null if nothing is there.</summary>
    public static (ulong Device, ulong Inode)? IdAt(string path) => Libc.PathStatus(path)?.Id;

    /// <summary>Removes /dev/shm/<paramref name="bare"/> if it still names the object <paramref name="id"/> (someone may have replaced it).</summary>
    public static void UnlinkIfSame(string bare, (ulong Device, ulong Inode) id)
    {
        if (IdAt(PathOf(bare)) == id)
        {
            Libc.shm_unlink("/" + bare);
        }
    }

    /// <summary>
    /// Maps <paramref name="length"/> bytes of <paramref name="fd"/> shared, read/write or read-only, owned by a
    /// <see cref="SafeMappingHandle"/>. With <paramref name="guardPage"/>, one more page is mapped and made
    /// PROT_NONE, so that any access past the segment is a SIGSEGV (the hostile-peer tests use it).
    /// </summary>
    public static SafeMappingHandle Map(SafeFileHandle fd, long length, bool writable, bool guardPage, string what)
    {
        long page = Environment.SystemPageSize;
        long mapped = guardPage ? ((length + page - 1) / page * page) + page : length;
        var mapping = new SafeMappingHandle();
        nint address = Libc.mmap(0, (nuint)mapped, writable ? Libc.PROT_READ | Libc.PROT_WRITE : Libc.PROT_READ, Libc.MAP_SHARED, fd, 0);
        if (address == Libc.MAP_FAILED)
        {
            mapping.SetHandleAsInvalid();
            throw ShmException.FromLastError("mmap", $"{what}, {mapped} bytes");
        }
        mapping.Attach(address, (nuint)mapped);
        if (guardPage && Libc.mprotect(address + (nint)(mapped - page), (nuint)page, Libc.PROT_NONE) != 0)
        {
            var failure = ShmException.FromLastError("mprotect", what);
            mapping.Dispose();
            throw failure;
        }
        return mapping;
    }
}
