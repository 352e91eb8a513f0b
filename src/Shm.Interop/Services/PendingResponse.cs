using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A request sent by a <see cref="Client"/>, and the stream of its responses: one or more, then the
/// end (<see cref="IsCompleted"/>). Received by one thread at a time. Disposing it before the end
/// cancels the request: untaken, it is withdrawn; taken, its server is told
/// (<see cref="RequestAbandonedException"/>) at its next response.
/// </summary>
public sealed unsafe partial class PendingResponse : IDisposable
{
    private const int Got = 0, Ended = 1, Wait = 2, Again = 3; // what one look found

    private readonly Client _client;
    private readonly RequestResponseService _service;
    private readonly RequestResponseLayout _layout;
    private readonly int _index;
    private readonly long _slot;
    private uint _tail;
    private int _finished;
    private bool _completed;
    private Exception? _failure;

    internal PendingResponse(Client client, int index, long slot, long id)
    {
        _client = client;
        _service = client.ServiceObject;
        _layout = client.Layout;
        _index = index;
        _slot = slot;
        RequestId = id;
    }

    /// <summary>The request's id: increasing per client, carried by every response to it.</summary>
    public long RequestId { get; }

    /// <summary>True once the server completed the stream and every response was received.</summary>
    public bool IsCompleted => _completed;

    /// <summary>Receives the next response, waiting as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting (the request stays pending).</param>
    /// <exception cref="EndOfStreamException">The stream had ended: every response was received.</exception>
    /// <exception cref="ServerDiedException">The server that took the request died before completing it.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This pending response or its client was disposed.</exception>
    public Response Receive(CancellationToken cancellationToken = default) =>
        TryReceive(out Response? response, Timeout.InfiniteTimeSpan, cancellationToken) ? response! : throw Ended_();

    /// <summary>Receives the next response if one is there now.</summary>
    /// <param name="response">The response; null when false is returned.</param>
    /// <returns>False if no response is there now, or the stream has ended (<see cref="IsCompleted"/>).</returns>
    /// <exception cref="ServerDiedException">The server that took the request died before completing it.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">This pending response or its client was disposed.</exception>
    public bool TryReceive([NotNullWhen(true)] out Response? response) => TryReceive(out response, TimeSpan.Zero);

    /// <summary>Receives the next response, waiting up to <paramref name="timeout"/>.</summary>
    /// <param name="response">The response; null when false is returned.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting (the request stays pending).</param>
    /// <returns>False at the timeout, or if the stream has ended (<see cref="IsCompleted"/>).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ServerDiedException">The server that took the request died before completing it.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This pending response or its client was disposed.</exception>
    public bool TryReceive([NotNullWhen(true)] out Response? response, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            ThrowIfUnusable();
            if (_completed)
            {
                response = null;
                return false;
            }
            int outcome = Step(out response, out int signal);
            if (response is not null)
            {
                return true;
            }
            if (outcome == Ended)
            {
                return false;
            }
            if (outcome == Again)
            {
                continue;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                return false;
            }
            RequestResponseService.Sleep(ToClient, signal, (int*)_service.At(_slot + RequestResponseLayout.ClientWaiting), deadline, cancellationToken);
        }
    }

    private int* ToClient => (int*)_service.At(_slot + RequestResponseLayout.ToClient);

    private EndOfStreamException Ended_() => new($"The response stream of request {RequestId} of the service '{_service.Name}' has ended: every response was received.");

    /// <summary>One look: a response taken, the end found, or nothing yet; a dead server throws.</summary>
    private int Step(out Response? response, out int signal)
    {
        response = null;
        byte* at = _service.At(_slot);
        signal = Volatile.Read(ref *ToClient); // before the word and head: a change after them wakes the sleep
        ulong word = _service.ReadWord(_slot, _index);
        uint head = Volatile.Read(ref *(uint*)(at + RequestResponseLayout.ResponseHead));
        if (head - _tail > (uint)_layout.ResponseDepth)
        {
            throw Corrupt("response ring head", _slot + RequestResponseLayout.ResponseHead, head, $"{_tail} to {_tail + (uint)_layout.ResponseDepth} (the ring's tail and capacity)");
        }
        if (head != _tail)
        {
            response = Take(at);
            return Got;
        }
        if (word == _client.QueuedWord)
        {
            return Wait; // no server has taken it yet: it stays for one, up to the timeout
        }
        int state = OwnerWord.StateOf(word);
        if (state == RequestResponseLayout.Taken)
        {
            if (ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word)))
            {
                return Wait;
            }
            if (Volatile.Read(ref *(uint*)(at + RequestResponseLayout.ResponseHead)) != _tail)
            {
                return Again; // it wrote more before it died: those first
            }
            Interlocked.CompareExchange(ref *(ulong*)at, 0, word);
            var died = new ServerDiedException(_service.Name, RequestId, OwnerWord.PidOf(word));
            _failure = died;
            Finish();
            throw died;
        }
        if (state == RequestResponseLayout.Done)
        {
            Interlocked.CompareExchange(ref *(ulong*)at, 0, word);
            _completed = true;
            Finish();
            return Ended;
        }
        throw Corrupt("request slot word", _slot, (long)word, $"queued by this client (0x{_client.QueuedWord:X16}), taken or done while its response is pending");
    }

    /// <summary>Copies the response at the tail out, its id and length read once and checked, and moves the tail.</summary>
    private Response Take(byte* at)
    {
        long entry = _layout.Entry(_slot, _tail);
        byte* e = _service.At(entry);
        long id = Volatile.Read(ref *(long*)(e + RequestResponseLayout.EntryId));
        if (id != RequestId)
        {
            throw Corrupt("response request id", entry + RequestResponseLayout.EntryId, id, $"{RequestId}, the id of the request it answers");
        }
        int length = Volatile.Read(ref *(int*)(e + RequestResponseLayout.EntryLength));
        if ((uint)length > (uint)_layout.MaxResponse)
        {
            throw Corrupt("response length", entry + RequestResponseLayout.EntryLength, length, $"0 to {_layout.MaxResponse} bytes (MaxResponseBytes)");
        }
        byte[] bytes = new ReadOnlySpan<byte>(e + RequestResponseLayout.EntryHeaderBytes, length).ToArray();
        _tail++;
        Volatile.Write(ref *(uint*)(at + RequestResponseLayout.ResponseTail), _tail);
        RequestResponseService.Signal((int*)(at + RequestResponseLayout.ToServer));
        return new Response(RequestId, bytes);
    }

    private SharedMemoryCorruptedException Corrupt(string structure, long offset, long value, string expected)
    {
        var corrupt = _service.Segment.Corrupt(structure, offset, value, expected, _index);
        _failure = corrupt;
        return corrupt;
    }

    /// <summary>True when a receive would not wait: a response, the end, a dead server, or a failure.</summary>
    private bool IsReady()
    {
        ThrowIfUnusable();
        if (_completed)
        {
            return true;
        }
        byte* at = _service.At(_slot);
        ulong word = _service.ReadWord(_slot, _index);
        uint head = Volatile.Read(ref *(uint*)(at + RequestResponseLayout.ResponseHead));
        return head != _tail || word != _client.QueuedWord && (OwnerWord.StateOf(word) != RequestResponseLayout.Taken || !ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word)));
    }

    private Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfUnusable();
        return ServiceInterop.WatchAsync(this, _service.Segment.Mapping, ToClient, Volatile.Read(ref *ToClient), (int*)_service.At(_slot + RequestResponseLayout.ClientWaiting), IsReady, timeout, cancellationToken, RequestResponseService.Slice);
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _finished) == 2 || _client.IsDisposed, this);
        if (_failure is not null)
        {
            throw _failure;
        }
    }

    /// <summary>The request slot goes back to the client (1: ended or failed; the object stays readable for its outcome).</summary>
    private void Finish()
    {
        if (Interlocked.CompareExchange(ref _finished, 1, 0) == 0)
        {
            _client.Free(_index, this);
        }
    }

    /// <summary>
    /// Cancels the request if its stream has not ended: withdrawn if no server took it, otherwise its
    /// server is told at its next response or completion. Never throws.
    /// </summary>
    public void Dispose()
    {
        if (_client.IsDisposed)
        {
            Volatile.Write(ref _finished, 2); // the client's dispose cancelled it
            return;
        }
        Cancel();
    }

    /// <summary>Withdraws or cancels the request (the client's own dispose calls it before unmapping).</summary>
    internal void Cancel()
    {
        int was = Interlocked.Exchange(ref _finished, 2);
        ServiceInterop.Abandon(this);
        if (was != 0 || _client.IsForeignCopy)
        {
            return; // ended already, or a forked child's copy of its parent's request
        }
        ulong* word = (ulong*)_service.At(_slot);
        for (int attempt = 0; attempt < 8; attempt++)
        {
            ulong seen = Volatile.Read(ref *word);
            ulong next = seen == _client.QueuedWord || OwnerWord.StateOf(seen) == RequestResponseLayout.Done ? 0
                : OwnerWord.StateOf(seen) == RequestResponseLayout.Taken && RequestResponseLayout.IsValidWord(seen) ? OwnerWord.WithState(seen, RequestResponseLayout.Cancelled)
                : seen;
            if (next == seen || Interlocked.CompareExchange(ref *word, next, seen) == seen)
            {
                if (next != 0 && next != seen)
                {
                    RequestResponseService.Signal((int*)_service.At(_slot + RequestResponseLayout.ToServer));
                }
                break;
            }
        }
        _client.Free(_index, this);
    }
}
