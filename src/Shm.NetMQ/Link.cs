using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using NetMQ;
using NetMQ.Sockets;

namespace Shm.NetMQ;

/// <summary>
/// One NetMQ socket and the thread that owns it (a <see cref="NetMQPoller"/>), carrying any number
/// of named streams each way: a ROUTER when it listens (many peers, told apart by routing id), a
/// DEALER when it connects (one peer: the endpoint). Both sides send heartbeats every interval; a
/// peer not heard from for the timeout is lost, and the streams bound to it are told. Users' threads
/// never touch the socket: they queue and <see cref="Wake"/> the link.
/// </summary>
internal sealed class Link : IDisposable
{
    private const int ReceiveBudget = 4096;
    private const int MaxDescription = 200;
    private const int MaxReason = 500;
    private const int RecentReports = 32;

    private readonly RemoteTransportOptions _options;
    private readonly NetMQSocket _socket;
    private readonly bool _router;
    private readonly NetMQQueue<bool> _wake = new();
    private readonly NetMQTimer _timer;
    private readonly NetMQPoller _poller;
    private readonly Dictionary<string, OutgoingStream> _outgoing = [];
    private readonly Dictionary<string, IncomingStream> _incoming = [];
    private readonly Dictionary<string, Peer> _peers = [];
    private readonly HashSet<string> _reported = [];
    private readonly ConcurrentQueue<string> _recent = new();
    private readonly byte[] _heartbeat;
    private Peer _dealerPeer;
    private int _wakePending;
    private int _disposed;
    private volatile string[] _peerNames = [];

    public Link(string endpoint, bool listen, RemoteTransportOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpoint);
        _options = options.Validated();
        Endpoint = endpoint;
        _router = listen;
        _dealerPeer = new Peer(null, endpoint) { Alive = false };
        _heartbeat = [(byte)FrameKind.Heartbeat, .. Encoding.UTF8.GetBytes($"{Environment.MachineName} pid {Environment.ProcessId}")];
        _socket = listen ? new RouterSocket() : new DealerSocket();
        try
        {
            _socket.Options.Linger = TimeSpan.Zero;
            int watermark = (2 * options.CreditWindow) + 1024;
            _socket.Options.SendHighWatermark = watermark;
            _socket.Options.ReceiveHighWatermark = watermark;
            _socket.Options.ReconnectInterval = TimeSpan.FromMilliseconds(100);
            _socket.Options.ReconnectIntervalMax = options.HeartbeatInterval;
            if (listen)
            {
                _socket.Options.RouterMandatory = true; // a full pipe says so instead of dropping the message
                if (options.CurveServerKey is { } server)
                {
                    _socket.Options.CurveServer = true;
                    _socket.Options.CurveCertificate = server.Certificate;
                }
                _socket.Bind(endpoint);
            }
            else
            {
                if (options.CurveServerPublicKey is { } server)
                {
                    _socket.Options.CurveServerCertificate = server.Certificate;
                    _socket.Options.CurveCertificate = (options.CurveClientKey ?? CurveKey.Generate()).Certificate;
                }
                _socket.Connect(endpoint);
            }
        }
        catch
        {
            _socket.Dispose();
            _wake.Dispose();
            throw;
        }
        _timer = new NetMQTimer(options.HeartbeatInterval);
        _socket.ReceiveReady += (_, _) => Guard(Receive);
        _wake.ReceiveReady += (_, _) => Guard(OnWake);
        _timer.Elapsed += (_, _) => Guard(OnTick);
        _poller = new NetMQPoller { _socket, _wake, _timer };
    }

    /// <summary>The endpoint bound or connected to.</summary>
    public string Endpoint { get; }

    /// <summary>The peers heard from within the timeout.</summary>
    public IReadOnlyList<string> Peers => _peerNames;

    /// <summary>The last refusals, losses and protocol errors, oldest first.</summary>
    public IReadOnlyList<string> Recent => [.. _recent];

    public IEnumerable<OutgoingStream> Outgoing => _outgoing.Values;

    public IEnumerable<IncomingStream> Incoming => _incoming.Values;

    /// <summary>A random non-zero session number.</summary>
    public static long NewEpoch()
    {
        long epoch;
        do
        {
            epoch = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(sizeof(long))) & long.MaxValue;
        }
        while (epoch == 0);
        return epoch;
    }

    public OutgoingStream AddOutgoing(string name, bool survive)
    {
        var stream = new OutgoingStream(StreamHeader.ValidateName(name, nameof(name)), survive, _options.CreditWindow);
        _outgoing.Add(name, stream);
        return stream;
    }

    public IncomingStream AddIncoming(string name, bool survive)
    {
        var stream = new IncomingStream(StreamHeader.ValidateName(name, nameof(name)), survive, _options.CreditWindow, this);
        _incoming.Add(name, stream);
        return stream;
    }

    /// <summary>Runs the link's thread; streams are added before.</summary>
    public void Start()
    {
        _poller.RunAsync($"Shm.NetMQ {Endpoint}", isBackgroundThread: true);
        Wake();
    }

    /// <summary>Any thread: have the link's thread send what is queued and announce credit.</summary>
    public void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0 && Volatile.Read(ref _disposed) == 0)
        {
            try
            {
                _wake.Enqueue(true);
            }
            catch (ObjectDisposedException)
            {
                // disposed between the check and the enqueue: the streams were told, nothing to wake
            }
        }
    }

    /// <summary>Link thread: sends a header frame (and a payload frame) to <paramref name="peer"/>; false if the socket has no room now.</summary>
    public bool TrySend(Peer peer, byte[] header, byte[]? payload)
    {
        try
        {
            if (_router && !_socket.TrySendFrame(TimeSpan.Zero, peer.Identity!, more: true))
            {
                return false;
            }
            if (!_socket.TrySendFrame(TimeSpan.Zero, header, more: payload is not null))
            {
                return false;
            }
            // Once a message's first frame is in, ZeroMQ takes the rest.
            return payload is null || _socket.TrySendFrame(TimeSpan.Zero, payload);
        }
        catch (HostUnreachableException)
        {
            return false; // a ROUTER peer gone: its heartbeat timeout tells the streams
        }
    }

    /// <summary>Link thread: sends to every peer a stream with no peer yet may find its writer at.</summary>
    public void SendToCandidates(byte[] header)
    {
        if (!_router)
        {
            TrySend(_dealerPeer, header, null);
            return;
        }
        foreach (Peer peer in _peers.Values)
        {
            TrySend(peer, header, null);
        }
    }

    /// <summary>Link thread: refuses a stream to a peer, and reports it once.</summary>
    public void Refuse(Peer peer, string name, string reason)
    {
        byte[] header = new StreamHeader(FrameKind.Refused, 0, 0, 0, 0, name).Encode();
        TrySend(peer, header, Encoding.UTF8.GetBytes(reason));
        ReportOnce($"refused {peer.Name}: {reason}");
    }

    /// <summary>Records (and logs) what went wrong.</summary>
    public void Report(string message)
    {
        _recent.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {message}");
        while (_recent.Count > RecentReports && _recent.TryDequeue(out _))
        {
        }
        try
        {
            _options.Log?.Invoke(message);
        }
        catch (Exception)
        {
            // A failing log must not stop the link.
        }
    }

    private void ReportOnce(string message)
    {
        if (_reported.Count < 1024 && _reported.Add(message))
        {
            Report(message);
        }
    }

    private void Guard(Action action)
    {
        try
        {
            action();
        }
        catch (Exception failure) when (failure is not OutOfMemoryException)
        {
            // No exception may leave the link's thread (it would end the process); say it and go on.
            Report($"the link on {Endpoint} failed: {failure.GetType().Name}: {failure.Message}");
        }
    }

    private void OnWake()
    {
        while (_wake.TryDequeue(out _, TimeSpan.Zero))
        {
        }
        Volatile.Write(ref _wakePending, 0);
        Pump(refresh: false);
    }

    private void OnTick()
    {
        long now = Environment.TickCount64;
        long timeout = (long)_options.HeartbeatTimeout.TotalMilliseconds;
        foreach (Peer peer in (_router ? _peers.Values.ToArray() : [_dealerPeer]).Where(p => p.Alive && now - p.LastHeard > timeout))
        {
            Lose(peer, $"nothing heard for {_options.HeartbeatTimeout.TotalSeconds:0.###} s: the peer is gone");
        }
        if (_router)
        {
            foreach (Peer peer in _peers.Values)
            {
                TrySend(peer, _heartbeat, null);
            }
        }
        else
        {
            TrySend(_dealerPeer, _heartbeat, null); // also how a listener first hears of us
        }
        Pump(refresh: true);
    }

    private void Pump(bool refresh)
    {
        foreach (IncomingStream stream in _incoming.Values)
        {
            stream.AnnounceCredit(refresh);
        }
        foreach (OutgoingStream stream in _outgoing.Values)
        {
            stream.Flush(this);
        }
    }

    private void Lose(Peer peer, string why)
    {
        peer.Alive = false;
        if (_router)
        {
            _peers.Remove(Convert.ToHexString(peer.Identity!));
        }
        Report($"{peer.Name}: {why}");
        foreach (OutgoingStream stream in _outgoing.Values)
        {
            stream.OnPeerLost(peer, why);
        }
        foreach (IncomingStream stream in _incoming.Values)
        {
            stream.OnPeerLost(peer, why);
        }
        PublishPeers();
    }

    private void Receive()
    {
        for (int i = 0; i < ReceiveBudget; i++)
        {
            if (!_socket.TryReceiveFrameBytes(TimeSpan.Zero, out byte[]? first, out bool more))
            {
                return;
            }
            byte[]? identity = null;
            byte[]? header = first;
            if (_router)
            {
                identity = first;
                header = more && _socket.TryReceiveFrameBytes(TimeSpan.Zero, out byte[]? next, out more) ? next : null;
            }
            byte[]? payload = null;
            if (more && _socket.TryReceiveFrameBytes(TimeSpan.Zero, out byte[]? third, out more))
            {
                payload = third;
            }
            bool extra = false;
            while (more && _socket.TryReceiveFrameBytes(TimeSpan.Zero, out _, out more))
            {
                extra = true;
            }
            Peer peer = Heard(identity);
            if (header is null || header.Length == 0 || extra)
            {
                ReportOnce($"{peer.Name}: a malformed message (wrong frame count) was dropped");
                continue;
            }
            Dispatch(peer, header, payload);
        }
    }

    private Peer Heard(byte[]? identity)
    {
        Peer peer;
        if (!_router)
        {
            if (!_dealerPeer.Alive)
            {
                _dealerPeer = new Peer(null, Endpoint);
                PublishPeers();
            }
            peer = _dealerPeer;
        }
        else
        {
            string key = Convert.ToHexString(identity!);
            if (!_peers.TryGetValue(key, out peer!))
            {
                peer = new Peer(identity, $"a peer ({key}) on {Endpoint}");
                _peers.Add(key, peer);
                PublishPeers();
            }
        }
        peer.LastHeard = Environment.TickCount64;
        return peer;
    }

    private void Dispatch(Peer peer, byte[] header, byte[]? payload)
    {
        if (header[0] == (byte)FrameKind.Heartbeat)
        {
            string description = Encoding.UTF8.GetString(header, 1, Math.Min(header.Length - 1, MaxDescription));
            string name = _router ? $"{description} on {Endpoint}" : $"{Endpoint} ({description})";
            if (peer.Name != name)
            {
                peer.Name = name;
                PublishPeers();
            }
            return;
        }
        if (!StreamHeader.TryParse(header, out StreamHeader parsed))
        {
            ReportOnce($"{peer.Name}: a malformed header was dropped");
            return;
        }
        switch (parsed.Kind)
        {
            case FrameKind.Credit when _outgoing.TryGetValue(parsed.Name, out OutgoingStream? writer):
                writer.OnCredit(this, peer, parsed);
                break;
            case FrameKind.Credit:
                Refuse(peer, parsed.Name, $"'{parsed.Name}' is not exported here ({Listed(_outgoing.Keys)})");
                break;
            case FrameKind.Data or FrameKind.End when payload is not null && payload.Length > _options.MaxMessageLength:
                ReportOnce($"{peer.Name}: a message of '{parsed.Name}' longer than {_options.MaxMessageLength} bytes was dropped");
                break;
            case FrameKind.Data or FrameKind.End when _incoming.TryGetValue(parsed.Name, out IncomingStream? reader):
                reader.OnData(peer, parsed, payload);
                break;
            case FrameKind.Data or FrameKind.End:
                Refuse(peer, parsed.Name, $"'{parsed.Name}' is not imported here ({Listed(_incoming.Keys)})");
                break;
            case FrameKind.Refused:
                string reason = payload is null ? "no reason given" : Encoding.UTF8.GetString(payload, 0, Math.Min(payload.Length, MaxReason));
                ReportOnce($"{peer.Name} refused '{parsed.Name}': {reason}");
                _outgoing.GetValueOrDefault(parsed.Name)?.OnRefused(peer, $"refused: {reason}");
                _incoming.GetValueOrDefault(parsed.Name)?.OnRefused(peer, $"refused: {reason}");
                break;
        }
    }

    private static string Listed(IEnumerable<string> names) => names.Any() ? "only " + string.Join(", ", names.Select(n => $"'{n}'")) : "none is";

    private void PublishPeers() =>
        _peerNames = _router ? [.. _peers.Values.Select(p => p.Name)] : _dealerPeer.Alive ? [_dealerPeer.Name] : [];

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_poller.IsRunning)
        {
            _poller.Stop();
        }
        _poller.Dispose();
        _socket.Dispose();
        _wake.Dispose();
        foreach (OutgoingStream stream in _outgoing.Values)
        {
            stream.OnClosed();
        }
        foreach (IncomingStream stream in _incoming.Values)
        {
            stream.OnClosed();
        }
    }
}
