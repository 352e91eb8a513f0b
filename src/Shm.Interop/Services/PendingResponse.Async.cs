using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// The asynchronous forms, apart: an async method cannot live in an unsafe context.
public sealed partial class PendingResponse
{
    /// <summary>Receives the next response, waiting without a thread as long as it takes.</summary>
    /// <param name="cancellationToken">Stops waiting (the request stays pending).</param>
    /// <exception cref="EndOfStreamException">The stream had ended: every response was received.</exception>
    /// <exception cref="ServerDiedException">The server that took the request died before completing it.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This pending response or its client was disposed, before or during the wait.</exception>
    public async ValueTask<Response> ReceiveAsync(CancellationToken cancellationToken = default) =>
        await TryReceiveAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw Ended_();

    /// <summary>Receives the next response, waiting without a thread up to <paramref name="timeout"/>; null at the timeout or if the stream has ended (<see cref="IsCompleted"/>).</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting (the request stays pending).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ServerDiedException">The server that took the request died before completing it.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">This pending response or its client was disposed, before or during the wait.</exception>
    public async ValueTask<Response?> TryReceiveAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        RequestResponseService.CheckTimeout(timeout);
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (TryReceive(out Response? response))
            {
                return response;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (IsCompleted || remaining <= 0)
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
