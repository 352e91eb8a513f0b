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
/// Start times are kept as the initial time namespace counts them, read and corrected by
/// <see cref="PeerIdentity"/>, which channel peers use too.
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
        if (!PeerIdentity.TryReadStat(path, out byte state, out long startTime))
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
        long offset = PeerIdentity.BoottimeOffset();
        long start = PeerIdentity.TryReadStat("/proc/thread-self/stat", out _, out long startTime) ? startTime - offset : 0;
        return new Self(tid, pid, (uint)start, offset, inChild);
    }

    /// <summary>A thread's identity, as read by itself: <paramref name="Start"/> as the initial time namespace counts it, <paramref name="BoottimeOffset"/> that of its own (clock ticks).</summary>
    internal readonly record struct Self(int Tid, int Pid, uint Start, long BoottimeOffset, bool ReadInForkedChild);
}
