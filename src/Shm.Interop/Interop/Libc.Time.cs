using System.Runtime.InteropServices;

namespace Shm.Interop;

// <time.h>: the clocks absolute deadlines are counted on (Deadline converts to them).
internal static partial class Libc
{
    internal const int CLOCK_REALTIME = 0;
    internal const int CLOCK_MONOTONIC = 1;

    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport(Name, EntryPoint = "clock_gettime", SetLastError = true)]
    internal static unsafe partial int clock_gettime(int clock, TimeSpec* now);
}
