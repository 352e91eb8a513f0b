using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>
/// A seeded randomized corruption soak: in each episode a forked reader and two forked writers run
/// a fresh guarded channel (two 4 KiB lanes, messages of 8 to 1500 bytes), while this process flips
/// random bytes of the channel's control words and of record headers at random moments. It counts
/// what must never happen (a child killed by a signal, a child still running long after every wait
/// of its own should have ended, a message delivered that was not sent intact and in order, a
/// message committed but lost with nobody told) and what happened otherwise.
/// </summary>
/// <remarks>
/// Payload bytes are not targeted: a peer may always write them, and a flip there is undetectable by
/// design. A record header position can become payload by the time of its flip (the ring moved on);
/// every flip is logged before it is made, and a message that fails its integrity check is excused if
/// a logged flip lies inside its bytes. A message counts as delivered once its release succeeded (a
/// release reports a tail another process wrote, after which the writer may have overwritten it).
/// </remarks>
internal sealed class ChannelSoak : IDisposable
{
    public const int Writers = 2;
    public const int PerWriter = 300;
    public const int Capacity = 4096;

    /// <summary>An episode's children must all have ended this long after the last flip: each of their own waits is 2 s at most.</summary>
    public static readonly TimeSpan HangBound = TimeSpan.FromSeconds(20);

    private const int Excused = 48;
    private const int LogEntries = 256;
    private static readonly TimeSpan Each = TimeSpan.FromSeconds(2);

    private readonly Random _random;
    private readonly SharedRegion _board = SharedRegion.CreateAnonymous(4096);
    private readonly byte[] _buffer = new byte[Capacity];

    public ChannelSoak(int seed) => _random = new Random(seed);

    public void Dispose() => _board.Dispose();

    /// <summary>What the soak saw.</summary>
    public sealed class Counts
    {
        public long Episodes;
        public long Corruptions;
        public long Crashes;
        public long Hangs;

        /// <summary>
        /// Children the fork machinery's deadlock watch killed: their only thread waited, untimed, on a
        /// private futex (a runtime lock another thread of this process held at the instant of the
        /// fork: the hazard of forking .NET, see the README). The channel never waits so (its futexes
        /// are shared, its waits timed), so these are counted apart from crashes.
        /// </summary>
        public long ForkDeadlocks;
        public long InvalidDeliveries;
        public long SilentLosses;
        public long ExcusedPayloadHits;
        public long Detected;
        public long Closed;
        public long TimedOut;
        public long Untouched;
        public long Delivered;
        public List<string> Failures { get; } = [];

        public override string ToString() =>
            $"{Corruptions} corruptions in {Episodes} episodes: crashes {Crashes}, hangs past the bound {Hangs}, invalid deliveries {InvalidDeliveries}, silent losses {SilentLosses}; " +
            $"forked children lost to the fork deadlock watch {ForkDeadlocks}; " +
            $"corruption reported in {Detected} episodes, ChannelClosedException in {Closed}, a bounded wait ran out in {TimedOut}, no visible effect in {Untouched}; " +
            $"payload hits excused {ExcusedPayloadHits}; {Delivered} messages delivered intact and in order";
    }

    /// <summary>Runs episodes until <paramref name="corruptions"/> flips were made.</summary>
    public Counts Run(long corruptions)
    {
        var counts = new Counts();
        while (counts.Corruptions < corruptions)
        {
            Episode(counts);
        }
        return counts;
    }

    /// <summary>Runs the children's bodies once here, corruption paths included, so that nothing compiles in a forked child.</summary>
    public void Warm()
    {
        ChannelWarmUp.EveryPath();
        using (var g = GuardedChannel.Create(Capacity, Writers))
        {
            Reset();
            for (int w = 0; w < Writers; w++)
            {
                g.Outcome(g => Writer(g, _board, w, 1, 3, _buffer), slot: w + 1);
            }
            g.Outcome(g => Reader(g, _board, _buffer, detach: true));
        }
        using (var g = GuardedChannel.Create(Capacity, Writers))
        {
            Reset();
            using SharedChannelWriter peer = g.Channel.OpenWriter();
            peer.Write(Messages.Of(0, 100));
            g.Bytes.WriteLane(0, ChannelBytes.Head, 115);
            g.Outcome(g => Reader(g, _board, _buffer, detach: true));
            Log(_board, 0);
            ExcusedBy(_board, 0, 8);
            Flip(g);
        }
    }

    private void Episode(Counts counts)
    {
        using var g = GuardedChannel.Create(Capacity, Writers);
        Reset();
        int seed = _random.Next();
        SharedRegion board = _board;
        byte[] buffer = _buffer;
        using Child reader = Child.Fork(() => g.Outcome(g => Reader(g, board, buffer)));
        using Children writers = Children.Fork(Writers, w => g.Outcome(g => Writer(g, board, w, seed, PerWriter, buffer), slot: w + 1));
        // Flips begin once all three attached (attaching to a corrupted channel is the hostile suite's part);
        // an episode where one ended before the others attached gets none.
        SpinWait.SpinUntil(() => Volatile.Read(ref board.As<int>(AttachedAt)) == 1 + Writers || reader.Exit is not null || writers.Any(writer => writer.Exit is not null), HangBound);
        int flips = Volatile.Read(ref board.As<int>(AttachedAt)) == 1 + Writers ? _random.Next(1, 17) : 0;
        for (int f = 0; f < flips && (reader.Exit is null || writers.Any(writer => writer.Exit is null)); f++)
        {
            SpinFor(_random.Next(0, 1500));
            Flip(g);
            counts.Corruptions++;
        }
        reader.TryWait(out ChildExit? readerExit, HangBound);
        writers.TryWaitAll(out IReadOnlyList<ChildExit?> writerExits, HangBound);
        counts.Episodes++;
        Classify(counts, readerExit, writerExits, $"episode {counts.Episodes} (seed {seed}): reader {readerExit?.ToString() ?? "still running"}, writers {string.Join(", ", writerExits.Select(e => e?.ToString() ?? "still running"))}; reports '{g.ReportOf(0)}', '{g.ReportOf(1)}', '{g.ReportOf(2)}'");
    }

    private void Classify(Counts counts, ChildExit? readerExit, IReadOnlyList<ChildExit?> writerExits, string story)
    {
        ChildExit?[] all = [readerExit, .. writerExits];
        if (all.Any(exit => exit is null))
        {
            counts.Hangs++;
            counts.Failures.Add("hang: " + story);
            return;
        }
        if (all.Any(exit => exit!.Deadlocked))
        {
            counts.ForkDeadlocks++;
            return;
        }
        if (all.Any(exit => exit!.Signal is not null))
        {
            counts.Crashes++;
            counts.Failures.Add("crash: " + story);
            return;
        }
        int[] codes = [.. all.Select(exit => exit!.ExitCode ?? -1)];
        for (int w = 0; w < Writers; w++)
        {
            counts.Delivered += Received(_board, w);
        }
        switch (codes[0])
        {
            case GuardedChannel.InvalidDelivery:
                counts.InvalidDeliveries++;
                counts.Failures.Add("invalid delivery: " + story);
                return;
            case Excused:
                counts.ExcusedPayloadHits++;
                return;
            case GuardedChannel.Completed:
                // A normal end: every message a writer committed without any error must have come.
                for (int w = 0; w < Writers; w++)
                {
                    if (codes[w + 1] == GuardedChannel.Completed && Received(_board, w) < Committed(_board, w))
                    {
                        counts.SilentLosses++;
                        counts.Failures.Add($"silent loss: writer {w} committed {Committed(_board, w)}, the reader got {Received(_board, w)}; " + story);
                        return;
                    }
                }
                break;
            case GuardedChannel.OtherException:
                counts.Failures.Add("unexpected exception in the reader: " + story);
                counts.InvalidDeliveries++;
                return;
        }
        if (codes.Skip(1).Any(code => code == GuardedChannel.OtherException))
        {
            counts.Failures.Add("unexpected exception in a writer: " + story);
            counts.InvalidDeliveries++;
            return;
        }
        if (codes.Contains(GuardedChannel.Corrupted))
        {
            counts.Detected++;
        }
        else if (codes.Contains(GuardedChannel.Closed))
        {
            counts.Closed++;
        }
        else if (codes.Contains(GuardedChannel.TimedOut))
        {
            counts.TimedOut++;
        }
        else
        {
            counts.Untouched++;
        }
    }

    // ---- The children ----

    /// <summary>
    /// Takes messages; each is copied, released, and only then checked (intact, next of its writer).
    /// In a child it is not disposed: it ends as a process that died would, which its writers see at once.
    /// </summary>
    private static int Reader(GuardedChannel g, SharedRegion board, byte[] copy, bool detach = false)
    {
        SharedChannelReader reader = g.Channel.OpenReader();
        try
        {
            return Read(reader, g, board, copy);
        }
        finally
        {
            if (detach)
            {
                reader.Dispose();
            }
        }
    }

    private static unsafe int Read(SharedChannelReader reader, GuardedChannel g, SharedRegion board, byte[] copy)
    {
        Interlocked.Increment(ref board.As<int>(AttachedAt));
        byte* origin = (byte*)g.Region.DangerousGetAddress();
        while (true)
        {
            ReceivedMessage message;
            try
            {
                if (!reader.TryRead(out message, Each, CancellationToken.None))
                {
                    return GuardedChannel.TimedOut;
                }
            }
            catch (System.Threading.Channels.ChannelClosedException)
            {
                return reader.DeadWriters.Count == 0 ? GuardedChannel.Completed : GuardedChannel.Closed;
            }
            int length = message.Length;
            long at;
            fixed (byte* bytes = message.Span)
            {
                at = bytes - origin;
            }
            message.Span.CopyTo(copy);
            message.Dispose();
            if (!Messages.IsIntact(copy.AsSpan(0, length), out int index) || (uint)(index >> 24) >= Writers || (index & 0xFF_FFFF) != Received(board, index >> 24))
            {
                return ExcusedBy(board, at, length) ? Excused : GuardedChannel.InvalidDelivery;
            }
            board.Write(ReceivedAt(index >> 24), Received(board, index >> 24) + 1);
        }
    }

    private static int Writer(GuardedChannel g, SharedRegion board, int w, int seed, int count, byte[] buffer)
    {
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        Interlocked.Increment(ref board.As<int>(AttachedAt));
        uint state = (uint)seed ^ (uint)(w * 0x9E37_79B9) | 1;
        for (int i = 0; i < count; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            int length = Messages.MinimumLength + (int)(state % 1493);
            Messages.Fill((w << 24) | i, buffer.AsSpan(0, length));
            if (!writer.TryWrite(buffer.AsSpan(0, length), Each))
            {
                return GuardedChannel.TimedOut;
            }
            board.Write(CommittedAt(w), (long)i + 1);
        }
        writer.Complete();
        return GuardedChannel.Completed;
    }

    // ---- The corrupter ----

    /// <summary>Flips one byte (XOR with a random non-zero value, atomically on its word) of a control word or a record header.</summary>
    private void Flip(GuardedChannel g)
    {
        long at = _random.Next(2) == 0 ? ControlByte(g) : RecordHeaderByte(g);
        Log(_board, at);
        int shift = (int)(at & 3) * 8;
        uint mask = (uint)_random.Next(1, 256) << shift;
        ref uint word = ref g.Region.As<uint>(at & ~3L);
        uint seen;
        do
        {
            seen = Volatile.Read(ref word);
        }
        while (Interlocked.CompareExchange(ref word, seen ^ mask, seen) != seen);
    }

    private static readonly (int Start, int End)[] HeaderWords = [(0, 40), (64, 72)];
    private static readonly (int Start, int End)[] LaneWords = [(0, 40), (64, 72), (128, 136)];

    private long ControlByte(GuardedChannel g)
    {
        int lane = _random.Next(-1, Writers);
        (int start, int end) = (lane < 0 ? HeaderWords : LaneWords)[_random.Next(lane < 0 ? HeaderWords.Length : LaneWords.Length)];
        long origin = lane < 0 ? g.ChannelOffset : g.Bytes.LaneAt(lane);
        return origin + _random.Next(start, end);
    }

    /// <summary>A byte of a record header of a random lane: one between its tail and head as they stand now, or the next one to be written.</summary>
    private long RecordHeaderByte(GuardedChannel g)
    {
        int lane = _random.Next(Writers);
        long tail = g.Bytes.ReadLane(lane, ChannelBytes.Tail), head = g.Bytes.ReadLane(lane, ChannelBytes.Head);
        var positions = new List<long> { head };
        for (long at = tail; at < head && (at & 7) == 0 && positions.Count < 600;)
        {
            positions.Add(at);
            long offset = at & (Capacity - 1);
            uint length = g.Region.Read<uint>(g.Bytes.RingAt(lane) + offset);
            bool padding = (g.Region.Read<uint>(g.Bytes.RingAt(lane) + offset + 4) & 1) != 0;
            long size = padding ? Capacity - offset : 8 + ((length + 7L) & ~7L);
            if (offset + size > Capacity)
            {
                break;
            }
            at += size;
        }
        long position = positions[_random.Next(positions.Count)];
        return g.Bytes.RingAt(lane) + (position & (Capacity - 1)) + _random.Next(8);
    }

    private static void SpinFor(int microseconds)
    {
        long until = Stopwatch.GetTimestamp() + (microseconds * Stopwatch.Frequency / 1_000_000);
        while (Stopwatch.GetTimestamp() < until)
        {
            Thread.SpinWait(20);
        }
    }

    // ---- The board: what the children and the corrupter share, outside the guarded channel ----

    private static long ReceivedAt(int w) => w * 8L;

    private static long CommittedAt(int w) => 64 + (w * 8L);

    private const long AttachedAt = 120;
    private const long LogCountAt = 128;
    private const long LogAt = 136;

    private static long Received(SharedRegion board, int w) => Volatile.Read(ref board.As<long>(ReceivedAt(w)));

    private static long Committed(SharedRegion board, int w) => Volatile.Read(ref board.As<long>(CommittedAt(w)));

    private void Reset() => _board.AsSpan().Clear();

    /// <summary>Records a flip's region offset before it is made.</summary>
    private static void Log(SharedRegion board, long at)
    {
        long count = board.Read<long>(LogCountAt);
        Volatile.Write(ref board.As<long>(LogAt + ((count % LogEntries) * 8)), at);
        Volatile.Write(ref board.As<long>(LogCountAt), count + 1);
    }

    /// <summary>True if a logged flip lies inside the <paramref name="length"/> message bytes at region offset <paramref name="at"/>.</summary>
    private static bool ExcusedBy(SharedRegion board, long at, int length)
    {
        long count = Math.Min(Volatile.Read(ref board.As<long>(LogCountAt)), LogEntries);
        for (long i = 0; i < count; i++)
        {
            long flipped = Volatile.Read(ref board.As<long>(LogAt + (i * 8)));
            if (flipped >= at && flipped < at + length)
            {
                return true;
            }
        }
        return false;
    }
}
