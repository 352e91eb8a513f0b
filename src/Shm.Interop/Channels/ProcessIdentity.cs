using System;
using System.Buffers.Text;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// A process as a peer in shared memory names it: its pid and its start time (field 22 of
/// <c>/proc/PID/stat</c>), so that a pid the kernel later gives to another process is not mistaken
/// for the peer.
/// </summary>
/// <remarks>
/// A peer is dead only when the kernel says so: its <c>/proc/PID/stat</c> shows a zombie or another
/// start time, or there is no stat to read and <c>kill(pid, 0)</c> answers ESRCH ("no such
/// process"). A stat we may not read (a /proc mounted with hidepid, a peer under another uid in a
/// hardened setup) or a <c>kill</c> that answers EPERM is a live process we cannot look into: alive.
/// Such a peer's start time cannot be checked, so a pid reused while we cannot see it passes for
/// the peer (the conservative mistake: it keeps a lane or a reader's place, it loses no message).
/// </remarks>
internal static class ProcessIdentity
{
    /// <summary>
    /// This process's pid and start time, read now: not cached, because a forked child shares every
    /// cache of its parent (even <see cref="Environment.ProcessId"/> answers with the parent's pid there).
    /// </summary>
    public static (int Pid, long StartTime) Self()
    {
        int pid = Libc.getpid();
        return (pid, Stat(pid, out long started) == Seen.Running ? started : 0);
    }

    /// <summary>
    /// True unless the kernel says <paramref name="pid"/> is gone, a zombie, or a later process than
    /// the one that started at <paramref name="startTime"/> (0: not recorded yet, because a peer
    /// claims its place before it writes its start time: then any process with that pid counts).
    /// </summary>
    public static bool IsAlive(int pid, long startTime)
    {
        if (pid <= 0)
        {
            return false; // callers refuse such pids as corrupt; never let kill(0 or -n) reach a group
        }
        return Stat(pid, out long started) switch
        {
            Seen.Running => startTime == 0 || started == startTime,
            Seen.Ended => false,
            _ => Libc.kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() != LinuxErrno.ESRCH,
        };
    }

    private enum Seen
    {
        Running,
        Ended,
        Unreadable,
    }

    /// <summary>What <c>/proc/PID/stat</c> says of <paramref name="pid"/>, and its start time if it runs.</summary>
    private static Seen Stat(int pid, out long started)
    {
        started = 0;
        Span<byte> buffer = stackalloc byte[1024];
        int length = Libc.ReadSmallFile(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"), buffer);
        if (length <= 0)
        {
            return Seen.Unreadable; // gone, hidden or forbidden: kill(2) tells which
        }
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
        ReadOnlySpan<byte> stat = buffer[..length];
        int close = stat.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return Seen.Unreadable;
        }
        ReadOnlySpan<byte> rest = stat[(close + 2)..];
        if (rest[0] is (byte)'Z' or (byte)'X')
        {
            return Seen.Ended;
        }
        // rest starts at field 3 (state); starttime is field 22.
        for (int field = 3; field < 22; field++)
        {
            int space = rest.IndexOf((byte)' ');
            if (space < 0)
            {
                return Seen.Unreadable;
            }
            rest = rest[(space + 1)..];
        }
        return Utf8Parser.TryParse(rest, out started, out _) ? Seen.Running : Seen.Unreadable;
    }
}
