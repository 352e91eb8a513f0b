using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

public class ForkStressTests(ITestOutputHelper output)
{
    private const int Rounds = 25;
    private const int PerRound = 40; // 1,000 children in all

    /// <summary>
    /// Set once and called only by children, through a delegate the parent's IL walk cannot see
    /// through: every child compiles its target afresh, beside threads that hold the JIT's and the
    /// type loader's locks much of the time.
    /// </summary>
    private static readonly Func<int, int, long> NeverRunInTheParent = Fresh.Compute;

    private static readonly ForkOptions KillDeadlocked = new() { DeadlockPolicy = ChildDeadlockPolicy.Kill };

    [Fact]
    [Trait("Category", "Stress")]
    public void Children_that_compile_code_beside_threads_that_compile_load_types_and_allocate_never_hang_and_all_but_a_few_finish()
    {
        using var region = SharedRegion.CreateAnonymous(PerRound * sizeof(long));
        var neighbours = new BusyNeighbours(
            BusyNeighbours.Kind.Allocate, BusyNeighbours.Kind.Allocate, BusyNeighbours.Kind.Compile, BusyNeighbours.Kind.LoadTypes);
        int hung = 0, crashed = 0, wrong = 0, deadlocked = 0, finished = 0, children = 0;
        long retriesBefore = ForkSupport.Retries;
        var longestWait = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        try
        {
            for (int round = 0; round < Rounds; round++)
            {
                region.AsSpan().Clear();
                int r = round;
                using Children group = Children.Fork(
                    PerRound,
                    i =>
                    {
                        region.AsSpan<long>()[i] = NeverRunInTheParent(r, i);
                        return 0;
                    },
                    KillDeadlocked); // deadlocked children are counted, not waited out
                var waited = Stopwatch.StartNew();
                group.TryWaitAll(out IReadOnlyList<ChildExit?> exits, TimeSpan.FromSeconds(30));
                longestWait = waited.Elapsed > longestWait ? waited.Elapsed : longestWait;
                for (int i = 0; i < PerRound; i++)
                {
                    children++;
                    switch (exits[i])
                    {
                        case null:
                            hung++;
                            break;
                        case { Deadlocked: true }:
                            deadlocked++;
                            Assert.False(Native.Exists(exits[i]!.Pid), "a deadlocked child was reaped");
                            break;
                        case { Succeeded: false }:
                            crashed++;
                            break;
                        default:
                            finished++;
                            wrong += region.AsSpan<long>()[i] == Fresh.Expected(r, i) ? 0 : 1;
                            break;
                    }
                }
            }
        }
        finally
        {
            neighbours.Dispose();
        }
        clock.Stop();

        string summary = $"fork stress: {children} children in {clock.Elapsed.TotalSeconds:0.0} s " +
            $"({clock.Elapsed.TotalMilliseconds / children:0.00} ms each) beside 2 allocating, 1 compiling and 1 type-loading thread, " +
            $"children compiling code the parent never ran: {finished} finished, {deadlocked} deadlocked (killed and reported), " +
            $"{hung} hung, {crashed} crashed, {wrong} wrong values, {neighbours.HeapErrors} parent heap errors; " +
            $"{ForkSupport.Retries - retriesBefore} forks redone before any user code ran; longest WaitAll {longestWait.TotalSeconds:0.0} s";
        output.WriteLine(summary);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, "fork-stress.txt"), summary + Environment.NewLine);

        Assert.Equal(Rounds * PerRound, children);
        Assert.Equal(0, hung);
        Assert.True(longestWait < TimeSpan.FromSeconds(10), $"a WaitAll took {longestWait}");
        Assert.Equal(0, crashed);
        Assert.Equal(0, wrong);
        Assert.True(finished >= children * 95 / 100, summary);
        Assert.Equal(0, neighbours.HeapErrors);
        Assert.Empty(Native.Children());
        Assert.True(ForkSupport.IsSupported);
    }

    private static class Fresh
    {
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static long Compute(int round, int index)
        {
            var scratch = new long[32];
            for (int k = 0; k < scratch.Length; k++)
            {
                scratch[k] = (long)round * 1_000_000 + index * 1_000 + k;
            }
            return scratch.Sum();
        }

        public static long Expected(int round, int index) =>
            Enumerable.Range(0, 32).Sum(k => (long)round * 1_000_000 + index * 1_000 + k);
    }
}
