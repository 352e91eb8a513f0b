using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// The synchronous wait on one or many children: poll(2) on their pidfds until each ended or the
/// deadline passed, reading forked children's state every <see cref="DeadlockWatch.SampleMilliseconds"/>
/// so that a deadlocked one is killed and reported instead of waited for.
/// </summary>
internal static class ChildWaits
{
    /// <summary>By index: how each child ended, or null for those still running at <paramref name="deadline"/>.</summary>
    public static unsafe ChildExit?[] WaitAll(IReadOnlyList<Child> children, long deadline)
    {
        var exits = new ChildExit?[children.Count];
        var pending = new List<int>(children.Count);
        var added = new bool[children.Count];
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
                    pending.RemoveAll(i => children[i].CheckDeadlock() && (exits[i] = children[i].TryReap()) is not null);
                    nextSample = now + sampleEvery;
                }
                if (pending.Count == 0 || now >= deadline)
                {
                    return exits;
                }
                for (int k = 0; k < pending.Count; k++)
                {
                    Child child = children[pending[k]];
                    forked |= child.IsForked;
                    fds[k] = new Libc.PollFd { Fd = (int)child.Handle.DangerousGetHandle(), Events = Libc.POLLIN };
                }
                long until = forked ? Math.Min(deadline, nextSample) : deadline;
                fixed (Libc.PollFd* pollFds = fds)
                {
                    if (Libc.poll(pollFds, (nuint)pending.Count, Milliseconds(until - now)) < 0 && Marshal.GetLastPInvokeError() != Errno.EINTR)
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

    /// <summary>A poll timeout for <paramref name="ticks"/> of <see cref="Stopwatch"/> time: rounded up (about 24 days at most: the caller loops).</summary>
    internal static int Milliseconds(long ticks)
    {
        double milliseconds = Math.Ceiling(ticks * 1000.0 / Stopwatch.Frequency);
        return (int)Math.Clamp(milliseconds, 0, int.MaxValue);
    }
}
