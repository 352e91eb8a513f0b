using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>Scenarios of locks and signals that need a process of their own: asynchronous waits (a forked child has no watcher thread).</summary>
public static partial class Program
{
    /// <summary>The asynchronous side of a hostile-peer test: <see cref="SyncVictim"/> with WaitAsync, on inherited region 0.</summary>
    private static int AsyncVictim(string primitive, int timeoutMilliseconds)
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        return SyncVictim.Run(region, primitive, asynchronous: true, TimeSpan.FromMilliseconds(timeoutMilliseconds));
    }

    /// <summary>
    /// Attaches a writer to the channel at the start of inherited region 0, fills its lane (the reader
    /// takes nothing), starts a WriteAsync that must wait for room, and says so with a 1 at
    /// <paramref name="control"/>. The reader is then killed: the write must fault with
    /// <see cref="ChannelClosedException"/>, and this process must end normally.
    /// </summary>
    private static int AwaitDeadReader(long control)
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        using SharedChannel channel = SharedChannel.Open(region);
        using SharedChannelWriter writer = channel.OpenWriter();
        byte[] message = new byte[1000];
        while (writer.TryWrite(message))
        {
        }
        Task pending = writer.WriteAsync(message).AsTask();
        region.Write(control, pending.IsCompleted ? 2 : 1);
        try
        {
            if (!pending.Wait(TimeSpan.FromSeconds(60)))
            {
                Console.Error.WriteLine("the write still waits 60 s after its reader was killed");
                return Unexpected;
            }
        }
        catch (AggregateException failure) when (failure.InnerException is ChannelClosedException closed)
        {
            Console.WriteLine($"the write faulted as it should: {closed.Message}");
            return 0;
        }
        Console.Error.WriteLine("the write completed although nobody read");
        return Unexpected;
    }

    /// <summary>
    /// With the watcher forced to poll (the fallback for kernels without futex_waitv): waits time out
    /// on time, a release wakes its waiter, a cancellation ends its wait.
    /// </summary>
    private static int WatcherPolling()
    {
        AppContext.SetSwitch("Shm.Interop.FutexWatcher.Polling", true);
        using SharedRegion region = SharedRegion.CreateAnonymous(4096);
        using SharedSemaphore timesOut = SharedSemaphore.Create(region, 0, 0);
        using SharedSemaphore released = SharedSemaphore.Create(region, 64, 0);
        using SharedSemaphore cancelled = SharedSemaphore.Create(region, 128, 0);
        using var cancel = new CancellationTokenSource();

        var clock = Stopwatch.StartNew();
        Task<bool> timeout = timesOut.TryWaitAsync(TimeSpan.FromMilliseconds(300));
        Task<bool> release = released.TryWaitAsync(TimeSpan.FromSeconds(30));
        Task<bool> cancellation = cancelled.TryWaitAsync(TimeSpan.FromSeconds(30), cancel.Token);
        released.Release();
        bool releasedInTime = release.Wait(TimeSpan.FromSeconds(5)) && release.Result;
        long releasedAfter = clock.ElapsedMilliseconds;
        bool timedOut = timeout.Wait(TimeSpan.FromSeconds(5)) && !timeout.Result;
        long timedOutAfter = clock.ElapsedMilliseconds;
        cancel.Cancel();
        bool cancelledInTime;
        try
        {
            cancelledInTime = !cancellation.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException failure) when (failure.InnerException is OperationCanceledException)
        {
            cancelledInTime = true;
        }
        Console.WriteLine($"released: {releasedInTime} after {releasedAfter} ms; timed out: {timedOut} after {timedOutAfter} ms; cancelled: {cancelledInTime}");
        return releasedInTime && timedOut && timedOutAfter is >= 290 and < 2000 && cancelledInTime ? 0 : Unexpected;
    }
}
