namespace Shm.Tool;

/// <summary>What the kernel says about a segment's users, in order of how unsafe removing it is.</summary>
internal enum SegmentState
{
    /// <summary>Every process that could use it was read, and none maps it or holds it open.</summary>
    Orphan,

    /// <summary>No process the tool could read uses it, but some could not be read: it may be in use.</summary>
    Unknown,

    /// <summary>A process maps it or holds it open.</summary>
    Used,
}
