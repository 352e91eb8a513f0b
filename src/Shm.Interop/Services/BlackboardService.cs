using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A blackboard service, found by name by any process (forked, spawned, unrelated, or C): a table of
/// <see cref="BlackboardConfig.Keys"/> entries fixed at creation, keys 0 to <c>Keys - 1</c>, each
/// holding the latest value of an unmanaged type of <see cref="BlackboardConfig.ValueSize"/> bytes.
/// One writer at a time (<see cref="CreateWriter"/>); any number of readers, which are the service
/// objects themselves: reading takes no slot.
/// </summary>
/// <remarks>
/// <para>A seqlock per entry: a writer never waits for readers, and a reader never returns a torn
/// value (it copies the value between two reads of the entry's sequence and tries again if a write
/// was in flight). A reader that keeps meeting a write in flight does not spin for ever: after a few
/// tries it sleeps on the entry, bounded by its timeout or token; if the writer's process died in
/// the middle of writing that entry it gets <see cref="BlackboardWriterDiedException"/> naming the
/// process and the entry (and so does every later reader, until a writer writes the entry again).</para>
/// <para>An entry never written reads as zeros. The segment is untrusted: its configuration and slot
/// are read once and checked; a key is checked against the table's size computed from the
/// configuration, never against a value read from shared memory. A peer that may write the segment
/// can always write any value it likes into an entry; what it cannot do is make a reader return a
/// value torn between two writes, hang past its timeout, or read outside the segment.</para>
/// </remarks>
public sealed unsafe partial class BlackboardService : IDisposable
{
    /// <summary>Tries before a reader that keeps meeting a write in flight starts sleeping on the entry.</summary>
    private const int SpinAttempts = 64;

    /// <summary>The longest sleep between looks at the writer's liveness, the token and disposal.</summary>
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(10);

    private readonly object _writers = new();
    private int _disposed;

    private BlackboardService(ServiceSegment segment, BlackboardConfig config, BlackboardLayout layout)
    {
        Segment = segment;
        Config = config;
        Layout = layout;
        Entries = segment.Base + BlackboardLayout.EntriesOffset;
    }

    /// <summary>The service's name (its segment is <c>/dev/shm/shm-service.</c> and this name).</summary>
    public string Name => Segment.Name;

    /// <summary>The configuration stored in the segment.</summary>
    public BlackboardConfig Config { get; }

    /// <summary>True if this process created the service (rather than opened it).</summary>
    public bool Created => Segment.Created;

    internal ServiceSegment Segment { get; }

    internal BlackboardLayout Layout { get; }

    internal byte* Entries { get; }

    internal ulong* WriterSlot => (ulong*)(Segment.Base + BlackboardLayout.WriterSlot);

    /// <summary>Creates the blackboard <paramref name="name"/>, every entry zeros; fails if a service of that name exists.</summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">Its static configuration.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="ShmException">EEXIST if a service of that name exists; ENOSPC if /dev/shm lacks room; EACCES...</exception>
    public static BlackboardService Create(string name, BlackboardConfig config) => Acquire(name, config, create: true, open: false);

    /// <summary>Opens the existing blackboard <paramref name="name"/>, waiting up to 5 s for a creator still initialising it.</summary>
    /// <param name="name">The service's name.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name, or /dev/shm holds something else under it.</exception>
    /// <exception cref="ShmException">ENOENT if there is no such service; EACCES if its mode forbids it.</exception>
    /// <exception cref="InvalidOperationException">It is another kind of service, or of another layout version.</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static BlackboardService Open(string name) => Acquire(name, null, create: false, open: true);

    /// <summary>
    /// Opens the blackboard <paramref name="name"/> if it exists, creates it otherwise: race-free between
    /// processes starting together (one creates, the others wait for it, up to 5 s).
    /// </summary>
    /// <param name="name">1 to 243 bytes, no '/' and no NUL.</param>
    /// <param name="config">The configuration to create it with; an existing service must have exactly this one.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a valid service name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="config"/> is out of range (named).</exception>
    /// <exception cref="InvalidOperationException">The existing service has another configuration (the message names the field, its value and the one asked for), or is another kind.</exception>
    /// <exception cref="ShmException">ENOSPC, EACCES...</exception>
    /// <exception cref="TimeoutException">Its creator did not finish initialising it within 5 s.</exception>
    /// <exception cref="SharedMemoryCorruptedException">Its header or configuration is impossible.</exception>
    public static BlackboardService CreateOrOpen(string name, BlackboardConfig config) => Acquire(name, config, create: true, open: true);

    private static BlackboardService Acquire(string name, BlackboardConfig? requested, bool create, bool open)
    {
        if (create)
        {
            ArgumentNullException.ThrowIfNull(requested);
        }
        BlackboardLayout? wanted = requested?.Layout();
        BlackboardConfig? stored = null;
        BlackboardLayout? layout = null;
        UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | (requested?.ShareWithGroup == true ? UnixFileMode.GroupRead | UnixFileMode.GroupWrite : 0);
        ServiceSegment segment = ServiceSegment.Acquire(name, ServiceKind.Blackboard, create, open, wanted?.TotalBytes ?? 0, mode,
            create ? header => BlackboardLayout.Write((byte*)header, requested!) : null,
            opened =>
            {
                (stored, layout) = BlackboardLayout.Read(opened);
                if (requested?.Mismatch(stored) is string mismatch)
                {
                    throw new InvalidOperationException($"The service '{name}' exists with another configuration: {mismatch}.");
                }
            });
        if (segment.Created)
        {
            (stored, layout) = (requested! with { ShareWithGroup = false }, wanted);
        }
        return new BlackboardService(segment, stored!, layout!);
    }

    /// <summary>Attaches the writer: takes the service's writer slot (repairing what a dead writer left half written).</summary>
    /// <exception cref="InvalidOperationException">A live process holds the writer slot (one writer at a time; the message names it).</exception>
    /// <exception cref="SharedMemoryCorruptedException">The writer slot holds an impossible value.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public BlackboardWriter CreateWriter()
    {
        ThrowIfDisposed();
        return new BlackboardWriter(this);
    }

    /// <summary>Reads entry <paramref name="key"/>'s latest whole value, waiting as long as a write in flight takes.</summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="BlackboardWriterDiedException">The writer died in the middle of writing this entry.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public T Read<T>(int key, CancellationToken cancellationToken = default)
        where T : unmanaged =>
        TryRead(key, out T value, Timeout.InfiniteTimeSpan, cancellationToken) ? value : throw new TimeoutException();

    /// <summary>Reads entry <paramref name="key"/>'s latest whole value without sleeping: false if a write was in flight through every try.</summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="value">The value; default when false is returned.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="BlackboardWriterDiedException">The writer died in the middle of writing this entry.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public bool TryRead<T>(int key, out T value)
        where T : unmanaged
    {
        byte* entry = EntryOf<T>(key);
        if (TryOnce(entry, key, out value, out _) == Stable)
        {
            return true;
        }
        return Attempt(entry, key, out value, out _) == Stable;
    }

    /// <summary>Reads entry <paramref name="key"/>'s latest whole value, waiting up to <paramref name="timeout"/> for a write in flight to end.</summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="value">The value; default when false is returned.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to try without sleeping, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if a write was still in flight (or the entry kept changing) at the timeout.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table, or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="BlackboardWriterDiedException">The writer died in the middle of writing this entry.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed.</exception>
    public bool TryRead<T>(int key, out T value, TimeSpan timeout, CancellationToken cancellationToken = default)
        where T : unmanaged
    {
        CheckTimeout(timeout);
        byte* entry = EntryOf<T>(key);
        if (TryOnce(entry, key, out value, out _) == Stable)
        {
            return true;
        }
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            int outcome = Attempt(entry, key, out value, out uint seen);
            if (outcome == Stable)
            {
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            ThrowIfDisposed();
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline)
            {
                return false;
            }
            if (outcome == InFlight)
            {
                SleepOn(entry, seen, Math.Min(deadline, now + (long)(Slice.TotalSeconds * Stopwatch.Frequency)), cancellationToken);
            }
            else
            {
                Thread.Yield(); // changing under every try: let the writer (or whoever bumps it) run
            }
        }
    }

    /// <summary>
    /// Releases this object's hold on the service and ends its pending asynchronous reads
    /// (<see cref="ObjectDisposedException"/>); a writer refuses further use but still leaves its slot
    /// when disposed. The last holder in this process leaves the service, and removes its name if no
    /// other process uses it.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        ServiceInterop.Abandon(this);
        Segment.Release();
    }

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>A writer holds the segment (mapped, and the service joined) until <see cref="Detach"/>.</summary>
    internal void Attach()
    {
        lock (_writers)
        {
            ThrowIfDisposed();
            if (!Segment.AddReference())
            {
                throw new ObjectDisposedException(nameof(BlackboardService));
            }
        }
    }

    internal void Detach() => Segment.Release();

    private const int Stable = 0, InFlight = 1, Changed = 2;

    internal static void CheckTimeout(TimeSpan timeout)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero or more, or Timeout.InfiniteTimeSpan.");
        }
    }

    private long OffsetOf(void* address) => (byte*)address - Segment.Base;

    /// <summary>Entry <paramref name="key"/>, checked against the table's size (from the configuration), for values of type <typeparamref name="T"/>.</summary>
    internal byte* EntryOf<T>(int key)
        where T : unmanaged
    {
        ThrowIfDisposed();
        CheckValueType<T>();
        return Entries + (CheckKey(key) * Layout.Stride);
    }

    internal int CheckKey(int key) =>
        (uint)key < (uint)Layout.Keys ? key : throw new ArgumentOutOfRangeException(nameof(key), key, $"The blackboard '{Name}' has keys 0 to {Layout.Keys - 1}.");

    internal void CheckValueType<T>()
        where T : unmanaged
    {
        if (sizeof(T) != Layout.ValueSize)
        {
            throw new ArgumentException($"The blackboard '{Name}' holds values of {Layout.ValueSize} bytes; {typeof(T).Name} is {sizeof(T)} bytes.", nameof(T));
        }
    }

    /// <summary>One seqlock read: <see cref="Stable"/> with the value, or why not (and the sequence seen first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int TryOnce<T>(byte* entry, int key, out T value, out uint seen)
        where T : unmanaged
    {
        uint* sequence = (uint*)(entry + BlackboardLayout.Sequence);
        seen = Volatile.Read(ref *sequence);
        if ((seen & 1) != 0)
        {
            value = default;
            return InFlight;
        }
        value = Unsafe.ReadUnaligned<T>(entry + BlackboardLayout.Value);
        uint tornBy = *(uint*)(entry + BlackboardLayout.TornBy);
        Volatile.ReadBarrier(); // the copies above are done before the sequence is read again
        if (Volatile.Read(ref *sequence) != seen)
        {
            return Changed;
        }
        if (tornBy != 0)
        {
            value = default;
            throw tornBy < ServiceInterop.PidMaxLimit
                ? new BlackboardWriterDiedException(Name, key, (int)tornBy)
                : Segment.Corrupt("blackboard entry torn-by pid", OffsetOf(entry + BlackboardLayout.TornBy), tornBy, "0, or the pid (below 4194304) of a writer that died writing the entry", key);
        }
        return Stable;
    }

    /// <summary>Up to <see cref="SpinAttempts"/> reads; a write found in flight at the end is checked against the writer's liveness (which may throw).</summary>
    private int Attempt<T>(byte* entry, int key, out T value, out uint seen)
        where T : unmanaged
    {
        var spinner = default(SpinWait);
        int outcome = Changed;
        seen = 0;
        value = default;
        for (int attempt = 0; attempt < SpinAttempts; attempt++)
        {
            outcome = TryOnce(entry, key, out value, out seen);
            if (outcome == Stable)
            {
                return Stable;
            }
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        if (outcome == InFlight)
        {
            CheckWriter(entry, key, seen);
        }
        return outcome;
    }

    /// <summary>
    /// With entry <paramref name="key"/>'s sequence odd (<paramref name="seen"/>): returns if a live writer
    /// holds the slot, or if the sequence moved meanwhile; throws if the sequence is still odd under a
    /// writer that died (<see cref="BlackboardWriterDiedException"/>) or with no writer at all (corruption).
    /// </summary>
    private void CheckWriter(byte* entry, int key, uint seen)
    {
        ulong owner = Volatile.Read(ref *WriterSlot);
        if (!OwnerWord.IsValid(owner) || (owner != 0 && OwnerWord.StateOf(owner) is not (OwnerWord.Attaching or OwnerWord.Attached)))
        {
            throw Segment.Corrupt("blackboard writer slot owner", BlackboardLayout.WriterSlot, (long)owner, "0 (free), or an attaching or attached owner word with a pid from 1 to 4194303");
        }
        if (owner != 0 && ServiceInterop.IsAlive(OwnerWord.PidOf(owner), OwnerWord.StartOf(owner)))
        {
            return;
        }
        if (Volatile.Read(ref *(uint*)(entry + BlackboardLayout.Sequence)) != seen)
        {
            return; // it moved after the owner was read: no verdict on this look
        }
        throw owner == 0
            ? Segment.Corrupt("blackboard entry sequence", OffsetOf(entry), seen, "an even sequence (no write in flight) while no writer is attached", key)
            : new BlackboardWriterDiedException(Name, key, OwnerWord.PidOf(owner));
    }

    /// <summary>Sleeps while the entry's sequence is <paramref name="seen"/>, counted in its waiters so the writer wakes it.</summary>
    private static void SleepOn(byte* entry, uint seen, long until, CancellationToken cancellationToken)
    {
        int* sequence = (int*)(entry + BlackboardLayout.Sequence);
        int* waiters = (int*)(entry + BlackboardLayout.Waiters);
        Interlocked.Increment(ref *waiters);
        try
        {
            using CancellationTokenRegistration wake = ServiceInterop.WakeOnCancel(cancellationToken, sequence);
            if (Volatile.Read(ref *sequence) == (int)seen && !cancellationToken.IsCancellationRequested)
            {
                ServiceInterop.FutexWait(sequence, (int)seen, until);
            }
        }
        finally
        {
            Interlocked.Decrement(ref *waiters);
        }
    }

    /// <summary>The watcher's wait for entry <paramref name="key"/> to hold a whole value; its value in <paramref name="result"/>.</summary>
    private Task<bool> WatchEntry<T>(int key, StrongBox<T> result, TimeSpan timeout, CancellationToken cancellationToken)
        where T : unmanaged
    {
        byte* entry = EntryOf<T>(key);
        int seen = Volatile.Read(ref *(int*)(entry + BlackboardLayout.Sequence));
        return ServiceInterop.WatchAsync(this, Segment.Mapping, (int*)(entry + BlackboardLayout.Sequence), seen, (int*)(entry + BlackboardLayout.Waiters),
            () =>
            {
                ThrowIfDisposed();
                bool stable = Attempt(Entries + (key * Layout.Stride), key, out T value, out _) == Stable;
                result.Value = value;
                return stable;
            },
            timeout, cancellationToken, Slice);
    }
}
