using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Shm.Bench;

/// <summary>
/// Runs every comparison and ends with one line per comparison:
/// <c>ratio NAME VALUE (goal OP VALUE)</c>. <c>--quick</c> runs each briefly (under a minute in all);
/// the default is the full run the README's table comes from.
/// </summary>
public static class Program
{
    private sealed record Sizes(int Runs, long Mmaps, int Children, int Spawns, long Trips, long Chunks, int[] HeapMiB, long Locks, long Wakes, int RoundTrips, long Messages, int Parked);

    private static readonly Sizes Quick = new(3, 20_000, 50, 3, 200_000, 256, [256], 200_000, 2_000, 20_000, 200_000, 100);
    private static readonly Sizes Full = new(7, 200_000, 200, 10, 2_000_000, 4096, [256, 1024], 2_000_000, 20_000, 200_000, 2_000_000, 500);

    private static readonly List<(string Name, double Value, string Op, double Goal)> Ratios = [];
    private static readonly List<string> Table = [];

    public static int Main(string[] args)
    {
        if (args is ["--noop"])
        {
            return 0; // a fresh .NET process that starts and exits: what spawning costs
        }
        bool quick = args.Contains("--quick");
        Sizes sizes = quick ? Quick : Full;
        Console.WriteLine($"Shm benchmarks ({(quick ? "quick" : "full")}), {DateTime.UtcNow:yyyy-MM-dd}: {Machine()}");
        NativeBaseline? c = NativeBaseline.Build();

        // A lean process first: fork copies page tables, so it costs more once the heap has grown.
        Forks(sizes, c);
        PingPongAndRing(sizes, c);
        Sync(sizes, c);
        Channel(sizes, c);
        PubSub(sizes, c);
        InProcess(quick, sizes, c);
        HeapGrowth(sizes);

        Console.WriteLine();
        Console.WriteLine("| measurement | Shm | baseline | ratio | goal |");
        Console.WriteLine("|---|---|---|---|---|");
        Table.ForEach(Console.WriteLine);
        Console.WriteLine();
        int met = Ratios.Count(r => Met(r.Value, r.Op, r.Goal));
        Console.WriteLine($"goals met: {met} of {Ratios.Count}");
        foreach (var (name, value, op, goal) in Ratios)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio {name} {value:0.00} (goal {op} {goal:0.##})"));
        }
        return 0;
    }

    private static void InProcess(bool quick, Sizes sizes, NativeBaseline? c)
    {
        Job job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance);
        job = quick
            ? job.WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(7).WithIterationTime(TimeInterval.FromMilliseconds(80))
            : job.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(15).WithIterationTime(TimeInterval.FromMilliseconds(250));
        Summary[] passes = Enumerable.Range(0, quick ? 2 : 4).Select(pass => BenchmarkRunner.Run<RegionBenchmarks>(
            ManualConfig.CreateEmpty()
                .AddJob(job)
                .AddDiagnoser(MemoryDiagnoser.Default)
                .AddColumnProvider(DefaultColumnProviders.Instance)
                .AddLogger(quick ? NullLogger.Instance : ConsoleLogger.Default)
                .WithOrderer(new RotatingOrderer(pass))
                .WithArtifactsPath(Path.Combine(Path.GetTempPath(), "shm-bench-artifacts")))).ToArray();
        double Median(string method) => MedianOf(passes.Select(summary => Report(summary, method).ResultStatistics!.Median));
        long Allocated(string method) => Report(passes[0], method).GcStats.GetBytesAllocatedPerOperation(Report(passes[0], method).BenchmarkCase) ?? -1;

        foreach (string n in new[] { "1", "3" })
        {
            double raw = Median("Raw" + n), shm = Median("Shm" + n), @using = Median("Using" + n), mmf = Median("MemoryMappedFile" + n);
            string what = n == "1" ? "one 5096-byte region" : "three regions, reverse release";
            Compare($"shm-vs-raw/{n}", $"{what}: shm {{ }} vs raw P/Invoke", shm, raw, "<=", 1.05, "ns");
            Compare($"using-vs-raw/{n}", $"{what}: C# using vs raw P/Invoke", @using, raw, "<=", 1.05, "ns");
            // A reference, not a goal: at 2 syscalls per region against MemoryMappedFile's 7, the gap cannot grow past this.
            Table.Add($"| {what}: MemoryMappedFile vs shm {{ }}, reference | {Format(mmf, "ns")} | {Format(shm, "ns")} | {mmf / shm:0.00} | none: 7 syscalls per region against 2 |");
            if (c is not null)
            {
                double native = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => c.Measure(n == "1" ? "mmap" : "mmap3", sizes.Mmaps)));
                Compare($"shm-vs-c/{n}", $"{what}: shm {{ }} vs C", shm, native, "<=", 1.10, "ns");
                Compare($"using-vs-c/{n}", $"{what}: C# using vs C", @using, native, "<=", 1.10, "ns");
            }
        }
        long shm1 = Allocated("Shm1"), shm3 = Allocated("Shm3"), using1 = Allocated("Using1"), using3 = Allocated("Using3");
        Table.Add($"| allocated per block (1 region / 3 regions) | shm {{ }}: {shm1} B / {shm3} B | using: {using1} B / {using3} B | per extra region: {(shm3 - shm1) / 2} B vs {(using3 - using1) / 2} B | nothing beyond the region object |");
    }

    private static double s_smallHeapRawFork;

    private static void Forks(Sizes sizes, NativeBaseline? c)
    {
        (double ours, double raw) = Paired(sizes.Runs, () => CrossProcess.LibraryFork(sizes.Children), () => CrossProcess.RawFork(sizes.Children));
        (double spawn, double forked) = Paired(sizes.Runs, () => CrossProcess.Spawn(sizes.Spawns), () => CrossProcess.LibraryFork(sizes.Children));
        s_smallHeapRawFork = raw;
        Compare("children-fork-vs-raw-fork", $"per child: Children.Fork({sizes.Children}) vs raw fork/_exit/waitpid loop", ours, raw, "<=", 1.3, "ns");
        Compare("spawn-vs-fork", "per child: spawning a fresh .NET process vs Children.Fork", spawn, forked, ">=", 20, "ns");
        var unprobed = new Shm.Interop.ForkOptions { ProbeRuntimeLocks = false };
        (double plain, double raw2) = Paired(sizes.Runs, () => CrossProcess.LibraryFork(sizes.Children, unprobed), () => CrossProcess.RawFork(sizes.Children));
        Table.Add($"| ... with ProbeRuntimeLocks = false (no compilation in the child before it starts), reference | {Format(plain, "ns")} | {Format(raw2, "ns")} | {plain / raw2:0.00} | none: the probe's price is the difference |");
        if (c is not null)
        {
            (double dotnet, double native) = Paired(sizes.Runs, () => CrossProcess.RawFork(sizes.Children), () => c.Measure("fork", sizes.Children));
            Table.Add($"| fork/_exit/waitpid, reference | .NET (P/Invoke): {Format(dotnet, "ns")} | C: {Format(native, "ns")} | {dotnet / native:0.00} | none: a .NET process has more page tables to copy |");
        }
    }

    private static void Sync(Sizes sizes, NativeBaseline? c)
    {
        double named = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => CrossProcess.NamedDotnetMutex(sizes.Locks / 10)));
        if (c is null)
        {
            Table.Add($"| SharedMutex lock+unlock | {Format(CrossProcess.MutexUncontended(sizes.Locks), "ns")} | C: skipped | | |");
            return;
        }
        (double ours, double native) = Paired(sizes.Runs, () => CrossProcess.MutexUncontended(sizes.Locks), () => c.Measure("mutex", sizes.Locks));
        Compare("mutex-uncontended-vs-c", "uncontended lock+unlock of a robust shared mutex: SharedMutex vs C pthread_mutex_lock/unlock", ours, native, "<=", 1.2, "ns");
        Table.Add($"| lock+unlock: .NET's named Mutex vs SharedMutex, reference | {Format(named, "ns")} | {Format(ours, "ns")} | {named / ours:0.0} | none |");
        (double handoff, double nativeHandoff) = Paired(sizes.Runs, () => CrossProcess.MutexHandoff(sizes.Locks / 4), () => c.Measure("handoff", sizes.Locks / 4));
        Compare("mutex-handoff-vs-c", "contended lock+unlock, two processes on two cores: SharedMutex vs C", handoff, nativeHandoff, "<=", 1.3, "ns");
        (double futex, double nativeFutex) = Paired(sizes.Runs, () => CrossProcess.FutexMutexUncontended(sizes.Locks), () => c.Measure("futexmutex", sizes.Locks));
        Compare("mutex-futex-uncontended-vs-c", "uncontended lock+unlock of a futex mutex (no pointers in shared memory): SharedFutexMutex vs C shm_futex_mutex_lock/unlock", futex, nativeFutex, "<=", 1.2, "ns");
        Table.Add($"| lock+unlock: SharedFutexMutex vs SharedMutex, reference | {Format(futex, "ns")} | {Format(ours, "ns")} | {futex / ours:0.00} | none |");
        (double futexHandoff, double nativeFutexHandoff) = Paired(sizes.Runs, () => CrossProcess.FutexMutexHandoff(sizes.Locks / 4), () => c.Measure("futexhandoff", sizes.Locks / 4));
        Compare("mutex-futex-handoff-vs-c", "contended lock+unlock of a futex mutex, two processes on two cores: SharedFutexMutex vs C", futexHandoff, nativeFutexHandoff, "<=", 1.3, "ns");
        (double wake, double nativeWake) = Paired(sizes.Runs, () => CrossProcess.SemaphoreWake(sizes.Wakes), () => c.Measure("semaphore", sizes.Wakes));
        Compare("semaphore-wake-vs-c", "semaphore post to wake-up, two processes (each wait parks): SharedSemaphore vs C on a futex", wake, nativeWake, "<=", 1.3, "ns");
    }

    private static void Channel(Sizes sizes, NativeBaseline? c)
    {
        double floor = c is null ? double.NaN : MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => c.Measure("pingpong", sizes.Trips)));
        foreach (int size in new[] { 8, 64, 1024 })
        {
            double[] trips = ChannelBench.RoundTrips(size, sizes.RoundTrips);
            double median = trips[trips.Length / 2], p99 = trips[(int)(trips.Length * 0.99)], p999 = trips[(int)(trips.Length * 0.999)];
            Table.Add($"| channel round trip, {size} B: p50 / p99 / p99.9 | {Format(median, "ns")} / {Format(p99, "ns")} / {Format(p999, "ns")} | C spin floor {Format(floor, "ns")} | | |");
            if (c is not null)
            {
                Compare($"channel-roundtrip-vs-c/{size}", $"round trip through two channels, {size}-byte messages, forked echo: Shm (p50) vs the C spin ping-pong floor", median, floor, "<=", 1.5, "ns");
            }
        }
        foreach (int size in new[] { 64, 4096, 1 << 20 })
        {
            long messages = Math.Max(2000, sizes.Messages * 64 / Math.Max(64, size));
            double one = ChannelBench.Throughput(size, messages, 1);
            double four = ChannelBench.Throughput(size, messages, 4);
            double uds = ChannelBench.UnixSocket(size, messages);
            double netmq = ChannelBench.NetMq(size, messages);
            string what = size >= 1 << 20 ? "1 MiB" : size >= 4096 ? "4 KiB" : $"{size} B";
            Table.Add($"| channel, {what} messages: 1 writer / 4 writers | {one / 1e6:0.00} M msg/s ({Format(one * size, "B/s")}) / {four / 1e6:0.00} M msg/s | .NET Socket (Unix): {uds / 1e6:0.00} M msg/s | {one / uds:0.0}x | |");
            Table.Add($"| ... {what}: NetMQ push/pull over ipc://, reference | {one / 1e6:0.00} M msg/s | {netmq / 1e6:0.00} M msg/s | {one / netmq:0.0}x | |");
            if (c is null)
            {
                continue;
            }
            double socketpair = c.Measure("socketmsg", messages, size);
            double pipe = c.Measure("pipemsg", messages, size);
            Table.Add($"| ... {what}: a socketpair / a pipe (C), reference | {Format(one * size, "B/s")} | {socketpair / 1e6:0.00} / {pipe / 1e6:0.00} M msg/s | {one / socketpair:0.0}x / {one / pipe:0.0}x | |");
            if (size == 64)
            {
                Compare("channel-msgs-vs-socketpair/64", "messages/s, 64 B, one writer to one reader: Shm channel vs a Unix socketpair (C)", one, socketpair, ">=", 10, "msg/s");
            }
            if (size == 1 << 20)
            {
                double memcpy = c.Measure("memcpy", Math.Max(500, messages), size);
                Compare("channel-bytes-vs-memcpy/1MiB", "bytes/s, 1 MiB messages (read in place): Shm channel vs memcpy into a ring (C)", one * size, memcpy, ">=", 0.8, "B/s");
            }
        }
        Bridge(sizes);
        global::NetMQ.NetMQConfig.Cleanup(block: false); // its I/O threads would otherwise stand beside every later fork
        if (c is not null)
        {
            double parked = ChannelBench.ParkedWake(sizes.Parked);
            double native = c.Measure("wake", sizes.Parked);
            Compare("channel-parked-wake-vs-c", "wake-up of a reader that had parked, write to read (median): Shm channel vs C on a futex", parked, native, "<=", 1.3, "ns");
        }
    }

    /// <summary>Channels across hosts: two bridges on tcp loopback against raw NetMQ over the same loopback, and the local channel as the reference for what the network costs.</summary>
    private static void Bridge(Sizes sizes)
    {
        const int size = 64;
        long messages = sizes.Messages / 4;
        int trips = sizes.RoundTrips / 4;
        double bridged = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => BridgeBench.Throughput(size, messages)));
        double netmq = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => BridgeBench.NetMqPushPull(size, messages)));
        double local = ChannelBench.Throughput(size, messages, 1);
        Compare("bridge-msgs-vs-netmq/64", "messages/s, 64 B, through two shm bridges on tcp loopback vs NetMQ push/pull on tcp loopback", bridged, netmq, ">=", 0.8, "msg/s");
        Table.Add($"| ... 64 B: the local channel, reference | {local / 1e6:0.00} M msg/s | bridged {bridged / 1e6:0.00} M msg/s | {local / bridged:0.0}x | |");
        double[] bridgedTrips = BridgeBench.RoundTrips(size, trips), netmqTrips = BridgeBench.NetMqReqRep(size, trips), localTrips = ChannelBench.RoundTrips(size, trips);
        double bridgedRtt = bridgedTrips[trips / 2], netmqRtt = netmqTrips[trips / 2], localRtt = localTrips[trips / 2];
        Compare("bridge-rtt-vs-netmq/64", "round trip p50, 64 B, through two shm bridges (a channel each way) vs NetMQ req/rep on tcp loopback", bridgedRtt, netmqRtt, "<=", 1.3, "ns");
        Table.Add($"| ... 64 B round trip: the local channel, reference | {Format(localRtt, "ns")} | bridged {Format(bridgedRtt, "ns")} | {bridgedRtt / localRtt:0}x | |");
    }

    private static void PubSub(Sizes sizes, NativeBaseline? c)
    {
        double[] small = PubSubBench.OneWay(64, sizes.RoundTrips), large = PubSubBench.OneWay(4 << 20, Math.Max(1000, sizes.RoundTrips / 10));
        double p50Small = small[small.Length / 2], p50Large = large[large.Length / 2];
        Table.Add($"| publish-subscribe one-way latency p50 / p99, 64 B and 4 MiB | {Format(p50Small, "ns")} / {Format(small[(int)(small.Length * 0.99)], "ns")}, {Format(p50Large, "ns")} / {Format(large[(int)(large.Length * 0.99)], "ns")} | | | |");
        Compare("pubsub-latency-flat", "publish-subscribe one-way latency p50, 4 MiB vs 64 B samples (zero copy: only an offset moves)", p50Large, p50Small, "<=", 1.5, "ns");
        if (c is not null)
        {
            double floor = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => c.Measure("pingpong", sizes.Trips)));
            Compare("pubsub-oneway-vs-c/64", "publish-subscribe one-way latency p50, 64 B, one forked subscriber, vs half the C spin ping-pong round trip", p50Small, floor / 2, "<=", 2, "ns");
        }
        (double four, double one) = Paired(sizes.Runs, () => PubSubBench.FanOut(4, sizes.Messages / 10), () => PubSubBench.FanOut(1, sizes.Messages / 10));
        Compare("pubsub-fanout/4", "publish-subscribe samples/s delivered to each of 4 forked subscribers vs to 1 (64 B, block)", four, one, ">=", 0.8, "msg/s");
        if (c is not null)
        {
            (double read, double nativeRead) = Paired(sizes.Runs, () => BlackboardBench.Read(sizes.Locks), () => c.Measure("blackboard", sizes.Locks));
            Compare("blackboard-read-vs-c", "blackboard read of a 64-byte entry (seqlock, uncontended): BlackboardService.TryRead vs C shm_blackboard_read", read, nativeRead, "<=", 1.3, "ns");
        }
    }

    private static void HeapGrowth(Sizes sizes)
    {
        foreach (int mib in sizes.HeapMiB)
        {
            (double heapOurs, double heapRaw) = WithHeap(mib, () => Paired(sizes.Runs, () => CrossProcess.LibraryFork(20), () => CrossProcess.RawFork(20)));
            Table.Add($"| fork with a {mib} MiB live heap | Children.Fork: {Format(heapOurs, "ns")} | raw: {Format(heapRaw, "ns")} | {heapRaw / s_smallHeapRawFork:0.0}x the small-heap raw fork | none: page tables grow with the heap |");
        }
    }

    private static void PingPongAndRing(Sizes sizes, NativeBaseline? c)
    {
        if (c is null)
        {
            double alone = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => CrossProcess.PingPong(sizes.Trips)));
            double ringAlone = MedianOf(Enumerable.Range(0, sizes.Runs).Select(_ => CrossProcess.Ring(sizes.Chunks)));
            Table.Add($"| ping-pong round trip | {Format(alone, "ns")} | C: skipped | | |");
            Table.Add($"| ring, 1 MiB chunks | {Format(ringAlone, "B/s")} | C: skipped | | |");
            return;
        }
        (double ours, double native) = Paired(sizes.Runs, () => CrossProcess.PingPong(sizes.Trips), () => c.Measure("pingpong", sizes.Trips));
        Compare("pingpong-vs-c", "ping-pong round trip, spinning on a shared counter: Shm vs C", ours, native, "<=", 1.3, "ns");
        (double ring, double nativeRing) = Paired(sizes.Runs, () => CrossProcess.Ring(sizes.Chunks), () => c.Measure("ring", sizes.Chunks));
        Compare("ring-vs-c", "bulk transfer through a ring of 1 MiB slots: Shm vs C", ring, nativeRing, ">=", 0.9, "B/s");
        (double ring2, double socketpair) = Paired(sizes.Runs, () => CrossProcess.Ring(sizes.Chunks), () => c.Measure("socketpair", sizes.Chunks));
        Compare("ring-vs-socketpair", "bulk transfer: Shm ring vs a Unix socketpair (C)", ring2, socketpair, ">=", 2, "B/s");
        (double ring3, double pipe) = Paired(sizes.Runs, () => CrossProcess.Ring(sizes.Chunks), () => c.Measure("pipe", sizes.Chunks));
        Table.Add($"| bulk transfer: Shm ring vs a pipe (C), reference | {Format(ring3, "B/s")} | {Format(pipe, "B/s")} | {ring3 / pipe:0.00} | none |");
    }

    /// <summary>Medians of <paramref name="runs"/> measurements of each, taken alternately (ABAB, then BABA...), so drift hits both alike.</summary>
    private static (double Ours, double Baseline) Paired(int runs, Func<double> ours, Func<double> baseline)
    {
        var a = new List<double>();
        var b = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            if (i % 2 == 0)
            {
                a.Add(ours());
                b.Add(baseline());
            }
            else
            {
                b.Add(baseline());
                a.Add(ours());
            }
        }
        return (MedianOf(a), MedianOf(b));
    }

    private static (double, double) WithHeap(int mib, Func<(double, double)> measure)
    {
        var heap = new byte[mib][];
        for (int i = 0; i < mib; i++)
        {
            heap[i] = new byte[1 << 20];
            heap[i].AsSpan().Fill(1); // touched, so its pages are really there
        }
        var result = measure();
        GC.KeepAlive(heap);
        return result;
    }

    private static void Compare(string name, string description, double ours, double baseline, string op, double goal, string unit)
    {
        double ratio = ours / baseline;
        Ratios.Add((name, ratio, op, goal));
        string verdict = Met(ratio, op, goal) ? "met" : "missed";
        Table.Add($"| {description} | {Format(ours, unit)} | {Format(baseline, unit)} | {ratio:0.00} | {op} {goal} ({verdict}) |");
    }

    private static bool Met(double value, string op, double goal) => op == "<=" ? value <= goal : value >= goal;

    private static double MedianOf(IEnumerable<double> samples)
    {
        double[] sorted = samples.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static BenchmarkReport Report(Summary summary, string method) =>
        summary.Reports.First(report => report.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);

    private static string Format(double value, string unit) => unit switch
    {
        "B/s" => $"{value / 1e9:0.00} GB/s",
        "msg/s" => $"{value / 1e6:0.00} M msg/s",
        _ when value >= 1e6 => $"{value / 1e6:0.00} ms",
        _ when value >= 1e3 => $"{value / 1e3:0.00} us",
        _ => $"{value:0} ns",
    };

    private static string Machine()
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        return $"{cpu}, {Environment.ProcessorCount} cores, Linux {Environment.OSVersion.Version}, {RuntimeInformation.FrameworkDescription}";
    }
}
