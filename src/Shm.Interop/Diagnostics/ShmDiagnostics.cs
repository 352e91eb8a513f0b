using System.Collections.Generic;
using System.Diagnostics.Metrics;

namespace Shm.Interop;

/// <summary>
/// The library's counters, as <see cref="System.Diagnostics.Metrics"/> instruments on the meter
/// <see cref="MeterName"/> (<c>dotnet-counters monitor --counters Shm.Interop</c>, OpenTelemetry's
/// <c>AddMeter("Shm.Interop")</c>) and as events of the <see cref="EventSourceName"/> event source.
/// </summary>
/// <remarks>
/// Counting costs one static read and, with nobody listening, an instrument's cheap "no listener" path:
/// no allocation. A forked child counts nothing: it has one thread, and a listener's callback (an
/// exporter's aggregation) could take a lock another parent thread held at the fork.
/// </remarks>
public static class ShmDiagnostics
{
    /// <summary>The name of the meter: <c>Shm.Interop</c>.</summary>
    public const string MeterName = "Shm.Interop";

    /// <summary>The name of the event source: <c>Shm-Interop</c>.</summary>
    public const string EventSourceName = "Shm-Interop";

    private static readonly Meter Meter = new(MeterName, typeof(ShmDiagnostics).Assembly.GetName().Version?.ToString());

    private static readonly Counter<long> ForkRetries = Meter.CreateCounter<long>(
        "shm.fork.retries", "{retry}", "Forked children started again: the first try inherited a runtime lock another thread held at the fork.");

    private static readonly Counter<long> DeadlocksSuspected = Meter.CreateCounter<long>(
        "shm.child.deadlocks_suspected", "{child}", "Forked children found unable to wake without a signal (counted once per child).");

    private static readonly Counter<long> DeadlocksKilled = Meter.CreateCounter<long>(
        "shm.child.deadlocks_killed", "{child}", "Forked children found unable to wake and killed (ChildDeadlockPolicy.Kill, or while terminating).");

    private static readonly Counter<long> DeadPeers = Meter.CreateCounter<long>(
        "shm.peers.dead", "{peer}", "Peers found dead by the kernel's word (tag shm.peer.kind: channel_writer, channel_reader, mutex_owner, futex_mutex_owner, service_participant).");

    private static readonly Counter<long> Corruptions = Meter.CreateCounter<long>(
        "shm.corruptions", "{report}", "SharedMemoryCorruptedException reports (tag shm.structure: what held the impossible value).");

    private static readonly UpDownCounter<long> Mappings = Meter.CreateUpDownCounter<long>(
        "shm.regions.mapped", "{mapping}", "Live shared memory mappings of this process (regions, channels' and services' segments).");

    private static readonly UpDownCounter<long> MappedBytes = Meter.CreateUpDownCounter<long>(
        "shm.regions.mapped_bytes", "By", "Bytes of the live shared memory mappings of this process.");

    internal static void ForkRetried(int count)
    {
        if (count <= 0 || ForkedChild.IsThisProcess)
        {
            return;
        }
        ForkRetries.Add(count);
        ShmEventSource.Log.ForkRetried(count);
    }

    internal static void DeadlockSuspected(int pid)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        DeadlocksSuspected.Add(1);
        ShmEventSource.Log.DeadlockSuspected(pid);
    }

    internal static void DeadlockKilled(int pid)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        DeadlocksKilled.Add(1);
        ShmEventSource.Log.DeadlockKilled(pid);
    }

    /// <summary>A peer the kernel says is gone; <paramref name="kind"/> is one of the documented tag values (a constant: no allocation).</summary>
    internal static void DeadPeer(string kind, int pid)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        DeadPeers.Add(1, new KeyValuePair<string, object?>("shm.peer.kind", kind));
        ShmEventSource.Log.DeadPeer(kind, pid);
    }

    internal static void Corruption(string structure, long offset, long value)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        Corruptions.Add(1, new KeyValuePair<string, object?>("shm.structure", structure));
        ShmEventSource.Log.CorruptionReported(structure, offset, value);
    }

    internal static void Mapped(long bytes)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        Mappings.Add(1);
        MappedBytes.Add(bytes);
        ShmEventSource.Log.RegionMapped(bytes);
    }

    internal static void Unmapped(long bytes)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        Mappings.Add(-1);
        MappedBytes.Add(-bytes);
        ShmEventSource.Log.RegionUnmapped(bytes);
    }
}
