using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A group of forked children that run the same body with their index: fork N children, each runs
/// <c>body(i)</c>, wait for all. If forking child k fails, children 0..k-1 are terminated and reaped
/// before the exception leaves. Disposing terminates and reaps every child not yet reaped, with one
/// shared grace period.
/// </summary>
public sealed class Children : IDisposable, IAsyncDisposable, IReadOnlyList<Child>
{
    private readonly Child[] _children;

    private Children(Child[] children) => _children = children;

    /// <summary>Forks <paramref name="count"/> children; child i runs <c>body(i)</c> and exits with its value.</summary>
    /// <param name="count">How many, at least 1.</param>
    /// <param name="body">The children's work; see <see cref="Child"/> for what a forked child may do.</param>
    /// <param name="options">Tuning; <see cref="ForkOptions.Default"/> if null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1, or an option is out of range (an allocation budget or a number of attempts below 1, a budget the GC refuses).</exception>
    /// <exception cref="NotSupportedException">The runtime is not configured for fork; the message names the fix.</exception>
    /// <exception cref="InvalidOperationException">This process is itself a forked child.</exception>
    /// <exception cref="ShmException"><c>fork</c> failed; the children already started were terminated and reaped.</exception>
    /// <exception cref="TimeoutException">A child did not start after every attempt; the others were terminated and reaped.</exception>
    public static Children Fork(int count, Func<int, int> body, ForkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        return new(Forker.Fork(count, body, body, options ?? ForkOptions.Default));
    }

    /// <summary>The children's process ids, by index.</summary>
    public IReadOnlyList<int> Pids => _children.Select(child => child.Pid).ToArray();

    /// <summary>How many children.</summary>
    public int Count => _children.Length;

    /// <summary>Child <paramref name="index"/>.</summary>
    /// <param name="index">The index the child's body received.</param>
    public Child this[int index] => _children[index];

    /// <summary>
    /// Waits for every child and reaps it; exits by index. With a token that cannot be cancelled this
    /// is a wait without a bound: children that cannot wake without a signal are, under
    /// <see cref="ChildDeadlockPolicy.Kill"/>, killed and reported (<see cref="ChildExit.Deadlocked"/>);
    /// under <see cref="ChildDeadlockPolicy.Report"/> (the default) the wait throws
    /// <see cref="ChildDeadlockSuspectedException"/> once every child still running is one of them
    /// (the others were reaped; a later wait returns their exits), leaving them running.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the children keep running); looked at every 100 ms.</param>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChildDeadlockSuspectedException">Every child still running cannot wake without a signal (policy Report, a token that cannot be cancelled).</exception>
    /// <exception cref="ObjectDisposedException">The group or one of its children was disposed.</exception>
    /// <exception cref="ShmException"><c>waitid</c> or <c>poll</c> failed.</exception>
    public IReadOnlyList<ChildExit> WaitAll(CancellationToken cancellationToken = default) =>
        WaitAllCore(Deadline.Never, cancellationToken).Select(exit => exit!).ToArray();

    /// <summary>
    /// Waits up to <paramref name="timeout"/> in all for every child; true if all ended. With
    /// <see cref="Timeout.InfiniteTimeSpan"/> this is <see cref="WaitAll"/>.
    /// </summary>
    /// <param name="exits">By index, how each child ended, null for those still running.</param>
    /// <param name="timeout">The total time; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting (the children keep running).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChildDeadlockSuspectedException">Only without a bound: as <see cref="WaitAll"/>.</exception>
    /// <exception cref="ObjectDisposedException">The group or one of its children was disposed.</exception>
    /// <exception cref="ShmException"><c>waitid</c> or <c>poll</c> failed.</exception>
    public bool TryWaitAll(out IReadOnlyList<ChildExit?> exits, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ChildExit?[] all = WaitAllCore(Deadline.After(timeout), cancellationToken);
        exits = all;
        return Array.TrueForAll(all, exit => exit is not null);
    }

    /// <summary>
    /// Waits for every child without blocking a thread (one watcher thread serves all asynchronous
    /// waits). With a token that cannot be cancelled, the wait of a child that cannot wake without a
    /// signal faults (policy Report), so the whole task faults with
    /// <see cref="ChildDeadlockSuspectedException"/> once the other children ended.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the children keep running).</param>
    /// <exception cref="ObjectDisposedException">The group or one of its children was disposed.</exception>
    public async Task<IReadOnlyList<ChildExit>> WaitAllAsync(CancellationToken cancellationToken = default) =>
        await Task.WhenAll(_children.Select(child => child.WaitAsync(cancellationToken))).ConfigureAwait(false);

    /// <summary>
    /// Waits up to <paramref name="timeout"/> in all for every child, without blocking a thread; null if
    /// some child still runs then (each child's <see cref="Child.Exit"/> tells which ended).
    /// </summary>
    /// <param name="timeout">The total time; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting (the children keep running).</param>
    /// <returns>The exits by index, or null at the timeout.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ObjectDisposedException">The group or one of its children was disposed.</exception>
    public async Task<IReadOnlyList<ChildExit>?> TryWaitAllAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        foreach (Child child in _children)
        {
            child.ThrowIfUnusable();
        }
        ChildExit?[] exits = await Task.WhenAll(_children.Select(child => AsyncChildWatcher.TryWaitAsync(child, deadline, cancellationToken))).ConfigureAwait(false);
        return Array.TrueForAll(exits, exit => exit is not null) ? Array.ConvertAll(exits, exit => exit!) : null;
    }

    /// <summary>Terminates (SIGTERM, one shared grace period, SIGKILL) and reaps every child not yet reaped. Twice does nothing.</summary>
    public void Dispose() => Child.TerminateAll(_children);

    /// <summary>
    /// Does what <see cref="Dispose"/> does without blocking a thread during the shared grace period
    /// (see <see cref="Child.DisposeAsync"/>). Twice does nothing.
    /// </summary>
    /// <returns>Completes once every child is reaped.</returns>
    public ValueTask DisposeAsync() => Child.TerminateAllAsync(_children);

    /// <inheritdoc/>
    public IEnumerator<Child> GetEnumerator() => ((IEnumerable<Child>)_children).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private ChildExit?[] WaitAllCore(Deadline deadline, CancellationToken cancellationToken)
    {
        foreach (Child child in _children)
        {
            child.ThrowIfUnusable();
        }
        return BlockingChildWait.WaitAll(_children, deadline, cancellationToken);
    }
}
