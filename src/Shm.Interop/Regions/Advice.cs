namespace Shm.Interop;

/// <summary>Hints for <see cref="SharedRegion.Advise"/> (<c>MADV_*</c> values of Linux).</summary>
public enum Advice
{
    /// <summary>No special treatment (<c>MADV_NORMAL</c>).</summary>
    Normal = 0,
    /// <summary>Expect random access: read ahead less (<c>MADV_RANDOM</c>).</summary>
    Random = 1,
    /// <summary>Expect sequential access: read ahead more (<c>MADV_SEQUENTIAL</c>).</summary>
    Sequential = 2,
    /// <summary>Expect access soon: fault pages in now (<c>MADV_WILLNEED</c>).</summary>
    WillNeed = 3,
    /// <summary>
    /// Not needed for now (<c>MADV_DONTNEED</c>). On a shared mapping the data is kept by the
    /// backing object; only this process's page table entries go.
    /// </summary>
    DontNeed = 4,
    /// <summary>Free the backing pages; reads then return zeros (<c>MADV_REMOVE</c>).</summary>
    Remove = 9,
    /// <summary>Children forked later do not get this mapping (<c>MADV_DONTFORK</c>).</summary>
    DontFork = 10,
    /// <summary>Undo <see cref="DontFork"/> (<c>MADV_DOFORK</c>).</summary>
    DoFork = 11,
    /// <summary>Prefer transparent huge pages (<c>MADV_HUGEPAGE</c>).</summary>
    HugePage = 14,
    /// <summary>Avoid transparent huge pages (<c>MADV_NOHUGEPAGE</c>).</summary>
    NoHugePage = 15,
    /// <summary>Leave this range out of core dumps (<c>MADV_DONTDUMP</c>).</summary>
    DontDump = 16,
    /// <summary>Populate the pages writable now (<c>MADV_POPULATE_WRITE</c>, Linux 5.14+).</summary>
    PopulateWrite = 23,
}
