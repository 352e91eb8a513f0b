using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Shm.NetMQ;
using Xunit;

namespace Shm.Interop.Tests.Bridge;

/// <summary>CURVE: a peer without the listener's public key is refused and gets nothing; the allow-list: a name not exported never leaves.</summary>
[Collection("bridge")]
public sealed class BridgeSecurityTests
{
    private const long LaneCapacity = 64 * 1024;
    private const long Writer = 5;
    private const int Messages = 200;

    private static RemoteTransportOptions Fast(RemoteTransportOptions? with = null) => (with ?? new RemoteTransportOptions()) with
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        HeartbeatTimeout = TimeSpan.FromMilliseconds(1000),
        CreditWindow = 64,
    };

    [Fact]
    public async Task A_peer_with_the_wrong_server_key_or_none_is_refused_and_gets_nothing_while_the_right_key_gets_everything()
    {
        CurveKey server = CurveKey.Generate();
        string wire = BridgeTransferTests.Unique("wire");
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using NamedChannel source = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("src"), LaneCapacity, writers: 1);
        using NamedChannel wrongTarget = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("wrong"), LaneCapacity, writers: 1);
        using NamedChannel plainTarget = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("plain"), LaneCapacity, writers: 1);
        using NamedChannel rightTarget = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("right"), LaneCapacity, writers: 1);
        using SharedChannelReader wrongReader = wrongTarget.Channel.OpenReader();
        using SharedChannelReader plainReader = plainTarget.Channel.OpenReader();
        using SharedChannelReader rightReader = rightTarget.Channel.OpenReader();
        WriteAll(source);

        await using ShmBridge exporter = ShmBridge.Start(new()
        {
            Listen = endpoint,
            Exports = [new(wire, source.Name)],
            Transport = Fast(new() { CurveServerKey = server }),
        });
        // A key of the right form that is not the server's, and no CURVE at all: both start first, and keep trying.
        var clock = Stopwatch.StartNew();
        await using ShmBridge wrong = ShmBridge.Start(new()
        {
            Connect = endpoint,
            Imports = [new(wire, wrongTarget.Name)],
            Transport = Fast(new() { CurveServerPublicKey = CurveKey.FromPublicKey(CurveKey.Generate().PublicKey) }),
        });
        await using ShmBridge plain = ShmBridge.Start(new() { Connect = endpoint, Imports = [new(wire, plainTarget.Name)], Transport = Fast() });
        await using ShmBridge right = ShmBridge.Start(new()
        {
            Connect = endpoint,
            Imports = [new(wire, rightTarget.Name)],
            Transport = Fast(new() { CurveServerPublicKey = CurveKey.FromPublicKey(server.PublicKey) }),
        });

        for (long expected = 1; expected <= Messages; expected++)
        {
            Assert.True(rightReader.TryRead(out ReceivedMessage message, Waits.Bound), $"message {expected} did not reach the peer with the right key\n{right.GetStatus()}");
            using (message)
            {
                Assert.Equal(expected, Stamped.Check(message.Span, Writer));
            }
        }
        // The others have had as long, and at least three heartbeat timeouts, to get anything.
        while (clock.Elapsed < TimeSpan.FromSeconds(3))
        {
            await Task.Delay(100);
        }
        foreach ((ShmBridge bridge, SharedChannelReader reader) in new[] { (wrong, wrongReader), (plain, plainReader) })
        {
            Assert.False(reader.TryRead(out _), "a peer without the server's key got a message");
            ShmBridgeStatus status = bridge.GetStatus();
            Assert.Empty(status.Peers);
            Assert.Equal(0, status.Channels.Single().Messages);
        }
        Assert.Single(exporter.GetStatus().Peers); // the right one alone got through the handshake
    }

    [Fact]
    public async Task A_name_not_on_the_exporters_list_is_refused_with_a_clear_message_and_never_leaves()
    {
        string endpoint = $"tcp://127.0.0.1:{BridgeProcess.FreePort()}";
        using NamedChannel listed = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("listed"), LaneCapacity, writers: 1);
        using NamedChannel secret = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("secret"), LaneCapacity, writers: 1);
        using NamedChannel target = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("dst"), LaneCapacity, writers: 1);
        using SharedChannelReader secretHere = secret.Channel.OpenReader(); // nobody but us may read it
        using SharedChannelReader reader = target.Channel.OpenReader();
        WriteAll(secret);

        await using ShmBridge exporter = ShmBridge.Start(new() { Listen = endpoint, Exports = [new("telemetry", listed.Name)], Transport = Fast() });
        await using ShmBridge importer = ShmBridge.Start(new() { Connect = endpoint, Imports = [new(secret.Name, target.Name)], Transport = Fast() });

        var clock = Stopwatch.StartNew();
        string expected = $"'{secret.Name}' is not exported here (only 'telemetry')";
        while (!importer.GetStatus().Recent.Any(line => line.Contains(expected, StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < Waits.Bound, $"no refusal within {Waits.Bound.TotalSeconds} s\n{string.Join('\n', importer.GetStatus().Recent)}");
            await Task.Delay(50);
        }
        Assert.Contains(exporter.GetStatus().Recent, line => line.StartsWith("refused", StringComparison.Ordinal) || line.Contains("refused", StringComparison.Ordinal));
        Assert.False(reader.TryRead(out _), "a message of a channel not exported arrived");
        // The secret channel's messages are all still here, unread by anyone else.
        for (long i = 1; i <= Messages; i++)
        {
            Assert.True(secretHere.TryRead(out ReceivedMessage message));
            message.Dispose();
        }
    }

    [Fact]
    public void Key_files_round_trip_in_zeromqs_certificate_format_and_the_secret_one_is_private()
    {
        string directory = Directory.CreateTempSubdirectory("shm-curve-").FullName;
        try
        {
            string path = Path.Combine(directory, "bridge.key");
            CurveKey key = CurveKey.Generate();
            key.Save(path);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path + "_secret"));
            Assert.DoesNotContain("secret-key", File.ReadAllText(path), StringComparison.Ordinal);
            Assert.Matches("public-key = \"[^\"]{40}\"", File.ReadAllText(path));
            CurveKey pair = CurveKey.Load(path + "_secret");
            CurveKey publicOnly = CurveKey.Load(path);
            Assert.Equal(key.PublicKey, pair.PublicKey);
            Assert.True(pair.HasSecretKey);
            Assert.Equal(key.PublicKey, publicOnly.PublicKey);
            Assert.False(publicOnly.HasSecretKey);
            Assert.Throws<IOException>(() => key.Save(path)); // never overwrites a key
            File.WriteAllText(Path.Combine(directory, "bad"), "curve\n    public-key = \"short\"\n");
            Assert.Throws<FormatException>(() => CurveKey.Load(Path.Combine(directory, "bad")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void WriteAll(NamedChannel channel)
    {
        using SharedChannelWriter writer = channel.Channel.OpenWriter();
        Span<byte> message = stackalloc byte[Stamped.Length];
        for (long sequence = 1; sequence <= Messages; sequence++)
        {
            Stamped.Fill(message, Writer, sequence);
            Assert.True(writer.TryWrite(message), $"no room for message {sequence}");
        }
    }
}
