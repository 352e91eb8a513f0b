using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// The synchronous wait on one or many children: poll(2) on their pidfds until each ended or the
/// deadline passed, reading forked children's state every <see cref="DeadlockWatch.SampleMilliseconds"/>
/// so that one that cannot wake without a signal is never silently waited for: killed and reported
/// where its policy (or termination) says so, otherwise reported by a wait without a bound.
/// </summary>
internal static class BlockingChildWait
{

    /// <summary>
    /// By index: how each child ended, or null for those still running at <paramref name="deadline"/>.
    /// Without a deadline and a token that can be cancelled, and unless <paramref name="terminating"/>,
    /// throws <see cref="ChildDeadlockSuspectedException"/> once every child still running is one
    /// that cannot wake without a signal: the wait could never end (the others were reaped). A token
    /// that can be cancelled is looked at every 100 ms at least.
    /// <paramref name="terminating"/>: the children were sent SIGTERM; those found stuck are killed at once.
    /// </summary>
    public static unsafe ChildExit?[] WaitAll(IReadOnlyList<Child> children, Deadline deadline, CancellationToken cancellationToken = default, bool terminating = false)
    {
        var exits = new ChildExit?[children.Count];
        var pending = new List<int>(children.Count);
        var added = new bool[children.Count];
        bool untimed = deadline.IsNever && !cancellationToken.CanBeCanceled && !terminating;
        try
        {
            for (int i = 0; i < children.Count; i++)
            {
                children[i].Handle.DangerousAddRef(ref added[i]);
                pending.Add(i);
            }
            var fds = new Libc.PollFd[children.Count];
            long nextSample = Stopwatch.GetTimestamp();
            long sampleEvery = DeadlockWatch.SampleInterval(children.Count);
            while (true)
            {
                bool forked = false;
                pending.RemoveAll(i => (exits[i] = children[i].TryReap()) is not null);
                long now = Stopwatch.GetTimestamp();
                if (now >= nextSample)
                {
                    Sample(children, pending, exits, terminating, untimed);
                    nextSample = now + sampleEvery;
                }
                if (pending.Count == 0 || deadline.HasPassedAt(now))
                {
                    return exits;
                }
                cancellationToken.ThrowIfCancellationRequested();
                for (int k = 0; k < pending.Count; k++)
                {
                    Child child = children[pending[k]];
                    forked |= child.IsForked;
                    fds[k] = new Libc.PollFd { Fd = (int)child.Handle.DangerousGetHandle(), Events = Libc.POLLIN };
                }
                Deadline until = (forked ? deadline.Or(Deadline.At(nextSample)) : deadline).SliceFor(cancellationToken);
                fixed (Libc.PollFd* pollFds = fds)
                {
                    if (Libc.poll(pollFds, (nuint)pending.Count, until.ToPollMilliseconds(now)) < 0 && Marshal.GetLastPInvokeError() != LinuxErrno.EINTR)
                    {
                        throw ShmException.FromLastError("poll", "pidfds");
                    }
                }
            }
        }
        finally
        {
            for (int i = 0; i < children.Count; i++)
            {
                if (added[i])
                {
                    children[i].Handle.DangerousRelease();
                }
            }
        }
    }

    /// <summary>
    /// Reads the state of every pending child: drops those killed for it, and, for a wait without a
    /// bound, throws if all that remain are suspected (naming the first by index).
    /// </summary>
    private static void Sample(IReadOnlyList<Child> children, List<int> pending, ChildExit?[] exits, bool terminating, bool untimed)
    {
        int suspected = 0;
        int first = -1;
        DeadlockSuspicion firstSeen = default;
        for (int k = pending.Count - 1; k >= 0; k--)
        {
            int i = pending[k];
            switch (children[i].Inspect(terminating, out DeadlockSuspicion seen))
            {
                case Child.Suspicion.Killed:
                    if ((exits[i] = children[i].TryReap()) is not null)
                    {
                        pending.RemoveAt(k);
                    }
                    break;
                case Child.Suspicion.Suspected:
                    suspected++;
                    (first, firstSeen) = (i, seen); // walking down: the lowest index last
                    break;
            }
        }
        if (untimed && suspected > 0 && suspected == pending.Count)
        {
            throw children[first].SuspectedException(firstSeen, suspected - 1);
        }
    }
}
