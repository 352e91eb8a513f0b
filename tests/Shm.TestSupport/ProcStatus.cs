using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;

namespace Shm.TestSupport;

/// <summary>Fields of this process's <c>/proc/self/status</c> and <c>/proc/self/stat</c>, read fresh on every call.</summary>
public static partial class ProcStatus
{
    private const int ScClkTck = 2;

    /// <summary>How many threads the kernel counts in this process now.</summary>
    public static int Threads() =>
        int.Parse(File.ReadAllLines("/proc/self/status").First(line => line.StartsWith("Threads:", StringComparison.Ordinal)).Split('\t')[1], CultureInfo.InvariantCulture);

    /// <summary>The CPU time this process has used, user and system, as the kernel counts it (fields 14 and 15 of <c>/proc/self/stat</c>).</summary>
    public static TimeSpan CpuTime()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // fields[0] is field 3
        long ticks = long.Parse(fields[14 - 3], CultureInfo.InvariantCulture) + long.Parse(fields[15 - 3], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / (double)Sysconf(ScClkTck));
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long Sysconf(int name);
}
