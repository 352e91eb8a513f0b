namespace Shm.Interop;

/// <summary>How a region that maps an existing object may be used (like the BCL's <c>MemoryMappedFileAccess</c>).</summary>
public enum RegionAccess
{
    /// <summary>Read and write (<c>O_RDWR</c>, <c>PROT_READ | PROT_WRITE</c>).</summary>
    ReadWrite,

    /// <summary>Read only (<c>O_RDONLY</c>, <c>PROT_READ</c>): the writing accessors refuse with <see cref="System.NotSupportedException"/>.</summary>
    ReadOnly,
}
