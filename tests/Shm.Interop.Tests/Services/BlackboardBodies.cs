using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>A 64-byte value whose eight fields all derive from its index: a value torn between two writes does not agree with itself.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Board64
{
    public long Index, A, B, C, D, E, F, G;

    public static Board64 Of(long index) => new()
    {
        Index = index,
        A = index * 3,
        B = ~index,
        C = index ^ 0x5555_5555_5555_5555,
        D = index + 7,
        E = index * -11,
        F = (long)((ulong)index * 0x9E37_79B9_7F4A_7C15UL),
        G = index - 1_000_000_007,
    };

    public readonly bool Agrees
    {
        get
        {
            Board64 want = Of(Index);
            return A == want.A && B == want.B && C == want.C && D == want.D && E == want.E && F == want.F && G == want.G;
        }
    }
}

/// <summary>The bodies forked blackboard readers run; each reports by exit code and writes what it counted to a shared region.</summary>
internal static class BlackboardBodies
{
    public const int Ok = 0, Torn = 10, WentBack = 11, TimedOut = 12, Failed = 13, WrongDeath = 14;

    /// <summary>
    /// Reads entry 0 until it holds <paramref name="last"/> (or a bound passes): counts reads and torn
    /// values into <paramref name="results"/> at <paramref name="at"/> (reads, torn, distinct values seen).
    /// </summary>
    public static int ReadUntil(BlackboardService service, SharedSemaphore ready, long last, SharedRegion results, int at)
    {
        try
        {
            ready.Release();
            long reads = 0, torn = 0, distinct = 0, previous = -1;
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (!service.TryRead(0, out Board64 value, TimeSpan.FromSeconds(30)))
                {
                    return TimedOut;
                }
                reads++;
                if (!value.Agrees)
                {
                    torn++;
                }
                else if (value.Index < previous)
                {
                    return WentBack;
                }
                else if (value.Index != previous)
                {
                    distinct++;
                    previous = value.Index;
                }
                if (previous == last || clock.Elapsed > TimeSpan.FromSeconds(50))
                {
                    break;
                }
            }
            Volatile.Write(ref results.As<long>(at), reads);
            Volatile.Write(ref results.As<long>(at + 8), torn);
            Volatile.Write(ref results.As<long>(at + 16), distinct);
            return torn != 0 ? Torn : previous == last ? Ok : TimedOut;
        }
        catch (Exception)
        {
            return Failed;
        }
    }

    /// <summary>Reads entry <paramref name="key"/> expecting to be told that process <paramref name="pid"/> died writing it.</summary>
    public static int ExpectWriterDied(BlackboardService service, int key, int pid)
    {
        try
        {
            service.TryRead(key, out Board64 _, TimeSpan.FromSeconds(30));
            return Failed;
        }
        catch (BlackboardWriterDiedException died)
        {
            return died.WriterPid == pid && died.Key == key ? Ok : WrongDeath;
        }
        catch (Exception)
        {
            return Failed;
        }
    }

    /// <summary>Attaches as the writer, writes entry <paramref name="key"/> once, then holds its sequence odd (as if killed mid-write) and waits to be killed.</summary>
    public static int WriteThenHoldOdd(BlackboardService service, int key, SharedSemaphore ready, SharedSemaphore never)
    {
        try
        {
            using BlackboardWriter writer = service.CreateWriter();
            writer.Write(key, Board64.Of(1));
            using var bytes = new BlackboardBytes(service.Name);
            bytes.SetSequence(key, 3);
            ready.Release();
            never.TryWait(TimeSpan.FromSeconds(60));
            return Failed;
        }
        catch (Exception)
        {
            return Failed;
        }
    }
}

/// <summary>A blackboard's segment as raw bytes, mapped again by name: what a peer sees and may write (offsets from the documented layout).</summary>
internal sealed class BlackboardBytes : IDisposable
{
    public const int KeysAt = 64, ValueSizeAt = 68, WriterSlot = 8192, Entries = 8256, Sequence = 0, Waiters = 4, TornBy = 8, Value = 16;

    public BlackboardBytes(string name)
    {
        Region = SharedRegion.OpenNamed(Service.SegmentPrefix + name);
        Stride = (16 + Region.Read<int>(ValueSizeAt) + 63) & ~63L;
    }

    public SharedRegion Region { get; }

    public long Stride { get; }

    public long Entry(int key) => Entries + (key * Stride);

    public uint SequenceOf(int key) => Volatile.Read(ref Region.As<uint>(Entry(key) + Sequence));

    public void SetSequence(int key, uint value) => Volatile.Write(ref Region.As<uint>(Entry(key) + Sequence), value);

    public void Dispose() => Region.Dispose();
}
