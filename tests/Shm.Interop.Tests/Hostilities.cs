using System;
using System.Linq;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>What a victim does with a corrupted channel.</summary>
internal enum Victim
{
    /// <summary>Attaches as the reader and takes messages (every one must be intact and in order from index 0).</summary>
    Reader,

    /// <summary>Attaches as a writer and writes three 200-byte messages.</summary>
    Writer,

    /// <summary>Opens the channel from its header.</summary>
    Opener,
}

/// <summary>
/// A bad value a peer writes into a channel before the victim attaches; <see cref="Corrupt"/>
/// returns what this process keeps attached meanwhile (a live writer for a reader victim, a live
/// reader for a writer victim), to dispose after the victim ended.
/// </summary>
internal sealed record Hostility(string Name, Victim Victim, string Structure, Func<GuardedChannel, IDisposable?> Corrupt, int Lanes = 1)
{
    public override string ToString() => Name;
}

/// <summary>The table of corruptions both the .NET and the C victims face.</summary>
internal static class Hostilities
{
    public static readonly Hostility[] BeforeAttach =
    [
        // The lane's head, as the reader reads it.
        new("unaligned head", Victim.Reader, "channel lane head", g => PeerWrites(g, 1, () => g.Bytes.WriteLane(0, ChannelBytes.Head, g.Bytes.ReadLane(0, ChannelBytes.Head) + 3))),
        new("negative head", Victim.Reader, "channel lane head", g => PeerWrites(g, 0, () => g.Bytes.WriteLane(0, ChannelBytes.Head, -8))),
        new("head a ring and more ahead of the tail", Victim.Reader, "channel lane head", g => PeerWrites(g, 1, () => g.Bytes.WriteLane(0, ChannelBytes.Head, g.Bytes.LaneCapacity + 8))),
        new("tail ahead of the head", Victim.Reader, "channel lane head", g => PeerWrites(g, 1, () => g.Bytes.WriteLane(0, ChannelBytes.Tail, g.Bytes.ReadLane(0, ChannelBytes.Head) + 8))),

        // Record headers.
        new("absurd record length", Victim.Reader, "channel record length", g => PeerWrites(g, 1, () => g.Bytes.WriteRecord(0, 0, 0xFFFF_FFF0, padding: false))),
        new("record crossing the end of the ring", Victim.Reader, "channel record length", g => Crafted(g, tail: 4000, head: 7000, () => g.Bytes.WriteRecord(0, 4000, 2000, padding: false))),
        new("record reaching past the head", Victim.Reader, "channel record length", g => Crafted(g, tail: 0, head: 64, () => g.Bytes.WriteRecord(0, 0, 200, padding: false))),
        new("record length shortened, its check left", Victim.Reader, "channel record check", g => PeerWrites(g, 1, () => g.Region.Write(g.Bytes.RingAt(0), 50u))),
        new("intact record of an earlier lap", Victim.Reader, "channel record check", g =>
        {
            long lap = g.Bytes.LaneCapacity;
            return Crafted(g, tail: lap, head: lap + 112, () => g.Bytes.WriteMessage(0, 0, 0, 100)); // written at position 0, read at one lap
        }),

        // Padding.
        new("padding at the start of the ring", Victim.Reader, "channel padding record", g => Crafted(g, tail: 0, head: 4096, () => g.Bytes.WriteRecord(0, 0, 4088, padding: true))),
        new("chain of zero-length padding records", Victim.Reader, "channel padding record", g => Crafted(g, tail: 8, head: 4096, () =>
        {
            for (long at = 8; at < 4096; at += 8)
            {
                g.Bytes.WriteRecord(0, at, 0, padding: true);
            }
        })),
        new("padding running past the end of the ring", Victim.Reader, "channel padding record", g => Crafted(g, tail: 4000, head: 7000, () => g.Bytes.WriteRecord(0, 4000, 2000, padding: true))),
        new("padding stopping short of the end of the ring", Victim.Reader, "channel padding record", g => Crafted(g, tail: 4000, head: 4200, () => g.Bytes.WriteRecord(0, 4000, 40, padding: true))),
        new("padding past the head", Victim.Reader, "channel padding record", g => Crafted(g, tail: 4000, head: 4048, () => g.Bytes.WriteRecord(0, 4000, 88, padding: true))),
        new("padding after padding", Victim.Reader, "channel padding record", g => Crafted(g, tail: 4000, head: 4000 + 4096, () =>
        {
            g.Bytes.WriteRecord(0, 4000, 88, padding: true);
            g.Bytes.WriteRecord(0, 4096, 4088, padding: true);
        })),

        // Lane and channel header words the reader reads.
        new("lane state out of range", Victim.Reader, "channel lane state", g => PeerWrites(g, 0, () => g.Bytes.WriteLane32(0, ChannelBytes.LaneState, 9))),
        new("negative writer pid", Victim.Reader, "channel lane writer pid", g => PeerWrites(g, 0, () => g.Bytes.WriteLane32(0, ChannelBytes.WriterPid, -5))),
        new("completion another process wrote", Victim.Reader, "channel lane final head", g => PeerWrites(g, 1, () => g.Bytes.WriteLane32(0, ChannelBytes.LaneState, 2))),
        new("ever-written flag out of range", Victim.Reader, "channel ever-written flag", g =>
        {
            SharedChannelWriter peer = g.Channel.OpenWriter();
            peer.Complete();
            g.Bytes.WriteHeader32(ChannelBytes.EverWritten, 5);
            return peer;
        }),

        // The header words Open reads once.
        new("lane count 0", Victim.Opener, "channel lane count", g => Header(() => g.Bytes.WriteHeader32(ChannelBytes.Lanes, 0))),
        new("lane count 65", Victim.Opener, "channel lane count", g => Header(() => g.Bytes.WriteHeader32(ChannelBytes.Lanes, 65))),
        new("lane capacity not a power of two", Victim.Opener, "channel lane capacity", g => Header(() => g.Bytes.WriteHeader(ChannelBytes.Capacity, 5000))),
        new("lane capacity of 1 TiB", Victim.Opener, "channel lane capacity", g => Header(() => g.Bytes.WriteHeader(ChannelBytes.Capacity, 1L << 40))),

        // The lane's head and tail, as a writer reads them when it attaches.
        new("unaligned head at the end of the last ring", Victim.Writer, "channel lane head", g => ReaderThen(g, () => g.Bytes.Position(0, tail: 4092, head: 4092))),
        new("unaligned head before the next lane", Victim.Writer, "channel lane head", g => ReaderThen(g, () => g.Bytes.Position(0, tail: 4092, head: 4092)), Lanes: 2),
        new("negative head and tail", Victim.Writer, "channel lane head", g => ReaderThen(g, () => g.Bytes.Position(0, tail: -4096, head: -4096))),
        new("tail more than a ring behind the head", Victim.Writer, "channel lane tail", g => ReaderThen(g, () => g.Bytes.Position(0, tail: 0, head: 3 * 4096))),
        new("unaligned tail", Victim.Writer, "channel lane tail", g => ReaderThen(g, () => g.Bytes.Position(0, tail: 4, head: 8))),
        new("closed flag neither 0 nor 1", Victim.Writer, "channel closed flag", g => ReaderThen(g, () => g.Bytes.WriteHeader32(ChannelBytes.Closed, 7))),
    ];

    public static TheoryData<string> Names(params Victim[] victims) => [.. BeforeAttach.Where(h => victims.Length == 0 || victims.Contains(h.Victim)).Select(h => h.Name)];

    public static Hostility Named(string name) => BeforeAttach.Single(h => h.Name == name);

    /// <summary>A live writer of this process commits <paramref name="messages"/> messages (100 bytes each), then the peer writes.</summary>
    private static SharedChannelWriter PeerWrites(GuardedChannel g, int messages, Action corrupt)
    {
        SharedChannelWriter peer = g.Channel.OpenWriter();
        for (int i = 0; i < messages; i++)
        {
            peer.Write(Messages.Of(i, 100));
        }
        corrupt();
        return peer;
    }

    /// <summary>Lane 0 made to look attached by this (live) process, its head and tail placed, then the peer writes records.</summary>
    private static IDisposable? Crafted(GuardedChannel g, long tail, long head, Action corrupt)
    {
        g.Bytes.Attach(0, Native.GetPid());
        g.Bytes.Position(0, tail, head);
        corrupt();
        return null;
    }

    private static IDisposable? Header(Action corrupt)
    {
        corrupt();
        return null;
    }

    /// <summary>A live reader of this process attaches, then the peer writes.</summary>
    private static SharedChannelReader ReaderThen(GuardedChannel g, Action corrupt)
    {
        SharedChannelReader reader = g.Channel.OpenReader();
        corrupt();
        return reader;
    }
}
