using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A client of a <see cref="RequestResponseService"/> (it holds a client slot): sends requests, each
/// answered through its <see cref="PendingResponse"/>. Thread-safe for sending; each pending response
/// is received by one thread at a time. A forked child's copy is its parent's client: use it from one
/// of the two only (its dispose in the child leaves the slot to the parent).
/// </summary>
public sealed unsafe class Client : IDisposable
{
    private readonly RequestResponseService _service;
    private readonly RequestResponseLayout _layout;
    private readonly ulong _owner;
    private readonly int _slot;

    // Which of this client's request slots a pending response holds: private, never read from shared memory.
    private readonly PendingResponse?[] _pending;
    private readonly object _lock = new();
    private long _nextId;
    private int _disposed;

    internal Client(RequestResponseService service)
    {
        _service = service;
        _layout = service.Layout;
        _pending = new PendingResponse?[_layout.QueueDepth];
        service.Attach();
        try
        {
            (int pid, uint start) = ServiceInterop.Self();
            _owner = OwnerWord.Of(OwnerWord.Attached, pid, start);
            ulong attaching = OwnerWord.WithState(_owner, OwnerWord.Attaching);
            _slot = service.Claim(_layout.ClientSlots, _layout.MaxClients, "client", attaching);
            try
            {
                Sweep();
            }
            catch
            {
                Interlocked.CompareExchange(ref *(ulong*)service.At(_layout.ClientSlot(_slot)), 0, attaching);
                throw;
            }
            if (Interlocked.CompareExchange(ref *(ulong*)service.At(_layout.ClientSlot(_slot)), _owner, attaching) != attaching)
            {
                throw new InvalidOperationException($"The service '{service.Name}': client slot {_slot} was changed by another process while this one attached.");
            }
        }
        catch
        {
            service.Segment.Release();
            throw;
        }
    }

    /// <summary>The service this client sends to.</summary>
    public RequestResponseService Service => _service;

    internal RequestResponseService ServiceObject => _service;

    internal RequestResponseLayout Layout => _layout;

    internal ulong QueuedWord => OwnerWord.WithState(_owner, RequestResponseLayout.Queued);

    /// <summary>
    /// Sends <paramref name="request"/> (copied into the service) and returns its pending response.
    /// Waits only while every request slot of this client is held by a cancelled request that a live
    /// server has not let go yet.
    /// </summary>
    /// <param name="request">The request's bytes, at most <see cref="RequestResponseConfig.MaxRequestBytes"/>.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentException"><paramref name="request"/> is longer than the maximum.</exception>
    /// <exception cref="InvalidOperationException"><see cref="RequestResponseConfig.QueueDepth"/> responses of this client are pending: receive or dispose one first.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public PendingResponse Send(ReadOnlySpan<byte> request, CancellationToken cancellationToken = default) =>
        TrySend(request, out PendingResponse? pending, Timeout.InfiniteTimeSpan, cancellationToken) ? pending! : throw new TimeoutException();

    /// <summary>Sends <paramref name="request"/> without waiting: false if no request slot is free now.</summary>
    /// <param name="request">The request's bytes, at most <see cref="RequestResponseConfig.MaxRequestBytes"/>.</param>
    /// <param name="pending">Its pending response; null when false is returned.</param>
    /// <exception cref="ArgumentException"><paramref name="request"/> is longer than the maximum.</exception>
    /// <exception cref="InvalidOperationException"><see cref="RequestResponseConfig.QueueDepth"/> responses of this client are pending: receive or dispose one first.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public bool TrySend(ReadOnlySpan<byte> request, [NotNullWhen(true)] out PendingResponse? pending) => TrySend(request, out pending, TimeSpan.Zero);

    /// <summary>Sends <paramref name="request"/>, waiting up to <paramref name="timeout"/> for a request slot a live server still holds after a cancellation.</summary>
    /// <param name="request">The request's bytes, at most <see cref="RequestResponseConfig.MaxRequestBytes"/>.</param>
    /// <param name="pending">Its pending response; null when false is returned.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if no request slot came free within the timeout.</returns>
    /// <exception cref="ArgumentException"><paramref name="request"/> is longer than the maximum.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException"><see cref="RequestResponseConfig.QueueDepth"/> responses of this client are pending: receive or dispose one first.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public bool TrySend(ReadOnlySpan<byte> request, [NotNullWhen(true)] out PendingResponse? pending, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        if (request.Length > _layout.MaxRequest)
        {
            throw new ArgumentException($"A request of the service '{_service.Name}' is at most {_layout.MaxRequest} bytes; this one is {request.Length}.", nameof(request));
        }
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int signal;
            long waitOn;
            lock (_lock)
            {
                ThrowIfDisposed();
                int free = FindFree(out int held, out signal, out waitOn);
                if (free >= 0)
                {
                    pending = Queue(free, request);
                    return true;
                }
                if (held == _pending.Length)
                {
                    throw new InvalidOperationException($"The client of '{_service.Name}' has {held} responses pending (its QueueDepth): receive or dispose one first.");
                }
            }
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                pending = null;
                return false;
            }
            // A slot cancelled while a live server holds it: that server bumps its to-client signal when it lets go.
            RequestResponseService.Sleep((int*)_service.At(waitOn + RequestResponseLayout.ToClient), signal, (int*)_service.At(waitOn + RequestResponseLayout.ClientWaiting), deadline, cancellationToken);
        }
    }

    /// <summary>A free request slot (reclaiming those of dead servers), or -1 with how many this client's pending responses hold and a slot to wait on.</summary>
    private int FindFree(out int held, out int signal, out long waitOn)
    {
        held = 0;
        signal = 0;
        waitOn = 0;
        for (int i = 0; i < _pending.Length; i++)
        {
            if (_pending[i] is not null)
            {
                held++;
                continue;
            }
            long slot = _layout.RequestSlot(_slot, i);
            int seen = Volatile.Read(ref *(int*)_service.At(slot + RequestResponseLayout.ToClient));
            ulong word = _service.ReadWord(slot, _slot);
            if (word == 0)
            {
                return i;
            }
            if (OwnerWord.StateOf(word) != RequestResponseLayout.Cancelled)
            {
                throw _service.Segment.Corrupt("request slot word", slot, (long)word, "0 (free) or cancelled: no request of this client is pending there", _slot);
            }
            if (!ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word)) && Interlocked.CompareExchange(ref *(ulong*)_service.At(slot), 0, word) == word)
            {
                return i;
            }
            (signal, waitOn) = (seen, slot);
        }
        return -1;
    }

    private PendingResponse Queue(int i, ReadOnlySpan<byte> request)
    {
        long slot = _layout.RequestSlot(_slot, i);
        byte* at = _service.At(slot);
        long id = ++_nextId;
        *(long*)(at + RequestResponseLayout.RequestId) = id;
        *(int*)(at + RequestResponseLayout.RequestLength) = request.Length;
        *(uint*)(at + RequestResponseLayout.ResponseHead) = 0;
        *(uint*)(at + RequestResponseLayout.ResponseTail) = 0;
        request.CopyTo(new Span<byte>(at + RequestResponseLayout.RequestBytes, request.Length));
        var pending = new PendingResponse(this, i, slot, id);
        _pending[i] = pending;
        Interlocked.Exchange(ref *(ulong*)at, QueuedWord); // full fence: the request before the word
        RequestResponseService.Signal(_service.RequestSignal);
        return pending;
    }

    /// <summary>Request slot <paramref name="i"/> is this client's to use again.</summary>
    internal void Free(int i, PendingResponse pending)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_pending[i], pending))
            {
                _pending[i] = null;
            }
        }
    }

    /// <summary>
    /// Frees every request slot a dead client left in this slot: queued and done ones at once, taken ones
    /// cancelled (their server frees them), cancelled ones whose server died.
    /// </summary>
    private void Sweep()
    {
        for (int i = 0; i < _pending.Length; i++)
        {
            long slot = _layout.RequestSlot(_slot, i);
            ulong word = _service.ReadWord(slot, _slot);
            int state = OwnerWord.StateOf(word);
            if (word == 0)
            {
                continue;
            }
            ulong next = state == RequestResponseLayout.Taken ? OwnerWord.WithState(word, RequestResponseLayout.Cancelled)
                : state == RequestResponseLayout.Cancelled && ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word)) ? word
                : 0;
            if (next != word && Interlocked.CompareExchange(ref *(ulong*)_service.At(slot), next, word) == word && next != 0)
            {
                RequestResponseService.Signal((int*)_service.At(slot + RequestResponseLayout.ToServer));
            }
        }
    }

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>True in a forked child holding its parent's client: the slot and the pending requests are the parent's, and are left alone.</summary>
    internal bool IsForeignCopy => ServiceInterop.InForkedChild && ServiceInterop.Self().Pid != OwnerWord.PidOf(_owner);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>Cancels every pending response, gives the client slot back and releases this client's hold on the service.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (!IsForeignCopy)
        {
            PendingResponse?[] pending;
            lock (_lock)
            {
                pending = (PendingResponse?[])_pending.Clone();
            }
            foreach (PendingResponse? one in pending)
            {
                one?.Cancel();
            }
            Interlocked.CompareExchange(ref *(ulong*)_service.At(_layout.ClientSlot(_slot)), 0, _owner);
        }
        _service.Segment.Release();
    }
}
