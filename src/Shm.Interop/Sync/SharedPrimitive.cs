using System;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A synchronisation primitive that lives in 64 bytes of a shared region (one cache line), at an
/// offset or as a field of a typed struct (<see cref="SharedPrimitiveStorage"/>), so that every
/// process mapping the region uses the same one. The first word is its state: uninitialised (0),
/// initialising, or ready; the second names its kind and layout version. <c>Create</c> initialises
/// it once (and refuses one in use); <c>Open</c> waits out an initialisation in progress and
/// refuses bytes that are not a ready primitive of its kind, so no process ever uses a half-made one.
/// </summary>
/// <remarks>
/// The object holds a reference on the region's mapping for as long as it is not disposed, and a
/// thread asleep in it holds one more, so the memory cannot be unmapped under a waiting thread, not
/// even by a shutdown that disposes the object and its region while the thread still waits: that
/// wait ends with <see cref="ObjectDisposedException"/> when it next wakes (a release, its timeout or
/// token; a futex mutex's waiter within 100 ms), and the memory is unmapped then. Disposing it
/// releases its own reference only: the primitive itself lives as long as the memory (other
/// processes may be using it). The layout is documented for C in <c>include/shm/shm.h</c>.
/// </remarks>
public abstract unsafe class SharedPrimitive : IDisposable
{
    /// <summary>Bytes every primitive occupies: one cache line.</summary>
    public static readonly int Size = StorageSize;

    /// <summary>Offsets must be multiples of this (a pthread_mutex_t is 8-byte aligned).</summary>
    public static readonly int Alignment = 8;

    /// <summary><see cref="Size"/> as a constant, for <see cref="SharedPrimitiveStorage"/>'s layout.</summary>
    internal const int StorageSize = 64;

    internal const int Uninitialised = 0;
    internal const int Initialising = 0x54494E49; // "INIT"
    internal const int Ready = 0x59444552; // "REDY"

    private readonly SharedRegion _region;
    private int _disposed;

    /// <summary>The primitive's bytes; valid while the object is not disposed.</summary>
    private protected readonly int* Words;

    private protected SharedPrimitive(SharedRegion region, long offset, PrimitiveKind kind, bool create, TimeSpan initialisationTimeout, Action<nint>? initialise)
        : this(region, offset, Size, kind, create, initialisationTimeout, initialise) { }

    private protected SharedPrimitive(SharedRegion region, long offset, long size, PrimitiveKind kind, bool create, TimeSpan initialisationTimeout, Action<nint>? initialise)
    {
        ArgumentNullException.ThrowIfNull(region);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset > region.Length - size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"A {kind} needs {size} bytes at the offset; the region holds {region.Length}.");
        }
        if (offset % Alignment != 0)
        {
            throw new ArgumentException($"Offset {offset} is not a multiple of {Alignment}: a {kind} must be {Alignment}-byte aligned.", nameof(offset));
        }
        if (!region.CanWrite)
        {
            throw new NotSupportedException($"A {kind} needs a writable region: waiting on it writes to it.");
        }
        SafeMappingHandle mapping = region.SafeMappingHandle;
        bool added = false;
        mapping.DangerousAddRef(ref added); // held until Dispose: the memory stays mapped while this object can touch it
        _region = region;
        Offset = offset;
        Kind = kind;
        Words = (int*)(mapping.DangerousGetHandle() + (nint)offset);
        try
        {
            if (create)
            {
                Create(kind, initialise!);
            }
            else
            {
                Open(kind, initialisationTimeout);
            }
        }
        catch
        {
            mapping.DangerousRelease();
            _disposed = 1;
            throw;
        }
    }

    /// <summary>Where the primitive lives in <see cref="Region"/>.</summary>
    public long Offset { get; }

    /// <summary>The region it lives in.</summary>
    public SharedRegion Region => _region;

    internal PrimitiveKind Kind { get; }

    private int KindWord => ((int)Kind << 16) | VersionOf(Kind);

    /// <summary>Releases this object's hold on the region. The primitive stays in the shared memory for the other processes.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            OnDispose();
            _region.SafeMappingHandle.DangerousRelease();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Called once by <see cref="Dispose"/>, before the region is released.</summary>
    private protected virtual void OnDispose()
    {
    }

    private protected bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    private protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    private void Create(PrimitiveKind kind, Action<nint> initialise)
    {
        int seen = Interlocked.CompareExchange(ref Words[0], Initialising, Uninitialised);
        if (seen != Uninitialised)
        {
            throw seen switch
            {
                Ready => new InvalidOperationException($"A {Describe(Words[1])} is already initialised at offset {Offset} and may be in use: open it instead of creating it."),
                Initialising => new InvalidOperationException($"Another process is initialising a primitive at offset {Offset}: open it instead of creating it."),
                _ => new InvalidOperationException($"The bytes at offset {Offset} are not zero and not a Shm primitive (state 0x{seen:X8}): create primitives in fresh, zeroed memory."),
            };
        }
        initialise((nint)Words);
        Words[1] = KindWord;
        Volatile.Write(ref Words[0], Ready);
        Libc.FutexWake(Words, int.MaxValue);
    }

    // Each pass reads the state once and checks the deadline: a peer that keeps the state at
    // "initialising", or flips it, costs at most the timeout, never a spin.
    private void Open(PrimitiveKind kind, TimeSpan initialisationTimeout)
    {
        Deadline deadline = Deadline.After(initialisationTimeout);
        while (true)
        {
            int state = Volatile.Read(ref Words[0]);
            if (state == Ready)
            {
                int kindWord = Volatile.Read(ref Words[1]);
                if (kindWord != KindWord)
                {
                    throw new InvalidOperationException($"Offset {Offset} holds a {Describe(kindWord)}, not a {kind} (layout version {VersionOf(kind)}).");
                }
                return;
            }
            if (state != Initialising)
            {
                throw new InvalidOperationException(state == Uninitialised
                    ? $"No {kind} was created at offset {Offset}: the bytes are still zero. Create it first (Create or OpenOrCreate)."
                    : $"The bytes at offset {Offset} are not a Shm primitive (state 0x{state:X8}).");
            }
            if (deadline.HasPassed)
            {
                throw new TimeoutException($"The {kind} at offset {Offset} was still being initialised after {initialisationTimeout.TotalSeconds:0.#} s; its creator may have died while initialising it.");
            }
            SleepWhile(Words, Initialising, deadline);
        }
    }

    private static string Describe(int kindWord)
    {
        var kind = (PrimitiveKind)(kindWord >> 16);
        int version = kindWord & 0xFFFF;
        string name = Enum.IsDefined(kind) ? kind.ToString() : $"primitive of unknown kind {(int)kind}";
        return version == VersionOf(kind) ? name : $"{name} of layout version {version}";
    }

    private static int VersionOf(PrimitiveKind kind) => PrimitiveKinds.LayoutVersion(kind);

    /// <summary>
    /// Holds the region's mapping for a thread about to sleep in this primitive: a shutdown may
    /// dispose this object and its region meanwhile, and the munmap must wait until the sleeper has
    /// woken and left (else its next look at the word, or its token's wake, reaches unmapped memory).
    /// Taken only on the paths that sleep, so the others cost nothing more. Disposing the lease lets
    /// go: if the region was disposed meanwhile, it is unmapped then.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This object and its region were disposed already.</exception>
    private protected SafeHandleLease PinMapping() => new(_region.SafeMappingHandle);

    /// <summary>
    /// Sleeps while <c>*word == expected</c>, until woken or <paramref name="deadline"/>. Returns at
    /// once if the word differs: callers loop, reading the word again and checking the deadline each time.
    /// </summary>
    private protected static void SleepWhile(int* word, int expected, Deadline deadline)
    {
        if (deadline.IsNever)
        {
            Libc.FutexWait(word, expected, null);
            return;
        }
        Libc.TimeSpec until = deadline.ToTimeSpec(Libc.CLOCK_MONOTONIC);
        Libc.FutexWait(word, expected, &until);
    }

    /// <summary>An impossible value in word <paramref name="index"/> of this primitive, for <see cref="SharedMemoryCorruptedException"/>.</summary>
    private protected SharedMemoryCorruptedException Corrupted(string field, int index, long value, string expected) =>
        new($"{Kind} {field}", Offset + (index * sizeof(int)), value, expected);

    /// <summary>The default time Open waits for a primitive another process is initialising.</summary>
    private protected static readonly TimeSpan DefaultInitialisationTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The primitive's first byte, for layouts larger than a few words.</summary>
    private protected byte* Bytes => (byte*)Words;
}
