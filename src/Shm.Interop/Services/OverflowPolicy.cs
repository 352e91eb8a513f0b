namespace Shm.Interop;

/// <summary>What a publisher does when a subscriber's queue is full.</summary>
public enum OverflowPolicy
{
    /// <summary>The publisher waits for the subscriber to take a sample (its loan waits, bounded by its timeout or token): the subscriber loses nothing.</summary>
    Block = 0,

    /// <summary>The publisher takes the subscriber's oldest queued sample back and counts it: the subscriber learns exactly how many it missed.</summary>
    DropOldest = 1,
}
