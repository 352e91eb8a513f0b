namespace Shm.Interop;

/// <summary>What backs a region; it decides who can share the memory and when it ends.</summary>
public enum RegionKind
{
    /// <summary><c>MAP_SHARED | MAP_ANONYMOUS</c>: this process and children forked after it; ends with the last mapping.</summary>
    Anonymous,

    /// <summary><c>memfd_create</c>: any process that receives the descriptor; ends with the last descriptor and mapping.</summary>
    Memfd,

    /// <summary><c>shm_open</c> in <c>/dev/shm</c>: any process allowed by the mode, by name; ends when its creator unlinks it.</summary>
    Named,

    /// <summary>A file: anyone who can open it; persists until the file is deleted.</summary>
    File,

    /// <summary>Attached from a descriptor received from elsewhere (e.g. inherited by a spawned child).</summary>
    Descriptor,
}
