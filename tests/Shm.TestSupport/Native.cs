using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;

namespace Shm.TestSupport;

/// <summary>libc calls the tests make on their own, to observe processes independently of the library.</summary>
public static partial class Native
{
    private const long SysPidfdOpen = 434;

    /// <summary>SIGTERM.</summary>
    public const int SIGTERM = 15;

    /// <summary>SIGKILL.</summary>
    public const int SIGKILL = 9;

    /// <summary>Ignore a signal.</summary>
    public const nint SIG_IGN = 1;

    /// <summary>dup2(2).</summary>
    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    public static partial int Dup2(int fd, int newFd);

    /// <summary>signal(2).</summary>
    [LibraryImport("libc", EntryPoint = "signal", SetLastError = true)]
    public static partial nint Signal(int signal, nint handler);

    /// <summary>getpid(2).</summary>
    [LibraryImport("libc", EntryPoint = "getpid")]
    public static partial int GetPid();

    /// <summary>gettid(2): the calling thread's kernel id.</summary>
    [LibraryImport("libc", EntryPoint = "gettid")]
    public static partial int GetTid();

    /// <summary>kill(2).</summary>
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>PROT_NONE: a page nothing may read or write.</summary>
    public const int PROT_NONE = 0;

    /// <summary>mprotect(2) on part of a mapping (a region's <c>Protect</c> covers the whole region); 0 or -1 with errno set.</summary>
    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(nint address, nint length, int protection);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, nint arg1, nint arg2);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(long* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    /// <summary>
    /// Opens the FIFO at <paramref name="path"/> for writing, without blocking, and closes it: a
    /// reader blocked in open(2) on it gets its writer and returns. Nothing happens without a reader.
    /// </summary>
    public static void ReleaseFifoReaders(string path)
    {
        const int O_WRONLY = 1, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
        int fd = Open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
        {
            Close(fd);
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for process <paramref name="pid"/> (anyone's, not only
    /// a child) to end, through a pidfd: true if it is gone.
    /// </summary>
    public static unsafe bool WaitGone(int pid, TimeSpan timeout)
    {
        int fd = (int)Syscall(SysPidfdOpen, pid, 0);
        if (fd < 0)
        {
            return Marshal.GetLastPInvokeError() == 3; // ESRCH: already gone
        }
        try
        {
            long pollfd = (uint)fd | (1L << 32); // struct pollfd { int fd; short events = POLLIN; short revents; }
            return Poll(&pollfd, 1, (int)timeout.TotalMilliseconds) == 1;
        }
        finally
        {
            Close(fd);
        }
    }

    /// <summary>True if /proc lists <paramref name="pid"/> as a process that is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        string status = $"/proc/{pid}/status";
        try
        {
            string? state = File.ReadLines(status).FirstOrDefault(line => line.StartsWith("State:", StringComparison.Ordinal));
            return state is not null && !state.Contains("zombie", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>True if /proc says process <paramref name="pid"/> ignores <paramref name="signal"/> (its SigIgn mask); false if not, or if it is gone.</summary>
    public static bool Ignores(int pid, int signal)
    {
        try
        {
            string? line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (signal - 1))) != 0;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>What the kernel says process <paramref name="pid"/> is doing: its state, threads, system call and wait channel.</summary>
    public static string Describe(int pid)
    {
        try
        {
            string[] status = File.ReadAllLines($"/proc/{pid}/status");
            string State(string key) => status.FirstOrDefault(line => line.StartsWith(key, StringComparison.Ordinal))?.Split('\t', 2)[1].Trim() ?? "?";
            string syscall = File.ReadAllText($"/proc/{pid}/syscall").Trim();
            string wchan = File.ReadAllText($"/proc/{pid}/wchan").Trim();
            return $"process {pid}: state {State("State:")}, {State("Threads:")} thread(s), syscall \"{syscall}\", wchan {wchan}";
        }
        catch (IOException)
        {
            return $"process {pid}: gone from /proc";
        }
    }

    /// <summary>True if /proc has any entry for <paramref name="pid"/>, zombie included.</summary>
    public static bool Exists(int pid) => Directory.Exists($"/proc/{pid}");

    /// <summary>The unreaped children of this process (zombies included), from /proc/self/task/*/children.</summary>
    /// <remarks>A thread may end between the listing and the read: its file is then gone, and so are its children's claims on it.</remarks>
    public static int[] Children() =>
        Directory.GetDirectories("/proc/self/task")
            .SelectMany(task => ReadIfThere(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse)
            .ToArray();

    private static string ReadIfThere(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
    }
}
