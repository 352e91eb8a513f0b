using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// Serves every asynchronous wait on a child in this process with one thread: an epoll set of the
/// watched children's pidfds (a pidfd turns readable when its process ends). While forked children
/// are watched, the thread also wakes every <see cref="DeadlockWatch.SampleMilliseconds"/> to read
/// their state: one that cannot wake without a signal is killed and reported where its policy says
/// so, and otherwise fails the waits that have no bound (a token that cannot be cancelled) instead of
/// leaving them pending for ever.
/// </summary>
internal static class AsyncChildWatcher
{
    private const int MaxEvents = 64;

    /// <summary>The epoll tag of the eventfd that wakes the thread; children get tags from 1.</summary>
    private const ulong WakeTag = 0;

    private static readonly Lock Gate = new();
    private static readonly Dictionary<ulong, Watched> ByTag = [];
    private static readonly Dictionary<Child, Watched> ByChild = new(ReferenceEqualityComparer.Instance);
    private static int s_epoll = -1;
    private static int s_wake = -1;
    private static ulong s_nextTag = WakeTag + 1;
    private static int s_forkedWatched;

    public static Task<ChildExit> WaitAsync(Child child, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<ChildExit>(cancellationToken);
        }
        if (child.TryReap() is ChildExit exit)
        {
            return Task.FromResult(exit);
        }
        var waiter = new Waiter(untimed: !cancellationToken.CanBeCanceled);
        lock (Gate)
        {
            EnsureStarted();
            if (!ByChild.TryGetValue(child, out Watched? watched))
            {
                watched = Watch(child);
            }
            watched.Waiters.Add(waiter);
        }
        Wake(); // the thread recomputes how often it must sample forked children
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.UnsafeRegister(static (state, token) =>
            {
                var (child, waiter) = ((Child, Waiter))state!;
                Cancel(child, waiter, token);
            }, (child, waiter));
        }
        return waiter.Task;
    }

    /// <summary>
    /// <see cref="WaitAsync"/> with a bound: null if the child still runs at <paramref name="deadline"/>.
    /// The bound is a token of its own, linked to the caller's, so the wait counts as bounded (a child
    /// that cannot wake is waited for to the bound, as any other); a bound past what a timer holds
    /// (about 24 days in milliseconds) is waited in turns.
    /// </summary>
    public static async Task<ChildExit?> TryWaitAsync(Child child, Deadline deadline, CancellationToken cancellationToken)
    {
        if (deadline.IsNever)
        {
            return await WaitAsync(child, cancellationToken).ConfigureAwait(false);
        }
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (child.TryReap() is ChildExit exit)
            {
                return exit;
            }
            long remaining = deadline.Timestamp - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return null; // a timeout of zero: looked once
            }
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(Deadline.Milliseconds(remaining));
            try
            {
                return await WaitAsync(child, bound.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The bound (or a turn of it) passed: look once more, then go on or give up.
            }
        }
    }

    private static Watched Watch(Child child)
    {
        var watched = new Watched(child, s_nextTag++);
        child.Handle.DangerousAddRef(ref watched.Referenced);
        if (Libc.EpollAdd(s_epoll, (int)child.Handle.DangerousGetHandle(), watched.Tag) != 0)
        {
            var failure = ShmException.FromLastError("epoll_ctl", $"pidfd of child {child.Pid}");
            child.Handle.DangerousRelease();
            throw failure;
        }
        ByChild[child] = watched;
        ByTag[watched.Tag] = watched;
        s_forkedWatched += child.IsForked ? 1 : 0;
        return watched;
    }

    /// <summary>Stops watching: takes the pidfd out of the set before releasing our reference on it. Call under <see cref="Gate"/>.</summary>
    private static unsafe void Unwatch(Watched watched)
    {
        if (!ByChild.Remove(watched.Child))
        {
            return;
        }
        ByTag.Remove(watched.Tag);
        s_forkedWatched -= watched.Child.IsForked ? 1 : 0;
        Libc.epoll_ctl(s_epoll, Libc.EPOLL_CTL_DEL, (int)watched.Child.Handle.DangerousGetHandle(), null);
        if (watched.Referenced)
        {
            watched.Child.Handle.DangerousRelease();
        }
    }

    private static void Cancel(Child child, Waiter waiter, CancellationToken token)
    {
        lock (Gate)
        {
            if (ByChild.TryGetValue(child, out Watched? watched) && watched.Waiters.Remove(waiter) && watched.Waiters.Count == 0)
            {
                Unwatch(watched);
            }
        }
        waiter.TrySetCanceled(token);
    }

    private static void EnsureStarted()
    {
        if (s_epoll >= 0)
        {
            return;
        }
        int epoll = Libc.CheckIo(Libc.epoll_create1(Libc.EPOLL_CLOEXEC), "epoll_create1");
        int wake = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (wake < 0 || Libc.EpollAdd(epoll, wake, WakeTag) != 0)
        {
            var failure = ShmException.FromLastError(wake < 0 ? "eventfd" : "epoll_ctl");
            Libc.close(epoll);
            if (wake >= 0)
            {
                Libc.close(wake);
            }
            throw failure;
        }
        (s_epoll, s_wake) = (epoll, wake);
        new Thread(Loop) { IsBackground = true, Name = "Shm child watcher" }.Start();
    }

    private static unsafe void Wake()
    {
        ulong one = 1;
        Libc.write(s_wake, &one, sizeof(ulong));
    }

    private static unsafe void Loop()
    {
        byte* events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * Libc.EpollEventSize));
        long nextSample = 0;
        var due = new List<Watched>();
        while (true)
        {
            int timeout;
            long sampleEvery;
            lock (Gate)
            {
                sampleEvery = DeadlockWatch.SampleInterval(s_forkedWatched);
                timeout = s_forkedWatched > 0 ? Deadline.Milliseconds(sampleEvery) : -1;
            }
            int count = Libc.epoll_wait(s_epoll, events, MaxEvents, timeout);
            due.Clear();
            lock (Gate)
            {
                for (int i = 0; i < count; i++)
                {
                    ulong tag = Libc.EpollData(events, i);
                    if (tag == WakeTag)
                    {
                        ulong drained;
                        Libc.read(s_wake, &drained, sizeof(ulong));
                    }
                    else if (ByTag.TryGetValue(tag, out Watched? watched))
                    {
                        due.Add(watched);
                    }
                }
            }
            foreach (Watched watched in due)
            {
                Settle(watched, sample: false);
            }
            long now = Stopwatch.GetTimestamp();
            if (now >= nextSample)
            {
                nextSample = now + sampleEvery;
                due.Clear();
                lock (Gate)
                {
                    foreach (Watched watched in ByChild.Values)
                    {
                        if (watched.Child.IsForked)
                        {
                            due.Add(watched);
                        }
                    }
                }
                foreach (Watched watched in due)
                {
                    Settle(watched, sample: true);
                }
            }
        }
    }

    /// <summary>
    /// Completes the waiters of a child that ended (or, when sampling, was found unable to wake
    /// without a signal and killed); fails only the untimed ones of a child found so and left running.
    /// </summary>
    private static void Settle(Watched watched, bool sample)
    {
        ChildExit? exit = null;
        Exception? failure = null;
        DeadlockSuspicion seen = default;
        Child.Suspicion found = Child.Suspicion.None;
        try
        {
            found = sample ? watched.Child.Inspect(terminating: false, out seen) : Child.Suspicion.None;
            if (found != Child.Suspicion.Suspected && (!sample || found == Child.Suspicion.Killed))
            {
                exit = watched.Child.TryReap();
            }
        }
        catch (Exception caught)
        {
            failure = caught;
        }
        if (exit is null && failure is null && found != Child.Suspicion.Suspected)
        {
            return;
        }
        Waiter[] waiters;
        lock (Gate)
        {
            // A child left running fails only the waits that nothing else would ever end.
            bool suspected = found == Child.Suspicion.Suspected && failure is null;
            waiters = [.. watched.Waiters.Where(waiter => !suspected || waiter.Untimed)];
            watched.Waiters.RemoveAll(waiter => !suspected || waiter.Untimed);
            if (watched.Waiters.Count == 0)
            {
                Unwatch(watched);
            }
        }
        if (waiters.Length == 0)
        {
            return;
        }
        failure ??= exit is null ? watched.Child.SuspectedException(seen, othersSuspected: 0) : null;
        foreach (Waiter waiter in waiters)
        {
            waiter.Registration.Dispose();
            _ = failure is null ? waiter.TrySetResult(exit!) : waiter.TrySetException(failure);
        }
    }

    private sealed class Watched(Child child, ulong tag)
    {
        public readonly Child Child = child;
        public readonly ulong Tag = tag;
        public readonly List<Waiter> Waiters = [];
        public bool Referenced;
    }

    private sealed class Waiter(bool untimed) : TaskCompletionSource<ChildExit>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public CancellationTokenRegistration Registration;

        /// <summary>True if nothing but the child's end would complete it: a child that cannot wake fails it.</summary>
        public bool Untimed { get; } = untimed;
    }
}
