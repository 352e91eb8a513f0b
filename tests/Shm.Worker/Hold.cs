using System;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>Segment users for the shm tool's tests: processes that map named segments and stay.</summary>
public static partial class Program
{
    /// <summary>How long a holder lives if nobody ends it: a bound, not a synchronisation.</summary>
    private static readonly TimeSpan HolderLifetime = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Opens and maps each named segment, then says "held" on stdout and stays until killed.
    /// With <paramref name="nonDumpable"/>, first makes itself non-dumpable (prctl
    /// PR_SET_DUMPABLE 0), as some hardened daemons do: its maps and fds are then unreadable to
    /// other processes of its own user.
    /// </summary>
    private static int Hold(string[] names, bool nonDumpable)
    {
        if (nonDumpable && prctl(4 /* PR_SET_DUMPABLE */, 0, 0, 0, 0) != 0)
        {
            return Unexpected;
        }
        SharedRegion[] regions = [.. names.Select(name => SharedRegion.OpenNamed(name))];
        Console.WriteLine("held");
        Console.Out.Flush();
        Thread.Sleep(HolderLifetime);
        GC.KeepAlive(regions);
        return 0;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nint arg2, nint arg3, nint arg4, nint arg5);
}
