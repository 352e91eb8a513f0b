using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using NetMQ;
using NetMQ.Sockets;
using Shm.Interop;
using Shm.NetMQ;

namespace Shm.Bench;

/// <summary>
/// Channels across hosts: two <see cref="ShmBridge"/>s (this process, threads) on tcp loopback
/// carrying named channels, against raw NetMQ over the same tcp loopback: push/pull for
/// throughput, req/rep for round trips.
/// </summary>
internal static class BridgeBench
{
    private const long LaneCapacity = 1 << 20;

    /// <summary>Messages per second through two bridges: a writer on one side's local channel to a reader on the other's.</summary>
    public static double Throughput(int size, long messages)
    {
        string id = $"bench-{Environment.ProcessId}";
        using NamedChannel source = NamedChannel.CreateOrOpen($"{id}-src", LaneCapacity, 1);
        using NamedChannel target = NamedChannel.CreateOrOpen($"{id}-dst", LaneCapacity, 1);
        (ShmBridge listener, ShmBridge connector) = Pair([new("bench", source.Name)], [], [], [new("bench", target.Name)]);
        using SharedChannelReader reader = target.Channel.OpenReader();
        var sender = new Thread(() =>
        {
            using SharedChannelWriter writer = source.Channel.OpenWriter();
            byte[] message = new byte[size];
            for (long i = 0; i < messages; i++)
            {
                writer.Write(message);
            }
        });
        long start = Stopwatch.GetTimestamp();
        sender.Start();
        for (long i = 0; i < messages; i++)
        {
            reader.Read().Dispose();
        }
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        sender.Join();
        Stop(listener, connector);
        return messages / seconds;
    }

    /// <summary>Round trips through two bridges (ping one way, pong back, an echo thread on the far side): nanoseconds per trip, sorted.</summary>
    public static double[] RoundTrips(int size, int trips)
    {
        string id = $"bench-{Environment.ProcessId}";
        using NamedChannel pingHere = NamedChannel.CreateOrOpen($"{id}-ping-a", LaneCapacity, 1);
        using NamedChannel pingThere = NamedChannel.CreateOrOpen($"{id}-ping-b", LaneCapacity, 1);
        using NamedChannel pongThere = NamedChannel.CreateOrOpen($"{id}-pong-b", LaneCapacity, 1);
        using NamedChannel pongHere = NamedChannel.CreateOrOpen($"{id}-pong-a", LaneCapacity, 1);
        (ShmBridge a, ShmBridge b) = Pair([new("ping", pingHere.Name)], [new("pong", pongHere.Name)], [new("pong", pongThere.Name)], [new("ping", pingThere.Name)]);
        var echo = new Thread(() =>
        {
            using SharedChannelReader reader = pingThere.Channel.OpenReader();
            using SharedChannelWriter writer = pongThere.Channel.OpenWriter();
            for (int i = 0; i < trips + 100; i++)
            {
                using ReceivedMessage message = reader.Read();
                writer.Write(message.Span);
            }
        });
        echo.Start();
        using (SharedChannelWriter writer = pingHere.Channel.OpenWriter())
        using (SharedChannelReader reader = pongHere.Channel.OpenReader())
        {
            byte[] message = new byte[size];
            var times = new double[trips];
            for (int i = -100; i < trips; i++)
            {
                long start = Stopwatch.GetTimestamp();
                writer.Write(message);
                reader.Read().Dispose();
                if (i >= 0)
                {
                    times[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
                }
            }
            echo.Join();
            Stop(a, b);
            Array.Sort(times);
            return times;
        }
    }

    /// <summary>Messages per second from a NetMQ push socket to a pull socket over tcp loopback.</summary>
    public static double NetMqPushPull(int size, long messages)
    {
        string address = $"tcp://127.0.0.1:{FreePort()}";
        using var pull = new PullSocket();
        pull.Bind(address);
        using var push = new PushSocket();
        push.Connect(address);
        var sender = new Thread(() =>
        {
            byte[] message = new byte[size];
            for (long i = 0; i < messages; i++)
            {
                push.SendFrame(message);
            }
        });
        long start = Stopwatch.GetTimestamp();
        sender.Start();
        for (long i = 0; i < messages; i++)
        {
            pull.ReceiveFrameBytes();
        }
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        sender.Join();
        return messages / seconds;
    }

    /// <summary>Round trips of a NetMQ request socket to a reply socket echoing on another thread, tcp loopback: nanoseconds per trip, sorted.</summary>
    public static double[] NetMqReqRep(int size, int trips)
    {
        string address = $"tcp://127.0.0.1:{FreePort()}";
        using var reply = new ResponseSocket();
        reply.Bind(address);
        using var request = new RequestSocket();
        request.Connect(address);
        var echo = new Thread(() =>
        {
            for (int i = 0; i < trips + 100; i++)
            {
                reply.SendFrame(reply.ReceiveFrameBytes());
            }
        });
        echo.Start();
        byte[] message = new byte[size];
        var times = new double[trips];
        for (int i = -100; i < trips; i++)
        {
            long start = Stopwatch.GetTimestamp();
            request.SendFrame(message);
            request.ReceiveFrameBytes();
            if (i >= 0)
            {
                times[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
            }
        }
        echo.Join();
        Array.Sort(times);
        return times;
    }

    private static (ShmBridge Listener, ShmBridge Connector) Pair(BridgedName[] listenerExports, BridgedName[] listenerImports, BridgedName[] connectorExports, BridgedName[] connectorImports)
    {
        string endpoint = $"tcp://127.0.0.1:{FreePort()}";
        ShmBridge listener = ShmBridge.Start(new() { Listen = endpoint, Exports = listenerExports, Imports = listenerImports, LaneCapacity = LaneCapacity });
        ShmBridge connector = ShmBridge.Start(new() { Connect = endpoint, Exports = connectorExports, Imports = connectorImports, LaneCapacity = LaneCapacity });
        return (listener, connector);
    }

    private static void Stop(ShmBridge listener, ShmBridge connector)
    {
        connector.DisposeAsync().AsTask().GetAwaiter().GetResult();
        listener.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
