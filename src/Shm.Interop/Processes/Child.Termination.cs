using System;
using System.Collections.Generic;

namespace Shm.Interop;

// The two ends of terminating a group, around its grace period: shared by Dispose, which blocks a
// thread for the grace period, and DisposeAsync, which awaits the asynchronous watcher instead.
public sealed partial class Child
{
    /// <summary>One termination of several children: who was sent SIGTERM, how long they get, what failed.</summary>
    private sealed class Termination
    {
        private readonly List<Child> _all = [];
        private List<Exception>? _failures;

        /// <summary>The children sent SIGTERM (or that failed on the way): killed if still running at <see cref="Finish"/>.</summary>
        public List<Child> Running { get; } = [];

        /// <summary>The longest grace period among <see cref="Running"/>.</summary>
        public TimeSpan Grace { get; private set; }

        /// <summary>
        /// Marks each child disposed and sends SIGTERM to those still running that this process owns
        /// (a copy inherited by a forked child is left to the parent that owns that process).
        /// </summary>
        public static Termination Begin(IEnumerable<Child?> children)
        {
            var termination = new Termination();
            int self = Libc.getpid();
            foreach (Child? child in children)
            {
                if (child is null || child._disposed)
                {
                    continue;
                }
                child._disposed = true;
                if (child._owner != self)
                {
                    continue;
                }
                termination._all.Add(child);
                try
                {
                    lock (child._gate)
                    {
                        if (child.TryReapLocked() is null)
                        {
                            child.SendLocked(Libc.SIGTERM);
                            termination.Running.Add(child);
                            termination.Grace = termination.Grace > child._grace ? termination.Grace : child._grace;
                        }
                    }
                }
                catch (Exception failure)
                {
                    termination.Fail(failure);
                    termination.Running.Add(child);
                }
            }
            return termination;
        }

        public void Fail(Exception failure) => (_failures ??= []).Add(failure);

        /// <summary>After the grace period: SIGKILL and a reap for each child still running, every pidfd released, then the failures thrown.</summary>
        public void Finish()
        {
            foreach (Child child in Running)
            {
                try
                {
                    child.KillAndReap(deadlocked: false);
                }
                catch (Exception failure)
                {
                    Fail(failure);
                }
            }
            foreach (Child child in _all)
            {
                child._handle.Dispose();
            }
            if (_failures is not null)
            {
                throw _failures.Count == 1 ? _failures[0] : new AggregateException(_failures);
            }
        }
    }
}
