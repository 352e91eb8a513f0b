using System;
using System.Buffers.Text;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// How a process names a peer in shared memory, and asks the kernel whether it lives: its pid (or a
/// thread's tid) and its start time (field 22 of <c>/proc/PID/stat</c>, clock ticks since boot), so
/// that a pid the kernel later gives to another process is not mistaken for the peer. The one reader
/// of stat files and the one time-namespace correction, for channel peers (here) and futex mutex
/// owners (<see cref="ThreadIdentity"/>).
/// </summary>
/// <remarks>
/// <para>/proc shows a start time shifted by the boot-time offset of the reader's time namespace
/// (<c>unshare --time</c>, CRIU-restored processes), so peers in different time namespaces would
/// never see the same value: every start time is kept as the initial namespace counts it, the
/// reader's own offset (<c>/proc/self/timens_offsets</c>) taken off what it reads. An offset that is
/// not a whole number of ticks may round either way: start times one tick apart count as the same.</para>
/// <para>A peer is dead only when the kernel says so: its stat shows a zombie or another start time,
/// or there is no stat to read and <c>kill(pid, 0)</c> answers ESRCH ("no such process"). A stat we
/// may not read (a /proc mounted with hidepid, a peer under another uid in a hardened setup) or a
/// <c>kill</c> that answers EPERM is a live process we cannot look into: alive. Such a peer's start
/// time cannot be checked, so a pid reused while we cannot see it passes for the peer (the
/// conservative mistake: it keeps a lane or a reader's place, it loses no message).</para>
/// </remarks>
internal static class PeerIdentity
{
    /// <summary>
    /// This process's pid and start time, read now: not cached, because a forked child shares every
    /// cache of its parent (even <see cref="Environment.ProcessId"/> answers with the parent's pid there).
    /// </summary>
    public static (int Pid, long StartTime) Self()
    {
        int pid = Libc.getpid();
        return (pid, Stat(pid, out long started) == Seen.Running ? started - BoottimeOffset() : 0);
    }

    /// <summary>
    /// True unless the kernel says <paramref name="pid"/> is gone, a zombie, or a later process than
    /// the one that started at <paramref name="startTime"/> (as the initial time namespace counts it;
    /// 0: not recorded yet, because a peer claims its place before it writes its start time: then
    /// any process with that pid counts).
    /// </summary>
    public static bool IsAlive(int pid, long startTime)
    {
        if (pid <= 0)
        {
            return false; // callers refuse such pids as corrupt; never let kill(0 or -n) reach a group
        }
        return Stat(pid, out long started) switch
        {
            Seen.Running => startTime == 0 || SameStart(started - BoottimeOffset(), startTime),
            Seen.Ended => false,
            _ => Libc.kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() != LinuxErrno.ESRCH,
        };
    }

    /// <summary>True if two start times, both as the initial namespace counts them, are within a tick (the offsets' rounding).</summary>
    public static bool SameStart(long read, long recorded) => read - recorded is >= -1 and <= 1;

    /// <summary>
    /// The boot-time offset of this process's time namespace, in clock ticks rounded down (from the
    /// "boottime SECONDS NANOSECONDS" line of <c>/proc/self/timens_offsets</c>); 0 outside one, or on
    /// kernels without time namespaces (before 5.6).
    /// </summary>
    public static long BoottimeOffset()
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

    /// <summary>Reads the state (field 3) and start time (field 22, as this process's namespace shows it) of a /proc stat file.</summary>
    public static bool TryReadStat(string path, out byte state, out long startTime)
    {
        state = 0;
        startTime = 0;
        Span<byte> buffer = stackalloc byte[1024];
        int length = Libc.ReadSmallFile(path, buffer);
        if (length <= 0)
        {
            return false;
        }
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
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

    private enum Seen
    {
        Running,
        Ended,
        Unreadable,
    }

    /// <summary>What <c>/proc/PID/stat</c> says of <paramref name="pid"/>, and its start time (as this process's namespace shows it) if it runs.</summary>
    private static Seen Stat(int pid, out long started)
    {
        bool read = TryReadStat(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"), out byte state, out started);
        if (state is (byte)'Z' or (byte)'X')
        {
            return Seen.Ended; // the state comes before any field that could fail to parse
        }
        return read ? Seen.Running : Seen.Unreadable; // unreadable: gone, hidden or forbidden, which kill(2) tells

    }
}
