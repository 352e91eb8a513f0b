using System;
using System.CommandLine;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Shm.NetMQ;

namespace Shm.Tool;

/// <summary>
/// <c>shm bridge</c> carries named channels (<c>/dev/shm/shm-channel.NAME</c>) to and from another
/// host over NetMQ until SIGINT or SIGTERM; <c>shm bridge status</c> prints what the running bridges
/// report in their status files; <c>shm bridge keygen PATH</c> writes a CURVE key pair.
/// </summary>
internal static class BridgeCommands
{
    /// <summary>Where bridges write their status by default: $SHM_BRIDGE_STATUS_DIR, else /tmp/shm-bridge.</summary>
    private static string StatusDirectory => Environment.GetEnvironmentVariable("SHM_BRIDGE_STATUS_DIR") is { Length: > 0 } dir ? dir : "/tmp/shm-bridge";

    public static void Add(Command root)
    {
        var listen = new Option<string?>("--listen") { Description = "Listen at this endpoint (tcp://0.0.0.0:5555)." };
        var connect = new Option<string?>("--connect") { Description = "Connect to the bridge listening at this endpoint (tcp://hostA:5555)." };
        var exports = new Option<string[]>("--export") { Description = "Send this local channel (NAME, or REMOTE=LOCAL); only the names listed are exported.", AllowMultipleArgumentsPerToken = false };
        var imports = new Option<string[]>("--import") { Description = "Receive this remote channel into a local one (NAME, or REMOTE=LOCAL); only the names listed are accepted." };
        var exportServices = new Option<string[]>("--export-service") { Description = "Send this local publish-subscribe service (NAME, or REMOTE=LOCAL; it must exist): the bridge subscribes with Block, so remote subscribers hold local publishers back." };
        var importServices = new Option<string[]>("--import-service") { Description = "Publish this remote service into a local one (NAME, or REMOTE=LOCAL; created with 64 KiB samples if absent)." };
        var serverKey = new Option<string?>("--curve-server-key") { Description = "Listening: encrypt with CURVE, with this secret key file (from keygen: PATH_secret)." };
        var serverPublic = new Option<string?>("--curve-server-public") { Description = "Connecting: encrypt with CURVE; the listener's public key file (from keygen: PATH)." };
        var clientKey = new Option<string?>("--curve-key") { Description = "Connecting with CURVE: this bridge's own secret key file (default: a new key per run)." };
        var heartbeat = new Option<int>("--heartbeat-ms") { Description = "Heartbeat interval.", DefaultValueFactory = _ => 500 };
        var timeout = new Option<int>("--timeout-ms") { Description = "A peer silent this long is lost.", DefaultValueFactory = _ => 3000 };
        var window = new Option<int>("--window") { Description = "Credit window: messages in flight per channel.", DefaultValueFactory = _ => 4096 };
        var lane = new Option<long>("--lane-capacity") { Description = "Bytes per writer's ring of a local channel the bridge creates (a power of two).", DefaultValueFactory = _ => 1 << 20 };
        var status = new Option<string?>("--status") { Description = "The status file (default: $SHM_BRIDGE_STATUS_DIR or /tmp/shm-bridge, then PID.json)." };
        var bridge = new Command("bridge", "Carry named channels (/dev/shm/shm-channel.NAME) to and from another host over NetMQ, until SIGINT or SIGTERM.")
        {
            listen, connect, exports, imports, exportServices, importServices, serverKey, serverPublic, clientKey, heartbeat, timeout, window, lane, status,
        };
        bridge.SetAction((parsed, cancel) => Run(new ShmBridgeOptions
        {
            Listen = parsed.GetValue(listen),
            Connect = parsed.GetValue(connect),
            Exports = [.. (parsed.GetValue(exports) ?? []).Select(BridgedName.Parse)],
            Imports = [.. (parsed.GetValue(imports) ?? []).Select(BridgedName.Parse)],
            ExportServices = [.. (parsed.GetValue(exportServices) ?? []).Select(BridgedName.Parse)],
            ImportServices = [.. (parsed.GetValue(importServices) ?? []).Select(BridgedName.Parse)],
            LaneCapacity = parsed.GetValue(lane),
            StatusPath = parsed.GetValue(status) ?? Path.Combine(StatusDirectory, $"{Environment.ProcessId}.json"),
            Transport = new RemoteTransportOptions
            {
                HeartbeatInterval = TimeSpan.FromMilliseconds(parsed.GetValue(heartbeat)),
                HeartbeatTimeout = TimeSpan.FromMilliseconds(parsed.GetValue(timeout)),
                CreditWindow = parsed.GetValue(window),
                CurveServerKey = Key(parsed.GetValue(serverKey)),
                CurveServerPublicKey = Key(parsed.GetValue(serverPublic)),
                CurveClientKey = Key(parsed.GetValue(clientKey)),
                Log = line => Console.Error.WriteLine($"shm bridge: {Escaping.Escape(line)}"),
            },
        }, cancel));

        var json = new Option<bool>("--json") { Description = "Print the status files' JSON, in an array." };
        var show = new Command("status", "Print what each running bridge reports: endpoint, peers, and per channel its state, messages, messages/s, backlog and losses; then its last refusals and errors.") { json };
        show.SetAction(parsed => Status(parsed.GetValue(json)));

        var keyPath = new Argument<string>("path") { Description = "The public key file to write; the secret one is PATH_secret (mode 0600)." };
        var keygen = new Command("keygen", "Write a new CURVE key pair in ZeroMQ's certificate format: PATH (public) and PATH_secret.") { keyPath };
        keygen.SetAction(parsed =>
        {
            CurveKey key = CurveKey.Generate();
            key.Save(parsed.GetValue(keyPath)!);
            Console.WriteLine(key.PublicKey);
            return Exit.Done;
        });

        bridge.Subcommands.Add(show);
        bridge.Subcommands.Add(keygen);
        root.Subcommands.Add(bridge);
    }

    private static CurveKey? Key(string? path) => path is null ? null : CurveKey.Load(path);

    private static async Task<int> Run(ShmBridgeOptions options, CancellationToken cancel)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true; // leave properly: the status file and the channels we created go
            stop.Cancel();
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.StatusPath!))!);
        await using ShmBridge bridge = ShmBridge.Start(options);
        Console.WriteLine($"shm bridge: {(options.Listen is not null ? "listening at" : "connected to")} {bridge.Endpoint}; " +
            $"exports: {Names(options.Exports)}; imports: {Names(options.Imports)}; services exported: {Names(options.ExportServices)}; imported: {Names(options.ImportServices)}; status: {options.StatusPath}");
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        return Exit.Done;
    }

    private static string Names(System.Collections.Generic.IReadOnlyList<BridgedName> names) => names.Count == 0 ? "none" : string.Join(", ", names);

    private static int Status(bool json)
    {
        string[] files = Directory.Exists(StatusDirectory) ? [.. Directory.GetFiles(StatusDirectory, "*.json").Order(StringComparer.Ordinal)] : [];
        if (json)
        {
            Console.WriteLine("[" + string.Join(",\n", files.Select(File.ReadAllText)) + "]");
            return Exit.Done;
        }
        if (files.Length == 0)
        {
            Console.WriteLine($"no bridge status in {StatusDirectory}");
        }
        foreach (string file in files)
        {
            ShmBridgeStatus status = ShmBridge.ReadStatus(file);
            bool alive = Directory.Exists($"/proc/{status.Pid}");
            Console.WriteLine($"bridge pid {status.Pid}{(alive ? "" : " (not running: stale file)")}, {(status.Listening ? "listening at" : "connected to")} {status.Endpoint}, updated {status.UpdatedUtc:HH:mm:ss}Z");
            Console.WriteLine($"  peers: {(status.Peers.Count == 0 ? "none" : string.Join("; ", status.Peers.Select(Escaping.Escape)))}");
            Console.WriteLine($"  {"DIRECTION",-14} {"REMOTE",-16} {"LOCAL",-16} {"MESSAGES",12} {"MSG/S",10} {"BACKLOG",8} {"LOST",6}  STATE");
            foreach (BridgedChannelStatus channel in status.Channels)
            {
                Console.WriteLine($"  {channel.Direction,-14} {Escaping.Escape(channel.Remote),-16} {Escaping.Escape(channel.Local),-16} {channel.Messages,12} {channel.MessagesPerSecond,10:0} {channel.Backlog,8} {channel.Lost,6}  {Escaping.Escape(channel.State)}{(channel.Peer is null ? "" : " with " + Escaping.Escape(channel.Peer))}");
            }
            foreach (string line in status.Recent)
            {
                Console.WriteLine($"  ! {Escaping.Escape(line)}");
            }
        }
        return Exit.Done;
    }
}
