using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.NetMQ;

/// <summary>
/// Carries local channels to another host and back over one NetMQ connection: each export is a
/// local named channel (<see cref="NamedChannel"/>) the bridge reads and sends; each import is a
/// remote stream the bridge writes into a local named channel, so local processes (C ones too) use
/// the channel as if the other side were local. One bridge listens, the other connects.
/// </summary>
/// <remarks>
/// <para>Flow control end to end: a slow local reader on the importing side fills its ring, the
/// importing bridge takes no more, the exporting bridge gets no credit, its local ring fills and
/// the local writers wait. Memory stays bounded by the rings and the credit window.</para>
/// <para>A peer silent for the heartbeat timeout is lost: reported in the log and the status; the
/// local channels stay open, and the streams resume when the peer (or its restart) is heard again.
/// Messages in flight when a peer is lost (sent but not yet in the local channel on the other side)
/// are lost; none is ever delivered twice (at most once).</para>
/// </remarks>
public sealed class ShmBridge : IAsyncDisposable
{
    private static readonly TimeSpan StatusEvery = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(10);

    private readonly ShmBridgeOptions _options;
    private readonly Link _link;
    private readonly List<Pump> _pumps = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Timer? _statusTimer;
    private int _disposed;

    private ShmBridge(ShmBridgeOptions options)
    {
        _options = options;
        bool listen = options.Listen is not null;
        _link = new Link(listen ? options.Listen! : options.Connect!, listen, options.Transport);
        try
        {
            foreach (BridgedName name in options.Exports)
            {
                _pumps.Add(new ExportPump(name, NamedChannel.CreateOrOpen(name.Local, options.LaneCapacity, options.Writers), _link));
            }
            foreach (BridgedName name in options.Imports)
            {
                _pumps.Add(new ImportPump(name, NamedChannel.CreateOrOpen(name.Local, options.LaneCapacity, options.Writers), _link));
            }
            foreach (BridgedName name in options.ExportServices)
            {
                _pumps.Add(ServiceExportPump.Start(name, _link));
            }
            foreach (BridgedName name in options.ImportServices)
            {
                _pumps.Add(ServiceImportPump.Start(name, _link, options.ServiceConfig));
            }
        }
        catch
        {
            _link.Dispose();
            foreach (Pump pump in _pumps)
            {
                pump.Local.Dispose();
            }
            throw;
        }
        _link.Start();
        foreach (Pump pump in _pumps)
        {
            pump.Start(_stop.Token);
        }
        if (options.StatusPath is not null)
        {
            _statusTimer = new Timer(_ => WriteStatus(), null, TimeSpan.Zero, StatusEvery);
        }
    }

    /// <summary>Opens (or creates) the local channels, binds or connects, and starts carrying.</summary>
    /// <param name="options">What to carry, and how.</param>
    /// <exception cref="ArgumentException">Neither or both of listen and connect, nothing to carry, a bad name or option, or a name listed twice.</exception>
    /// <exception cref="global::NetMQ.NetMQException">NetMQ could not bind or connect.</exception>
    /// <exception cref="Shm.Interop.ShmException">A local channel's segment could not be created or opened.</exception>
    public static ShmBridge Start(ShmBridgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new ShmBridge(options);
    }

    /// <summary>The endpoint listened at or connected to.</summary>
    public string Endpoint => _link.Endpoint;

    /// <summary>What the bridge is doing now.</summary>
    public ShmBridgeStatus GetStatus() =>
        new(Environment.ProcessId, Endpoint, _options.Listen is not null, _link.Peers, [.. _pumps.Select(p => p.Status())], _link.Recent, DateTime.UtcNow);

    /// <summary>Reads a status file a bridge writes (<see cref="ShmBridgeOptions.StatusPath"/>).</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="IOException">It cannot be read.</exception>
    /// <exception cref="JsonException">It is not a bridge's status.</exception>
    public static ShmBridgeStatus ReadStatus(string path) =>
        JsonSerializer.Deserialize(File.ReadAllText(path), StatusJson.Default.ShmBridgeStatus) ?? throw new JsonException($"{path}: empty");

    /// <summary>Stops carrying, closes the connection and the local channels, and removes the status file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_statusTimer is not null)
        {
            await _statusTimer.DisposeAsync().ConfigureAwait(false);
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_pumps.Select(p => p.Running)).WaitAsync(StopBound).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _link.Report($"a pump did not stop within {StopBound.TotalSeconds} s");
        }
        _link.Dispose();
        foreach (Pump pump in _pumps)
        {
            pump.Local.Dispose();
        }
        _stop.Dispose();
        if (_options.StatusPath is { } path)
        {
            File.Delete(path);
        }
    }

    private void WriteStatus()
    {
        try
        {
            foreach (Pump pump in _pumps)
            {
                pump.Sample();
            }
            string path = _options.StatusPath!;
            string temporary = path + ".tmp";
            File.WriteAllText(temporary, JsonSerializer.Serialize(GetStatus(), StatusJson.Default.ShmBridgeStatus));
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception failure)
        {
            // The status is a courtesy: a full disk must not stop the bridge (and a timer must not throw).
            _link.Report($"the status file could not be written: {failure.Message}");
        }
    }
}
