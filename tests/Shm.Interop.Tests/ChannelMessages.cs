using System;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// What the channel tests across processes share: messages derived from their writer and index (so any
/// corruption shows), their check, a bounded drain to the end, and the warm-up of the paths forked writers take.
/// </summary>
internal static class ChannelMessages
{
    internal static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>Runs the paths forked writers take once in this process, so that nothing compiles in them.</summary>
    internal static void WarmUp()
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

    internal static (int Writer, int Index) Check(ReadOnlySpan<byte> message)
    {
        int writer = BitConverter.ToInt32(message), index = BitConverter.ToInt32(message[4..]);
        Assert.True(message.SequenceEqual(MessageOf(writer, index)), $"message {index} of writer {writer} is corrupt");
        return (writer, index);
    }

    internal delegate void OnMessage(ReadOnlySpan<byte> message);

    /// <summary>Reads until the stream ends (each wait bounded); returns the end's exception.</summary>
    internal static ChannelClosedException DrainUntilEnd(SharedChannelReader reader, OnMessage each)
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
