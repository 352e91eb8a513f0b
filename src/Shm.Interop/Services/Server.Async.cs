using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// The asynchronous forms, apart: an async method cannot live in an unsafe context.
public sealed partial class Server
{
    /// <summary>Takes the next request, waiting without a thread as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed, before or during the wait.</exception>
    public async ValueTask<ActiveRequest> ReceiveAsync(CancellationToken cancellationToken = default) =>
        await TryReceiveAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw new TimeoutException();

    /// <summary>Takes the next request, waiting without a thread up to <paramref name="timeout"/>; null if none came.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed, before or during the wait.</exception>
    public async ValueTask<ActiveRequest?> TryReceiveAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (TryReceive(out ActiveRequest? request))
            {
                return request;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return null;
            }
            if (!await WaitAsync(deadline == long.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(remaining / (double)Stopwatch.Frequency), cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }
}
