using System.Runtime.InteropServices;

namespace Shm.Interop;

// The C library, and syscall(2) for the calls glibc 2.28 does not wrap (futex, futex_waitv, pidfds, gettid, tgkill).
internal static partial class Libc
{
    /// <summary>The runtime maps "libc" to the platform's C library (libc.so.6 on glibc).</summary>
    internal const string Name = "libc";

    // syscall is variadic; on the Linux ABIs every argument travels in a register either way.
    [LibraryImport(Name, EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall(long number, nint arg1, nint arg2, nint arg3, nint arg4, nint arg5, nint arg6);
}
