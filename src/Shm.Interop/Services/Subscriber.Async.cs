using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// The asynchronous forms, apart: an async method cannot live in an unsafe context.
public sealed partial class Subscriber
{
    /// <summary>Takes the next sample, waiting without a thread as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="InvalidOperationException">This subscriber holds <see cref="SubscriberOptions.MaxHeldSamples"/> samples.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The subscriber or its service object was disposed, before or during the wait.</exception>
    public async ValueTask<Sample> ReceiveAsync(CancellationToken cancellationToken = default) =>
        await TryReceiveAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw new TimeoutException();

    /// <summary>Takes the next sample, waiting without a thread up to <paramref name="timeout"/>; null if none came.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">This subscriber holds <see cref="SubscriberOptions.MaxHeldSamples"/> samples.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The subscriber or its service object was disposed, before or during the wait.</exception>
    public async ValueTask<Sample?> TryReceiveAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            if (TryReceive(out Sample sample))
            {
                return sample;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return null;
            }
            if (!await WaitForSampleAsync(deadline == long.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(remaining / (double)Stopwatch.Frequency), cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }
}
