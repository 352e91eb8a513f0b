using System;
using System.Diagnostics;
using System.Threading;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The message channel within one process: loans, typed messages, waits, bad input.</summary>
public sealed class ChannelTests
{
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
}
