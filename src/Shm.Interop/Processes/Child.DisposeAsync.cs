using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

// Dispose without a thread blocked for the grace period: the asynchronous watcher's epoll set waits.
public sealed partial class Child : IAsyncDisposable
{
    /// <summary>
    /// Does what <see cref="Dispose"/> does (SIGTERM, the grace period, SIGKILL, a reap) without
    /// blocking a thread during the grace period: the process's one child watcher thread waits for the
    /// child's pidfd instead. A forked child that cannot wake without a signal is waited for to the end
    /// of the grace period and then killed (<see cref="Dispose"/> kills it as soon as it is found so).
    /// Twice does nothing.
    /// </summary>
    /// <returns>Completes once the child is reaped.</returns>
    public ValueTask DisposeAsync() => TerminateAllAsync([this]);

    /// <summary><see cref="TerminateAll"/>, awaiting the grace period on the asynchronous watcher.</summary>
    internal static async ValueTask TerminateAllAsync(IEnumerable<Child?> children)
    {
        var termination = Termination.Begin(children);
        if (termination.Running.Count > 0)
        {
            Deadline deadline = Deadline.After(termination.Grace);
            var waits = new Task<ChildExit?>[termination.Running.Count];
            for (int i = 0; i < waits.Length; i++)
            {
                waits[i] = AsyncChildWatcher.TryWaitAsync(termination.Running[i], deadline, CancellationToken.None);
            }
            try
            {
                await Task.WhenAll(waits).ConfigureAwait(false);
            }
            catch (Exception)
            {
                foreach (Task<ChildExit?> wait in waits)
                {
                    if (wait.Exception is AggregateException failed)
                    {
                        termination.Fail(failed.InnerException!);
                    }
                }
            }
        }
        termination.Finish(); // SIGKILL and reap: immediate, the kernel ends a killed process at once
    }
}
