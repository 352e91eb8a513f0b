using System.Runtime.InteropServices;

namespace Shm.Interop;

// <spawn.h>, glibc 2.39+: pidfd_spawnp, posix_spawnp that hands back a pidfd made with the process
// (clone3's CLONE_PIDFD, close-on-exec), so no reaper of every child (pid 1) can take the process
// before we hold it. Looked up at run time: the library supports glibc 2.28.
internal static partial class Libc
{
    internal static unsafe class PidfdSpawn
    {
        private static readonly nint Spawnp = Export("pidfd_spawnp");
        private static readonly nint GetPid = Export("pidfd_getpid");
        private static volatile bool s_unsupported;

        /// <summary>True while libc exports both functions and the kernel has not refused clone3 (ENOSYS under some seccomp profiles).</summary>
        public static bool IsAvailable => Spawnp != 0 && GetPid != 0 && !s_unsupported;

        /// <summary>pidfd_spawnp: returns the error number (0 on success), as posix_spawnp does. Call only if <see cref="IsAvailable"/>.</summary>
        public static int pidfd_spawnp(int* pidfd, byte* file, void* fileActions, void* attributes, byte** argv, byte** envp) =>
            ((delegate* unmanaged<int*, byte*, void*, void*, byte**, byte**, int>)Spawnp)(pidfd, file, fileActions, attributes, argv, envp);

        /// <summary>pidfd_getpid: the pid of the process behind <paramref name="pidfd"/>, or -1 (ESRCH once somebody reaped it).</summary>
        public static int pidfd_getpid(int pidfd) => ((delegate* unmanaged<int, int>)GetPid)(pidfd);

        /// <summary>After ENOSYS no process was made: posix_spawnp is used from then on.</summary>
        public static void MarkUnsupported() => s_unsupported = true;

        private static nint Export(string name) =>
            NativeLibrary.TryLoad("libc.so.6", out nint library) && NativeLibrary.TryGetExport(library, name, out nint address) ? address : 0;
    }
}
