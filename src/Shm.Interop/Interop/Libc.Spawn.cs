using System.Runtime.InteropServices;

namespace Shm.Interop;

// <spawn.h>: start a program without running any of this process's code in the child.
internal static partial class Libc
{
    internal const short POSIX_SPAWN_SETSIGMASK = 0x08;

    /// <summary>Room for glibc's posix_spawn_file_actions_t (80 bytes on x86-64 and arm64).</summary>
    internal const int SpawnFileActionsSize = 256;

    /// <summary>Room for glibc's posix_spawnattr_t (336 bytes on x86-64 and arm64).</summary>
    internal const int SpawnAttrSize = 1024;

    // The posix_spawn family returns an error number instead of setting errno.
    [LibraryImport(Name, EntryPoint = "posix_spawnp")]
    internal static unsafe partial int posix_spawnp(int* pid, byte* file, void* fileActions, void* attributes, byte** argv, byte** envp);

    [LibraryImport(Name, EntryPoint = "posix_spawn_file_actions_init")]
    internal static unsafe partial int posix_spawn_file_actions_init(void* fileActions);

    [LibraryImport(Name, EntryPoint = "posix_spawn_file_actions_destroy")]
    internal static unsafe partial int posix_spawn_file_actions_destroy(void* fileActions);

    // glibc 2.29+: dup2 of a descriptor onto itself clears FD_CLOEXEC in the child only.
    [LibraryImport(Name, EntryPoint = "posix_spawn_file_actions_adddup2")]
    internal static unsafe partial int posix_spawn_file_actions_adddup2(void* fileActions, int fd, int newFd);

    [LibraryImport(Name, EntryPoint = "posix_spawnattr_init")]
    internal static unsafe partial int posix_spawnattr_init(void* attributes);

    [LibraryImport(Name, EntryPoint = "posix_spawnattr_destroy")]
    internal static unsafe partial int posix_spawnattr_destroy(void* attributes);

    [LibraryImport(Name, EntryPoint = "posix_spawnattr_setflags")]
    internal static unsafe partial int posix_spawnattr_setflags(void* attributes, short flags);

    [LibraryImport(Name, EntryPoint = "posix_spawnattr_setsigmask")]
    internal static unsafe partial int posix_spawnattr_setsigmask(void* attributes, SigSet* mask);
}
