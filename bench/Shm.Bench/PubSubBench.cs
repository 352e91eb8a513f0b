using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using Shm.Interop;

namespace Shm.Bench;

/// <summary>Publish-subscribe services: one-way latency by size (zero copy: flat), and fan-out to several subscribers.</summary>
internal static class PubSubBench
{
    private const ulong Cpu0 = 1, Cpu1 = 2, AllCpus = ulong.MaxValue;

    /// <summary>
    /// One-way latency of <paramref name="size"/>-byte samples, nanoseconds, sorted: this process publishes
    /// one sample at a time (writing its first 64 bytes: only an offset moves, whatever the size) and a
    /// forked subscriber on the other core spins on it and records receive time less the sample's publish
    /// timestamp (both CLOCK_MONOTONIC), then says it is ready for the next.
    /// </summary>
    public static double[] OneWay(int size, int samples)
    {
        string name = $"shm-bench-{Environment.ProcessId}-{size}";
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = size, QueueCapacity = 2, MaxSubscribers = 1 });
        using var results = SharedRegion.CreateAnonymous(4096 + (8L * (samples + 100)));
        using Publisher publisher = service.CreatePublisher();
        Raw.Pin(AllCpus);
        using Child subscriber = Child.Fork(() =>
        {
            Raw.Pin(Cpu1);
            using Subscriber sub = service.CreateSubscriber();
            Volatile.Write(ref results.As<long>(0), 1);
            return Receive(sub, results, samples + 100);
        });
        Raw.Pin(Cpu0);
        try
        {
            while (Volatile.Read(ref results.As<long>(0)) == 0)
            {
            }
            for (int i = 0; i < samples + 100; i++)
            {
                Send(publisher, size);
                while (Volatile.Read(ref results.As<long>(64)) != i + 1)
                {
                }
            }
            subscriber.Wait();
            double[] times = results.AsSpan<double>(4096 + (8L * 100), samples).ToArray(); // the first 100 warm up
            Array.Sort(times);
            return times;
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Send(Publisher publisher, int size)
    {
        SampleLoan loan;
        while (!publisher.TryLoan(size, out loan))
        {
        }
        loan.Span[..Math.Min(64, size)].Fill(1);
        loan.Publish();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Receive(Subscriber subscriber, SharedRegion results, int samples)
    {
        for (int i = 0; i < samples; i++)
        {
            Sample sample;
            while (!subscriber.TryReceive(out sample))
            {
            }
            long now = Stopwatch.GetTimestamp();
            results.Write(4096 + (8L * i), (now - sample.PublishTimestamp) * 1e9 / Stopwatch.Frequency);
            sample.Dispose();
            Volatile.Write(ref results.As<long>(64), i + 1);
        }
        return 0;
    }

    /// <summary>
    /// Samples per second (64 B) delivered to each of <paramref name="subscribers"/> forked subscribers
    /// (block: each receives every one), from this process's publisher, start to the last subscriber's end.
    /// </summary>
    public static double FanOut(int subscribers, long samples)
    {
        string name = $"shm-bench-fanout-{Environment.ProcessId}-{subscribers}";
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = 64, QueueCapacity = 256, MaxSubscribers = subscribers });
        using var control = SharedRegion.CreateAnonymous(4096);
        using Publisher publisher = service.CreatePublisher();
        Raw.Pin(AllCpus);
        using Children children = Children.Fork(subscribers, _ =>
        {
            Raw.Pin(subscribers == 1 ? Cpu1 : AllCpus);
            using Subscriber sub = service.CreateSubscriber();
            Interlocked.Increment(ref control.As<int>(0));
            long last = Drain(sub, samples);
            InterlockedMax(ref control.As<long>(64), last);
            return 0;
        });
        Raw.Pin(subscribers == 1 ? Cpu0 : AllCpus);
        try
        {
            while (Volatile.Read(ref control.As<int>(0)) < subscribers)
            {
            }
            long start = Stopwatch.GetTimestamp();
            for (long i = 0; i < samples; i++)
            {
                Send(publisher, 64);
            }
            children.WaitAll();
            return samples / ((Volatile.Read(ref control.As<long>(64)) - start) / (double)Stopwatch.Frequency);
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long Drain(Subscriber subscriber, long samples)
    {
        for (long i = 0; i < samples; i++)
        {
            Sample sample;
            while (!subscriber.TryReceive(out sample))
            {
            }
            sample.Dispose();
        }
        return Stopwatch.GetTimestamp();
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long seen = Volatile.Read(ref target);
        while (value > seen)
        {
            long was = Interlocked.CompareExchange(ref target, value, seen);
            if (was == seen)
            {
                return;
            }
            seen = was;
        }
    }
}
