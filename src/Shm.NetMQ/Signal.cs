using System;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.NetMQ;

/// <summary>
/// "Something changed": a waiter takes <see cref="Task"/>, checks its condition, and waits on the
/// task only if the condition is not met; <see cref="Set"/> completes the task waiters hold and
/// arms a new one. Set after every change, so no change between the check and the wait is missed.
/// </summary>
internal sealed class Signal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Task => Volatile.Read(ref _next).Task;

    public void Set() => Interlocked.Exchange(ref _next, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Waits for <paramref name="changed"/> until <paramref name="deadline"/> (<see cref="Environment.TickCount64"/>, long.MaxValue: none); false on timeout.</summary>
    public static bool Wait(Task changed, long deadline, CancellationToken cancellationToken)
    {
        if (deadline == long.MaxValue)
        {
            changed.Wait(cancellationToken);
            return true;
        }
        long left = deadline - Environment.TickCount64;
        return left > 0 && changed.Wait(TimeSpan.FromMilliseconds(left), cancellationToken);
    }

    /// <summary>As <see cref="Wait"/>, without holding a thread.</summary>
    public static async ValueTask<bool> WaitAsync(Task changed, long deadline, CancellationToken cancellationToken)
    {
        if (deadline == long.MaxValue)
        {
            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        long left = deadline - Environment.TickCount64;
        if (left <= 0)
        {
            return false;
        }
        try
        {
            await changed.WaitAsync(TimeSpan.FromMilliseconds(left), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>The deadline for <paramref name="timeout"/> from now (<see cref="Timeout.InfiniteTimeSpan"/>: none).</summary>
    public static long DeadlineAfter(TimeSpan timeout, string argument)
    {
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return long.MaxValue;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero, argument);
        if (timeout.TotalMilliseconds >= int.MaxValue)
        {
            return long.MaxValue; // 24 days or more: as good as for ever, and Task.Wait takes no more
        }
        return Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds);
    }
}
