using System;
using System.IO;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A request-response service, found by name by any process (forked, spawned, unrelated): clients
/// (<see cref="CreateClient"/>) send requests, servers (<see cref="CreateServer"/>) take each request
/// (exactly one server takes it) and answer it with one response or a stream of responses, correlated
/// to it by its request id.
/// </summary>
/// <remarks>
/// <para>Requests and responses are copied through per-client request slots in the segment (simple
/// and bounded rather than zero copy): a request is at most <see cref="RequestResponseConfig.MaxRequestBytes"/>,
/// each response at most <see cref="RequestResponseConfig.MaxResponseBytes"/>.</para>
/// <para>A server that dies fails the requests it had taken: each client waiting on one gets
/// <see cref="ServerDiedException"/> naming the process. A request no server has taken yet stays
/// queued for another server, up to the client's timeout. A client that dies has its queued
/// requests dropped by the servers, and a server answering one of its taken requests is told so
/// (<see cref="RequestAbandonedException"/>). The segment is untrusted: every value read from it is
/// read once and checked (<see cref="SharedMemoryCorruptedException"/>).</para>
/// </remarks>
public sealed unsafe class RequestResponseService : IDisposable
{
    /// <summary>The longest sleep between looks at a peer's liveness, the token and disposal.</summary>
    internal static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(20);

    private int _disposed;

    private RequestResponseService(ServiceSegment segment, RequestResponseConfig config, RequestResponseLayout layout)
    {
        Segment = segment;
        Config = config;
        Layout = layout;
    }

    /// <summary>The service's name (its segment is <c>/dev/shm/shm-service.</c> and this name).</summary>
    public string Name => Segment.Name;

    /// <summary>The configuration stored in the segment.</summary>
    public RequestResponseConfig Config { get; }

    /// <summary>True if this process created the service (rather than opened it).</summary>
    public bool Created => Segment.Created;

    internal ServiceSegment Segment { get; }

    internal RequestResponseLayout Layout { get; }

    /// <summary>Creates the request-response service <paramref name="name"/>; fails if a service of that name exists.</summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">Its static configuration.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="ShmException">EEXIST if a service of that name exists; ENOSPC if /dev/shm lacks room; EACCES...</exception>
    public static RequestResponseService Create(string name, RequestResponseConfig config) => Acquire(name, config, create: true, open: false);

    /// <summary>Opens the existing request-response service <paramref name="name"/>, waiting up to 5 s for a creator still initialising it.</summary>
    /// <param name="name">The service's name.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name, or /dev/shm holds something else under it.</exception>
    /// <exception cref="ShmException">ENOENT if there is no such service; EACCES if its mode forbids it.</exception>
    /// <exception cref="InvalidOperationException">It is another kind of service, or of another layout version.</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static RequestResponseService Open(string name) => Acquire(name, null, create: false, open: true);

    /// <summary>
    /// Opens the request-response service <paramref name="name"/> if it exists, creates it otherwise:
    /// race-free between processes starting together (one creates, the others wait for it, up to 5 s).
    /// </summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">The configuration to create it with; an existing service must have exactly this one.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="InvalidOperationException">The existing service has another configuration (the message names the field, its value and the one asked for), or is another kind.</exception>
    /// <exception cref="ShmException">ENOSPC, EACCES...</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static RequestResponseService CreateOrOpen(string name, RequestResponseConfig config) => Acquire(name, config, create: true, open: true);

    private static RequestResponseService Acquire(string name, RequestResponseConfig? requested, bool create, bool open)
    {
        if (create)
        {
            ArgumentNullException.ThrowIfNull(requested);
        }
        RequestResponseLayout? wanted = requested?.Layout();
        RequestResponseConfig? stored = null;
        RequestResponseLayout? layout = null;
        UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | (requested?.ShareWithGroup == true ? UnixFileMode.GroupRead | UnixFileMode.GroupWrite : 0);
        ServiceSegment segment = ServiceSegment.Acquire(name, ServiceKind.RequestResponse, create, open, wanted?.TotalBytes ?? 0, mode,
            create ? header => RequestResponseLayout.Write((byte*)header, requested!) : null,
            opened =>
            {
                (stored, layout) = RequestResponseLayout.Read(opened);
                if (requested?.Mismatch(stored) is string mismatch)
                {
                    throw new InvalidOperationException($"The service '{name}' exists with another configuration: {mismatch}.");
                }
            });
        if (segment.Created)
        {
            (stored, layout) = (requested! with { ShareWithGroup = false }, wanted);
        }
        return new RequestResponseService(segment, stored!, layout!);
    }

    /// <summary>Attaches a client: takes a free client slot (or one whose process died, cancelling what it left).</summary>
    /// <exception cref="InvalidOperationException"><see cref="RequestResponseConfig.MaxClients"/> live clients are attached.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A slot holds an impossible value.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public Client CreateClient()
    {
        ThrowIfDisposed();
        return new Client(this);
    }

    /// <summary>Attaches a server: takes a free server slot (or one whose process died).</summary>
    /// <exception cref="InvalidOperationException"><see cref="RequestResponseConfig.MaxServers"/> live servers are attached.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A slot holds an impossible value.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public Server CreateServer()
    {
        ThrowIfDisposed();
        return new Server(this);
    }

    /// <summary>
    /// Releases this object's hold on the service. Clients and servers hold it on their own until they
    /// are disposed; the last holder in this process leaves the service, and removes its name if no
    /// other process uses it.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Segment.Release();
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>A client or server holds the segment (mapped, and the service joined) until it releases it.</summary>
    internal void Attach()
    {
        ThrowIfDisposed();
        if (!Segment.AddReference())
        {
            throw new ObjectDisposedException(nameof(RequestResponseService));
        }
    }

    internal byte* At(long offset) => Segment.Base + offset;

    internal int* RequestSignal => (int*)(Segment.Base + RequestResponseLayout.RequestSignal);

    internal int* RequestWaiters => (int*)(Segment.Base + RequestResponseLayout.RequestWaiters);

    /// <summary>A participant slot's owner word, read once and checked: 0, attaching or attached.</summary>
    internal ulong ReadOwner(long offset, string role, int slot)
    {
        ulong word = Volatile.Read(ref *(ulong*)At(offset));
        if (!OwnerWord.IsValid(word) || (word != 0 && OwnerWord.StateOf(word) is not (OwnerWord.Attaching or OwnerWord.Attached)))
        {
            throw Segment.Corrupt($"request-response {role} slot owner", offset, (long)word, "0 (free), or an attaching or attached owner word with a pid from 1 to 4194303", slot);
        }
        return word;
    }

    /// <summary>A request slot's word, read once and checked.</summary>
    internal ulong ReadWord(long slot, int client)
    {
        ulong word = Volatile.Read(ref *(ulong*)At(slot + RequestResponseLayout.Word));
        return RequestResponseLayout.IsValidWord(word) ? word : throw Segment.Corrupt("request slot word", slot + RequestResponseLayout.Word, (long)word, RequestResponseLayout.ExpectedWord, client);
    }

    /// <summary>Takes a free participant slot of <paramref name="count"/> at <paramref name="first"/>, or one whose process died; its index.</summary>
    internal int Claim(long first, int count, string role, ulong attaching)
    {
        for (int i = 0; i < count; i++)
        {
            long offset = first + ((long)i * RequestResponseLayout.SlotBytes);
            ulong owner = ReadOwner(offset, role, i);
            if (owner != 0 && ServiceInterop.IsAlive(OwnerWord.PidOf(owner), OwnerWord.StartOf(owner)))
            {
                continue;
            }
            if (Interlocked.CompareExchange(ref *(ulong*)At(offset), attaching, owner) == owner)
            {
                if (Segment.IsRetired())
                {
                    Interlocked.CompareExchange(ref *(ulong*)At(offset), 0, attaching);
                    throw new InvalidOperationException($"The service '{Name}' is being removed by its last participant; open it again.");
                }
                return i;
            }
        }
        throw new InvalidOperationException($"The service '{Name}' has {count} live {role}s attached already (its configuration's maximum).");
    }

    /// <summary>Bumps a futex signal word and wakes its sleepers.</summary>
    internal static void Signal(int* word)
    {
        Interlocked.Increment(ref *word);
        ServiceInterop.FutexWakeAll(word);
    }

    /// <summary>Sleeps on <paramref name="word"/> while it is <paramref name="seen"/>, at most one <see cref="Slice"/> and not past <paramref name="deadline"/>; the token wakes it.</summary>
    internal static void Sleep(int* word, int seen, int* waiting, long deadline, CancellationToken cancellationToken)
    {
        long until = Math.Min(deadline, ServiceInterop.Deadline(Slice));
        Interlocked.Increment(ref *waiting);
        try
        {
            using CancellationTokenRegistration wake = ServiceInterop.WakeOnCancel(cancellationToken, word);
            if (Volatile.Read(ref *word) == seen && !cancellationToken.IsCancellationRequested)
            {
                ServiceInterop.FutexWait(word, seen, until);
            }
        }
        finally
        {
            Interlocked.Decrement(ref *waiting);
        }
    }

    internal static void CheckTimeout(TimeSpan timeout)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero or more, or Timeout.InfiniteTimeSpan.");
        }
    }
}
