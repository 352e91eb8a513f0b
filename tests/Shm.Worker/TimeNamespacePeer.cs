using System;
using System.Threading;
using System.Threading.Channels;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>
/// A channel peer for ChannelTimeNamespaceTests, run in another time namespace (its start times in
/// /proc are shifted): the segment holds three channels of one 4 KiB lane and a handshake word. In
/// channel 0 the peer is the writer of the test's reader; in channel 1 the test is a silent reader
/// (the peer fills the lane and waits for room, then tries to take the reader's place); in channel 2
/// the test is a silent writer (the peer reads and waits). None of the test's live endpoints may be
/// taken for dead; the test checks the other way round, that this live writer is not.
/// </summary>
public static class TimeNamespacePeer
{
    /// <summary>Bytes per channel.</summary>
    public static readonly long ChannelSize = SharedChannel.RequiredLength(4096);

    /// <summary>Where the handshake word is: 1 once channel 0 has its message, 2 when the test is done with it.</summary>
    public static long HandshakeOffset => 3 * ChannelSize;

    /// <summary>The segment's length.</summary>
    public static long Length => HandshakeOffset + 64;

    /// <summary>Exit 0 if the test's three endpoints were all taken for alive; the findings on stdout.</summary>
    public static int Run(string name)
    {
        using SharedRegion region = SharedRegion.OpenNamed(name);
        using SharedChannel withSilentReader = SharedChannel.Open(region, ChannelSize);
        using SharedChannel withSilentWriter = SharedChannel.Open(region, 2 * ChannelSize);
        using SharedChannel toTest = SharedChannel.Open(region, 0);

        string reader;
        using (SharedChannelWriter writer = withSilentReader.OpenWriter())
        {
            try
            {
                while (writer.TryWrite(new byte[500]))
                {
                }
                reader = writer.TryWrite(new byte[500], TimeSpan.FromMilliseconds(300)) ? "read a message" : "alive";
            }
            catch (ChannelClosedException closed)
            {
                reader = closed.Message;
            }
        }
        string place;
        try
        {
            withSilentReader.OpenReader().Dispose();
            place = "taken over";
        }
        catch (InvalidOperationException)
        {
            place = "kept";
        }
        string silentWriter;
        using (SharedChannelReader silent = withSilentWriter.OpenReader())
        {
            try
            {
                silentWriter = silent.TryRead(out ReceivedMessage message, TimeSpan.FromMilliseconds(300)) ? "wrote a message" : "alive";
            }
            catch (ChannelClosedException closed)
            {
                silentWriter = closed.Message;
            }
        }

        using SharedChannelWriter mine = toTest.OpenWriter(); // completed by Dispose, if the lane is still its own
        mine.TryWrite("hello"u8);
        Volatile.Write(ref region.As<int>(HandshakeOffset), 1);
        for (long until = Environment.TickCount64 + 60_000; Volatile.Read(ref region.As<int>(HandshakeOffset)) != 2 && Environment.TickCount64 < until;)
        {
            Thread.Sleep(1);
        }
        Console.WriteLine($"the test's silent reader: {reader}; its reader's place: {place}; its silent writer: {silentWriter}");
        return reader == "alive" && place == "kept" && silentWriter == "alive" ? 0 : Program.Unexpected;
    }
}
