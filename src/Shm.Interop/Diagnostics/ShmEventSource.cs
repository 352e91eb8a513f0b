using System.Diagnostics.Tracing;

namespace Shm.Interop;

/// <summary>
/// The event source <c>Shm-Interop</c>: the same happenings as <see cref="ShmDiagnostics"/>'s
/// counters, one event each, for <c>dotnet-trace</c>, PerfView or an <see cref="EventListener"/>.
/// Each event is written only when a listener enabled its level.
/// </summary>
[EventSource(Name = ShmDiagnostics.EventSourceName)]
internal sealed class ShmEventSource : EventSource
{
    public static readonly ShmEventSource Log = new();

    private ShmEventSource()
    {
    }

    [Event(1, Level = EventLevel.Warning, Message = "{0} forked children started again (a runtime lock was held at the fork)")]
    public void ForkRetried(int count)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.None))
        {
            WriteEvent(1, count);
        }
    }

    [Event(2, Level = EventLevel.Warning, Message = "Forked child {0} cannot wake without a signal")]
    public void DeadlockSuspected(int pid)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.None))
        {
            WriteEvent(2, pid);
        }
    }

    [Event(3, Level = EventLevel.Warning, Message = "Forked child {0} could not wake and was killed")]
    public void DeadlockKilled(int pid)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.None))
        {
            WriteEvent(3, pid);
        }
    }

    [Event(4, Level = EventLevel.Warning, Message = "A {0}, process {1}, is dead")]
    public void DeadPeer(string kind, int pid)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.None))
        {
            WriteEvent(4, kind, pid);
        }
    }

    [Event(5, Level = EventLevel.Error, Message = "Shared memory corrupted: {0} at offset {1} holds {2}")]
    public void CorruptionReported(string structure, long offset, long value)
    {
        if (IsEnabled(EventLevel.Error, EventKeywords.None))
        {
            WriteEvent(5, structure, offset, value); // the EventSourcePrimitive overload: trim-safe; its array only when enabled
        }
    }

    [Event(6, Level = EventLevel.Verbose, Message = "Mapped {0} bytes of shared memory")]
    public void RegionMapped(long bytes)
    {
        if (IsEnabled(EventLevel.Verbose, EventKeywords.None))
        {
            WriteEvent(6, bytes);
        }
    }

    [Event(7, Level = EventLevel.Verbose, Message = "Unmapped {0} bytes of shared memory")]
    public void RegionUnmapped(long bytes)
    {
        if (IsEnabled(EventLevel.Verbose, EventKeywords.None))
        {
            WriteEvent(7, bytes);
        }
    }
}
