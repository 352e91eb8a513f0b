using System;
using System.Runtime;

namespace Shm.Interop;

/// <summary>
/// Keeps a no-GC region open across forks and tells whether each fork happened inside it. A GC
/// in flight at the instant of a fork leaves the child waiting for a GC thread it does not have;
/// while the parent stays in an unbroken no-GC region, no GC can be in flight. Other threads may
/// allocate past the budget and end the region early: the window then reports the fork as
/// unsafe and opens a new region for the next one.
/// </summary>
internal struct NoGcWindow(long childBudget)
{
    private long _opened;
    private bool _mine;

    private static bool InRegion => GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    /// <summary>Makes sure a region is open with at least a child's budget left.</summary>
    public void EnsureRoom()
    {
        if (InRegion && (!_mine || GC.GetTotalAllocatedBytes(precise: false) - _opened < childBudget))
        {
            return; // still room (or the caller's own region, which is not ours to restart)
        }
        Close();
        try
        {
            // Twice the child's budget: the other half absorbs the parent's other threads.
            _mine = GC.TryStartNoGCRegion(2 * childBudget);
        }
        catch (ArgumentOutOfRangeException exception)
        {
            throw new ArgumentOutOfRangeException(nameof(ForkOptions.AllocationBudget), childBudget, exception.Message);
        }
        catch (InvalidOperationException)
        {
            // The runtime still counts an earlier region (broken by a GC) as in progress: end it and
            // try once more. Failing that, the forks are reported unsafe and redone.
            EndQuietly();
            _mine = TryStartQuietly(2 * childBudget);
        }
        _opened = GC.GetTotalAllocatedBytes(precise: false);
    }

    /// <summary>True if no GC ran since <see cref="EnsureRoom"/>: a fork made in between is sound.</summary>
    public readonly bool Unbroken => InRegion;

    public void Close()
    {
        // Even when a GC broke the region (the latency mode is no longer NoGCRegion) the runtime
        // keeps it open until EndNoGCRegion, and refuses to start another: always end ours.
        if (_mine)
        {
            EndQuietly();
        }
        _mine = false;
    }

    private static void EndQuietly()
    {
        try
        {
            GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // Broken by a GC (allocations past the budget) or already ended: either way it is closed.
        }
    }

    private static bool TryStartQuietly(long budget)
    {
        try
        {
            return GC.TryStartNoGCRegion(budget);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
