using System.Runtime.InteropServices;

namespace Shm.Interop;

// Calls glibc does not wrap go through syscall(2); futex waits, shared by fork's handshake and the waits on children.
internal static partial class Libc
{
    internal static readonly long SYS_futex = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 98 : 202;

    internal const int FUTEX_WAIT = 0;
    internal const int FUTEX_WAKE = 1;
    internal const int FUTEX_WAIT_BITSET = 9;
    internal const int FUTEX_LOCK_PI = 6;
    internal const int FUTEX_WAIT_REQUEUE_PI = 11;
    internal const int FUTEX_LOCK_PI2 = 13;
    internal const int FUTEX_PRIVATE_FLAG = 128;
    internal const int FUTEX_CLOCK_REALTIME = 256;

    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;

        public static TimeSpec FromNanoseconds(long nanoseconds) =>
            new() { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
    }

    // syscall is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall(long number, nint arg1, nint arg2, nint arg3, nint arg4, nint arg5, nint arg6);

    /// <summary>Waits while <c>*address == expected</c> on a futex shared between processes, up to <paramref name="timeout"/> (null: no limit).</summary>
    internal static unsafe void FutexWaitShared(int* address, int expected, TimeSpec* timeout) =>
        syscall(SYS_futex, (nint)address, FUTEX_WAIT, expected, (nint)timeout, 0, 0);

    /// <summary>Wakes every waiter on a shared futex.</summary>
    internal static unsafe void FutexWakeShared(int* address) =>
        syscall(SYS_futex, (nint)address, FUTEX_WAKE, int.MaxValue, 0, 0, 0);
}
