using System;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.NetMQ;
using Xunit;

namespace Shm.Interop.Tests.Bridge;

/// <summary>The remote writer and reader on their own, in this process, over loopback TCP.</summary>
[Collection("bridge")]
public sealed class RemoteChannelTests
{
    private const long Writer = 9;

    private static RemoteTransportOptions Options(int window) => new()
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        HeartbeatTimeout = TimeSpan.FromMilliseconds(1000),
        CreditWindow = window,
    };

    [Fact]
    public async Task Messages_arrive_in_order_and_the_writers_complete_ends_the_readers_stream_normally()
    {
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using RemoteChannelWriter writer = RemoteChannelWriter.Listen(endpoint, "numbers", Options(128));
        using RemoteChannelReader reader = RemoteChannelReader.Connect(endpoint, "numbers", Options(128));
        IMessageWriter seam = writer; // the seam a SharedChannelWriter also is
        byte[] message = new byte[Stamped.Length];
        Task writing = Task.Run(async () =>
        {
            for (long sequence = 1; sequence <= 10_000; sequence++)
            {
                Stamped.Fill(message, Writer, sequence);
                await seam.WriteAsync(message);
            }
            seam.Complete();
        });
        for (long expected = 1; expected <= 10_000; expected++)
        {
            ReceivedMessage received = await reader.TryReadAsync(Waits.Bound) ?? throw new TimeoutException($"message {expected} did not come");
            Assert.Equal(expected, Stamped.Check(received.Span, Writer));
        }
        await writing.WaitAsync(Waits.Bound);
        Assert.False(await reader.WaitToReadAsync().AsTask().WaitAsync(Waits.Bound));
        Assert.Throws<ChannelClosedException>(() => reader.Read());
        Assert.Throws<ChannelClosedException>(() => writer.TryWrite(message));
    }

    [Fact]
    public void A_writer_gets_exactly_the_readers_window_of_credit_while_the_reader_takes_nothing_and_more_as_it_takes()
    {
        const int window = 32;
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using RemoteChannelReader reader = RemoteChannelReader.Listen(endpoint, "credit", Options(window));
        using RemoteChannelWriter writer = RemoteChannelWriter.Connect(endpoint, "credit", Options(window));
        byte[] message = new byte[Stamped.Length];
        int written = 0;
        for (; written < 10 * window; written++)
        {
            Stamped.Fill(message, Writer, written + 1);
            // The first waits for the reader's first grant; after the window, none comes.
            if (!writer.TryWrite(message, written == 0 ? Waits.Bound : TimeSpan.FromSeconds(1)))
            {
                break;
            }
        }
        Assert.Equal(window, written);
        for (int i = 1; i <= window; i++)
        {
            Assert.True(reader.TryRead(out ReceivedMessage received, Waits.Bound));
            Assert.Equal(i, Stamped.Check(received.Span, Writer));
        }
        Stamped.Fill(message, Writer, written + 1);
        Assert.True(writer.TryWrite(message, Waits.Bound), "no credit after the reader took the window");
    }

    [Fact]
    public void A_reader_asking_for_a_name_the_writer_does_not_write_is_refused_naming_it()
    {
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using RemoteChannelWriter writer = RemoteChannelWriter.Listen(endpoint, "public", Options(8));
        using RemoteChannelReader reader = RemoteChannelReader.Connect(endpoint, "private", Options(8));
        RemoteChannelException refused = Assert.Throws<RemoteChannelException>(() => reader.TryRead(out _, Waits.Bound));
        Assert.Contains("'private' is not exported here (only 'public')", refused.Message, StringComparison.Ordinal);
        Assert.Contains(endpoint, refused.Endpoint, StringComparison.Ordinal);
    }
}
