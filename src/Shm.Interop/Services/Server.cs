using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A server of a <see cref="RequestResponseService"/> (it holds a server slot): takes requests, each
/// taken by exactly one server, and answers each through its <see cref="ActiveRequest"/>. Thread-safe
/// for receiving. A request it has taken names this process: if the process dies, the request's client
/// gets <see cref="ServerDiedException"/>. A forked child's copy is its parent's server: use it from one
/// of the two only.
/// </summary>
public sealed unsafe partial class Server : IDisposable
{
    private readonly RequestResponseService _service;
    private readonly RequestResponseLayout _layout;
    private readonly ulong _owner;
    private readonly int _slot;
    private int _next;
    private int _disposed;

    internal Server(RequestResponseService service)
    {
        _service = service;
        _layout = service.Layout;
        service.Attach();
        try
        {
            (int pid, uint start) = ServiceInterop.Self();
            _owner = OwnerWord.Of(OwnerWord.Attached, pid, start);
            ulong attaching = OwnerWord.WithState(_owner, OwnerWord.Attaching);
            _slot = service.Claim(RequestResponseLayout.ServerSlots, _layout.MaxServers, "server", attaching);
            if (Interlocked.CompareExchange(ref *(ulong*)service.At(_layout.ServerSlot(_slot)), _owner, attaching) != attaching)
            {
                throw new InvalidOperationException($"The service '{service.Name}': server slot {_slot} was changed by another process while this one attached.");
            }
        }
        catch
        {
            service.Segment.Release();
            throw;
        }
    }

    /// <summary>The service this server answers.</summary>
    public RequestResponseService Service => _service;

    /// <summary>Takes the next request, waiting as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public ActiveRequest Receive(CancellationToken cancellationToken = default) =>
        TryReceive(out ActiveRequest? request, Timeout.InfiniteTimeSpan, cancellationToken) ? request! : throw new TimeoutException();

    /// <summary>Takes a request if one is queued now.</summary>
    /// <param name="request">The request; null when false is returned.</param>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public bool TryReceive([NotNullWhen(true)] out ActiveRequest? request) => TryReceive(out request, TimeSpan.Zero);

    /// <summary>Takes the next request, waiting up to <paramref name="timeout"/>.</summary>
    /// <param name="request">The request; null when false is returned.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if no request came within the timeout.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public bool TryReceive([NotNullWhen(true)] out ActiveRequest? request, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            ThrowIfDisposed();
            int signal = Volatile.Read(ref *_service.RequestSignal);
            request = TryTake();
            if (request is not null)
            {
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                return false;
            }
            RequestResponseService.Sleep(_service.RequestSignal, signal, _service.RequestWaiters, deadline, cancellationToken);
        }
    }

    /// <summary>Looks at every client once, from where the last take left off; takes the oldest queued request of the first client that has one.</summary>
    private ActiveRequest? TryTake()
    {
        int clients = _layout.MaxClients;
        int first = Volatile.Read(ref _next);
        for (int k = 0; k < clients; k++)
        {
            int c = (first + k) % clients;
            ActiveRequest? taken = TryTakeFrom(c);
            if (taken is not null)
            {
                Volatile.Write(ref _next, (c + 1) % clients);
                return taken;
            }
        }
        return null;
    }

    private ActiveRequest? TryTakeFrom(int c)
    {
        ulong owner = _service.ReadOwner(_layout.ClientSlot(c), "client", c);
        if (OwnerWord.StateOf(owner) != OwnerWord.Attached)
        {
            return null;
        }
        ulong queued = OwnerWord.WithState(owner, RequestResponseLayout.Queued);
        for (int attempt = 0; attempt <= _layout.QueueDepth; attempt++) // bounded: a peer flipping words cannot keep this server here
        {
            int oldest = Oldest(c, queued);
            if (oldest < 0)
            {
                return null;
            }
            if (!ServiceInterop.IsAlive(OwnerWord.PidOf(owner), OwnerWord.StartOf(owner)))
            {
                Drop(c, queued);
                return null;
            }
            long slot = _layout.RequestSlot(c, oldest);
            ulong taken = OwnerWord.WithState(_owner, RequestResponseLayout.Taken);
            if (Interlocked.CompareExchange(ref *(ulong*)_service.At(slot), taken, queued) == queued)
            {
                return Copy(c, slot, taken, owner);
            }
        }
        return null;
    }

    /// <summary>The queued request of client <paramref name="c"/> with the lowest id, or -1.</summary>
    private int Oldest(int c, ulong queued)
    {
        int oldest = -1;
        long oldestId = long.MaxValue;
        for (int i = 0; i < _layout.QueueDepth; i++)
        {
            long slot = _layout.RequestSlot(c, i);
            if (_service.ReadWord(slot, c) != queued)
            {
                continue;
            }
            long id = Volatile.Read(ref *(long*)_service.At(slot + RequestResponseLayout.RequestId));
            if (oldest < 0 || id < oldestId)
            {
                (oldest, oldestId) = (i, id);
            }
        }
        return oldest;
    }

    /// <summary>Frees the queued requests of a client whose process died: nobody waits for their responses.</summary>
    private void Drop(int c, ulong queued)
    {
        for (int i = 0; i < _layout.QueueDepth; i++)
        {
            Interlocked.CompareExchange(ref *(ulong*)_service.At(_layout.RequestSlot(c, i)), 0, queued);
        }
    }

    /// <summary>Copies a request this server has just taken out of its slot, its id and length read once and checked.</summary>
    private ActiveRequest Copy(int c, long slot, ulong taken, ulong client)
    {
        byte* at = _service.At(slot);
        long id = Volatile.Read(ref *(long*)(at + RequestResponseLayout.RequestId));
        int length = Volatile.Read(ref *(int*)(at + RequestResponseLayout.RequestLength));
        if ((uint)length > (uint)_layout.MaxRequest)
        {
            // Give the request back as done (its client ends without a response rather than wait on a live server), then report.
            if (Interlocked.CompareExchange(ref *(ulong*)at, OwnerWord.WithState(taken, RequestResponseLayout.Done), taken) == taken)
            {
                RequestResponseService.Signal((int*)(at + RequestResponseLayout.ToClient));
            }
            throw _service.Segment.Corrupt("request length", slot + RequestResponseLayout.RequestLength, length, $"0 to {_layout.MaxRequest} bytes (MaxRequestBytes)", c);
        }
        byte[] bytes = new ReadOnlySpan<byte>(at + RequestResponseLayout.RequestBytes, length).ToArray();
        return new ActiveRequest(_service, c, slot, taken, client, id, bytes);
    }

    /// <summary>True if some attached client has a request queued (the asynchronous wait's predicate).</summary>
    private bool HasQueued()
    {
        ThrowIfDisposed();
        for (int c = 0; c < _layout.MaxClients; c++)
        {
            ulong owner = _service.ReadOwner(_layout.ClientSlot(c), "client", c);
            if (OwnerWord.StateOf(owner) == OwnerWord.Attached && Oldest(c, OwnerWord.WithState(owner, RequestResponseLayout.Queued)) >= 0)
            {
                return true;
            }
        }
        return false;
    }

    private Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return ServiceInterop.WatchAsync(this, _service.Segment.Mapping, _service.RequestSignal, Volatile.Read(ref *_service.RequestSignal), _service.RequestWaiters, HasQueued, timeout, cancellationToken, RequestResponseService.Slice);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>
    /// Gives the server slot back and releases this server's hold on the service, and ends its pending
    /// asynchronous receives (<see cref="ObjectDisposedException"/>). Requests it has taken stay its own
    /// until each is completed or disposed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        ServiceInterop.Abandon(this);
        if (ServiceInterop.Self().Pid == OwnerWord.PidOf(_owner))
        {
            Interlocked.CompareExchange(ref *(ulong*)_service.At(_layout.ServerSlot(_slot)), 0, _owner);
        }
        _service.Segment.Release();
    }
}
