using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.NetMQ;

/// <summary>
/// The reading end of one named stream on a <see cref="Link"/>: the link's thread queues the
/// messages of the writer it is bound to, in sequence; the user's thread takes them
/// (<see cref="TryTake"/>), and each take may earn the writer more credit (one window past the last
/// message taken), announced by the link.
/// </summary>
/// <remarks>
/// Messages are numbered per writer session: a number already seen is dropped (never delivered
/// twice), a gap is counted as lost. Standalone (<c>survive</c> false), a lost or restarted writer
/// or a gap ends the stream after the queued messages, with a <see cref="RemoteChannelException"/>
/// naming the peer; in a bridge, the stream goes on with the next writer session.
/// </remarks>
internal sealed class IncomingStream(string name, bool survive, int window, Link link)
{
    private readonly object _gate = new();
    private readonly Queue<(long Epoch, long Sequence, byte[] Bytes)> _queue = new();
    private readonly long _readerEpoch = Link.NewEpoch();
    private long _writerEpoch;
    private long _lastSequence;
    private long _taken;
    private long _announced;
    private Peer? _peer;
    private bool _ended;
    private Exception? _failure;

    public string Name { get; } = name;

    public Signal Changed { get; } = new();

    /// <summary>Messages received over all sessions.</summary>
    public long Messages { get; private set; }

    /// <summary>Messages known lost: gaps in the numbers of a writer session.</summary>
    public long Lost { get; private set; }

    public string? PeerName => _peer is { Alive: true } peer ? peer.Name : null;

    public int Backlog
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    public string State
    {
        get
        {
            lock (_gate)
            {
                return _failure is not null ? "failed" : _ended ? "ended" : _peer is { Alive: true } ? "streaming" : "waiting for a writer";
            }
        }
    }

    /// <summary>
    /// Takes the next message: true with it; false with <paramref name="ended"/> true once the stream
    /// ended and was drained (throws what ended it, if it failed), false alone if nothing is there yet.
    /// </summary>
    public bool TryTake(out byte[] message, out bool ended)
    {
        bool announce;
        lock (_gate)
        {
            if (_queue.TryDequeue(out var next))
            {
                message = next.Bytes;
                ended = false;
                if (next.Epoch == _writerEpoch)
                {
                    _taken = next.Sequence;
                }
                announce = _taken + window - _announced >= Math.Max(1, window / 4);
            }
            else
            {
                message = [];
                if (_failure is not null)
                {
                    throw _failure;
                }
                ended = _ended;
                return false;
            }
        }
        if (announce)
        {
            link.Wake();
        }
        return true;
    }

    /// <summary>Takes the next message, waiting until <paramref name="deadline"/>; null on timeout or once ended normally.</summary>
    public byte[]? Take(long deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed = Changed.Task;
            if (TryTake(out byte[] message, out bool ended))
            {
                return message;
            }
            if (ended || !Signal.Wait(changed, deadline, cancellationToken))
            {
                return null;
            }
        }
    }

    /// <summary>As <see cref="Take"/>, without holding a thread.</summary>
    public async ValueTask<byte[]?> TakeAsync(long deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed = Changed.Task;
            if (TryTake(out byte[] message, out bool ended))
            {
                return message;
            }
            if (ended || !await Signal.WaitAsync(changed, deadline, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }

    /// <summary>True if a message is here; false with <paramref name="ended"/> true once ended and drained (throws what ended it, if it failed).</summary>
    public bool HasMessage(out bool ended)
    {
        lock (_gate)
        {
            ended = false;
            if (_queue.Count > 0)
            {
                return true;
            }
            if (_failure is not null)
            {
                throw _failure;
            }
            ended = _ended;
            return false;
        }
    }

    /// <summary>Link thread: grants credit to the bound writer, or to every candidate if none is bound yet.</summary>
    public void AnnounceCredit(bool refresh)
    {
        StreamHeader credit;
        Peer? peer;
        lock (_gate)
        {
            if (_ended || _failure is not null)
            {
                return;
            }
            long limit = _taken + window;
            if (!refresh && limit - _announced < Math.Max(1, window / 4))
            {
                return;
            }
            credit = new StreamHeader(FrameKind.Credit, _readerEpoch, _writerEpoch, limit, window, Name);
            peer = _peer is { Alive: true } bound ? bound : null;
            _announced = limit;
        }
        byte[] header = credit.Encode();
        if (peer is not null)
        {
            link.TrySend(peer, header, null);
        }
        else
        {
            link.SendToCandidates(header);
        }
    }

    /// <summary>Link thread: a message (or the end) from a writer.</summary>
    public void OnData(Peer from, in StreamHeader data, byte[]? payload)
    {
        lock (_gate)
        {
            if (data.ReaderEpoch != _readerEpoch || _ended || _failure is not null)
            {
                return; // for an earlier reader session of ours, or too late
            }
            if (_peer is { Alive: true } bound && bound != from)
            {
                link.Refuse(from, Name, $"'{Name}' is already written by {bound.Name}");
                return;
            }
            if (data.WriterEpoch != _writerEpoch)
            {
                if (_writerEpoch != 0 && !survive)
                {
                    Fail(from, $"the writer of '{Name}' restarted: messages in flight may be lost");
                    return;
                }
                _writerEpoch = data.WriterEpoch;
                _lastSequence = 0;
                _taken = 0;
                _announced = 0;
            }
            _peer = from;
            if (data.Kind == FrameKind.End)
            {
                if (data.Number > _lastSequence)
                {
                    Gap(from, data.Number - _lastSequence);
                }
                _ended = true;
                Changed.Set();
                return;
            }
            if (data.Number <= _lastSequence)
            {
                return; // seen already: never twice
            }
            if (data.Number != _lastSequence + 1)
            {
                if (!Gap(from, data.Number - _lastSequence - 1))
                {
                    return;
                }
            }
            _lastSequence = data.Number;
            _queue.Enqueue((_writerEpoch, data.Number, payload ?? []));
            Messages++;
        }
        Changed.Set();
    }

    public void OnPeerLost(Peer peer, string why)
    {
        lock (_gate)
        {
            if (_peer != peer)
            {
                return;
            }
            _peer = null;
            if (!survive)
            {
                Fail(peer, why);
            }
        }
    }

    public void OnRefused(Peer peer, string reason)
    {
        lock (_gate)
        {
            if (!survive && (_peer is null || _peer == peer))
            {
                Fail(peer, reason);
            }
        }
    }

    public void OnClosed()
    {
        lock (_gate)
        {
            _failure ??= new ObjectDisposedException(nameof(RemoteChannelReader), $"The remote reader of '{Name}' was disposed.");
        }
        Changed.Set();
    }

    private bool Gap(Peer from, long missing)
    {
        Lost += missing;
        if (!survive)
        {
            Fail(from, $"{missing} message(s) of '{Name}' were lost in transit (the connection broke)");
            return false;
        }
        link.Report($"{from.Name}: {missing} message(s) of '{Name}' lost in transit (the connection broke)");
        return true;
    }

    // Under the gate: the queued messages are still delivered, then the failure.
    private void Fail(Peer peer, string why)
    {
        _failure ??= new RemoteChannelException(peer.Name, why);
        Changed.Set();
    }
}
