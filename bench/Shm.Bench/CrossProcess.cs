using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using Shm.Interop;

namespace Shm.Bench;

/// <summary>The measurements that need a second process: fork, spawn, ping-pong, bulk transfer.</summary>
internal static class CrossProcess
{
    public const int Chunk = 1 << 20;
    private const int Slots = 8;
    private const int Header = 256; // head at 0, tail at 64, ready at 128: separate cache lines
    private const ulong Cpu0 = 1, Cpu1 = 2, AllCpus = ulong.MaxValue;

    /// <summary>Nanoseconds per child: fork, _exit(0), waitpid, one after another, by P/Invoke.</summary>
    public static double RawFork(int children)
    {
        Raw.ForkExitWait();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < children; i++)
        {
            Raw.ForkExitWait();
        }
        return Nanoseconds(start) / children;
    }

    /// <summary>Nanoseconds per child of <c>Children.Fork(n, _ => 0)</c> and <c>WaitAll</c>.</summary>
    public static double LibraryFork(int children, ForkOptions? options = null)
    {
        using (Children warm = Children.Fork(1, _ => 0, options))
        {
            warm.WaitAll();
        }
        long start = Stopwatch.GetTimestamp();
        using (Children group = Children.Fork(children, _ => 0, options))
        {
            group.WaitAll();
        }
        return Nanoseconds(start) / children;
    }

    /// <summary>Nanoseconds per fresh .NET process: this program spawned with <c>--noop</c>, to exit.</summary>
    public static double Spawn(int processes)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < processes; i++)
        {
            using Child child = Child.SpawnSelf(["--noop"]);
            child.Wait();
        }
        return Nanoseconds(start) / processes;
    }

    /// <summary>Nanoseconds per round trip: parent and forked child, pinned to a core each, spinning on counters.</summary>
    public static double PingPong(long trips)
    {
        using var region = SharedRegion.CreateAnonymous(Header);
        Pong(region, 0); // the child's path, compiled here first
        return AgainstChild(region, () => Pong(region, trips), () => Ping(region, trips)) / trips;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Ping(SharedRegion region, long trips)
    {
        ref long ping = ref region.As<long>(0);
        ref long pong = ref region.As<long>(64);
        for (long i = 1; i <= trips; i++)
        {
            Volatile.Write(ref ping, i);
            while (Volatile.Read(ref pong) != i)
            {
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Pong(SharedRegion region, long trips)
    {
        ref long ping = ref region.As<long>(0);
        ref long pong = ref region.As<long>(64);
        for (long i = 1; i <= trips; i++)
        {
            while (Volatile.Read(ref ping) != i)
            {
            }
            Volatile.Write(ref pong, i);
        }
    }

    /// <summary>Bytes per second through a ring of 1 MiB slots: a forked child produces, the parent consumes.</summary>
    public static double Ring(long chunks)
    {
        using var region = SharedRegion.CreateAnonymous(Header + (long)Slots * Chunk);
        byte[] source = new byte[Chunk];
        byte[] sink = new byte[Chunk];
        source.AsSpan().Fill(7);
        Produce(region, source, 0); // the child's path, compiled here first
        Consume(region, sink, 0);
        double elapsed = AgainstChild(region, () => Produce(region, source, chunks), () => Consume(region, sink, chunks));
        return sink[Chunk - 1] == 7
            ? chunks * (double)Chunk / (elapsed / 1e9)
            : throw new InvalidOperationException("The ring delivered wrong bytes.");
    }

    /// <summary>
    /// Forks a child that pins itself to CPU 1, raises the ready flag and runs <paramref name="child"/>;
    /// pins this thread to CPU 0, and returns the nanoseconds <paramref name="parent"/> takes once the
    /// child is ready.
    /// </summary>
    private static double AgainstChild(SharedRegion region, Action child, Action parent)
    {
        Raw.Pin(AllCpus); // binds the call here, so the child does not
        using Child forked = Child.Fork(() =>
        {
            Raw.Pin(Cpu1);
            Volatile.Write(ref region.As<long>(128), 1);
            child();
            return 0;
        });
        Raw.Pin(Cpu0);
        try
        {
            ref long ready = ref region.As<long>(128);
            while (Volatile.Read(ref ready) == 0)
            {
            }
            long start = Stopwatch.GetTimestamp();
            parent();
            double elapsed = Nanoseconds(start);
            forked.Wait();
            return elapsed;
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Produce(SharedRegion region, byte[] source, long chunks)
    {
        ref long head = ref region.As<long>(0);
        ref long tail = ref region.As<long>(64);
        for (long i = 0; i < chunks; i++)
        {
            while (i - Volatile.Read(ref tail) >= Slots)
            {
            }
            source.AsSpan().CopyTo(region.AsSpan(Header + i % Slots * Chunk, Chunk));
            Volatile.Write(ref head, i + 1);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Consume(SharedRegion region, byte[] sink, long chunks)
    {
        ref long head = ref region.As<long>(0);
        ref long tail = ref region.As<long>(64);
        for (long i = 0; i < chunks; i++)
        {
            while (Volatile.Read(ref head) <= i)
            {
            }
            region.AsReadOnlySpan(Header + i % Slots * Chunk, Chunk).CopyTo(sink);
            Volatile.Write(ref tail, i + 1);
        }
    }

    /// <summary>Nanoseconds per uncontended lock+unlock of a <see cref="SharedMutex"/>.</summary>
    public static double MutexUncontended(long n)
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 256);
        LockUnlock(mutex, 1000);
        long start = Stopwatch.GetTimestamp();
        LockUnlock(mutex, n);
        return Nanoseconds(start) / n;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LockUnlock(SharedMutex mutex, long n)
    {
        for (long i = 0; i < n; i++)
        {
            mutex.Lock();
            mutex.Unlock();
        }
    }

    /// <summary>Nanoseconds per lock+unlock while this process and a forked child contend for one <see cref="SharedMutex"/>.</summary>
    public static double MutexHandoff(long n)
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedMutex.Create(region, 256);
        Increment(mutex, region, 1); // the child's path, compiled here first
        region.Write(320, 0L);
        double elapsed = AgainstChild(region, () => Increment(mutex, region, n), () =>
        {
            Increment(mutex, region, n);
            while (Volatile.Read(ref region.As<long>(320)) != 2 * n)
            {
            }
        });
        return elapsed / (2.0 * n);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Increment(SharedMutex mutex, SharedRegion region, long n)
    {
        ref long counter = ref region.As<long>(320);
        for (long i = 0; i < n; i++)
        {
            mutex.Lock();
            counter++;
            mutex.Unlock();
        }
    }

    /// <summary>Nanoseconds per uncontended lock+unlock of a <see cref="SharedFutexMutex"/>.</summary>
    public static double FutexMutexUncontended(long n)
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 256);
        LockUnlock(mutex, 1000);
        long start = Stopwatch.GetTimestamp();
        LockUnlock(mutex, n);
        return Nanoseconds(start) / n;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LockUnlock(SharedFutexMutex mutex, long n)
    {
        for (long i = 0; i < n; i++)
        {
            mutex.Lock();
            mutex.Unlock();
        }
    }

    /// <summary>Nanoseconds per lock+unlock while this process and a forked child contend for one <see cref="SharedFutexMutex"/>.</summary>
    public static double FutexMutexHandoff(long n)
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 256);
        Increment(mutex, region, 1); // the child's path, compiled here first
        region.Write(320, 0L);
        double elapsed = AgainstChild(region, () => Increment(mutex, region, n), () =>
        {
            Increment(mutex, region, n);
            while (Volatile.Read(ref region.As<long>(320)) != 2 * n)
            {
            }
        });
        return elapsed / (2.0 * n);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Increment(SharedFutexMutex mutex, SharedRegion region, long n)
    {
        ref long counter = ref region.As<long>(320);
        for (long i = 0; i < n; i++)
        {
            mutex.Lock();
            counter++;
            mutex.Unlock();
        }
    }

    /// <summary>Nanoseconds per one-way post-to-wake-up: this process and a forked child ping-pong on two <see cref="SharedSemaphore"/>s, so each wait parks.</summary>
    public static double SemaphoreWake(long trips)
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ping = SharedSemaphore.Create(region, 256, 0);
        using var pong = SharedSemaphore.Create(region, 320, 0);
        ping.Release();
        Answer(ping, pong, 1); // the child's path, compiled here first
        pong.Wait();
        return AgainstChild(region, () => Answer(ping, pong, trips), () => Ask(ping, pong, trips)) / (2.0 * trips);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Ask(SharedSemaphore ping, SharedSemaphore pong, long trips)
    {
        for (long i = 0; i < trips; i++)
        {
            ping.Release();
            pong.Wait();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Answer(SharedSemaphore ping, SharedSemaphore pong, long trips)
    {
        for (long i = 0; i < trips; i++)
        {
            ping.Wait();
            pong.Release();
        }
    }

    /// <summary>Nanoseconds per WaitOne+ReleaseMutex of .NET's own named <see cref="Mutex"/> (a reference: file-backed on Linux).</summary>
    public static double NamedDotnetMutex(long n)
    {
        using var mutex = new Mutex(false, $"shm-bench-{Environment.ProcessId}");
        long start = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            mutex.WaitOne();
            mutex.ReleaseMutex();
        }
        return Nanoseconds(start) / n;
    }

    private static double Nanoseconds(long start) => (Stopwatch.GetTimestamp() - start) * 1e9 / Stopwatch.Frequency;
}
