using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// The asynchronous forms, apart: an async method cannot live in an unsafe context.
public sealed partial class Publisher
{
    /// <summary>Lends <paramref name="size"/> bytes, waiting without a thread as long as it takes.</summary>
    /// <param name="size">0 to <see cref="MaxPayload"/> bytes.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">A loan is open already.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed, before or during the wait.</exception>
    public async ValueTask<SampleLoan> LoanAsync(int size, CancellationToken cancellationToken = default) =>
        await TryLoanAsync(size, Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw new TimeoutException();

    /// <summary>Lends <paramref name="size"/> bytes, waiting without a thread up to <paramref name="timeout"/>; null if no room came.</summary>
    /// <param name="size">0 to <see cref="MaxPayload"/> bytes.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> or <paramref name="timeout"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">A loan is open already.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="ObjectDisposedException">The publisher or its service object was disposed, before or during the wait.</exception>
    public async ValueTask<SampleLoan?> TryLoanAsync(int size, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        BeginLoan(size);
        long deadline = ServiceInterop.Deadline(timeout);
        while (true)
        {
            if (TryAllocate(size, out SampleLoan loan))
            {
                return loan;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return null;
            }
            if (!await WaitForRoomAsync(size, deadline == long.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(remaining / (double)Stopwatch.Frequency), cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }
}
