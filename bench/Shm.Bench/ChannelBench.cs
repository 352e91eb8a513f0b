using System;
using System.Diagnostics;
using System.Linq;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading;
using Shm.Interop;

namespace Shm.Bench;

/// <summary>The message channel against the spin floor, a socketpair, a .NET socket and memcpy.</summary>
internal static class ChannelBench
{
    private const ulong Cpu0 = 1, Cpu1 = 2, AllCpus = ulong.MaxValue;

    /// <summary>Round trips of <paramref name="size"/>-byte messages: this process writes to one channel, a forked child echoes through another. Nanoseconds per trip, sorted.</summary>
    public static double[] RoundTrips(int size, int trips)
    {
        long capacity = 1 << 16;
        using var region = SharedRegion.CreateAnonymous(4096 + (2 * SharedChannel.RequiredLength(capacity)));
        using var there = SharedChannel.Create(region, 4096, capacity);
        using var back = SharedChannel.Create(region, 4096 + SharedChannel.RequiredLength(capacity), capacity);
        byte[] message = new byte[size];
        using SharedChannelReader backReader = back.OpenReader();
        using SharedChannelWriter thereWriter = there.OpenWriter();
        Raw.Pin(AllCpus);
        using Child echo = Child.Fork(() =>
        {
            Raw.Pin(Cpu1);
            using SharedChannelReader reader = there.OpenReader();
            using SharedChannelWriter writer = back.OpenWriter();
            Volatile.Write(ref region.As<int>(0), 1);
            return Echo(reader, writer, trips + 100);
        });
        Raw.Pin(Cpu0);
        try
        {
            while (Volatile.Read(ref region.As<int>(0)) == 0)
            {
            }
            var times = new double[trips];
            for (int i = -100; i < trips; i++)
            {
                long start = Stopwatch.GetTimestamp();
                Trip(thereWriter, backReader, message);
                if (i >= 0)
                {
                    times[i] = (Stopwatch.GetTimestamp() - start) * 1e9 / Stopwatch.Frequency;
                }
            }
            echo.Wait();
            Array.Sort(times);
            return times;
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Trip(SharedChannelWriter writer, SharedChannelReader reader, byte[] message)
    {
        while (!writer.TryWrite(message))
        {
        }
        ReceivedMessage answer;
        while (!reader.TryRead(out answer))
        {
        }
        answer.Dispose();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Echo(SharedChannelReader reader, SharedChannelWriter writer, int trips)
    {
        for (int i = 0; i < trips; i++)
        {
            ReceivedMessage message;
            while (!reader.TryRead(out message))
            {
            }
            while (!writer.TryWrite(message.Span))
            {
            }
            message.Dispose();
        }
        return 0;
    }

    /// <summary>Messages per second of <paramref name="size"/> bytes from <paramref name="writers"/> forked writers to this process, which reads them in place.</summary>
    public static double Throughput(int size, long messages, int writers)
    {
        long capacity = Math.Max(1 << 16, BitOperationsCeiling(size * 16L));
        using var region = SharedRegion.CreateAnonymous(4096 + SharedChannel.RequiredLength(capacity, writers));
        using var channel = SharedChannel.Create(region, 4096, capacity, writers);
        using SharedChannelReader reader = channel.OpenReader();
        long each = messages / writers;
        Raw.Pin(AllCpus);
        using Children children = Children.Fork(writers, i =>
        {
            Raw.Pin(writers == 1 ? Cpu1 : AllCpus);
            using SharedChannelWriter writer = channel.OpenWriter();
            Interlocked.Increment(ref region.As<int>(0));
            while (Volatile.Read(ref region.As<int>(64)) == 0)
            {
            }
            return Produce(writer, size, each);
        });
        Raw.Pin(Cpu0);
        try
        {
            while (Volatile.Read(ref region.As<int>(0)) < writers)
            {
            }
            long start = Stopwatch.GetTimestamp();
            Volatile.Write(ref region.As<int>(64), 1);
            long received = Consume(reader, each * writers);
            double seconds = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
            children.WaitAll();
            return received / seconds;
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Produce(SharedChannelWriter writer, int size, long count)
    {
        byte[] message = new byte[size];
        message.AsSpan().Fill(7);
        for (long i = 0; i < count; i++)
        {
            message[0] = (byte)i;
            writer.Write(message);
        }
        return 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long Consume(SharedChannelReader reader, long count)
    {
        long received = 0, check = 0;
        while (received < count)
        {
            using ReceivedMessage message = reader.Read();
            check += message.Span[^1]; // read in place: zero copy
            received++;
        }
        return check >= 0 ? received : -1;
    }

    /// <summary>Median nanoseconds from a write to the wake-up of a reader that had parked (2 ms between messages).</summary>
    public static double ParkedWake(int messages)
    {
        using var region = SharedRegion.CreateAnonymous(4096 + (messages * sizeof(long)) + SharedChannel.RequiredLength(1 << 16));
        long at = 4096 + (messages * sizeof(long));
        using var channel = SharedChannel.Create(region, at, 1 << 16);
        using SharedChannelWriter writer = channel.OpenWriter();
        Raw.Pin(AllCpus);
        using Child child = Child.Fork(() =>
        {
            Raw.Pin(Cpu1);
            using SharedChannelReader reader = channel.OpenReader();
            Volatile.Write(ref region.As<int>(0), 1);
            return Wake(reader, region, messages);
        });
        Raw.Pin(Cpu0);
        try
        {
            while (Volatile.Read(ref region.As<int>(0)) == 0)
            {
            }
            for (int i = 0; i < messages; i++)
            {
                Thread.Sleep(2); // the reader has long stopped spinning and parked
                writer.TryWrite(Stopwatch.GetTimestamp());
            }
            child.Wait();
            double[] latencies = region.AsSpan<long>(4096, messages).ToArray().Select(t => t * 1e9 / Stopwatch.Frequency).Order().ToArray();
            return latencies[latencies.Length / 2];
        }
        finally
        {
            Raw.Pin(AllCpus);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Wake(SharedChannelReader reader, SharedRegion region, int messages)
    {
        for (int i = 0; i < messages; i++)
        {
            using ReceivedMessage message = reader.Read();
            region.Write(4096 + (i * sizeof(long)), Stopwatch.GetTimestamp() - message.Read<long>());
        }
        return 0;
    }

    /// <summary>Messages per second of <paramref name="size"/> bytes over a .NET <see cref="Socket"/> pair on a Unix domain socket (two threads: a forked child may not use sockets).</summary>
    public static double UnixSocket(int size, long messages)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"shm-bench-{Environment.ProcessId}.sock");
        System.IO.File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(path));
        using Socket server = listener.Accept();
        var sender = new Thread(() =>
        {
            byte[] message = new byte[size];
            for (long i = 0; i < messages; i++)
            {
                for (int sent = 0; sent < size;)
                {
                    sent += client.Send(message, sent, size - sent, SocketFlags.None);
                }
            }
        });
        byte[] buffer = new byte[size];
        long start = Stopwatch.GetTimestamp();
        sender.Start();
        for (long i = 0; i < messages; i++)
        {
            for (int read = 0; read < size;)
            {
                read += server.Receive(buffer, read, size - read, SocketFlags.None);
            }
        }
        double seconds = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
        sender.Join();
        System.IO.File.Delete(path);
        return messages / seconds;
    }

    /// <summary>
    /// Messages per second of <paramref name="size"/> bytes from a NetMQ <c>PushSocket</c> to a <c>PullSocket</c> over
    /// <c>ipc://</c> (two threads, as for the socket). NetMQ carries ipc:// over TCP on the loopback interface.
    /// </summary>
    public static double NetMq(int size, long messages)
    {
        string address = $"ipc://shm-bench-{Environment.ProcessId}";
        using var pull = new global::NetMQ.Sockets.PullSocket();
        pull.Bind(address);
        using var push = new global::NetMQ.Sockets.PushSocket();
        push.Connect(address);
        var sender = new Thread(() =>
        {
            byte[] message = new byte[size];
            for (long i = 0; i < messages; i++)
            {
                global::NetMQ.OutgoingSocketExtensions.SendFrame(push, message);
            }
        });
        long start = Stopwatch.GetTimestamp();
        sender.Start();
        for (long i = 0; i < messages; i++)
        {
            global::NetMQ.ReceivingSocketExtensions.ReceiveFrameBytes(pull);
        }
        double seconds = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
        sender.Join();
        return messages / seconds;
    }

    private static long BitOperationsCeiling(long value) => (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)value);
}
