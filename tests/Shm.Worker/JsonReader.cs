using System;
using System.Linq;
using System.Text.Json;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>The reader of a JSON document a serializer wrote straight into the ring of inherited channel 0.</summary>
internal static class JsonReader
{
    /// <summary>Reads one message and deserializes it: exit 0 if it is order A-17 with lines 0, 3, 6, ... (2000 of them).</summary>
    public static int Run()
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        using SharedChannel channel = SharedChannel.Open(region);
        using SharedChannelReader reader = channel.OpenReader();
        if (!reader.TryRead(out ReceivedMessage message, TimeSpan.FromSeconds(30)))
        {
            Console.Error.WriteLine("no message within 30 s");
            return Program.Unexpected;
        }
        bool expected;
        using (message)
        {
            Order? order = JsonSerializer.Deserialize<Order>(message.Span);
            expected = order is { Id: "A-17", Lines.Length: 2000 } && order.Lines.Select((line, i) => line == i * 3).All(ok => ok);
            Console.WriteLine($"{message.Length} bytes: order {order?.Id} with {order?.Lines.Length} lines; as expected: {expected}");
        }
        bool alone = !reader.TryRead(out _);
        return expected && alone ? 0 : Program.Unexpected;
    }

    /// <summary>What the test writes.</summary>
    internal sealed record Order(string Id, int[] Lines);
}
