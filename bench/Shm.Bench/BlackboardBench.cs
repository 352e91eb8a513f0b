using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Shm.Interop;

namespace Shm.Bench;

/// <summary>Blackboard services: the cost of reading one 64-byte entry (the seqlock read), to compare with the same read in C.</summary>
internal static class BlackboardBench
{
    /// <summary>A 64-byte value, the entry size the goal names.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Value64
    {
        public long A, B, C, D, E, F, G, H;
    }

    /// <summary>Nanoseconds per uncontended read of a 64-byte entry (written once, then read <paramref name="n"/> times).</summary>
    public static double Read(long n)
    {
        string name = $"shm-bench-blackboard-{Environment.ProcessId}";
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 1, ValueSize = 64 });
        using (BlackboardWriter writer = service.CreateWriter())
        {
            writer.Write(0, new Value64 { A = 1, H = 8 });
        }
        Reads(service, 1000);
        long start = Stopwatch.GetTimestamp();
        long sink = Reads(service, n);
        double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds / n;
        return sink == 9 * n ? ns : throw new InvalidOperationException($"the reads summed to {sink}, not {9 * n}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long Reads(BlackboardService service, long n)
    {
        long sink = 0;
        for (long i = 0; i < n; i++)
        {
            service.TryRead(0, out Value64 value);
            sink += value.A + value.H;
        }
        return sink;
    }
}
