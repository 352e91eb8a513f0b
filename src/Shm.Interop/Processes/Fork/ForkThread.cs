using System;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// The one thread that calls fork. PR_SET_PDEATHSIG fires when the parent *thread* that forked
/// exits, not the process: a fork from a thread-pool thread would kill healthy children when the
/// pool retires that thread. This thread lives as long as the process.
/// </summary>
internal static class ForkThread
{
    private static readonly AutoResetEvent Go = new(false);
    private static readonly AutoResetEvent Done = new(false);
    private static Action? s_work;
    private static ExceptionDispatchInfo? s_failure;
    private static Thread? s_thread;

    /// <summary>Runs <paramref name="work"/> on the fork thread and waits for it. Callers serialize (Forker's gate).</summary>
    public static void Run(Action work)
    {
        s_thread ??= Start();
        s_work = work;
        s_failure = null;
        Go.Set();
        Done.WaitOne();
        s_failure?.Throw();
    }

    private static Thread Start()
    {
        var thread = new Thread(Loop) { IsBackground = true, Name = "Shm fork" };
        thread.Start();
        return thread;
    }

    private static void Loop()
    {
        while (true)
        {
            Go.WaitOne();
            RunOne();
            Done.Set();
        }
    }

    // Its own frame, so nothing of the work (and the children it forked) stays reachable from the
    // loop's frame, which never returns.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RunOne()
    {
        try
        {
            s_work!();
        }
        catch (Exception exception)
        {
            s_failure = ExceptionDispatchInfo.Capture(exception);
        }
        s_work = null;
    }
}
