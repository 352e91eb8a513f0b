using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Shm.NetMQ;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests.Bridge;

/// <summary>A bridge process SIGKILLed mid-stream: reported within the heartbeat timeout, naming the endpoint; restarted, traffic resumes, at most once.</summary>
[Collection("bridge")]
public sealed class BridgePeerLossTests(ITestOutputHelper output)
{
    private const long LaneCapacity = 64 * 1024;
    private const long Writer = 11;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromMilliseconds(1500);

    /// <summary>What a loaded 2-core machine adds to the timeout: a tick of the heartbeat timer, and scheduling.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1.5);

    [Fact]
    public void A_remote_reader_fails_naming_the_endpoint_within_the_heartbeat_timeout_when_the_bridge_it_reads_is_killed()
    {
        using NamedChannel source = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("src"), LaneCapacity, writers: 1);
        string wire = BridgeTransferTests.Unique("wire");
        int port = BridgeProcess.FreePort();
        string endpoint = $"tcp://127.0.0.1:{port}";
        using BridgeProcess exporter = BridgeProcess.Start(null, "--listen", endpoint, "--export", $"{wire}={source.Name}", "--heartbeat-ms", "200", "--timeout-ms", "1500");
        using var stopWriting = new CancellationTokenSource();
        var writing = new Thread(() => WriteUntilStopped(source, stopWriting.Token));
        writing.Start();
        try
        {
            using RemoteChannelReader reader = RemoteChannelReader.Connect(endpoint, wire, new RemoteTransportOptions { HeartbeatInterval = Interval, HeartbeatTimeout = HeartbeatTimeout, CreditWindow = 256 });
            long expected = 1;
            for (; expected <= 2000; expected++)
            {
                Assert.True(reader.TryRead(out ReceivedMessage message, Waits.Bound), $"message {expected} did not come\n{exporter.Log}");
                Assert.Equal(expected, Stamped.Check(message.Span, Writer));
            }
            exporter.Kill(); // mid-stream: the writer is still writing, the reader still reading
            var clock = Stopwatch.StartNew();
            RemoteChannelException lost = Assert.Throws<RemoteChannelException>(() =>
            {
                // What had arrived is still delivered, in order; then the end, as for dead local writers.
                for (int i = 0; i < 100_000 && reader.TryRead(out ReceivedMessage message, Waits.Bound); i++, expected++)
                {
                    Assert.Equal(expected, Stamped.Check(message.Span, Writer));
                }
            });
            TimeSpan after = clock.Elapsed;
            output.WriteLine($"{lost.Message} ({after.TotalMilliseconds:0} ms after SIGKILL; {expected - 1} messages read)");
            Assert.Contains(endpoint, lost.Endpoint, StringComparison.Ordinal);
            Assert.Contains(endpoint, lost.Message, StringComparison.Ordinal);
            Assert.True(after < HeartbeatTimeout + Slack, $"the loss was reported {after.TotalMilliseconds:0} ms after SIGKILL; the heartbeat timeout is {HeartbeatTimeout.TotalMilliseconds} ms");
            // Later calls say the same: the stream is over.
            Assert.Throws<RemoteChannelException>(() => reader.TryRead(out _));
        }
        finally
        {
            stopWriting.Cancel();
            Assert.True(writing.Join(Waits.Bound), "the writer did not stop");
        }
    }

    [Fact]
    public void After_the_exporting_bridge_is_killed_and_restarted_the_importing_bridge_resumes_and_delivers_nothing_twice()
    {
        using NamedChannel source = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("src"), LaneCapacity, writers: 1);
        using NamedChannel target = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("dst"), LaneCapacity, writers: 1);
        string wire = BridgeTransferTests.Unique("wire");
        var (exporter, importer) = BridgeTransferTests.StartPair(wire, source.Name, target.Name);
        BridgeProcess? restarted = null;
        try
        {
            using (importer)
            {
                using SharedChannelWriter writer = source.Channel.OpenWriter();
                using SharedChannelReader reader = target.Channel.OpenReader();
                long read = 0;
                long next = Write(writer, 1, 500);
                read = ReadIncreasing(reader, read, until: next - 1, importer);
                Assert.Equal(500, read);

                string endpoint = importer.Status().Endpoint;
                exporter.Kill();
                var clock = Stopwatch.StartNew();
                // Its status file is rewritten every second: the report is there within the timeout and that second.
                static bool Lost(ShmBridgeStatus status, string endpoint) =>
                    status.Peers.Count == 0 && status.Recent.Any(line => line.Contains(endpoint, StringComparison.Ordinal) && line.Contains("gone", StringComparison.Ordinal));
                importer.WaitFor(() => Lost(importer.Status(), endpoint), HeartbeatTimeout + Slack + TimeSpan.FromSeconds(1), "report of the lost peer");
                output.WriteLine($"the importing bridge's status showed the loss {clock.ElapsedMilliseconds} ms after SIGKILL: {importer.Status().Recent[^1]}");

                // The same command again, on the same port: it takes the dead bridge's place as the channel's reader.
                restarted = BridgeProcess.Start(null, "--listen", endpoint, "--export", $"{wire}={source.Name}", "--window", "256", "--heartbeat-ms", "200", "--timeout-ms", "1500");
                next = Write(writer, next, 500);
                read = ReadIncreasing(reader, read, until: next - 1, importer);
                Assert.Equal(1000, read);
                importer.WaitFor(() => importer.Status().Peers.Count == 1, TimeSpan.FromSeconds(5), "the restarted peer in its status");
            }
        }
        finally
        {
            restarted?.Dispose();
            exporter.Dispose();
        }
    }

    private static long Write(SharedChannelWriter writer, long from, int count)
    {
        Span<byte> message = stackalloc byte[Stamped.Length];
        for (long sequence = from; sequence < from + count; sequence++)
        {
            Stamped.Fill(message, Writer, sequence);
            Assert.True(writer.TryWrite(message, Waits.Bound), $"no room for message {sequence}");
        }
        return from + count;
    }

    /// <summary>Reads until message <paramref name="until"/>: each number greater than the last (never one twice, never out of order); returns the last.</summary>
    private static long ReadIncreasing(SharedChannelReader reader, long last, long until, BridgeProcess importer)
    {
        while (last < until)
        {
            Assert.True(reader.TryRead(out ReceivedMessage message, Waits.Bound), $"after message {last}, message {until} did not come\n{importer.Status()}\n{importer.Log}");
            using (message)
            {
                long sequence = Stamped.Check(message.Span, Writer);
                Assert.True(sequence > last, $"message {sequence} after {last}: repeated or out of order");
                last = sequence;
            }
        }
        return last;
    }

    private static void WriteUntilStopped(NamedChannel channel, CancellationToken stop)
    {
        try
        {
            using SharedChannelWriter writer = channel.Channel.OpenWriter();
            Span<byte> message = stackalloc byte[Stamped.Length];
            for (long sequence = 1; sequence < 100_000_000 && !stop.IsCancellationRequested; sequence++)
            {
                Stamped.Fill(message, Writer, sequence);
                while (!writer.TryWrite(message, TimeSpan.FromMilliseconds(100)))
                {
                    if (stop.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
            // the bridge, this channel's reader, was killed: a writer that must wait for room fails
        }
    }
}
