using System;
using System.Diagnostics;
using System.Globalization;
using System.Threading;
using System.Threading.Channels;
using Shm.NetMQ;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests.Bridge;

/// <summary>
/// Two <c>shm bridge</c> processes on loopback carry a named channel: a writer here writes the
/// exporting bridge's local channel, a reader here reads the importing bridge's local channel.
/// SHM_BRIDGE_MESSAGES sets how many messages (default 1,000,000, the figure: about 13 s
/// on a loaded 2-core machine; CI may set fewer to stay under 30 s).
/// </summary>
[Collection("bridge")]
public sealed class BridgeTransferTests(ITestOutputHelper output)
{
    private const long LaneCapacity = 64 * 1024;
    private const int Window = 256;
    private const long Writer = 7;

    private static long MessageCount => long.TryParse(Environment.GetEnvironmentVariable("SHM_BRIDGE_MESSAGES"), CultureInfo.InvariantCulture, out long n) && n > 0 ? n : 1_000_000;

    internal static (BridgeProcess Exporter, BridgeProcess Importer) StartPair(string wire, string exported, string imported, string[]? exporterPrefix = null, string[]? importerPrefix = null, string listenAt = "127.0.0.1", string connectTo = "127.0.0.1", params string[] extra)
    {
        int port = BridgeProcess.FreePort();
        BridgeProcess exporter = BridgeProcess.Start(exporterPrefix, ["--listen", $"tcp://{listenAt}:{port}", "--export", $"{wire}={exported}", "--window", $"{Window}", "--heartbeat-ms", "200", "--timeout-ms", "1500", .. extra]);
        try
        {
            return (exporter, BridgeProcess.Start(importerPrefix, ["--connect", $"tcp://{connectTo}:{port}", "--import", $"{wire}={imported}", "--window", $"{Window}", "--heartbeat-ms", "200", "--timeout-ms", "1500", .. extra]));
        }
        catch
        {
            exporter.Dispose();
            throw;
        }
    }

    internal static string Unique(string what) => $"h21-{what}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40];

    [Fact]
    public void Moves_every_message_in_order_once_through_two_bridge_processes_in_bounded_memory()
    {
        long count = MessageCount;
        string wire = Unique("wire");
        using NamedChannel source = NamedChannel.CreateOrOpen(Unique("src"), LaneCapacity, writers: 1);
        using NamedChannel target = NamedChannel.CreateOrOpen(Unique("dst"), LaneCapacity, writers: 1);
        var (exporter, importer) = StartPair(wire, source.Name, target.Name);
        using (exporter)
        using (importer)
        {
            long warm = count / 2; // the bridges' heaps have grown to their working size by then
            long rssBefore = 0;
            Exception? writerFailed = null;
            var writing = new Thread(() =>
            {
                try
                {
                    Write(source, count);
                }
                catch (Exception failure)
                {
                    writerFailed = failure;
                }
            });
            writing.Start();
            using SharedChannelReader reader = target.Channel.OpenReader();
            var clock = Stopwatch.StartNew();
            for (long expected = 1; expected <= count; expected++)
            {
                if (!reader.TryRead(out ReceivedMessage message, Waits.Bound))
                {
                    throw new TimeoutException($"message {expected} of {count} did not come within {Waits.Bound.TotalSeconds} s; writer: {writing.ThreadState} {writerFailed}\nexporter: {exporter.Log}\nimporter: {importer.Log}\n{importer.Status()}");
                }
                using (message)
                {
                    Assert.Equal(expected, Stamped.Check(message.Span, Writer));
                }
                if (expected == warm)
                {
                    rssBefore = exporter.ResidentBytes() + importer.ResidentBytes();
                }
            }
            double seconds = clock.Elapsed.TotalSeconds;
            // The writer's Complete reaches this reader as the normal end of the stream.
            var end = Assert.Throws<ChannelClosedException>(() => reader.TryRead(out _, Waits.Bound));
            Assert.DoesNotContain("died", end.Message, StringComparison.Ordinal);
            Assert.True(writing.Join(Waits.Bound), "the writer did not finish");
            Assert.Null(writerFailed);
            long rssAfter = exporter.ResidentBytes() + importer.ResidentBytes();
            output.WriteLine($"{count} messages in {seconds:0.00} s: {count / seconds:0} msg/s; bridges' RSS {rssBefore >> 20} MiB after {warm}, {rssAfter >> 20} MiB at the end");
            // Bounded memory: what the bridges hold is the credit window, not the stream (the second
            // half of the stream adds nothing: 1,000,000 messages end where 200,000 do, near 280 MiB for both).
            Assert.True(rssAfter - rssBefore < 48L << 20, $"the bridges grew from {rssBefore >> 20} MiB to {rssAfter >> 20} MiB over {count - warm} messages");
            // The status file is rewritten every second: it comes to the count, and no loss.
            importer.WaitFor(() => importer.Status().Channels[0].Messages == count, TimeSpan.FromSeconds(5), $"status of {count} messages");
            Assert.Equal(0, importer.Status().Channels[0].Lost);
        }
    }

    [Fact]
    public void A_reader_that_stops_holds_the_remote_writer_back_within_the_rings_and_the_window()
    {
        string wire = Unique("wire");
        using NamedChannel source = NamedChannel.CreateOrOpen(Unique("src"), LaneCapacity, writers: 1);
        using NamedChannel target = NamedChannel.CreateOrOpen(Unique("dst"), LaneCapacity, writers: 1);
        var (exporter, importer) = StartPair(wire, source.Name, target.Name);
        using (exporter)
        using (importer)
        {
            using SharedChannelReader reader = target.Channel.OpenReader();
            using SharedChannelWriter writer = source.Channel.OpenWriter();
            Span<byte> message = stackalloc byte[Stamped.Length];
            long written = 0;
            // The reader takes nothing: the writer must come to a stop (a 2 s wait for room that fails), bounded in count.
            long ringMessages = LaneCapacity / (Stamped.Length + 8);
            long bound = (2 * ringMessages) + (3 * Window) + 64;
            while (true)
            {
                Stamped.Fill(message, Writer, written + 1);
                if (!writer.TryWrite(message, TimeSpan.FromSeconds(2)))
                {
                    break;
                }
                written++;
                Assert.True(written <= bound, $"the writer wrote {written} messages to a reader that takes none; the rings and the window hold {bound}\n{importer.Status()}");
            }
            output.WriteLine($"the writer stopped after {written} messages (bound {bound})");
            // Held back, not stalled: everything written arrives, in order, once the reader reads.
            Assert.True(written >= ringMessages, $"the writer stopped after {written} messages, before its own ring ({ringMessages}) was full");
            for (long expected = 1; expected <= written; expected++)
            {
                Assert.True(reader.TryRead(out ReceivedMessage received, Waits.Bound), $"message {expected} of {written} did not come\n{importer.Status()}");
                using (received)
                {
                    Assert.Equal(expected, Stamped.Check(received.Span, Writer));
                }
            }
            Stamped.Fill(message, Writer, written + 1);
            Assert.True(writer.TryWrite(message, Waits.Bound), "the writer had no room after the reader drained the stream");
        }
    }

    private static void Write(NamedChannel channel, long count)
    {
        using SharedChannelWriter writer = channel.Channel.OpenWriter();
        Span<byte> message = stackalloc byte[Stamped.Length];
        for (long sequence = 1; sequence <= count; sequence++)
        {
            Stamped.Fill(message, Writer, sequence);
            if (!writer.TryWrite(message, Waits.Bound))
            {
                throw new TimeoutException($"no room for message {sequence} within {Waits.Bound.TotalSeconds} s");
            }
        }
        writer.Complete();
    }
}
