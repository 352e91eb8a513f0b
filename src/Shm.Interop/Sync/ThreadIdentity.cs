using System;
using System.Buffers.Text;
using System.Globalization;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A thread as a lock owner names it in shared memory: its kernel tid, its process's pid, and the
/// low 32 bits of its start time (field 22 of <c>/proc/PID/task/TID/stat</c>, clock ticks since boot),
/// so that a tid the kernel later gives to another thread is not mistaken for the owner.
/// </summary>
/// <remarks>
/// /proc shows a start time shifted by the boot-time offset of the reader's time namespace
/// (<c>unshare --time</c>, CRIU-restored processes), so peers in different time namespaces would
/// never see the same value: every start time is kept as the initial namespace counts it, the
/// reader's own offset (<c>/proc/self/timens_offsets</c>) taken off what it reads. An offset that is
/// not a whole number of ticks may round either way: start times one tick apart count as the same.
/// </remarks>
internal static class ThreadIdentity
{
    /// <summary>The most tids a kernel hands out (PID_MAX_LIMIT); /proc/sys/kernel/pid_max may be lower.</summary>
    internal const int PidMaxLimit = 4_194_304;

    private static int s_pidMax;

    /// <summary>Read once per thread, and again in a forked child, whose only thread has a tid of its own but the parent's copy of this cache.</summary>
    [ThreadStatic]
    private static Self t_self;

    /// <summary>This thread's identity: cached, except that a forked child reads its own at its first use.</summary>
    public static Self Current
    {
        get
        {
            Self self = t_self;
            if (self.Tid == 0 || self.ReadInForkedChild != ForkedChild.IsThisProcess)
            {
                t_self = self = Read();
            }
            return self;
        }
    }

    /// <summary>The kernel's pid_max: tids are below it.</summary>
    public static int PidMax
    {
        get
        {
            int pidMax = Volatile.Read(ref s_pidMax);
            return pidMax != 0 ? pidMax : RefreshPidMax();
        }
    }

    /// <summary>Reads pid_max again (it may have been raised since); PID_MAX_LIMIT if it cannot be read.</summary>
    public static int RefreshPidMax()
    {
        Span<byte> buffer = stackalloc byte[32];
        int length = Libc.ReadSmallFile("/proc/sys/kernel/pid_max", buffer);
        int pidMax = length > 0 && Utf8Parser.TryParse(buffer[..length], out int value, out _) && value > 0 && value <= PidMaxLimit ? value : PidMaxLimit;
        Volatile.Write(ref s_pidMax, pidMax);
        return pidMax;
    }

    /// <summary>
    /// False only when the kernel says thread <paramref name="tid"/> is gone: no such thread in process
    /// <paramref name="pid"/> (ESRCH), or a zombie, or a thread of that id that started at another time
    /// than <paramref name="start"/> (the tid was reused). A thread we may not look at (EPERM, EACCES, a
    /// /proc mounted with hidepid) counts as alive. With <paramref name="pid"/> 0 (the owner never
    /// recorded it), the tid alone is asked about. <paramref name="readerOffset"/> is the caller's
    /// <see cref="Self.BoottimeOffset"/>, taken off the start time read.
    /// </summary>
    public static bool IsAlive(int pid, int tid, uint? start, long readerOffset)
    {
        int probe = pid > 0 ? Libc.ProbeThread(pid, tid) : Libc.kill(tid, 0) == 0 ? 0 : System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        if (probe == LinuxErrno.ESRCH)
        {
            return false;
        }
        if (probe != 0)
        {
            return true; // EPERM: it exists, another user's
        }
        // It exists; but a zombie holds nothing, and a thread that started at another time is not the owner.
        string path = pid > 0
            ? string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/task/{tid}/stat")
            : string.Create(CultureInfo.InvariantCulture, $"/proc/{tid}/stat");
        if (!TryReadStat(path, out byte state, out long startTime))
        {
            return true; // hidden or unreadable: no proof of death
        }
        // A recorded start of 0 means the owner could not read its own (no /proc): nothing to compare.
        return state is not ((byte)'Z' or (byte)'X') && (start is not uint recorded || recorded == 0 || (uint)((uint)(startTime - readerOffset) - recorded + 1) <= 2);
    }

    private static Self Read()
    {
        bool inChild = ForkedChild.IsThisProcess;
        int tid = Libc.gettid();
        int pid = Libc.getpid();
        long offset = BoottimeOffset();
        long start = TryReadStat("/proc/thread-self/stat", out _, out long startTime) ? startTime - offset : 0;
        return new Self(tid, pid, (uint)start, offset, inChild);
    }

    /// <summary>
    /// The boot-time offset of this process's time namespace, in clock ticks rounded down (from the
    /// "boottime SECONDS NANOSECONDS" line of <c>/proc/self/timens_offsets</c>); 0 outside one, or on
    /// kernels without time namespaces (before 5.6).
    /// </summary>
    private static long BoottimeOffset()
    {
        Span<byte> buffer = stackalloc byte[128];
        int length = Libc.ReadSmallFile("/proc/self/timens_offsets", buffer);
        if (length <= 0)
        {
            return 0;
        }
        ReadOnlySpan<byte> text = buffer[..length];
        int at = text.IndexOf("boottime"u8);
        if (at < 0)
        {
            return 0;
        }
        text = text[(at + "boottime".Length)..].TrimStart((byte)' ');
        if (!Utf8Parser.TryParse(text, out long seconds, out int used) || !Utf8Parser.TryParse(text[used..].TrimStart((byte)' '), out long nanoseconds, out _))
        {
            return 0;
        }
        long tick = 1_000_000_000 / Libc.ClockTicksPerSecond();
        long offset = (seconds * 1_000_000_000) + nanoseconds;
        return offset >= 0 ? offset / tick : -((tick - 1 - offset) / tick);
    }

    /// <summary>Reads the state (field 3) and start time (field 22) of a /proc stat file.</summary>
    private static bool TryReadStat(string path, out byte state, out long startTime)
    {
        state = 0;
        startTime = 0;
        Span<byte> buffer = stackalloc byte[1024];
        int length = Libc.ReadSmallFile(path, buffer);
        if (length <= 0)
        {
            return false;
        }
        // "tid (comm) S ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
        ReadOnlySpan<byte> stat = buffer[..length];
        int close = stat.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return false;
        }
        ReadOnlySpan<byte> rest = stat[(close + 2)..];
        state = rest[0];
        for (int field = 3; field < 22; field++)
        {
            int space = rest.IndexOf((byte)' ');
            if (space < 0)
            {
                return false;
            }
            rest = rest[(space + 1)..];
        }
        return Utf8Parser.TryParse(rest, out startTime, out _);
    }

    /// <summary>A thread's identity, as read by itself: <paramref name="Start"/> as the initial time namespace counts it, <paramref name="BoottimeOffset"/> that of its own (clock ticks).</summary>
    internal readonly record struct Self(int Tid, int Pid, uint Start, long BoottimeOffset, bool ReadInForkedChild);
}
