using System;

namespace Shm.Interop;

/// <summary>Page protection of a region (<c>PROT_*</c>).</summary>
[Flags]
public enum Protection
{
    /// <summary>No access (<c>PROT_NONE</c>): any touch faults; the API refuses access.</summary>
    None = Libc.PROT_NONE,
    /// <summary>Pages may be read (<c>PROT_READ</c>).</summary>
    Read = Libc.PROT_READ,
    /// <summary>Pages may be written (<c>PROT_WRITE</c>).</summary>
    Write = Libc.PROT_WRITE,
    /// <summary>Read and write, the default for new regions.</summary>
    ReadWrite = Read | Write,
}
