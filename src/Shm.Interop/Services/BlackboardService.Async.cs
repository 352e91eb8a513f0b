using System;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// The asynchronous forms, apart: an async method cannot live in an unsafe context.
public sealed partial class BlackboardService
{
    /// <summary>Reads entry <paramref name="key"/>'s latest whole value, waiting without a thread as long as a write in flight takes.</summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="BlackboardWriterDiedException">The writer died in the middle of writing this entry.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed, before or during the wait.</exception>
    public async ValueTask<T> ReadAsync<T>(int key, CancellationToken cancellationToken = default)
        where T : unmanaged =>
        await TryReadAsync<T>(key, Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw new TimeoutException();

    /// <summary>Reads entry <paramref name="key"/>'s latest whole value, waiting without a thread up to <paramref name="timeout"/>; null if a write was still in flight then.</summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to try without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table, or <paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="BlackboardWriterDiedException">The writer died in the middle of writing this entry.</exception>
    /// <exception cref="SharedMemoryCorruptedException">A value read from the service is impossible.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The service object was disposed, before or during the wait.</exception>
    public async ValueTask<T?> TryReadAsync<T>(int key, TimeSpan timeout, CancellationToken cancellationToken = default)
        where T : unmanaged
    {
        CheckTimeout(timeout);
        if (TryRead(key, out T value))
        {
            return value;
        }
        var result = new StrongBox<T>();
        return await WatchEntry(key, result, timeout, cancellationToken).ConfigureAwait(false) ? result.Value : null;
    }
}
