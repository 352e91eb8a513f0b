using System.Runtime.InteropServices;

namespace Shm.Bench;

/// <summary>The baseline: libc called directly, as a careful user would without the library.</summary>
internal static unsafe partial class Raw
{
    public const int Length = 5096;
    private const int ProtReadWrite = 0x3;
    private const int MapSharedAnonymous = 0x21;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "fork", SetLastError = true)]
    public static partial int Fork();

    [LibraryImport("libc", EntryPoint = "_exit")]
    public static partial void Exit(int status);

    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    public static partial int WaitPid(int pid, int* status, int options);

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nuint size, ulong* mask);

    public static nint Map()
    {
        nint address = Mmap(0, Length, ProtReadWrite, MapSharedAnonymous, -1, 0);
        return address == -1 ? throw new System.IO.IOException($"mmap: errno {Marshal.GetLastPInvokeError()}") : address;
    }

    public static void Unmap(nint address) => Munmap(address, Length);

    /// <summary>Pins the calling thread to <paramref name="cpus"/> (a bit mask).</summary>
    public static void Pin(ulong cpus) => SchedSetAffinity(0, sizeof(ulong), &cpus);

    /// <summary>fork, _exit(0) in the child, waitpid in the parent: the bare cost of one child.</summary>
    public static void ForkExitWait()
    {
        int pid = Fork();
        if (pid == 0)
        {
            Exit(0);
        }
        int status;
        WaitPid(pid, &status, 0);
    }
}
