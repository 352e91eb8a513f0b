using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// The channel against a hostile peer: this process writes chosen bad values into a channel's
/// bytes (as any process that maps the region may) while a forked victim reads, writes or waits.
/// The victim's channel ends where a PROT_NONE page begins, so a stray access is a signal. Each
/// victim must end normally having reported the corruption, within its bounds, and must never be
/// handed a message that was not sent (every message proves its own integrity).
/// </summary>
public sealed class ChannelHostilePeerTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Each = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    /// <summary>Runs every victim's paths once here, so that nothing compiles in a forked child (see the README on fork).</summary>
    public ChannelHostilePeerTests()
    {
        ChannelWarmUp.EveryPath();
        using (var warm = GuardedChannel.Create())
        {
            using (SharedChannelWriter peer = warm.Channel.OpenWriter())
            {
                peer.Write(Messages.Of(0, 200));
            }
            warm.PauseReaderAfter(1);
            warm.Go.Set();
            Assert.Equal(GuardedChannel.Closed, warm.Outcome(ReadFrom(0)));
        }
        using (var warm = GuardedChannel.Create())
        {
            using SharedChannelReader reader = warm.Channel.OpenReader();
            warm.Go.Set();
            Assert.Equal(GuardedChannel.TimedOut, warm.Outcome(g => Write(g, count: 1, fill: true, pause: true, each: TimeSpan.FromMilliseconds(1))));
            Assert.Equal(GuardedChannel.OtherException, warm.Outcome(g => Write(g, count: 1))); // every lane taken
        }
        using (var warm = GuardedChannel.Create())
        {
            using SharedChannelWriter peer = warm.Channel.OpenWriter();
            peer.Write(Messages.Of(0, 100));
            warm.Bytes.WriteLane(0, ChannelBytes.Head, 8 + 104 + 3);
            warm.Outcome(ReadFrom(0));
            Assert.Equal(GuardedChannel.Completed, warm.Outcome(Open));
        }
    }

    /// <summary>Each corruption of the table, written before the victim attaches.</summary>
    [Theory]
    [MemberData(nameof(BeforeAttach))]
    public void A_victim_reports_a_corruption_written_before_it_attached(string hostility)
    {
        Hostility h = Hostilities.Named(hostility);
        using var g = GuardedChannel.Create(lanes: h.Lanes);
        using IDisposable? peer = h.Corrupt(g);

        ExpectVictim(g, VictimOf(h.Victim), GuardedChannel.Corrupted, h.Structure);
        if (h.Lanes > 1)
        {
            Assert.Equal(0, g.Bytes.ReadLane(1, ChannelBytes.Head)); // the next lane's header untouched
            Assert.Equal(0, g.Bytes.ReadLane32(1, ChannelBytes.WriterPid));
        }
    }

    public static TheoryData<string> BeforeAttach => Hostilities.Names();

    // ---- The reader while it reads or waits ----

    [Fact]
    public void A_reader_refuses_a_head_moved_behind_what_it_took()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        peer.Write(Messages.Of(0, 100));
        peer.Write(Messages.Of(1, 100));
        g.PauseReaderAfter(2);

        ExpectVictim(g, ReadFrom(0), GuardedChannel.Corrupted, "channel lane head",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Head, g.Bytes.ReadLane(0, ChannelBytes.Head) - 8));
    }

    [Fact]
    public void A_reader_refuses_a_ring_of_zero_length_padding_records_under_a_huge_head_instead_of_spinning()
    {
        using var g = GuardedChannel.Create();
        g.Bytes.Attach(0, Native.GetPid());
        for (long at = 0; at < g.Bytes.LaneCapacity; at += 8)
        {
            g.Bytes.WriteRecord(0, at, 0, padding: true);
        }
        g.PauseReaderAfter(0);

        ExpectVictim(g, ReadFrom(0), GuardedChannel.Corrupted, "channel lane head",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Head, 1L << 40));
    }

    [Fact]
    public void A_reader_reports_a_tail_another_process_wrote_when_it_releases_the_message_it_holds()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        peer.Write(Messages.Of(0, 100));
        peer.Write(Messages.Of(1, 100));
        g.PauseReaderAfter(1);

        // The writer may have overwritten the message on the word of that tail: its release says so.
        ExpectVictim(g, ReadFrom(0), GuardedChannel.Corrupted, "channel lane tail",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Tail, g.Bytes.ReadLane(0, ChannelBytes.Tail) + 8));
    }

    [Fact]
    public void A_parked_reader_reports_a_head_gone_bad_promptly()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        g.PauseReaderAfter(0);

        ExpectVictim(g, ReadFrom(0, Bound), GuardedChannel.Corrupted, "channel lane head", afterGo: g =>
        {
            WaitUntil(() => g.Bytes.ReadHeader32(ChannelBytes.ReaderSleeping) == 1, "the reader to park");
            g.Bytes.WriteLane(0, ChannelBytes.Head, 3); // and no wake-up: the reader must look by itself
        }, within: Promptly);
    }

    [Fact]
    public void A_parked_reader_reports_a_lane_state_gone_bad_promptly()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        g.PauseReaderAfter(0);

        ExpectVictim(g, ReadFrom(0, Bound), GuardedChannel.Corrupted, "channel lane state", afterGo: g =>
        {
            WaitUntil(() => g.Bytes.ReadHeader32(ChannelBytes.ReaderSleeping) == 1, "the reader to park");
            g.Bytes.WriteLane32(0, ChannelBytes.LaneState, 9);
        }, within: Promptly);
    }

    // ---- The writer while it writes or waits ----

    [Fact]
    public void A_full_writer_refuses_an_unaligned_tail()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, fill: true, pause: true), GuardedChannel.Corrupted, "channel lane tail",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Tail, 4));
    }

    [Fact]
    public void A_full_writer_refuses_a_tail_ahead_of_its_head_instead_of_overwriting_unread_messages()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, fill: true, pause: true), GuardedChannel.Corrupted, "channel lane tail",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Tail, g.Bytes.ReadLane(0, ChannelBytes.Head) + g.Bytes.LaneCapacity));
    }

    [Fact]
    public void A_full_writer_refuses_a_negative_tail()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, fill: true, pause: true), GuardedChannel.Corrupted, "channel lane tail",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Tail, -3 * g.Bytes.LaneCapacity));
    }

    [Fact]
    public void A_parked_writer_reports_a_tail_gone_bad_promptly()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, fill: true, each: Bound), GuardedChannel.Corrupted, "channel lane tail", atPause: g =>
        {
            WaitUntil(() => g.Bytes.ReadLane32(0, ChannelBytes.WriterSleeping) == 1, "the writer to park");
            g.Bytes.WriteLane(0, ChannelBytes.Tail, 4); // and no wake-up
        }, within: Promptly);
    }

    [Fact]
    public void A_writer_refuses_a_head_another_process_wrote()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, pause: true), GuardedChannel.Corrupted, "channel lane head",
            atPause: g => g.Bytes.WriteLane(0, ChannelBytes.Head, 8));
    }

    [Theory]
    [InlineData(ChannelBytes.Generation)]
    [InlineData(ChannelBytes.WriterPid)]
    public void A_writer_whose_lane_names_another_writer_stops_writing_to_it(int field)
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, pause: true), GuardedChannel.Closed, "lane",
            atPause: g => g.Bytes.WriteLane32(0, field, g.Bytes.ReadLane32(0, field) + 1));
        Assert.Equal(0, g.Bytes.ReadLane(0, ChannelBytes.Head)); // not one byte published
    }

    [Fact]
    public void A_full_writer_refuses_a_negative_reader_pid()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();

        ExpectVictim(g, g => Write(g, count: 3, fill: true, pause: true), GuardedChannel.Corrupted, "channel reader pid",
            atPause: g => g.Bytes.WriteHeader32(ChannelBytes.ReaderPid, -5));
    }

    // ---- Asynchronous waits (they run on this process's futex watcher: not in a forked child) ----

    [Fact]
    public async Task A_pending_ReadAsync_faults_with_the_corruption_when_the_head_goes_bad()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelWriter peer = g.Channel.OpenWriter();
        using SharedChannelReader reader = g.Channel.OpenReader();
        ValueTask<ReceivedMessage> pending = reader.ReadAsync();
        Assert.False(pending.IsCompleted);

        g.Bytes.WriteLane(0, ChannelBytes.Head, 3); // no wake-up: the watcher's own look must find it

        var failure = await Assert.ThrowsAsync<SharedMemoryCorruptedException>(async () => await pending.AsTask().WaitAsync(Promptly));
        Assert.Equal("channel lane head", failure.Structure);
        Assert.Equal(0, failure.Lane);
        Assert.Equal(g.Bytes.LaneAt(0) + ChannelBytes.Head, failure.Offset);
        Assert.Equal(3, failure.Value);
    }

    [Fact]
    public async Task A_pending_WriteAsync_faults_with_the_corruption_when_the_tail_goes_bad()
    {
        using var g = GuardedChannel.Create();
        using SharedChannelReader reader = g.Channel.OpenReader();
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        while (writer.TryWrite(Messages.Of(0, 200)))
        {
        }
        ValueTask pending = writer.WriteAsync(Messages.Of(1, 200));
        Assert.False(pending.IsCompleted);

        g.Bytes.WriteLane(0, ChannelBytes.Tail, 4);

        var failure = await Assert.ThrowsAsync<SharedMemoryCorruptedException>(async () => await pending.AsTask().WaitAsync(Promptly));
        Assert.Equal("channel lane tail", failure.Structure);
        Assert.Equal(g.Bytes.LaneAt(0) + ChannelBytes.Tail, failure.Offset);
    }

    // ---- Victims and the harness ----

    private static Func<GuardedChannel, int> VictimOf(Victim victim) => victim switch
    {
        Victim.Reader => ReadFrom(0),
        Victim.Writer => g => Write(g, count: 3),
        _ => Open,
    };

    private static int Open(GuardedChannel g)
    {
        using SharedChannel opened = SharedChannel.Open(g.Region, g.ChannelOffset);
        return GuardedChannel.Completed;
    }

    /// <summary>A reader victim: takes messages, each intact and next in order from <paramref name="first"/>; a wait of <paramref name="each"/> that finds nothing ends it.</summary>
    private static Func<GuardedChannel, int> ReadFrom(int first, TimeSpan? each = null)
    {
        TimeSpan wait = each ?? Each;
        return g => Read(g, first, wait);
    }

    private static int Read(GuardedChannel g, int first, TimeSpan each)
    {
        using SharedChannelReader reader = g.Channel.OpenReader();
        int expected = first;
        while (true)
        {
            g.PauseIfAsked();
            if (!reader.TryRead(out ReceivedMessage message, each, CancellationToken.None))
            {
                return GuardedChannel.TimedOut;
            }
            using (message)
            {
                if (!Messages.IsIntact(message.Span, out int index) || index != expected)
                {
                    return GuardedChannel.InvalidDelivery;
                }
            }
            expected++;
            g.Delivered++;
        }
    }

    /// <summary>
    /// A writer victim: optionally fills the ring first (then, with <paramref name="pause"/>, sets
    /// Ready and waits for Go), then writes <paramref name="count"/> 200-byte messages, each wait bounded by <paramref name="each"/>.
    /// </summary>
    private static int Write(GuardedChannel g, int count, bool fill = false, bool pause = false, TimeSpan? each = null)
    {
        using SharedChannelWriter writer = g.Channel.OpenWriter();
        int index = 0;
        while (fill && writer.TryWrite(Messages.Of(index, 200)))
        {
            index++;
        }
        if (pause)
        {
            g.Ready.Set();
            if (!g.Go.TryWait(Bound))
            {
                return GuardedChannel.TimedOut;
            }
        }
        else if (fill)
        {
            g.Ready.Set();
        }
        for (int i = 0; i < count; i++, index++)
        {
            if (!writer.TryWrite(Messages.Of(index, 200), each ?? Each))
            {
                return GuardedChannel.TimedOut;
            }
            g.Delivered++;
        }
        return GuardedChannel.Completed;
    }

    /// <summary>
    /// Forks <paramref name="victim"/>; runs <paramref name="atPause"/> once it is Ready (before Go)
    /// and <paramref name="afterGo"/> after; then expects its exit code and report.
    /// </summary>
    private static void ExpectVictim(GuardedChannel g, Func<GuardedChannel, int> victim, int expected, string report,
        Action<GuardedChannel>? atPause = null, Action<GuardedChannel>? afterGo = null, TimeSpan? within = null)
    {
        using Child child = Child.Fork(() => g.Outcome(victim));
        var clock = Stopwatch.StartNew();
        if (atPause is not null || afterGo is not null)
        {
            Assert.True(g.Ready.TryWait(Bound), $"the victim never got ready; it reported '{g.Report}'");
            atPause?.Invoke(g);
            clock.Restart();
            g.Go.Set();
            afterGo?.Invoke(g);
            if (afterGo is not null)
            {
                clock.Restart();
            }
        }
        ChildExit exit = child.WaitOrFail(Bound);
        TimeSpan took = clock.Elapsed;

        Assert.True(exit.Signal is null, $"the victim died by signal {exit.Signal}; it reported '{g.Report}' after {g.Delivered} messages");
        Assert.True(exit.ExitCode == expected,
            $"the victim ended with {Describe(exit.ExitCode)}, expected {Describe(expected)}; it reported '{g.Report}' after {g.Delivered} messages");
        Assert.Contains(report, g.Report, StringComparison.Ordinal);
        if (within is TimeSpan bound)
        {
            Assert.True(took < bound, $"the victim took {took.TotalSeconds:0.0} s to notice, more than {bound.TotalSeconds} s");
        }
    }

    private static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Bound), $"timed out waiting for {what}");

    private static string Describe(int? code) => code switch
    {
        GuardedChannel.Corrupted => "corruption reported",
        GuardedChannel.Closed => "ChannelClosedException",
        GuardedChannel.TimedOut => "its own wait timing out",
        GuardedChannel.Completed => "no error at all",
        GuardedChannel.InvalidDelivery => "a message that was never sent",
        GuardedChannel.OtherException => "another exception",
        _ => $"exit code {code}",
    };
}
