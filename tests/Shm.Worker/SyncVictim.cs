using System;
using System.Diagnostics;
using System.Threading;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>
/// The side of a hostile-peer test that waits on (or opens) a primitive while a peer writes bad
/// values into it: run in a forked child for the blocking waits, and in this worker for the
/// asynchronous ones. How it ended is its exit code; how long its wait took goes to the report words.
/// </summary>
/// <remarks>
/// The region: bytes 0 to 63 the report (int 0: milliseconds the wait took; int 4: a hand-shake
/// word), the primitive under test at <see cref="PrimitiveOffset"/>, a <see cref="SharedMutex"/> for
/// the condition at <see cref="MutexOffset"/>.
/// </remarks>
public static class SyncVictim
{
    /// <summary>Where the primitive under test lives.</summary>
    public const int PrimitiveOffset = 64;

    /// <summary>Where the condition's mutex lives.</summary>
    public const int MutexOffset = 128;

    /// <summary>Report word: how long the wait took, in milliseconds.</summary>
    public const int ElapsedWord = 0;

    /// <summary>Report word: 1 once the victim holds the futex mutex; the peer sets 2 once it has written.</summary>
    public const int HandshakeWord = 4;

    /// <summary>How a victim ended (its exit code).</summary>
    public enum Outcome
    {
        /// <summary>The wait succeeded (or the condition woke).</summary>
        Took = 10,

        /// <summary>The wait timed out, or Open gave up waiting for the initialisation.</summary>
        TimedOut = 11,

        /// <summary><see cref="SharedMemoryCorruptedException"/>.</summary>
        Corrupted = 12,

        /// <summary>Open refused the bytes (<see cref="InvalidOperationException"/>).</summary>
        Refused = 13,

        /// <summary><see cref="AbandonedMutexException"/>: a dead (or nonexistent) owner was taken over.</summary>
        Abandoned = 14,

        /// <summary>Anything else: a failure of the test.</summary>
        Failed = 15,

        /// <summary><see cref="ObjectDisposedException"/>: the primitive (or its region) was disposed under the wait.</summary>
        Disposed = 16,

        /// <summary><see cref="OperationCanceledException"/>.</summary>
        Canceled = 17,

        /// <summary>The wait had not ended within the victim's own bound.</summary>
        Hung = 18,
    }

    /// <summary>
    /// Runs one victim: <paramref name="primitive"/> is semaphore, event, condition, futex-mutex (lock
    /// it while another holds it), futex-mutex-unlock (lock, let the peer write, unlock), or
    /// open-semaphore; <paramref name="asynchronous"/> waits with WaitAsync.
    /// </summary>
    public static int Run(SharedRegion region, string primitive, bool asynchronous, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(region);
        var clock = Stopwatch.StartNew();
        Outcome outcome;
        try
        {
            outcome = Wait(region, primitive, asynchronous, timeout) ? Outcome.Took : Outcome.TimedOut;
        }
        catch (Exception failure)
        {
            outcome = Of(failure);
        }
        region.Write(ElapsedWord, (int)clock.ElapsedMilliseconds);
        return (int)outcome;
    }

    /// <summary>How a wait that threw <paramref name="failure"/> ended (anything unexpected is written to stderr).</summary>
    public static Outcome Of(Exception failure)
    {
        switch (Unwrap(failure))
        {
            case SharedMemoryCorruptedException:
                return Outcome.Corrupted;
            case TimeoutException:
                return Outcome.TimedOut;
            case AbandonedMutexException:
                return Outcome.Abandoned;
            case ObjectDisposedException:
                return Outcome.Disposed;
            case OperationCanceledException:
                return Outcome.Canceled;
            case InvalidOperationException:
                return Outcome.Refused;
            default:
                Console.Error.WriteLine(failure);
                return Outcome.Failed;
        }
    }

    private static Exception Unwrap(Exception failure) => failure is AggregateException { InnerException: Exception inner } ? inner : failure;

    private static bool Wait(SharedRegion region, string primitive, bool asynchronous, TimeSpan timeout)
    {
        switch (primitive)
        {
            case "semaphore":
                {
                    using SharedSemaphore semaphore = SharedSemaphore.Open(region, PrimitiveOffset);
                    return asynchronous ? semaphore.TryWaitAsync(timeout).GetAwaiter().GetResult() : semaphore.TryWait(timeout);
                }
            case "event":
                {
                    using SharedEvent signal = SharedEvent.Open(region, PrimitiveOffset);
                    return asynchronous ? signal.TryWaitAsync(timeout).GetAwaiter().GetResult() : signal.TryWait(timeout);
                }
            case "condition":
                {
                    using SharedMutex mutex = SharedMutex.Open(region, MutexOffset);
                    using SharedCondition condition = SharedCondition.Open(region, PrimitiveOffset);
                    using (mutex.Lock())
                    {
                        return condition.TryWait(mutex, timeout);
                    }
                }
            case "futex-mutex":
                {
                    using SharedFutexMutex mutex = SharedFutexMutex.Open(region, PrimitiveOffset);
                    return mutex.TryLock(timeout);
                }
            case "futex-mutex-unlock":
                {
                    using SharedFutexMutex mutex = SharedFutexMutex.Open(region, PrimitiveOffset);
                    if (!mutex.TryLock(timeout))
                    {
                        return false;
                    }
                    region.Write(HandshakeWord, 1);
                    if (!SpinWait.SpinUntil(() => region.Read<int>(HandshakeWord) == 2, timeout))
                    {
                        return false;
                    }
                    mutex.Unlock();
                    return true;
                }
            case "open-semaphore":
                {
                    using SharedSemaphore semaphore = SharedSemaphore.Open(region, PrimitiveOffset);
                    return true;
                }
            default:
                throw new ArgumentException($"No victim named {primitive}.", nameof(primitive));
        }
    }
}
