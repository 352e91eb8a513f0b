using System;
using System.IO;
using System.Threading;
using System.Threading.Channels;
using Shm.TestSupport;
using Xunit;
using static Shm.Interop.Tests.ChannelMessages;

namespace Shm.Interop.Tests;

/// <summary>The message channel between forked processes: order, many writers, writers killed mid-message or from outside, a reader that died.</summary>
public sealed class ChannelForkedTests
{
    public ChannelForkedTests() => WarmUp();

    [Fact]
    public void A_forked_writer_sends_100000_messages_of_varied_length_in_order_then_the_reader_sees_the_end()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(64 * 1024));
        using var channel = SharedChannel.Create(region, 0, 64 * 1024);
        using SharedChannelReader reader = channel.OpenReader();
        using Child writer = Child.Fork(() =>
        {
            using SharedChannelWriter w = channel.OpenWriter();
            for (int i = 0; i < 100_000; i++)
            {
                w.Write(MessageOf(0, i));
            }
            return 0;
        });

        int expected = 0;
        ChannelClosedException ended = DrainUntilEnd(reader, message => Assert.Equal((0, expected++), Check(message)));

        Assert.Equal(100_000, expected);
        Assert.Contains("every writer completed", ended.Message, StringComparison.Ordinal);
        Assert.Equal(0, writer.WaitOrFail().ExitCode);
        Assert.True(reader.IsCompleted);
    }

    [Fact]
    public void Four_forked_writers_share_one_reader_and_every_writers_order_is_kept()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(16 * 1024, 4));
        using var channel = SharedChannel.Create(region, 0, 16 * 1024, writers: 4);
        using SharedChannelReader reader = channel.OpenReader();
        using Children writers = Children.Fork(4, i =>
        {
            using SharedChannelWriter w = channel.OpenWriter();
            for (int k = 0; k < 20_000; k++)
            {
                w.Write(MessageOf(i, k));
            }
            return 0;
        });

        var next = new int[4];
        DrainUntilEnd(reader, message =>
        {
            (int writer, int index) = Check(message);
            Assert.Equal(next[writer]++, index);
        });

        Assert.Equal([20_000, 20_000, 20_000, 20_000], next);
        Assert.All(writers.WaitAllOrFail(), exit => Assert.Equal(0, exit.ExitCode));
    }

    [Fact]
    public void A_writer_killed_in_the_middle_of_a_message_stalls_nobody_and_loses_no_committed_message_twenty_times()
    {
        // The children's path, run once here first, so that nothing compiles in them (see the README on fork).
        using (var warmRegion = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(8 * 1024)))
        using (var warm = SharedChannel.Create(warmRegion, 0, 8 * 1024))
        using (SharedChannelReader drain = warm.OpenReader())
        {
            Assert.Equal(0, WriteOrDieMidMessage(warm, 0, -1, count: 2));
            while (drain.TryRead(out ReceivedMessage message))
            {
                message.Dispose();
            }
        }
        var random = new Random(20261128);
        for (int round = 0; round < 20; round++)
        {
            int killAt = random.Next(0, 3000);
            using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(8 * 1024, 3));
            using var channel = SharedChannel.Create(region, 0, 8 * 1024, writers: 3);
            using SharedChannelReader reader = channel.OpenReader();
            using Children writers = Children.Fork(3, i => WriteOrDieMidMessage(channel, i, i == 0 ? killAt : -1));

            var next = new int[3];
            ChannelClosedException ended = DrainUntilEnd(reader, message =>
            {
                (int writer, int index) = Check(message);
                Assert.Equal(next[writer]++, index);
            });

            Assert.Equal([killAt, 3000, 3000], next);
            Assert.Contains(writers.Pids[0].ToString(System.Globalization.CultureInfo.InvariantCulture), ended.Message, StringComparison.Ordinal);
            Assert.Equal([writers.Pids[0]], reader.DeadWriters);
            var exits = writers.WaitAllOrFail();
            Assert.Equal(Native.SIGKILL, exits[0].Signal);
        }
    }

    [Fact]
    public void A_writer_killed_from_outside_at_random_points_of_a_file_channel_ends_the_stream_after_its_last_committed_message_ten_times()
    {
        string path = Path.Combine(Path.GetTempPath(), $"shm-channel-{Guid.NewGuid():N}");
        try
        {
            var random = new Random(28112026);
            for (int round = 0; round < 10; round++)
            {
                File.Delete(path);
                using var region = SharedRegion.CreateFromFile(path, SharedChannel.RequiredLength(8 * 1024));
                using var channel = SharedChannel.Create(region, 0, 8 * 1024);
                using SharedChannelReader reader = channel.OpenReader();
                using Child writer = Child.Fork(() => WriteOrDieMidMessage(channel, 0, -1, count: int.MaxValue));
                int killAfter = random.Next(1, 5000), count = 0;

                // Kill while the writer runs: it may be mid-copy, mid-commit, or parked on a full ring.
                ChannelClosedException ended = DrainUntilEnd(reader, message =>
                {
                    Assert.Equal((0, count++), Check(message));
                    if (count == killAfter)
                    {
                        writer.Signal(Native.SIGKILL);
                    }
                });

                Assert.True(count >= killAfter, $"round {round}: the stream ended after {count} messages, before the kill at {killAfter}");
                Assert.Contains(writer.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), ended.Message, StringComparison.Ordinal);
                Assert.Equal([writer.Pid], reader.DeadWriters);
                Assert.Equal(Native.SIGKILL, writer.WaitOrFail().Signal);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_writer_whose_reader_died_fails_instead_of_blocking_when_full()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using var flags = SharedRegion.CreateAnonymous(4096);
        using var attached = SharedEvent.Create(flags, 0, EventResetMode.ManualReset);
        using Child reader = Child.Fork(() =>
        {
            using SharedChannelReader r = channel.OpenReader();
            attached.Set();
            while (true)
            {
                Thread.SpinWait(1000); // reads nothing, then is killed
            }
        });
        Assert.True(attached.TryWait(Bound));
        reader.Signal(Native.SIGKILL);
        reader.WaitOrFail();
        using SharedChannelWriter writer = channel.OpenWriter();

        var failure = Assert.Throws<ChannelClosedException>(() => FillUntilRefused(writer));

        Assert.Contains($"process {reader.Pid}, died", failure.Message, StringComparison.Ordinal);
    }

    /// <summary>Writes messages 0..count-1 of <paramref name="writer"/>; at <paramref name="killAt"/> it fills half a loan and dies by SIGKILL.</summary>
    private static int WriteOrDieMidMessage(SharedChannel channel, int writer, int killAt, int count = 3000)
    {
        using SharedChannelWriter w = channel.OpenWriter();
        for (int k = 0; k < count; k++)
        {
            if (k == killAt)
            {
                SharedChannelWriter.WriteLoan loan;
                while (!w.TryReserve(3008, out loan))
                {
                    Thread.SpinWait(10);
                }
                byte[] half = MessageOf(writer, k);
                half.AsSpan(0, half.Length / 2).CopyTo(loan.Span);
                Native.Kill(Native.GetPid(), Native.SIGKILL);
            }
            w.Write(MessageOf(writer, k));
        }
        return 0;
    }

    private static void FillUntilRefused(SharedChannelWriter writer)
    {
        for (int i = 0; i < 1000; i++)
        {
            Assert.True(writer.TryWrite(new byte[1000], Bound), "blocked instead of failing");
        }
    }
}
