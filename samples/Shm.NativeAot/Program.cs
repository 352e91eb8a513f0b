using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.NativeAot;

/// <summary>
/// Forks children that fill a shared region while other threads allocate, throw and catch, read
/// reflection metadata and run thread-pool tasks, and reports how each child ended and how long a
/// fork took. Published with NativeAOT (no JIT, no type loader at run time) nothing a child runs can
/// wait on a lock the JIT held at the fork. Run: <c>Shm.NativeAot [--forks N] [--busy]</c>.
/// </summary>
public static class Program
{
    /// <summary>Entry point; exits 0 if every child finished with the right value.</summary>
    public static int Main(string[] args)
    {
        int forks = args.SkipWhile(a => a != "--forks").Skip(1).Select(int.Parse).FirstOrDefault(200);
        bool busy = args.Contains("--busy");
        Console.WriteLine($"NativeAOT: {!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeCompiled}; fork supported: {ForkSupport.IsSupported}");

        using var stop = new CancellationTokenSource();
        List<Thread> neighbours = busy ? StartNeighbours(stop.Token) : [];
        using var region = SharedRegion.CreateAnonymous(sizeof(long));
        var times = new List<double>();
        int finished = 0, failed = 0;
        long retries = ForkSupport.Retries;
        for (int n = 0; n < forks; n++)
        {
            long value = n * 7919L;
            var clock = Stopwatch.StartNew();
            using Child child = Child.Fork(() =>
            {
                region.Write(0, Square(value));
                return 0;
            });
            times.Add(clock.Elapsed.TotalMilliseconds);
            ChildExit exit = child.TryWait(out ChildExit? ended, TimeSpan.FromSeconds(30)) ? ended : throw new TimeoutException($"child {child.Pid} still running after 30 s");
            if (exit.Succeeded && region.Read<long>(0) == Square(value))
            {
                finished++;
            }
            else
            {
                failed++;
                Console.WriteLine($"fork {n}: {exit}");
            }
        }
        stop.Cancel();
        neighbours.ForEach(thread => thread.Join());
        times.Sort();
        Console.WriteLine($"{forks} forks{(busy ? " beside 4 busy threads" : "")}: {finished} finished, {failed} failed, " +
            $"{ForkSupport.Retries - retries} retried; median Child.Fork {times[times.Count / 2]:0.00} ms");
        return failed == 0 && finished == forks ? 0 : 1;
    }

    private static long Square(long value) => value * value;

    private static List<Thread> StartNeighbours(CancellationToken stop)
    {
        Action[] work =
        [
            () => GC.KeepAlive(new byte[Random.Shared.Next(16, 8192)]),
            () =>
            {
                try
                {
                    throw new InvalidOperationException("busy");
                }
                catch (InvalidOperationException)
                {
                }
            },
            () => GC.KeepAlive(typeof(Program).GetMethods().Length + typeof(Child).GetProperties().Length),
            () => Task.WaitAll([.. Enumerable.Range(0, 8).Select(_ => Task.Run(() => Thread.SpinWait(10)))]),
        ];
        return work.Select(step =>
        {
            var thread = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    step();
                }
            })
            { IsBackground = true };
            thread.Start();
            return thread;
        }).ToList();
    }
}
