using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The message channel across real processes: forked, spawned, unrelated, killed, and C.</summary>
public sealed class ChannelTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private readonly DevShm _shm = new();

    /// <summary>Runs the paths forked writers take once in this process, so that nothing compiles in them.</summary>
    public ChannelTests()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelReader reader = channel.OpenReader();
        using (SharedChannelWriter writer = channel.OpenWriter())
        {
            writer.Write(MessageOf(0, 1));
            writer.TryWrite(1L);
        }
        while (reader.TryRead(out ReceivedMessage message))
        {
            Check(message.Span);
            message.Dispose();
            reader.TryRead(out long _);
        }
    }

    public void Dispose() => _shm.Dispose();

    /// <summary>Message <paramref name="index"/> of writer <paramref name="writer"/>: its length and bytes are both derived from the pair.</summary>
    internal static byte[] MessageOf(int writer, int index)
    {
        var bytes = new byte[8 + ((index * 37) + (writer * 11)) % 3000];
        BitConverter.TryWriteBytes(bytes, writer);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), index);
        for (int i = 8; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(index + i);
        }
        return bytes;
    }

    private static (int Writer, int Index) Check(ReadOnlySpan<byte> message)
    {
        int writer = BitConverter.ToInt32(message), index = BitConverter.ToInt32(message[4..]);
        Assert.True(message.SequenceEqual(MessageOf(writer, index)), $"message {index} of writer {writer} is corrupt");
        return (writer, index);
    }

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

    [Fact]
    public void A_spawned_process_writes_through_an_inherited_memfd_channel()
    {
        using var region = SharedRegion.CreateMemfd("channel", SharedChannel.RequiredLength(16 * 1024));
        using var channel = SharedChannel.Create(region, 0, 16 * 1024);
        using SharedChannelReader reader = channel.OpenReader();
        using Child worker = Worker.Spawn(["channel-writer", "5000"], region);

        int count = 0;
        DrainUntilEnd(reader, message => Assert.Equal((0, count++), Check(message)));

        Assert.Equal(5000, count);
        Assert.Equal(0, worker.WaitOrFail().ExitCode);
    }

    [Fact]
    public void A_C_writer_and_a_C_reader_exchange_messages_with_this_process_through_a_named_segment()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 2 * SharedChannel.RequiredLength(8 * 1024));
        long second = SharedChannel.RequiredLength(8 * 1024);
        using var fromC = SharedChannel.Create(region, 0, 8 * 1024);
        using var toC = SharedChannel.Create(region, second, 8 * 1024);
        string writer = Sources.CompileC("writer", Sources.CWriter, flags: Sources.StrictC);
        string reader = Sources.CompileC("reader", Sources.CReader, flags: Sources.StrictC);

        using SharedChannelReader fromReader = fromC.OpenReader();
        using Child cWriter = Child.Spawn(writer, ["/" + name, "0", "20000"]);
        using Child cReader = Child.Spawn(reader, ["/" + name, second.ToString(System.Globalization.CultureInfo.InvariantCulture), "20000"]);
        using (SharedChannelWriter toWriter = toC.OpenWriter())
        {
            for (int i = 0; i < 20_000; i++)
            {
                Assert.True(toWriter.TryWrite(MessageOf(1, i), Bound), $"the C reader took nothing for {Bound.TotalSeconds} s (message {i})");
            }
        }
        int count = 0;
        DrainUntilEnd(fromReader, message => Assert.Equal((2, count++), Check(message)));

        Assert.Equal(20_000, count);
        Assert.Equal(0, cWriter.WaitOrFail().ExitCode);
        Assert.Equal(0, cReader.WaitOrFail().ExitCode); // it checked every byte of every message
    }

    [Fact]
    public async Task ChannelReader_adapters_give_async_streams_without_a_thread_per_channel()
    {
        // Sixty-four channels wait at once: a thread each would show as sixty-four more.
        const int Channels = 64, Messages = 200;
        long each = SharedChannel.RequiredLength(4096);
        using var region = SharedRegion.CreateAnonymous(4096 + (Channels * each));
        SharedChannel[] channels = [.. Enumerable.Range(0, Channels).Select(k => SharedChannel.Create(region, 4096 + (k * each), 4096))];
        SharedChannelReader[] readers = [.. channels.Select(channel => channel.OpenReader())];
        using var go = SharedEvent.Create(region, 0, EventResetMode.ManualReset);
        try
        {
            using Child writer = Child.Fork(() =>
            {
                var writers = new SharedChannelWriter[Channels];
                for (int k = 0; k < Channels; k++)
                {
                    writers[k] = channels[k].OpenWriter();
                }
                go.TryWait(Bound);
                for (int i = 0; i < Messages; i++)
                {
                    foreach (SharedChannelWriter w in writers)
                    {
                        while (!w.TryWrite((long)i * i))
                        {
                            Thread.SpinWait(10);
                        }
                    }
                }
                foreach (SharedChannelWriter w in writers)
                {
                    w.Dispose();
                }
                return 0;
            });
            int threads = ProcStatus.Threads();
            // Started here, not with Task.Run: each runs until its first wait, so no thread-pool work
            // is queued while they wait, and any new thread is one the library started.
            Task<System.Collections.Generic.List<long>>[] consuming = [.. readers.Select(ConsumeAll)];
            await Task.Delay(300);
            int waiting = ProcStatus.Threads();
            go.Set();
            var received = await Task.WhenAll(consuming).WaitAsync(Bound);

            Assert.True(waiting - threads < 8, $"{threads} threads before, {waiting} while {Channels} channels waited");
            Assert.All(received, values => Assert.Equal(Enumerable.Range(0, Messages).Select(i => (long)i * i), values));
            Assert.Equal(0, writer.WaitOrFail().ExitCode);
        }
        finally
        {
            foreach (SharedChannelReader reader in readers)
            {
                reader.Dispose();
            }
            foreach (SharedChannel channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    [Fact]
    public void Loans_fill_in_place_and_typed_messages_round_trip()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelWriter writer = channel.OpenWriter();
        using SharedChannelReader reader = channel.OpenReader();

        Assert.True(writer.TryReserve(100, out SharedChannelWriter.WriteLoan loan));
        "in place"u8.CopyTo(loan.Span);
        Assert.False(reader.TryRead(out _), "nothing is visible before the commit");
        loan.Commit(8);
        Assert.True(writer.TryWrite(new Guid("12345678-1234-1234-1234-123456789abc")));

        Assert.True(reader.TryRead(out ReceivedMessage message));
        using (message)
        {
            Assert.Equal("in place"u8.ToArray(), message.ToArray());
        }
        Assert.True(reader.TryRead(out Guid guid));
        Assert.Equal(new Guid("12345678-1234-1234-1234-123456789abc"), guid);
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public void Waiting_parks_instead_of_burning_a_core_and_honours_timeouts_and_cancellation()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelWriter writer = channel.OpenWriter(); // attached, silent
        using SharedChannelReader reader = channel.OpenReader();
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();

        Assert.False(reader.TryRead(out _, TimeSpan.FromSeconds(1), CancellationToken.None));

        Assert.InRange(clock.Elapsed.TotalSeconds, 0.99, 5);
        TimeSpan used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        Assert.True(used < TimeSpan.FromMilliseconds(300), $"{used.TotalMilliseconds:0} ms of CPU in a second of waiting");
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAny<OperationCanceledException>(() => reader.TryRead(out _, Timeout.InfiniteTimeSpan, cancel.Token));
        while (writer.TryWrite(new byte[1000]))
        {
        }
        Assert.False(writer.TryWrite(new byte[1000], TimeSpan.FromMilliseconds(100)));
    }

    [Fact]
    public void Bad_input_is_refused_before_anything_is_written()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096) + 4096);
        Assert.Equal("laneCapacity", Assert.Throws<ArgumentOutOfRangeException>(() => SharedChannel.Create(region, 0, 5000)).ParamName);
        Assert.Equal("laneCapacity", Assert.Throws<ArgumentOutOfRangeException>(() => SharedChannel.Create(region, 0, 1024)).ParamName);
        Assert.Equal("writers", Assert.Throws<ArgumentOutOfRangeException>(() => SharedChannel.Create(region, 0, 4096, writers: 0)).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => SharedChannel.Create(region, 0, 16 * 1024)).ParamName); // region too small

        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelWriter writer = channel.OpenWriter();
        using SharedChannelReader reader = channel.OpenReader();
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => writer.TryWrite(new byte[channel.MaxMessageLength + 1])).ParamName);
        Assert.False(reader.TryRead(out _));
        Assert.True(writer.TryWrite(new byte[channel.MaxMessageLength]));

        using var mutex = SharedMutex.Create(region, SharedChannel.RequiredLength(4096));
        Assert.Contains("not a SharedChannel", Assert.Throws<InvalidOperationException>(() => SharedChannel.Open(region, SharedChannel.RequiredLength(4096))).Message, StringComparison.Ordinal);
        Assert.Contains("still zero", Assert.Throws<InvalidOperationException>(() => SharedChannel.Open(region, SharedChannel.RequiredLength(4096) + 1024)).Message, StringComparison.Ordinal);
        region.Write(4, (5 << 16) | 3); // the same channel, as a later layout version would mark it
        Assert.Contains("layout version 3", Assert.Throws<InvalidOperationException>(() => SharedChannel.Open(region, 0)).Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => channel.OpenReader()); // one reader: this process holds it
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

    private static async Task<System.Collections.Generic.List<long>> ConsumeAll(SharedChannelReader reader)
    {
        var values = new System.Collections.Generic.List<long>();
        ChannelReader<byte[]> adapter = reader.AsChannelReader();
        await foreach (byte[] bytes in adapter.ReadAllAsync())
        {
            values.Add(BitConverter.ToInt64(bytes));
        }
        await adapter.Completion;
        return values;
    }

    private static void FillUntilRefused(SharedChannelWriter writer)
    {
        for (int i = 0; i < 1000; i++)
        {
            Assert.True(writer.TryWrite(new byte[1000], Bound), "blocked instead of failing");
        }
    }

    private delegate void OnMessage(ReadOnlySpan<byte> message);

    /// <summary>Reads until the stream ends (each wait bounded); returns the end's exception.</summary>
    private static ChannelClosedException DrainUntilEnd(SharedChannelReader reader, OnMessage each)
    {
        try
        {
            while (true)
            {
                Assert.True(reader.TryRead(out ReceivedMessage message, Bound, CancellationToken.None), "no message and no end within the bound");
                using (message)
                {
                    each(message.Span);
                }
            }
        }
        catch (ChannelClosedException ended)
        {
            return ended;
        }
    }

}
