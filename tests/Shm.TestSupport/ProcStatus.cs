using System;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Shm.TestSupport;

/// <summary>Fields of this process's <c>/proc/self/status</c>, read fresh on every call.</summary>
public static class ProcStatus
{
    /// <summary>How many threads the kernel counts in this process now.</summary>
    public static int Threads() =>
        int.Parse(File.ReadAllLines("/proc/self/status").First(line => line.StartsWith("Threads:", StringComparison.Ordinal)).Split('\t')[1], CultureInfo.InvariantCulture);
}
