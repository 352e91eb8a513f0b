using System;
using System.Runtime.InteropServices;

namespace Shm.Interop;

// futex(2) and futex_waitv(2) on words in shared memory: the waits and wakes of Shm's semaphores,
// events and conditions, shared (no FUTEX_PRIVATE_FLAG) so that any process mapping the word may wake.
internal static partial class Libc
{
    private const long SYS_futex_waitv = 449;
    private const uint FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF;

    /// <summary>futex_waitv's per-word flag for a 32-bit word.</summary>
    internal const uint FUTEX2_SIZE_U32 = 0x02;

    /// <summary>futex_waitv's per-word flag for a word no other process can see (our own wake word).</summary>
    internal const uint FUTEX2_PRIVATE = 128;

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
    internal static unsafe int FutexWaitUntil(int* word, int expected, TimeSpec* deadline)
    {
        long result = syscall(SYS_futex, (nint)word, FUTEX_WAIT_BITSET, expected, (nint)deadline, 0, unchecked((nint)FUTEX_BITSET_MATCH_ANY));
        return result == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>The absolute CLOCK_MONOTONIC time of <paramref name="timestamp"/>, a <see cref="System.Diagnostics.Stopwatch"/> timestamp (in the past: now).</summary>
    internal static TimeSpec DeadlineAt(long timestamp)
    {
        long remaining = timestamp - System.Diagnostics.Stopwatch.GetTimestamp();
        double seconds = remaining <= 0 ? 0 : remaining / (double)System.Diagnostics.Stopwatch.Frequency;
        return DeadlineOn(CLOCK_MONOTONIC, seconds >= TimeSpan.MaxValue.TotalSeconds / 2 ? TimeSpan.FromDays(365) : TimeSpan.FromSeconds(seconds));
    }

    /// <summary>Wakes up to <paramref name="count"/> waiters on the shared futex <paramref name="word"/>.</summary>
    internal static unsafe void FutexWake(int* word, int count) =>
        syscall(SYS_futex, (nint)word, FUTEX_WAKE, count, 0, 0, 0);

    /// <summary>Waits on several futexes at once (Linux 5.16+); the index of the one woken, or -1 with errno set.</summary>
    internal static unsafe int futex_waitv(FutexWaitv* waiters, int count, TimeSpec* deadline) =>
        (int)syscall(SYS_futex_waitv, (nint)waiters, count, 0, (nint)deadline, CLOCK_MONOTONIC, 0);
}
