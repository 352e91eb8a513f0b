using System.Runtime.InteropServices;

namespace Shm.Interop;

// futex(2) and futex_waitv(2): the waits and wakes of the primitives, the channel, the futex watcher
// and fork's handshake, all on shared words (no FUTEX_PRIVATE_FLAG) so that any process mapping a
// word may wake its sleepers. The operation numbers are also how ThreadSample reads a child's
// /proc/PID/syscall.
internal static partial class Libc
{
    internal static readonly long SYS_futex = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 98 : 202;
    private const long SYS_futex_waitv = 449;

    internal const int FUTEX_WAIT = 0;
    internal const int FUTEX_WAKE = 1;
    internal const int FUTEX_LOCK_PI = 6;
    internal const int FUTEX_WAIT_BITSET = 9;
    internal const int FUTEX_WAIT_REQUEUE_PI = 11;
    internal const int FUTEX_LOCK_PI2 = 13;
    internal const int FUTEX_PRIVATE_FLAG = 128;
    internal const int FUTEX_CLOCK_REALTIME = 256;
    private const uint FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF;

    /// <summary>futex_waitv's per-word flag for a 32-bit word.</summary>
    internal const uint FUTEX2_SIZE_U32 = 0x02;

    [StructLayout(LayoutKind.Sequential)]
    internal struct FutexWaitv
    {
        public ulong Value;
        public ulong Address;
        public uint Flags;
        public uint Reserved;
    }

    /// <summary>
    /// Sleeps while <c>*word == expected</c>, until woken or <paramref name="deadline"/> (CLOCK_MONOTONIC,
    /// absolute; null: no limit). Returns 0 if woken, or the errno (EAGAIN: the word had changed,
    /// ETIMEDOUT, EINTR).
    /// </summary>
    internal static unsafe int FutexWait(int* word, int expected, TimeSpec* deadline)
    {
        long result = syscall(SYS_futex, (nint)word, FUTEX_WAIT_BITSET, expected, (nint)deadline, 0, unchecked((nint)FUTEX_BITSET_MATCH_ANY));
        return result == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Wakes up to <paramref name="count"/> sleepers on the shared futex <paramref name="word"/> (<see cref="int.MaxValue"/>: all).</summary>
    internal static unsafe void FutexWake(int* word, int count) =>
        syscall(SYS_futex, (nint)word, FUTEX_WAKE, count, 0, 0, 0);

    /// <summary>Waits on several futexes at once (Linux 5.16+); the index of the one woken, or -1 with errno set.</summary>
    internal static unsafe int futex_waitv(FutexWaitv* waiters, int count, TimeSpec* deadline) =>
        (int)syscall(SYS_futex_waitv, (nint)waiters, count, 0, (nint)deadline, CLOCK_MONOTONIC, 0);
}
