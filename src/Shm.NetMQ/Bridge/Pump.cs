using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.NetMQ;

/// <summary>
/// One channel a bridge carries, moved by one task between the local channel and the link's stream.
/// The task never lets an exception escape: what ends it is kept in <see cref="Failure"/> and reported.
/// </summary>
internal abstract class Pump(BridgedName name, IDisposable local, Link link)
{
    private long _lastMessages;
    private long _lastTimestamp = Stopwatch.GetTimestamp();

    public BridgedName Name { get; } = name;

    /// <summary>The local channel or service (and its reader, writer, subscriber or publisher): disposed with the bridge.</summary>
    public IDisposable Local { get; } = local;

    protected Link Link { get; } = link;

    public string? Failure { get; private set; }

    public Task Running { get; private set; } = Task.CompletedTask;

    public double Rate { get; private set; }

    public abstract string Direction { get; }

    public abstract long Messages { get; }

    public abstract int Backlog { get; }

    public abstract long Lost { get; }

    public abstract string? Peer { get; }

    protected abstract string StreamState { get; }

    public string State => Failure is null ? StreamState : "failed: " + Failure;

    public void Start(CancellationToken stop) => Running = Task.Run(() => RunGuarded(stop), CancellationToken.None);

    /// <summary>Updates <see cref="Rate"/> from the messages carried since the last call.</summary>
    public void Sample()
    {
        long now = Stopwatch.GetTimestamp();
        long messages = Messages;
        double seconds = Stopwatch.GetElapsedTime(_lastTimestamp, now).TotalSeconds;
        if (seconds > 0)
        {
            Rate = (messages - _lastMessages) / seconds;
        }
        _lastMessages = messages;
        _lastTimestamp = now;
    }

    public BridgedChannelStatus Status() => new(Name.Remote, Name.Local, Direction, State, Peer, Messages, Math.Round(Rate, 1), Backlog, Lost);

    protected abstract Task Run(CancellationToken stop);

    private async Task RunGuarded(CancellationToken stop)
    {
        try
        {
            await Run(stop).ConfigureAwait(false);
        }
        catch (Exception ended) when (stop.IsCancellationRequested && ended is OperationCanceledException or ObjectDisposedException)
        {
            // the bridge is stopping
        }
        catch (Exception failure)
        {
            Failure = $"{failure.GetType().Name}: {failure.Message}";
            Link.Report($"{Direction} of '{Name}' stopped: {Failure}");
        }
    }
}
