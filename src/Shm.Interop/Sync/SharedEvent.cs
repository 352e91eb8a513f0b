using System;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// An event in shared memory, on a shared futex: auto-reset (each <see cref="Set"/> lets one waiter
/// through) or manual-reset (<see cref="Set"/> lets every waiter through until <see cref="Reset"/>),
/// like <see cref="EventWaitHandle"/>, which .NET cannot share between processes on Linux.
/// It has the waits every <see cref="SharedWaitable"/> has (a token on each, a timeout on the Try
/// forms, no thread held by the asynchronous ones).
/// </summary>
/// <remarks>
/// Layout after the header: the signal (0 or 1), the number of waiters, the mode (0 auto-reset, 1
/// manual-reset). Every operation reads the shared words once and checks them: any other signal or
/// mode, or a negative waiter count, is reported as <see cref="SharedMemoryCorruptedException"/>
/// (nothing is written), and waits still end by their timeout.
/// </remarks>
public sealed unsafe class SharedEvent : SharedWaitable
{
    private const int SignalledWord = 2;
    private const int WaitersWord = 3;
    private const int ModeWord = 4;

    private SharedEvent(SharedRegion region, long offset, bool create, TimeSpan timeout, Action<nint>? initialise)
        : base(region, offset, PrimitiveKind.SharedEvent, create, timeout, initialise) { }

    private protected override int SignalIndex => SignalledWord;

    private protected override int WaitersIndex => WaitersWord;

    /// <summary>Initialises a new event at <paramref name="offset"/> (64 zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region other processes map.</param>
    /// <param name="offset">Where, a multiple of 8.</param>
    /// <param name="mode">Auto-reset or manual-reset.</param>
    /// <param name="initialState">Start signalled.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the event does not fit in the region from there, or <paramref name="mode"/> is neither auto-reset nor manual-reset.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    public static SharedEvent Create(SharedRegion region, long offset, EventResetMode mode, bool initialState = false)
    {
        if (mode is not (EventResetMode.AutoReset or EventResetMode.ManualReset))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "AutoReset or ManualReset.");
        }
        return new(region, offset, create: true, TimeSpan.Zero, words =>
        {
            ((int*)words)[ModeWord] = (int)mode;
            ((int*)words)[SignalledWord] = initialState ? 1 : 0;
        });
    }

    /// <summary>Opens the event another process created at <paramref name="offset"/>.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the event does not fit in the region from there.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable (waiting on a primitive writes to it).</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a event, is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    public static SharedEvent Open(SharedRegion region, long offset = 0) => new(region, offset, create: false, DefaultInitialisationTimeout, null);

    /// <summary>Auto-reset or manual-reset, as created.</summary>
    /// <exception cref="SharedMemoryCorruptedException">The shared mode word is neither.</exception>
    public EventResetMode Mode => ReadMode();

    /// <summary>True while signalled.</summary>
    /// <exception cref="SharedMemoryCorruptedException">The shared signal is neither 0 nor 1.</exception>
    public bool IsSet => ReadSignal() != 0;

    /// <summary>Signals: one waiter passes (auto-reset) or all do until <see cref="Reset"/> (manual-reset).</summary>
    /// <exception cref="SharedMemoryCorruptedException">The shared mode or signal is impossible (nothing is written).</exception>
    public void Set()
    {
        ThrowIfDisposed();
        EventResetMode mode = ReadMode();
        while (true)
        {
            if (ReadSignal() != 0)
            {
                return; // already set: its waiters were woken by whoever set it
            }
            if (Interlocked.CompareExchange(ref Words[SignalledWord], 1, 0) == 0)
            {
                break;
            }
        }
        // A negative waiter count is impossible; waking everyone is the safe answer to it.
        int waiters = Volatile.Read(ref Words[WaitersWord]);
        if (waiters != 0)
        {
            Libc.FutexWake(&Words[SignalledWord], mode == EventResetMode.AutoReset && waiters > 0 ? 1 : int.MaxValue);
        }
    }

    /// <summary>Clears the signal.</summary>
    /// <exception cref="SharedMemoryCorruptedException">The shared signal is impossible (nothing is written).</exception>
    public void Reset()
    {
        ThrowIfDisposed();
        while (ReadSignal() != 0 && Interlocked.CompareExchange(ref Words[SignalledWord], 0, 1) != 1)
        {
        }
    }

    private EventResetMode ReadMode()
    {
        int mode = Volatile.Read(ref Words[ModeWord]);
        return mode is (int)EventResetMode.AutoReset or (int)EventResetMode.ManualReset
            ? (EventResetMode)mode
            : throw Corrupted("mode", ModeWord, mode, "0 (auto-reset) or 1 (manual-reset)");
    }

    private int ReadSignal()
    {
        int signal = Volatile.Read(ref Words[SignalledWord]);
        return signal is 0 or 1 ? signal : throw Corrupted("signal", SignalledWord, signal, "0 or 1");
    }

    // Auto-reset: passing consumes the signal; manual-reset: it stays. False only when it was read as 0.
    private protected override bool TryTake()
    {
        EventResetMode mode = ReadMode();
        int waiters = Volatile.Read(ref Words[WaitersWord]);
        if (waiters < 0)
        {
            throw Corrupted("waiter count", WaitersWord, waiters, "0 or more");
        }
        while (ReadSignal() != 0)
        {
            if (mode == EventResetMode.ManualReset || Interlocked.CompareExchange(ref Words[SignalledWord], 0, 1) == 1)
            {
                return true;
            }
        }
        return false;
    }
}
