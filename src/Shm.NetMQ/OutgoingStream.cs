using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.NetMQ;

/// <summary>
/// The writing end of one named stream on a <see cref="Link"/>: the user's thread queues messages
/// while it has credit (<see cref="TryAccept(ReadOnlySpan{byte})"/>); the link's thread sends them in order, numbered
/// from 1 in this writer session, to the one reader that granted the credit.
/// </summary>
/// <remarks>
/// Credit: the reader grants "up to sequence number N"; a message is accepted only below that, so
/// no more than one window is ever queued here, in flight, or queued at the reader. When the reader
/// is lost (or refuses, or restarts): standalone (<c>survive</c> false) the writer fails with a
/// <see cref="RemoteChannelException"/>; in a bridge it starts a new session (a new epoch, numbers
/// from 1) for the next reader, keeping what is queued: messages already sent are lost, none is sent
/// twice (at most once).
/// </remarks>
internal sealed class OutgoingStream(string name, bool survive, int window)
{
    private readonly object _gate = new();
    private readonly Queue<byte[]> _pending = new();
    private long _accepted;
    private long _sent;
    private long _limit;
    private long _writerEpoch = Link.NewEpoch();
    private long _readerEpoch;
    private Peer? _peer;
    private bool _completing;
    private bool _endSent;
    private Exception? _failure;

    public string Name { get; } = name;

    public Signal Changed { get; } = new();

    /// <summary>Messages sent over all sessions.</summary>
    public long Messages { get; private set; }

    public string? PeerName => _peer is { Alive: true } peer ? peer.Name : null;

    public int Backlog
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    public string State
    {
        get
        {
            lock (_gate)
            {
                return _failure is not null ? "failed" : _endSent ? "ended" : _peer is { Alive: true } ? "streaming" : "waiting for a reader";
            }
        }
    }

    /// <summary>Queues a copy of <paramref name="message"/> if the reader's credit allows; false if not (yet).</summary>
    public bool TryAccept(ReadOnlySpan<byte> message) => TryAccept(message, null);

    /// <summary>As <see cref="TryAccept(ReadOnlySpan{byte})"/>; <paramref name="owned"/>, if given, is the message's bytes in an array nobody else uses, queued as is.</summary>
    private bool TryAccept(ReadOnlySpan<byte> message, byte[]? owned)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            if (_accepted >= _limit)
            {
                return false;
            }
            _pending.Enqueue(owned ?? message.ToArray());
            _accepted++;
            return true;
        }
    }

    /// <summary>Queues <paramref name="message"/>, waiting for credit until <paramref name="deadline"/> (<see cref="Signal.DeadlineAfter"/>); false on timeout.</summary>
    public bool Accept(ReadOnlySpan<byte> message, long deadline, Link link, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed = Changed.Task;
            if (TryAccept(message))
            {
                link.Wake();
                return true;
            }
            if (!Signal.Wait(changed, deadline, cancellationToken))
            {
                return false;
            }
        }
    }

    /// <summary>As <see cref="Accept"/>, without holding a thread; <paramref name="owned"/> as for <see cref="TryAccept(ReadOnlySpan{byte}, byte[])"/>.</summary>
    public async ValueTask<bool> AcceptAsync(ReadOnlyMemory<byte> message, long deadline, Link link, CancellationToken cancellationToken, byte[]? owned = null)
    {
        while (true)
        {
            Task changed = Changed.Task;
            if (TryAccept(message.Span, owned))
            {
                link.Wake();
                return true;
            }
            if (!await Signal.WaitAsync(changed, deadline, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }
    }

    public void Complete()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            _completing = true;
        }
    }

    public bool IsCompleting
    {
        get
        {
            lock (_gate)
            {
                return _completing;
            }
        }
    }

    /// <summary>Throws what ended the stream, if something did.</summary>
    public void ThrowIfFailed()
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                throw _failure;
            }
        }
    }

    private void ThrowIfUnusable()
    {
        if (_failure is not null)
        {
            throw _failure;
        }
        if (_completing)
        {
            throw new ChannelClosedException($"The remote writer of '{Name}' was completed.");
        }
    }

    /// <summary>Link thread: a reader grants credit.</summary>
    public void OnCredit(Link link, Peer from, in StreamHeader credit)
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return;
            }
            if (_peer is { Alive: true } bound && bound != from)
            {
                link.Refuse(from, Name, $"'{Name}' is already read by {bound.Name}");
                return;
            }
            if (_peer != from || credit.ReaderEpoch != _readerEpoch)
            {
                if (_sent > 0 && !Restart(from == _peer ? $"the reader of '{Name}' restarted" : $"the reader of '{Name}' changed to {from.Name}"))
                {
                    return;
                }
                _peer = from;
                _readerEpoch = credit.ReaderEpoch;
            }
            // A grant for another session of ours counts as the first window of this one.
            long limit = credit.WriterEpoch == _writerEpoch ? credit.Number : Math.Min(credit.Window, window);
            if (limit > _limit)
            {
                _limit = limit;
                Changed.Set();
            }
        }
        Flush(link);
    }

    /// <summary>Link thread: sends what credit allows, then the end if completed and drained.</summary>
    public void Flush(Link link)
    {
        lock (_gate)
        {
            if (_peer is not { Alive: true } peer || _failure is not null)
            {
                return;
            }
            while (_pending.Count > 0 && _sent < _limit)
            {
                var header = new StreamHeader(FrameKind.Data, _readerEpoch, _writerEpoch, _sent + 1, 0, Name);
                if (!link.TrySend(peer, header.Encode(), _pending.Peek()))
                {
                    return; // the socket is full: the next wake or tick retries
                }
                _pending.Dequeue();
                _sent++;
                Messages++;
            }
            if (_completing && !_endSent && _pending.Count == 0 &&
                link.TrySend(peer, new StreamHeader(FrameKind.End, _readerEpoch, _writerEpoch, _sent, 0, Name).Encode(), null))
            {
                _endSent = true;
                Changed.Set();
            }
        }
    }

    /// <summary>Link thread: the bound reader went silent.</summary>
    public void OnPeerLost(Peer peer, string why)
    {
        lock (_gate)
        {
            if (_peer == peer)
            {
                Restart(why);
            }
        }
    }

    /// <summary>Link thread: the peer refused the stream.</summary>
    public void OnRefused(Peer peer, string reason)
    {
        lock (_gate)
        {
            if (_peer == peer || _peer is null)
            {
                Fail(peer, reason);
                if (survive)
                {
                    _peer = null;
                }
            }
        }
    }

    /// <summary>Link thread: the stream ends with the link.</summary>
    public void OnClosed()
    {
        lock (_gate)
        {
            _failure ??= new ObjectDisposedException(nameof(RemoteChannelWriter), $"The remote writer of '{Name}' was disposed.");
            Changed.Set();
        }
    }

    // Under the gate. Standalone: the stream fails. In a bridge: a new session, keeping what is queued.
    private bool Restart(string why)
    {
        if (!survive)
        {
            Fail(_peer, why);
            return false;
        }
        _writerEpoch = Link.NewEpoch();
        _accepted = _pending.Count;
        _sent = 0;
        _limit = 0;
        _endSent = false;
        _peer = null;
        Changed.Set();
        return true;
    }

    private void Fail(Peer? peer, string why)
    {
        if (!survive)
        {
            _failure ??= new RemoteChannelException(peer?.Name ?? "?", why);
        }
        Changed.Set();
    }
}
