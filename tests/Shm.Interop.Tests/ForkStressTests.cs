using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

public class ForkStressTests(ITestOutputHelper output)
{
    private const int Rounds = 250;
    private const int PerRound = 40; // 10,000 children in all

    [Fact]
    [Trait("Category", "Stress")]
    public void Ten_thousand_children_while_other_threads_allocate_none_hang_crash_or_write_wrong()
    {
        using var region = SharedRegion.Anonymous(PerRound * sizeof(long));
        using var stop = new CancellationTokenSource();
        long parentErrors = 0;
        Thread[] allocators = Enumerable.Range(0, 2).Select(seed => new Thread(() =>
        {
            // Churns the heap (gen0 and survivors) and checks that what it kept is intact.
            var kept = new byte[64][];
            var random = new Random(seed);
            for (long n = 0; !stop.IsCancellationRequested; n++)
            {
                if (n % 256 == 0)
                {
                    Thread.Yield(); // busy, but leaves the forking thread a share of the 2 cores
                }
                int slot = random.Next(kept.Length);
                if (kept[slot] is byte[] old && old.Any(b => b != (byte)old.Length))
                {
                    Interlocked.Increment(ref parentErrors);
                }
                int size = random.Next(16, 8192);
                kept[slot] = Enumerable.Repeat((byte)size, size).ToArray();
            }
        })
        { IsBackground = true }).ToArray();
        foreach (Thread thread in allocators)
        {
            thread.Start();
        }

        // What the children run, once in the parent first, so that they do not each compile it.
        long warm = region.AsSpan<long>().ToArray().Sum() + new long[32].Sum();

        int hung = 0, crashed = 0, wrong = 0, children = 0;
        int gcsBefore = GC.CollectionCount(0);
        long retriesBefore = ForkSupport.Retries;
        var clock = Stopwatch.StartNew();
        for (int round = 0; round < Rounds; round++)
        {
            region.AsSpan().Clear();
            int r = round;
            using Children group = Children.Fork(PerRound, i =>
            {
                var scratch = new long[32]; // the child allocates, within its budget
                for (int k = 0; k < scratch.Length; k++)
                {
                    scratch[k] = (long)r * 1_000_000 + i * 1_000 + k;
                }
                region.AsSpan<long>()[i] = scratch.Sum();
                return 0;
            });
            var exits = group.WaitAll(TimeSpan.FromSeconds(30));
            children += exits.Count;
            hung += exits.Count(exit => exit is null);
            crashed += exits.Count(exit => exit is { Succeeded: false });
            for (int i = 0; i < PerRound; i++)
            {
                long expected = Enumerable.Range(0, 32).Sum(k => (long)r * 1_000_000 + i * 1_000 + k);
                wrong += region.AsSpan<long>()[i] == expected ? 0 : 1;
            }
        }
        clock.Stop();
        stop.Cancel();
        foreach (Thread thread in allocators)
        {
            thread.Join();
        }

        string summary = $"fork stress: {children} children in {clock.Elapsed.TotalSeconds:0.0} s " +
            $"({clock.Elapsed.TotalMilliseconds / children:0.00} ms each, 2 allocating threads, {GC.CollectionCount(0) - gcsBefore} gen0 GCs in the parent): " +
            $"{hung} hung, {crashed} crashed, {wrong} wrong values, {parentErrors} parent heap errors; " +
            $"{ForkSupport.Retries - retriesBefore} forks redone by the library";
        output.WriteLine(summary);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, "fork-stress.txt"), summary + Environment.NewLine);

        Assert.Equal(0, warm);
        Assert.Equal(Rounds * PerRound, children);
        Assert.Equal(0, hung);
        Assert.Equal(0, crashed);
        Assert.Equal(0, wrong);
        Assert.Equal(0, parentErrors);
        Assert.Empty(Native.Children());
        Assert.True(ForkSupport.IsSupported);
    }
}
