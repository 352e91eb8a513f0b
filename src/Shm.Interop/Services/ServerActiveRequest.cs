using System;
using System.Diagnostics;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A request a <see cref="Server"/> has taken (no other server has it): its bytes, copied out, and the
/// way to answer it with one response or a stream of them, then <see cref="Complete"/>. Disposing it
/// completes it if it was not. Answered by one thread at a time.
/// </summary>
public sealed unsafe class ActiveRequest : IDisposable
{
    private readonly RequestResponseService _service;
    private readonly RequestResponseLayout _layout;
    private readonly int _client;
    private readonly long _slot;
    private readonly ulong _taken;
    private readonly ulong _clientOwner;
    private readonly byte[] _bytes;
    private uint _head;
    private int _done;

    internal ActiveRequest(RequestResponseService service, int client, long slot, ulong taken, ulong clientOwner, long id, byte[] bytes)
    {
        _service = service;
        _layout = service.Layout;
        _client = client;
        _slot = slot;
        _taken = taken;
        _clientOwner = clientOwner;
        _bytes = bytes;
        RequestId = id;
        if (!service.Segment.AddReference()) // the request outlives its server object: it holds the mapping until completed
        {
            throw new ObjectDisposedException(nameof(RequestResponseService));
        }
    }

    /// <summary>The request's id, as its client numbered it.</summary>
    public long RequestId { get; }

    /// <summary>The client's process.</summary>
    public int ClientPid => OwnerWord.PidOf(_clientOwner);

    /// <summary>The request's bytes (a copy: this process's own).</summary>
    public ReadOnlySpan<byte> Span => _bytes;

    /// <summary>The request's bytes (a copy: this process's own).</summary>
    public ReadOnlyMemory<byte> Memory => _bytes;

    /// <summary>True once <see cref="Complete"/> or <see cref="Dispose"/> ended it, or its client abandoned it.</summary>
    public bool IsCompleted => Volatile.Read(ref _done) != 0;

    /// <summary>Sends one response (more may follow), waiting as long as the client's buffered responses leave no room.</summary>
    /// <param name="response">At most <see cref="RequestResponseConfig.MaxResponseBytes"/> bytes.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentException"><paramref name="response"/> is longer than the maximum.</exception>
    /// <exception cref="InvalidOperationException">The request was completed already.</exception>
    /// <exception cref="RequestAbandonedException">The client cancelled the request or died: the response was not delivered.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public void Respond(ReadOnlySpan<byte> response, CancellationToken cancellationToken = default)
    {
        if (!TryRespond(response, Timeout.InfiniteTimeSpan, cancellationToken))
        {
            throw new TimeoutException();
        }
    }

    /// <summary>Sends one response (more may follow), waiting up to <paramref name="timeout"/> for room.</summary>
    /// <param name="response">At most <see cref="RequestResponseConfig.MaxResponseBytes"/> bytes.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to try once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if the client's buffered responses left no room within the timeout (nothing was sent).</returns>
    /// <exception cref="ArgumentException"><paramref name="response"/> is longer than the maximum.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">The request was completed already.</exception>
    /// <exception cref="RequestAbandonedException">The client cancelled the request or died: the response was not delivered.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public bool TryRespond(ReadOnlySpan<byte> response, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        if (response.Length > _layout.MaxResponse)
        {
            throw new ArgumentException($"A response of the service '{_service.Name}' is at most {_layout.MaxResponse} bytes; this one is {response.Length}.", nameof(response));
        }
        long deadline = ServiceInterop.Deadline(timeout);
        byte* at = _service.At(_slot);
        int* toServer = (int*)(at + RequestResponseLayout.ToServer);
        while (true)
        {
            if (IsCompleted)
            {
                throw new InvalidOperationException($"Request {RequestId} of the service '{_service.Name}' was completed already.");
            }
            int signal = Volatile.Read(ref *toServer);
            CheckStillOurs();
            uint tail = Volatile.Read(ref *(uint*)(at + RequestResponseLayout.ResponseTail));
            uint used = _head - tail;
            if (used > (uint)_layout.ResponseDepth)
            {
                throw _service.Segment.Corrupt("response ring tail", _slot + RequestResponseLayout.ResponseTail, tail, $"{_head - (uint)_layout.ResponseDepth} to {_head} (the ring's head and capacity)", _client);
            }
            if (used < (uint)_layout.ResponseDepth)
            {
                byte* entry = _service.At(_layout.Entry(_slot, _head));
                *(long*)(entry + RequestResponseLayout.EntryId) = RequestId;
                *(int*)(entry + RequestResponseLayout.EntryLength) = response.Length;
                response.CopyTo(new Span<byte>(entry + RequestResponseLayout.EntryHeaderBytes, response.Length));
                _head++;
                Interlocked.Exchange(ref *(uint*)(at + RequestResponseLayout.ResponseHead), _head); // full fence: the entry before the head
                RequestResponseService.Signal((int*)(at + RequestResponseLayout.ToClient));
                return true;
            }
            if (!ClientAlive())
            {
                Abandon(0);
                throw new RequestAbandonedException(_service.Name, RequestId, ClientPid, died: true);
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                return false;
            }
            RequestResponseService.Sleep(toServer, signal, (int*)(at + RequestResponseLayout.ServerWaiting), deadline, cancellationToken);
        }
    }

    /// <summary>
    /// Ends the stream of responses: the client receives what was sent, then the end. Does nothing if
    /// it was completed already; if the client cancelled the request meanwhile (it wants nothing more,
    /// so nothing is lost), frees its slot without complaint.
    /// </summary>
    /// <exception cref="SharedMemoryCorruptedException">The request's slot holds an impossible value.</exception>
    public void Complete()
    {
        if (IsCompleted)
        {
            return;
        }
        ulong done = OwnerWord.WithState(_taken, RequestResponseLayout.Done);
        ulong cancelled = OwnerWord.WithState(_taken, RequestResponseLayout.Cancelled);
        for (int attempt = 0; attempt < 2; attempt++) // taken -> done, unless the client made it cancelled first
        {
            ulong seen = Interlocked.CompareExchange(ref *(ulong*)_service.At(_slot), done, _taken);
            if (seen == _taken)
            {
                RequestResponseService.Signal((int*)_service.At(_slot + RequestResponseLayout.ToClient));
                Finish();
                return;
            }
            if (seen == cancelled)
            {
                Abandon(cancelled);
                return;
            }
        }
        CheckStillOurs(); // neither: corruption, reported
    }

    /// <summary>Completes the request if it was not (never throws), and releases its hold on the service.</summary>
    public void Dispose()
    {
        if (ServiceInterop.InForkedChild && ServiceInterop.Self().Pid != OwnerWord.PidOf(_taken))
        {
            Finish(); // a forked child's copy: the request is its parent's to complete
            return;
        }
        try
        {
            Complete();
        }
        catch (Exception failure) when (failure is RequestAbandonedException or SharedMemoryCorruptedException)
        {
            // Disposing reports nothing: the client is gone or the slot corrupt, and the request is ours no more.
            Finish();
        }
    }

    /// <summary>Throws if the slot's word is not this server's take any more: the client cancelled (the slot is freed), or corruption.</summary>
    private void CheckStillOurs()
    {
        ulong word = _service.ReadWord(_slot, _client);
        if (word == _taken)
        {
            return;
        }
        if (word == OwnerWord.WithState(_taken, RequestResponseLayout.Cancelled))
        {
            bool died = !ClientAlive();
            Abandon(word);
            throw new RequestAbandonedException(_service.Name, RequestId, ClientPid, died);
        }
        Finish();
        throw _service.Segment.Corrupt("request slot word", _slot, (long)word, $"0x{_taken:X16} (taken by this server) or the same cancelled", _client);
    }

    /// <summary>Frees the slot held as <paramref name="seen"/> (0: as taken) and tells the client's side.</summary>
    private void Abandon(ulong seen)
    {
        Interlocked.CompareExchange(ref *(ulong*)_service.At(_slot), 0, seen == 0 ? _taken : seen);
        RequestResponseService.Signal((int*)_service.At(_slot + RequestResponseLayout.ToClient));
        Finish();
    }

    private bool ClientAlive() =>
        Volatile.Read(ref *(ulong*)_service.At(_layout.ClientSlot(_client))) == _clientOwner && ServiceInterop.IsAlive(OwnerWord.PidOf(_clientOwner), OwnerWord.StartOf(_clientOwner));

    private void Finish()
    {
        if (Interlocked.Exchange(ref _done, 1) == 0)
        {
            _service.Segment.Release();
        }
    }
}
