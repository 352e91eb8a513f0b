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
/// The object holds a reference on the region's mapping for as long as it is not disposed, so the
/// memory cannot be unmapped under a waiting thread. Disposing it releases that reference only:
/// the primitive itself lives as long as the memory (other processes may be using it). The layout is
/// documented for C in <c>include/shm/shm.h</c>.
/// </remarks>
public abstract unsafe class SharedPrimitive : IDisposable
{
    /// <summary>Bytes every primitive occupies: one cache line.</summary>
    public const int Size = 64;

    /// <summary>Offsets must be multiples of this (a pthread_mutex_t is 8-byte aligned).</summary>
    public const int Alignment = 8;

    internal const int Uninitialised = 0;
    internal const int Initialising = 0x54494E49; // "INIT"
    internal const int Ready = 0x59444552; // "REDY"
    internal const int LayoutVersion = 1;

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

    private protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

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

    private void Open(PrimitiveKind kind, TimeSpan initialisationTimeout)
    {
        long deadline = Child.Deadline(initialisationTimeout);
        while (true)
        {
            int state = Volatile.Read(ref Words[0]);
            if (state == Ready)
            {
                if (Words[1] != KindWord)
                {
                    throw new InvalidOperationException($"Offset {Offset} holds a {Describe(Words[1])}, not a {kind} (layout version {VersionOf(kind)}).");
                }
                return;
            }
            if (state != Initialising)
            {
                throw new InvalidOperationException(state == Uninitialised
                    ? $"No {kind} was created at offset {Offset}: the bytes are still zero. Create it first (Create or OpenOrCreate)."
                    : $"The bytes at offset {Offset} are not a Shm primitive (state 0x{state:X8}).");
            }
            long remaining = deadline - System.Diagnostics.Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                throw new TimeoutException($"The {kind} at offset {Offset} was still being initialised after {initialisationTimeout.TotalSeconds:0.#} s; its creator may have died while initialising it.");
            }
            Libc.TimeSpec until = Libc.DeadlineOn(Libc.CLOCK_MONOTONIC, TimeSpan.FromTicks((long)(remaining * (double)TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency)));
            Libc.FutexWaitUntil(Words, Initialising, &until);
        }
    }

    private static string Describe(int kindWord)
    {
        var kind = (PrimitiveKind)(kindWord >> 16);
        int version = kindWord & 0xFFFF;
        string name = Enum.IsDefined(kind) ? kind.ToString() : $"primitive of unknown kind {(int)kind}";
        return version == VersionOf(kind) ? name : $"{name} of layout version {version}";
    }

    /// <summary>The layout version of <paramref name="kind"/>: each kind's layout changes on its own.</summary>
    internal static int VersionOf(PrimitiveKind kind) => kind == PrimitiveKind.SharedChannel ? ChannelLayout.Version : LayoutVersion;

    /// <summary>The monotonic deadline <paramref name="timeout"/> from now, or null for <see cref="Timeout.InfiniteTimeSpan"/>.</summary>
    private protected static Libc.TimeSpec? DeadlineFor(TimeSpan timeout)
    {
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return null;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        return Libc.DeadlineOn(Libc.CLOCK_MONOTONIC, timeout);
    }

    /// <summary>
    /// The blocking wait of semaphores and events: sleeps on word <paramref name="index"/> (a shared
    /// futex) while it is 0, until <paramref name="tryTake"/> succeeds, the deadline passes or the
    /// token is cancelled (its callback wakes the word's sleepers, who look again).
    /// </summary>
    private protected bool WaitWhileZero(int index, int waitersIndex, Func<bool> tryTake, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        Libc.TimeSpec? deadline = DeadlineFor(timeout);
        cancellationToken.ThrowIfCancellationRequested();
        if (tryTake())
        {
            return true;
        }
        if (timeout == TimeSpan.Zero)
        {
            return false;
        }
        int* word = &Words[index];
        Interlocked.Increment(ref Words[waitersIndex]);
        using CancellationTokenRegistration wakeOnCancel = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => Libc.FutexWake((int*)(nint)state!, int.MaxValue), (nint)word)
            : default;
        try
        {
            Libc.TimeSpec until = deadline.GetValueOrDefault();
            while (true)
            {
                if (tryTake())
                {
                    return true;
                }
                cancellationToken.ThrowIfCancellationRequested();
                if (Libc.FutexWaitUntil(word, 0, deadline is null ? null : &until) == Libc.ETIMEDOUT)
                {
                    return tryTake();
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref Words[waitersIndex]);
        }
    }

    /// <summary>The default time Open waits for a primitive another process is initialising.</summary>
    private protected static readonly TimeSpan DefaultInitialisationTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The primitive's first byte, for layouts larger than a few words.</summary>
    private protected byte* Bytes => (byte*)Words;
}

/// <summary>What a <see cref="SharedPrimitive"/> is; stored with its layout version in its second word.</summary>
public enum PrimitiveKind
{
    /// <summary>A <see cref="SharedMutex"/>.</summary>
    SharedMutex = 1,

    /// <summary>A <see cref="SharedSemaphore"/>.</summary>
    SharedSemaphore = 2,

    /// <summary>A <see cref="SharedEvent"/>.</summary>
    SharedEvent = 3,

    /// <summary>A <see cref="SharedCondition"/>.</summary>
    SharedCondition = 4,

    /// <summary>A <see cref="SharedChannel"/>.</summary>
    SharedChannel = 5,
}

/// <summary>
/// Room for one primitive inside your own unmanaged struct: declare a field of this type, map the
/// struct (<see cref="SharedRegion.CreateAnonymous{T}"/>, or at an offset), and create or open the
/// primitive at the field's offset (<c>Marshal.OffsetOf</c>).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = SharedPrimitive.Size)]
public struct SharedPrimitiveStorage
{
#pragma warning disable CS0169 // Never used: it only gives the struct its size and 8-byte alignment.
    private long _alignment;
#pragma warning restore CS0169
}
