using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Waits until any of several sources is ready, without a thread per source: subscribers (a sample
/// can be received), channel readers (a message can be read, or the stream ended), semaphores and
/// events (taken, as <see cref="SharedWaitable.Wait(CancellationToken)"/> takes them) and children
/// (ended). Each wait registers one asynchronous wait per source with the process's futex watcher
/// (children with their exit watcher), all completing one shared result; every registration is
/// removed before the wait returns.
/// </summary>
/// <remarks>
/// <para>Sources are numbered in the order they are added; a wait returns the number of the source
/// that is ready (the lowest, if several are ready when it starts). Exactly one semaphore or event is
/// taken per wait: one that was also taken while the others were being stopped is given back
/// (<see cref="SharedSemaphore.Release"/>, or <see cref="SharedEvent.Set"/> for an auto-reset event),
/// as <see cref="WaitHandle.WaitAny(WaitHandle[])"/> takes one handle. Subscribers and channel readers
/// are only reported ready: receive or read afterwards (another consumer of the same reader may take
/// it first, so use the non-blocking <c>TryReceive</c> / <c>TryRead</c>).</para>
/// <para>A source that fails (its service is corrupt, it was disposed, a channel's writers died) fails
/// the wait with its exception. Not thread-safe: one wait at a time; sources are added before waiting.
/// Not usable in a forked child, which has no futex watcher: the waits fault with
/// <see cref="NotSupportedException"/> there.</para>
/// </remarks>
public sealed class WaitSet
{
    private readonly List<Func<CancellationToken, Task<bool>>> _waits = [];
    private readonly List<Action?> _giveBacks = [];

    /// <summary>How many sources were added.</summary>
    public int Count => _waits.Count;

    /// <summary>Adds a subscriber: ready when a sample can be received.</summary>
    /// <param name="subscriber">The subscriber.</param>
    /// <returns>Its number in this set.</returns>
    public int Add(Subscriber subscriber)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        return Add(token => subscriber.WaitForSampleAsync(Timeout.InfiniteTimeSpan, token), null);
    }

    /// <summary>Adds a channel reader: ready when a message can be read or the stream has ended.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>Its number in this set.</returns>
    public int Add(SharedChannelReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return Add(async token =>
        {
            await reader.WaitToReadAsync(token).ConfigureAwait(false);
            return true;
        }, null);
    }

    /// <summary>Adds a semaphore or an event: ready when it could be taken, and taken by the wait that returns its number.</summary>
    /// <param name="waitable">A <see cref="SharedSemaphore"/> or <see cref="SharedEvent"/>.</param>
    /// <returns>Its number in this set.</returns>
    public int Add(SharedWaitable waitable)
    {
        ArgumentNullException.ThrowIfNull(waitable);
        Action? giveBack = waitable switch
        {
            SharedSemaphore semaphore => () => semaphore.Release(),
            SharedEvent signal when signal.Mode == EventResetMode.AutoReset => signal.Set,
            _ => null, // a manual-reset event is not consumed by a wait
        };
        return Add(token => waitable.TryWaitAsync(Timeout.InfiniteTimeSpan, token), giveBack);
    }

    /// <summary>Adds a child: ready when it has ended (its exit is then in <see cref="Child.Exit"/>).</summary>
    /// <param name="child">The child.</param>
    /// <returns>Its number in this set.</returns>
    public int Add(Child child)
    {
        ArgumentNullException.ThrowIfNull(child);
        return Add(async token =>
        {
            await child.WaitAsync(token).ConfigureAwait(false);
            return true;
        }, null);
    }

    /// <summary>Waits as long as it takes for a source to be ready.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The number of the source that is ready.</returns>
    /// <exception cref="InvalidOperationException">The set is empty.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="NotSupportedException">Called in a forked child.</exception>
    /// <remarks>A source's own exception (corruption, disposal, a stream ended by dead writers) ends the wait.</remarks>
    public int WaitAny(CancellationToken cancellationToken = default) =>
        TryWaitAny(out int index, Timeout.InfiniteTimeSpan, cancellationToken) ? index : throw new TimeoutException();

    /// <summary>Waits up to <paramref name="timeout"/> for a source to be ready.</summary>
    /// <param name="index">The number of the source that is ready; -1 when false is returned.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>False if no source was ready within <paramref name="timeout"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">The set is empty.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="NotSupportedException">Called in a forked child.</exception>
    /// <remarks>A source's own exception (corruption, disposal, a stream ended by dead writers) ends the wait.</remarks>
    public bool TryWaitAny(out int index, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        int? ready = TryWaitAnyAsync(timeout, cancellationToken).AsTask().GetAwaiter().GetResult();
        index = ready ?? -1;
        return ready is not null;
    }

    /// <summary>Waits without a thread, as long as it takes, for a source to be ready.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The number of the source that is ready.</returns>
    /// <exception cref="InvalidOperationException">The set is empty.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="NotSupportedException">Called in a forked child.</exception>
    /// <remarks>A source's own exception (corruption, disposal, a stream ended by dead writers) ends the wait.</remarks>
    public async ValueTask<int> WaitAnyAsync(CancellationToken cancellationToken = default) =>
        await TryWaitAnyAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false) ?? throw new TimeoutException();

    /// <summary>Waits without a thread, up to <paramref name="timeout"/>, for a source to be ready; null if none was.</summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The number of the source that is ready, or null.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="InvalidOperationException">The set is empty.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="NotSupportedException">Called in a forked child.</exception>
    /// <remarks>A source's own exception (corruption, disposal, a stream ended by dead writers) ends the wait.</remarks>
    public async ValueTask<int?> TryWaitAnyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero or more, or Timeout.InfiniteTimeSpan.");
        }
        if (_waits.Count == 0)
        {
            throw new InvalidOperationException("The wait set is empty: add a source first.");
        }
        cancellationToken.ThrowIfCancellationRequested();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var first = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new Task<bool>[_waits.Count];
        int count = 0;
        try
        {
            for (; count < started.Length; count++)
            {
                started[count] = Start(count, stop.Token);
                if (started[count].IsCompletedSuccessfully && started[count].Result)
                {
                    first.TrySetResult(count++); // ready at once: the later sources are not even asked
                    break;
                }
                _ = started[count].ContinueWith(Settle, (first, count), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                if (first.Task.IsCompleted)
                {
                    count++; // failed at once: no need to ask the others
                    break;
                }
            }
            if (!first.Task.IsCompleted && timeout != Timeout.InfiniteTimeSpan)
            {
                stop.CancelAfter(timeout); // the timeout cancels the source waits, and that ends this wait with -1
            }
            int winner;
            try
            {
                winner = await first.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                winner = -1;
            }
            if (winner >= 0)
            {
                return winner; // ready before the token was looked at: what it took is the caller's now
            }
            cancellationToken.ThrowIfCancellationRequested();
            return null;
        }
        finally
        {
            stop.Cancel();
            await EndAll(started, count, first.Task).ConfigureAwait(false);
        }
    }

    private int Add(Func<CancellationToken, Task<bool>> wait, Action? giveBack)
    {
        _waits.Add(wait);
        _giveBacks.Add(giveBack);
        return _waits.Count - 1;
    }

    /// <summary>Starts source <paramref name="index"/>'s wait; one that throws as it starts is a faulted wait.</summary>
    private Task<bool> Start(int index, CancellationToken token)
    {
        try
        {
            return _waits[index](token);
        }
        catch (Exception failure)
        {
            return Task.FromException<bool>(failure);
        }
    }

    /// <summary>A source's wait ended: the first success, failure or cancellation of all of them settles the shared result.</summary>
    private static void Settle(Task<bool> ended, object? state)
    {
        (TaskCompletionSource<int> first, int index) = ((TaskCompletionSource<int>, int))state!;
        if (ended.IsCanceled)
        {
            first.TrySetCanceled();
        }
        else if (ended.IsFaulted)
        {
            first.TrySetException(ended.Exception!.InnerExceptions);
        }
        else if (ended.Result)
        {
            first.TrySetResult(index);
        }
    }

    /// <summary>
    /// Waits for every started source wait to end (each removes its registration as it ends), and gives
    /// back what a losing semaphore or event wait took.
    /// </summary>
    private async Task EndAll(Task<bool>[] started, int count, Task<int> first)
    {
        int winner = first.IsCompletedSuccessfully ? first.Result : -1;
        for (int i = 0; i < count; i++)
        {
            try
            {
                if (await started[i].ConfigureAwait(false) && i != winner)
                {
                    _giveBacks[i]?.Invoke();
                }
            }
            catch (Exception failure) when (failure is not OutOfMemoryException)
            {
                // Stopped (what every losing wait does), or a failure: reported through the shared result
                // if it came first; a loser's source fails again at the next wait.
            }
        }
    }
}
