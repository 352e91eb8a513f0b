using System;
using System.Diagnostics;
using System.Globalization;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The channel's defects of issue 15, each pinned by the test that found it.</summary>
public sealed class ChannelDefectTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    private static (SharedRegion Region, SharedChannel Channel) NewChannel(long capacity = 4096, int writers = 1)
    {
        var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(capacity, writers));
        return (region, SharedChannel.Create(region, 0, capacity, writers));
    }

    // Item 1: a wait's predicate that throws faults that wait; it does not escape the watcher's thread.
    [Fact]
    public async Task A_pending_WriteAsync_whose_reader_dies_faults_and_the_process_lives_on()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel();
        using (region)
        using (channel)
        using (var flags = SharedRegion.CreateAnonymous(4096))
        using (var attached = SharedEvent.Create(flags, 0, EventResetMode.ManualReset))
        {
            using Child reader = Child.Fork(() =>
            {
                using SharedChannelReader r = channel.OpenReader();
                attached.Set();
                while (true)
                {
                    Thread.SpinWait(1000);
                }
            });
            Assert.True(attached.TryWait(Bound));
            using SharedChannelWriter writer = channel.OpenWriter();
            while (writer.TryWrite(new byte[200]))
            {
            }
            Task pending = writer.WriteAsync(new byte[200]).AsTask();

            reader.Signal(Native.SIGKILL);
            reader.WaitOrFail();

            var failure = await Assert.ThrowsAsync<ChannelClosedException>(() => pending.WaitAsync(Bound));
            Assert.Contains($"process {reader.Pid}, died", failure.Message, StringComparison.Ordinal);
        }
    }

    // Item 4: any message up to MaxMessageLength fits an empty lane, whatever the head's offset.
    [Fact]
    public void Every_message_size_fits_an_empty_lane_from_every_8_aligned_head_offset()
    {
        const int Capacity = 4096;
        (SharedRegion region, SharedChannel channel) = NewChannel(Capacity);
        using (region)
        using (channel)
        using (SharedChannelWriter writer = channel.OpenWriter())
        using (SharedChannelReader reader = channel.OpenReader())
        {
            var bytes = new ChannelBytes(region, 0, Capacity);
            var message = new byte[Capacity];
            int failures = 0;
            string first = "";
            for (int offset = 0; offset < Capacity; offset += 8)
            {
                for (int record = 8; record <= Capacity; record += 8)
                {
                    MoveHeadTo(offset);
                    // Every length of a record size behaves alike; vary it inside the size.
                    int length = Math.Max(0, record - 8 - ((record >> 3) % 8));
                    Span<byte> sent = message.AsSpan(0, length);
                    sent.Fill((byte)(offset ^ record));
                    int refused = 0;
                    while (!writer.TryWrite(sent) && refused++ < 1)
                    {
                        Assert.False(reader.TryRead(out _), "a message was visible in a lane that should be empty");
                    }
                    if (refused > 1)
                    {
                        if (failures++ == 0)
                        {
                            first = $"a {length}-byte message (record {record}) at head offset {offset}";
                        }
                        Assert.False(reader.TryRead(out _));
                        continue; // the lane is still empty: go on to the next pair
                    }
                    Assert.True(reader.TryRead(out ReceivedMessage got), $"the {length}-byte message written at offset {offset} was not readable");
                    using (got)
                    {
                        Assert.True(got.Span.SequenceEqual(sent), $"the {length}-byte message at offset {offset} came back different");
                    }
                }
            }
            Assert.True(failures == 0, $"{failures} of 262144 size and offset pairs never fitted an empty lane, the first {first}");

            void MoveHeadTo(int offset)
            {
                long at = bytes.ReadLane(0, ChannelBytes.Head) & (Capacity - 1);
                if (at == offset)
                {
                    return;
                }
                if (offset > at)
                {
                    Filler((int)(offset - at));
                    return;
                }
                Filler((int)(Capacity - at)); // ends exactly at the end of the ring: no padding
                if (offset > 0)
                {
                    Filler(offset);
                }
            }

            void Filler(int record)
            {
                Assert.True(writer.TryWrite(message.AsSpan(0, record - 8)), $"a {record}-byte filler did not fit an empty lane");
                Assert.True(reader.TryRead(out ReceivedMessage filler));
                filler.Dispose();
            }
        }
    }

    // Item 5: a completed writer's Dispose does not complete the next writer of its lane.
    [Fact]
    public void A_completed_writer_disposed_later_leaves_the_next_writer_of_its_lane_alone()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel(writers: 2);
        using (region)
        using (channel)
        using (SharedChannelReader reader = channel.OpenReader())
        using (SharedChannelWriter keepsTheStreamOpen = channel.OpenWriter())
        {
            var bytes = new ChannelBytes(region, 0, 4096);
            SharedChannelWriter first = channel.OpenWriter();
            Assert.Equal(1, first.LaneIndex);
            first.Write(Messages.Of(0, 100));
            first.Complete();
            Assert.True(reader.TryRead(out ReceivedMessage message, Bound, CancellationToken.None));
            message.Dispose();
            Assert.False(reader.TryRead(out _, TimeSpan.Zero, CancellationToken.None)); // drained: its lane is reclaimed
            Assert.Equal(0, bytes.ReadLane32(1, ChannelBytes.WriterPid));
            using SharedChannelWriter second = channel.OpenWriter();
            Assert.Equal(1, second.LaneIndex);

            first.Dispose(); // a `using` around a completed writer

            Assert.Equal(1, bytes.ReadLane32(1, ChannelBytes.LaneState)); // still attached: the second writer's
            Assert.Throws<InvalidOperationException>(() => channel.OpenWriter()); // so no third writer joins its lane
            second.Write(Messages.Of(1, 100));
            Assert.False(reader.IsCompleted);
            Assert.True(reader.TryRead(out message, Bound, CancellationToken.None));
            using (message)
            {
                Assert.True(Messages.IsIntact(message.Span, out int index) && index == 1);
            }
        }
    }

    // Item 5: Complete is terminal.
    [Fact]
    public async Task A_writer_refuses_to_write_after_Complete_and_its_adapter_follows_System_Threading_Channels()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel(writers: 2);
        using (region)
        using (channel)
        using (SharedChannelReader reader = channel.OpenReader())
        {
            using SharedChannelWriter writer = channel.OpenWriter();
            writer.Complete();
            writer.Complete(); // twice is harmless

            Assert.Contains("completed", Assert.Throws<ChannelClosedException>(() => writer.TryWrite(new byte[10])).Message, StringComparison.Ordinal);
            Assert.Throws<ChannelClosedException>(() => writer.Write(new byte[10]));
            Assert.Throws<ChannelClosedException>(() => writer.TryReserve(10, out _));
            Assert.Equal(0, new ChannelBytes(region, 0, 4096).ReadLane(0, ChannelBytes.Head));

            using SharedChannelWriter adapted = channel.OpenWriter();
            ChannelWriter<ReadOnlyMemory<byte>> adapter = adapted.AsChannelWriter();
            Assert.True(adapter.TryWrite(new byte[10]));
            Assert.True(adapter.TryComplete());
            Assert.False(adapter.TryComplete());
            Assert.False(adapter.TryWrite(new byte[10]));
            Assert.False(await adapter.WaitToWriteAsync());
            await Assert.ThrowsAsync<ChannelClosedException>(async () => await adapter.WriteAsync(new byte[10]));
        }
    }

    // Item 6: a ReceivedMessage releases its own record only.
    [Fact]
    public void Disposing_a_stale_copy_of_a_message_does_not_release_the_current_one()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel();
        using (region)
        using (channel)
        using (SharedChannelWriter writer = channel.OpenWriter())
        using (SharedChannelReader reader = channel.OpenReader())
        {
            var bytes = new ChannelBytes(region, 0, 4096);
            writer.Write(Messages.Of(0, 100));
            writer.Write(Messages.Of(1, 100));
            Assert.True(reader.TryRead(out ReceivedMessage first));
            ReceivedMessage stale = first;
            first.Dispose();
            Assert.True(reader.TryRead(out ReceivedMessage second));
            long tail = bytes.ReadLane(0, ChannelBytes.Tail);

            stale.Dispose();
            first.Dispose();

            Assert.Equal(tail, bytes.ReadLane(0, ChannelBytes.Tail)); // the second message's space was not given back
            Assert.Throws<InvalidOperationException>(() => reader.TryRead(out _)); // it is still the one being read
            Assert.True(Messages.IsIntact(second.Span, out int index) && index == 1);
            second.Dispose();
            second.Dispose();
            Assert.True(bytes.ReadLane(0, ChannelBytes.Tail) > tail);
            writer.Write(Messages.Of(2, 100));
            Assert.True(reader.TryRead(out ReceivedMessage third));
            using (third)
            {
                Assert.True(Messages.IsIntact(third.Span, out index) && index == 2);
            }
        }
    }

    // Item 7: a peer the kernel will not show us is alive, not dead.
    [Fact]
    public void Peers_hidden_by_hidepid_under_another_uid_are_alive_a_live_reader_is_not_taken_over_and_a_live_writer_not_declared_dead()
    {
        long each = SharedChannel.RequiredLength(4096);
        using var region = SharedRegion.CreateMemfd("hidden-peers", 3 * each);
        using var withReader = SharedChannel.Create(region, 0, 4096);
        using var withWriter = SharedChannel.Create(region, each, 4096);
        using var withSilentReader = SharedChannel.Create(region, 2 * each, 4096);
        using SharedChannelReader reader = withReader.OpenReader();
        using SharedChannelWriter writer = withWriter.OpenWriter();
        using SharedChannelReader silentReader = withSilentReader.OpenReader();

        ChildExit exit = Worker.RunHidden(region, "hidden-peers", Native.GetPid().ToString(CultureInfo.InvariantCulture));

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(Native.GetPid(), region.Read<int>(ChannelBytes.ReaderPid)); // still this process's reader
        Assert.Equal(1, new ChannelBytes(region, each, 4096).ReadLane32(0, ChannelBytes.LaneState)); // still attached
    }

    // Item 8: dispose ends pending waits, and the region's mapping goes.
    [Fact]
    public async Task Disposing_the_reader_and_the_writer_ends_their_pending_waits_and_unmaps_the_region()
    {
        long each = SharedChannel.RequiredLength(4096);
        var region = SharedRegion.CreateAnonymous(2 * each);
        nint address = region.DangerousGetAddress();
        var quiet = SharedChannel.Create(region, 0, 4096);
        var full = SharedChannel.Create(region, each, 4096);
        SharedChannelWriter silent = quiet.OpenWriter();
        SharedChannelReader reader = quiet.OpenReader();
        SharedChannelReader unread = full.OpenReader();
        SharedChannelWriter writer = full.OpenWriter();
        while (writer.TryWrite(new byte[200]))
        {
        }
        Task<bool> waitingToRead = reader.WaitToReadAsync().AsTask();
        Task writing = writer.WriteAsync(new byte[200]).AsTask();
        Assert.False(waitingToRead.IsCompleted);
        Assert.False(writing.IsCompleted);

        reader.Dispose();
        writer.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waitingToRead.WaitAsync(Promptly));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => writing.WaitAsync(Promptly));
        silent.Dispose();
        unread.Dispose();
        quiet.Dispose();
        full.Dispose();
        region.Dispose();
        Assert.Null(ProcMaps.At(address));
    }

    // Item 8: disposing the channel ends the waits of its readers and writers.
    [Fact]
    public async Task Disposing_the_channel_ends_the_pending_waits_of_its_reader_and_writers()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel(writers: 2);
        nint address = region.DangerousGetAddress();
        SharedChannelWriter silent = channel.OpenWriter();
        SharedChannelReader reader = channel.OpenReader();
        Task<bool> waiting = reader.WaitToReadAsync().AsTask();
        Assert.False(waiting.IsCompleted);

        channel.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(Promptly));
        Assert.Throws<ObjectDisposedException>(() => reader.TryRead(out _));
        reader.Dispose();
        silent.Dispose();
        region.Dispose();
        Assert.Null(ProcMaps.At(address));
    }

    // Item 9: the adapter's WriteAsync on a full ring parks instead of spinning.
    [Fact]
    public async Task The_adapters_WriteAsync_on_a_full_ring_parks_instead_of_spinning()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel();
        using (region)
        using (channel)
        using (SharedChannelReader reader = channel.OpenReader())
        using (SharedChannelWriter writer = channel.OpenWriter())
        {
            while (writer.TryWrite(new byte[1000]))
            {
            }
            ChannelWriter<ReadOnlyMemory<byte>> adapter = writer.AsChannelWriter();
            TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime;

            // On the thread pool: a spinning WriteAsync would never return to this thread.
            Task pending = Task.Run(() => adapter.WriteAsync(new byte[1000]).AsTask());
            await Task.WhenAny(pending, Task.Delay(TimeSpan.FromSeconds(1))); // a measurement window, not synchronisation

            TimeSpan used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            Assert.False(pending.IsCompleted, "the write finished on a full ring");
            Assert.True(used < TimeSpan.FromMilliseconds(250), $"{used.TotalMilliseconds:0} ms of CPU in a second of waiting for room");
            Assert.True(reader.TryRead(out ReceivedMessage message));
            message.Dispose();
            await pending.WaitAsync(Bound);

            // WaitToWriteAsync waits for room for the message TryWrite refused, not for any byte.
            Assert.False(adapter.TryWrite(new byte[1000]));
            ValueTask<bool> room = adapter.WaitToWriteAsync();
            Assert.False(room.IsCompleted, "room was reported for a message that does not fit");
            Assert.True(reader.TryRead(out message));
            message.Dispose();
            Assert.True(await room.AsTask().WaitAsync(Bound));
            Assert.True(adapter.TryWrite(new byte[1000]));
        }
    }

    // Item 10: Completion completes as soon as the stream ended and was drained.
    [Fact]
    public void The_reader_adapters_Completion_completes_when_the_last_message_of_a_completed_stream_is_taken()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel();
        using (region)
        using (channel)
        using (SharedChannelReader reader = channel.OpenReader())
        {
            ChannelReader<byte[]> adapter = reader.AsChannelReader();
            SharedChannelWriter writer = channel.OpenWriter();
            Assert.False(adapter.TryRead(out _)); // the stream is live and empty: this looked at the writers just now
            for (int i = 0; i < 3; i++)
            {
                writer.Write(Messages.Of(i, 100));
            }
            writer.Dispose();

            Assert.True(adapter.TryRead(out _));
            Assert.True(adapter.TryRead(out _));
            Assert.False(adapter.Completion.IsCompleted);
            Assert.True(adapter.TryRead(out _));

            Assert.True(adapter.Completion.IsCompletedSuccessfully, "the stream ended and was drained, but Completion did not complete");
        }
    }

    // Item 10: and faults, naming the dead, when the writers died.
    [Fact]
    public void The_reader_adapters_Completion_faults_naming_a_dead_writer_when_its_last_message_is_taken()
    {
        (SharedRegion region, SharedChannel channel) = NewChannel();
        using (region)
        using (channel)
        using (SharedChannelReader reader = channel.OpenReader())
        {
            ChannelReader<byte[]> adapter = reader.AsChannelReader();
            using Child writer = Child.Fork(() =>
            {
                SharedChannelWriter w = channel.OpenWriter();
                for (int i = 0; i < 3; i++)
                {
                    w.Write(Messages.Of(i, 100));
                }
                Native.Kill(Native.GetPid(), Native.SIGKILL);
                return 1;
            });
            Assert.Equal(Native.SIGKILL, writer.WaitOrFail().Signal);

            Assert.True(adapter.TryRead(out _));
            Assert.True(adapter.TryRead(out _));
            Assert.True(adapter.TryRead(out _));

            Assert.True(adapter.Completion.IsFaulted, "the stream ended and was drained, but Completion did not fault");
            Assert.Contains(writer.Pid.ToString(CultureInfo.InvariantCulture), adapter.Completion.Exception!.InnerException!.Message, StringComparison.Ordinal);
        }
    }
}
