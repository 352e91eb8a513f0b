using System;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Runs, in this process, every path of the channel a forked victim may take: each corruption of
/// the hostile table met by a reader, a writer or an opener, a tail or head rewritten under a reader
/// or writer at work, a reader or writer that died, a lane given to another writer. A forked child
/// must only run code its parent has run (see the README on fork): a method compiled for the first
/// time in the child can wait for ever on a runtime lock another thread held at the fork.
/// </summary>
internal static class ChannelWarmUp
{
    private static readonly TimeSpan Brief = TimeSpan.FromMilliseconds(20);
    private static readonly Lock Gate = new();
    private static bool s_done;

    public static void EveryPath()
    {
        lock (Gate)
        {
            if (s_done)
            {
                return;
            }
            foreach (Hostility h in Hostilities.BeforeAttach)
            {
                using var g = GuardedChannel.Create(lanes: h.Lanes);
                using IDisposable? peer = h.Corrupt(g);
                g.Outcome(h.Victim switch
                {
                    Victim.Reader => ReadAll,
                    Victim.Writer => g => WriteSome(g, fill: false),
                    _ => g =>
                    {
                        using SharedChannel opened = SharedChannel.Open(g.Region, g.ChannelOffset);
                        return GuardedChannel.Completed;
                    }
                    ,
                });
            }
            TailRewrittenUnderAReader();
            HeadRewrittenUnderAWriter();
            TailGoneBadUnderAFullWriter();
            DeadPeers();
            LaneTakenOver();
            s_done = true;
        }
    }

    private static int ReadAll(GuardedChannel g)
    {
        using SharedChannelReader reader = g.Channel.OpenReader();
        while (reader.TryRead(out ReceivedMessage message, Brief, CancellationToken.None))
        {
            message.Dispose();
        }
        return GuardedChannel.TimedOut;
    }

    private static int WriteSome(GuardedChannel g, bool fill)
    {
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        while (fill && writer.TryWrite(Messages.Of(0, 200)))
        {
        }
        return writer.TryWrite(Messages.Of(0, 200), Brief) ? GuardedChannel.Completed : GuardedChannel.TimedOut;
    }

    // At a release, and while idle.
    private static void TailRewrittenUnderAReader()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        peer.Write(Messages.Of(0, 100));
        using (SharedChannelReader reader = g.Channel.OpenReader())
        {
            Assert.True(reader.TryRead(out ReceivedMessage message));
            g.Bytes.WriteLane(0, ChannelBytes.Tail, 8);
            Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ =>
            {
                message.Dispose();
                return GuardedChannel.Completed;
            }));
        }
        using (SharedChannelReader reader = g.Channel.OpenReader())
        {
            g.Bytes.WriteLane(0, ChannelBytes.Tail, 16);
            Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ => reader.TryRead(out ReceivedMessage unexpected, Brief, CancellationToken.None) ? GuardedChannel.Completed : GuardedChannel.TimedOut));
        }
    }

    // At a publish, and while waiting for room.
    private static void HeadRewrittenUnderAWriter()
    {
        using var g = GuardedChannel.Create(lanes: 2);
        using SharedChannelReader reader = g.Channel.OpenReader();
        using (SharedChannelWriter writer = g.Channel.OpenWriter())
        {
            g.Bytes.WriteLane(0, ChannelBytes.Head, 8);
            Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ => writer.TryWrite(new byte[10]) ? GuardedChannel.Completed : GuardedChannel.TimedOut));
        }
        using (SharedChannelWriter writer = g.Channel.OpenWriter())
        {
            while (writer.TryWrite(new byte[200]))
            {
            }
            g.Bytes.WriteLane(1, ChannelBytes.Head, 8);
            Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ => writer.TryWrite(new byte[200], TimeSpan.FromMilliseconds(200)) ? GuardedChannel.Completed : GuardedChannel.TimedOut));
        }
    }

    private static void TailGoneBadUnderAFullWriter()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        while (writer.TryWrite(new byte[200]))
        {
        }
        g.Bytes.WriteLane(0, ChannelBytes.Tail, 4);
        Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ => writer.TryWrite(new byte[200]) ? GuardedChannel.Completed : GuardedChannel.TimedOut));
    }

    // A reader that died (writers fail when full), a writer that died (the reader names it), a negative
    // reader pid. "Dead" is this process under another start time: dead for certain, whatever pids do.
    private static void DeadPeers()
    {
        int self = Native.GetPid();
        using (var g = GuardedChannel.Create())
        {
            using SharedChannelWriter writer = g.Channel.OpenWriter();
            g.Bytes.WriteHeader32(ChannelBytes.ReaderPid, self);
            g.Bytes.WriteHeader(ChannelBytes.ReaderStart, 1);
            Assert.Equal(GuardedChannel.Closed, g.Outcome(_ => WriteUntilRefused(writer)));
            g.Bytes.WriteHeader32(ChannelBytes.ReaderPid, -5);
            Assert.Equal(GuardedChannel.Corrupted, g.Outcome(_ => WriteUntilRefused(writer)));
        }
        using (var g = GuardedChannel.Create(lanes: 2))
        {
            using SharedChannelWriter live = g.Channel.OpenWriter();
            live.Complete();
            g.Bytes.Attach(1, self);
            g.Bytes.WriteLane(1, ChannelBytes.WriterStart, 1);
            Assert.Equal(GuardedChannel.Closed, g.Outcome(ReadAll));
        }
    }

    private static void LaneTakenOver()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        g.Bytes.WriteLane32(0, ChannelBytes.Generation, g.Bytes.ReadLane32(0, ChannelBytes.Generation) + 1);
        Assert.Equal(GuardedChannel.Closed, g.Outcome(_ => writer.TryWrite(new byte[10]) ? GuardedChannel.Completed : GuardedChannel.TimedOut));
        Assert.Equal(GuardedChannel.Closed, g.Outcome(_ =>
        {
            writer.Complete();
            return GuardedChannel.Completed;
        }));
    }

    private static int WriteUntilRefused(SharedChannelWriter writer)
    {
        for (int i = 0; i < 200; i++)
        {
            writer.TryWrite(new byte[200], Brief);
        }
        return GuardedChannel.TimedOut;
    }
}
