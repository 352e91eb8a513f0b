using System;
using System.Linq;
using System.Text.Json;
using Xunit;

namespace Shm.Interop.Tests;

public sealed class ChannelMessageBuilderTests
{
    private const int Lane = 64 * 1024;

    [Fact]
    public void A_document_Utf8JsonWriter_writes_into_the_ring_is_deserialized_by_another_process()
    {
        using var region = SharedRegion.CreateMemfd("json", SharedChannel.RequiredLength(Lane));
        using var channel = SharedChannel.Create(region, 0, Lane);
        using SharedChannelWriter writer = channel.OpenWriter();

        using (SharedChannelWriter.MessageBuilder message = writer.BeginMessage(0))
        {
            using (var json = new Utf8JsonWriter(message))
            {
                JsonSerializer.Serialize(json, new { Id = "A-17", Lines = Enumerable.Range(0, 2000).Select(i => i * 3).ToArray() });
            }
            Assert.InRange(message.WrittenCount, 8000, Lane); // grew well past the 256 bytes reserved first
            Assert.False(message.IsCopied); // the ring was empty: it grew in place
            message.Commit();
        }
        using Child worker = Worker.Spawn(["json-reader"], region);

        ChildExit exit = worker.WaitOrFail();

        Assert.True(exit.Succeeded, exit.ToString());
    }

    [Fact]
    public void A_message_disposed_uncommitted_delivers_nothing_and_the_next_is_delivered_alone()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter writer = channel.OpenWriter();

        using (SharedChannelWriter.MessageBuilder abandoned = writer.BeginMessage(100))
        {
            "never sent"u8.CopyTo(abandoned.GetSpan(10));
            abandoned.Advance(10);
        }
        Assert.False(reader.TryRead(out _));
        Assert.True(writer.TryWrite("sent"u8));

        Assert.True(reader.TryRead(out ReceivedMessage message));
        using (message)
        {
            Assert.Equal("sent"u8.ToArray(), message.ToArray());
        }
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public void An_abandoned_loan_delivers_nothing_and_frees_the_writer()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter writer = channel.OpenWriter();
        Assert.True(writer.TryReserve(64, out SharedChannelWriter.WriteLoan loan));
        loan.Span.Fill(9);

        loan.Abandon();

        Assert.False(reader.TryRead(out _));
        bool refused = false;
        try
        {
            loan.Commit(); // gone: nothing to publish
        }
        catch (InvalidOperationException)
        {
            refused = true;
        }
        Assert.True(refused);
        Assert.True(writer.TryWrite("next"u8));
        Assert.True(reader.TryRead(out ReceivedMessage message));
        using (message)
        {
            Assert.Equal("next"u8.ToArray(), message.ToArray());
        }
    }

    [Fact]
    public void A_message_that_would_cross_the_rings_end_is_copied_and_committed_after_the_padding()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelReader reader = channel.OpenReader();
        using SharedChannelWriter writer = channel.OpenWriter();
        Assert.True(writer.TryWrite(new byte[3000])); // the head is now 3008 bytes in
        Assert.True(reader.TryRead(out ReceivedMessage filler));
        filler.Dispose();

        SharedChannelWriter.MessageBuilder message = writer.BeginMessage(100);
        byte[] expected = [.. Enumerable.Range(0, 2000).Select(i => (byte)i)];
        expected.AsSpan(0, 100).CopyTo(message.GetSpan(100));
        message.Advance(100);
        expected.AsSpan(100).CopyTo(message.GetMemory(1900).Span); // 2000 bytes from 3008 would cross 4096
        message.Advance(1900);
        Assert.True(message.IsCopied);
        message.Commit();

        Assert.True(reader.TryRead(out ReceivedMessage received));
        using (received)
        {
            Assert.Equal(expected, received.ToArray());
        }
        Assert.Throws<ObjectDisposedException>(() => message.Advance(0)); // committed: ended
        message.Dispose(); // and disposing it then does nothing
    }

    [Fact]
    public void One_message_at_a_time_and_none_past_MaxMessageLength()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        using SharedChannelWriter writer = channel.OpenWriter();
        using SharedChannelWriter.MessageBuilder message = writer.BeginMessage(0);

        Assert.Throws<InvalidOperationException>(() => writer.BeginMessage(0));
        Assert.Throws<InvalidOperationException>(() => writer.TryWrite("x"u8));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => message.GetSpan(writer.MaxMessageLength + 1));
        Assert.Contains(writer.MaxMessageLength.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.BeginMessage(writer.MaxMessageLength + 1));
    }

    [Fact]
    public void A_writer_disposed_with_a_message_open_abandons_it_and_lets_the_mapping_go()
    {
        var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        nint address = region.DangerousGetAddress();
        var channel = SharedChannel.Create(region, 0, 4096);
        SharedChannelReader reader = channel.OpenReader();
        SharedChannelWriter writer = channel.OpenWriter();
        SharedChannelWriter.MessageBuilder message = writer.BeginMessage(10);
        message.GetSpan(4)[0] = 1;
        message.Advance(4);

        writer.Dispose();

        Assert.False(reader.TryRead(out _));
        reader.Dispose();
        channel.Dispose();
        region.Dispose();
        Assert.Null(Shm.TestSupport.ProcMaps.At(address)); // the open message held the mapping until the writer let it go
        Assert.Throws<ObjectDisposedException>(() => message.Commit());
    }
}
