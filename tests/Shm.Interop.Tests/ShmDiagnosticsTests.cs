using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Diagnostics.Tracing;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public sealed class ShmDiagnosticsTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly MeterListener _meters = new();
    private readonly ConcurrentQueue<(string Name, long Value, string? Tag)> _measured = new();
    private readonly Events _events = new();

    public ShmDiagnosticsTests()
    {
        _meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ShmDiagnostics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            _measured.Enqueue((instrument.Name, value, tags.Length > 0 ? tags[0].Value as string : null)));
        _meters.Start();
    }

    public void Dispose()
    {
        _meters.Dispose();
        _events.Dispose();
    }

    [Fact]
    public void Mapping_and_unmapping_a_region_moves_the_live_mapping_counters_and_writes_events()
    {
        var region = SharedRegion.CreateAnonymous(12_345);

        Assert.Contains(("shm.regions.mapped_bytes", 12_345L, (string?)null), _measured);
        Assert.Contains(("shm.regions.mapped", 1L, (string?)null), _measured);
        region.Dispose();
        Assert.Contains(("shm.regions.mapped_bytes", -12_345L, (string?)null), _measured);
        Assert.Contains(_events.Seen, e => e.EventName == "RegionMapped" && (long)e.Payload![0]! == 12_345);
        Assert.Contains(_events.Seen, e => e.EventName == "RegionUnmapped" && (long)e.Payload![0]! == 12_345);
    }

    [Fact]
    public void A_corrupt_lane_tail_is_counted_with_its_structure_and_reported_as_an_error_event()
    {
        using var region = SharedRegion.CreateAnonymous(SharedChannel.RequiredLength(4096));
        using var channel = SharedChannel.Create(region, 0, 4096);
        region.Write<long>(256 + 64, 3); // lane 0's tail, as a hostile process could write it: not a multiple of 8

        var corrupt = Assert.Throws<SharedMemoryCorruptedException>(() => channel.OpenWriter());

        Assert.Contains(("shm.corruptions", 1L, corrupt.Structure), _measured);
        Assert.Contains(_events.Seen, e => e.EventName == "CorruptionReported" && e.Level == EventLevel.Error &&
            (string)e.Payload![0]! == corrupt.Structure && (long)e.Payload[1]! == corrupt.Offset && (long)e.Payload[2]! == 3);
    }

    [Fact]
    public void A_futex_mutex_owner_that_died_is_counted_as_a_dead_peer()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        using var mutex = SharedFutexMutex.Create(region, 0);
        using Child holder = Child.Fork(() =>
        {
            mutex.Lock();
            region.Write(64, 1);
            while (true)
            {
                Thread.SpinWait(1000);
            }
        });
        Assert.True(SpinWait.SpinUntil(() => region.Read<int>(64) == 1, Bound), "the child never held the mutex");
        holder.Signal(Native.SIGKILL);
        Assert.Equal(Native.SIGKILL, holder.WaitOrFail().Signal);

        Assert.Throws<AbandonedMutexException>(() => mutex.TryLock(Bound));
        mutex.Unlock();

        Assert.Contains(("shm.peers.dead", 1L, "futex_mutex_owner"), _measured);
        Assert.Contains(_events.Seen, e => e.EventName == "DeadPeer" && (string)e.Payload![0]! == "futex_mutex_owner" && (int)e.Payload[1]! == holder.Pid);
    }

    [Fact]
    public void A_child_deadlocked_at_the_fork_is_counted_suspected_then_killed()
    {
        using var held = new HeldLock();
        using Child child = Child.Fork(
            () =>
            {
                held.Take();
                return 0;
            },
            new ForkOptions { DeadlockPolicy = ChildDeadlockPolicy.Kill });

        Assert.True(child.TryWait(out ChildExit? exit, Bound), "the deadlock was not detected");

        Assert.True(exit.Deadlocked);
        Assert.Single(_measured, m => m.Name == "shm.child.deadlocks_suspected");
        Assert.Single(_measured, m => m.Name == "shm.child.deadlocks_killed");
        Assert.Contains(_events.Seen, e => e.EventName == "DeadlockKilled" && (int)e.Payload![0]! == child.Pid);
    }

    [Fact]
    public void A_forked_child_counts_nothing_even_with_a_listener_inherited_from_the_parent()
    {
        SharedRegion.CreateAnonymous(4096).Dispose(); // the child's path, run once here
        int before = _measured.Count;

        using Child child = Child.Fork(() =>
        {
            int seen = _measured.Count;
            SharedRegion.CreateAnonymous(4096).Dispose();
            return _measured.Count == seen ? 0 : 1;
        });

        Assert.Equal(0, child.WaitOrFail().ExitCode);
        Assert.True(_measured.Count >= before);
    }

    /// <summary>Everything the library's event source writes while the test runs.</summary>
    private sealed class Events : EventListener
    {
        private readonly ConcurrentQueue<EventWrittenEventArgs> _seen = new();

        public IEnumerable<EventWrittenEventArgs> Seen => _seen.ToArray();

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == ShmDiagnostics.EventSourceName)
            {
                EnableEvents(eventSource, EventLevel.Verbose);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData) => _seen?.Enqueue(eventData);
    }
}
