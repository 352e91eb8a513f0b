using System;
using System.Buffers.Text;
using System.Globalization;

namespace Shm.Interop;

/// <summary>
/// A process as a peer in shared memory names it: its pid and its start time (field 22 of
/// <c>/proc/PID/stat</c>), so that a pid the kernel later gives to another process is not mistaken
/// for the peer. Alive means /proc still shows that process, and not as a zombie.
/// </summary>
internal static class ProcessIdentity
{
    /// <summary>
    /// This process's pid and start time, read now: not cached, because a forked child shares every
    /// cache of its parent (even <see cref="Environment.ProcessId"/> answers with the parent's pid there).
    /// </summary>
    public static (int Pid, long StartTime) Self()
    {
        int pid = Libc.getpid();
        return (pid, StartTime(pid) ?? 0);
    }

    /// <summary>
    /// True if <paramref name="pid"/> still runs and started at <paramref name="startTime"/> (0: not
    /// recorded yet, because a peer claims its place before it writes its start time: then any live
    /// process with that pid counts).
    /// </summary>
    public static bool IsAlive(int pid, long startTime) =>
        pid > 0 && StartTime(pid) is long started && (startTime == 0 || started == startTime);

    /// <summary>The start time of <paramref name="pid"/>, or null if it is gone or a zombie.</summary>
    public static long? StartTime(int pid)
    {
        Span<byte> buffer = stackalloc byte[1024];
        int length = Libc.ReadSmallFile(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"), buffer);
        if (length <= 0)
        {
            return null;
        }
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
        ReadOnlySpan<byte> stat = buffer[..length];
        int close = stat.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }
        ReadOnlySpan<byte> rest = stat[(close + 2)..];
        if (rest[0] is (byte)'Z' or (byte)'X')
        {
            return null;
        }
        // rest starts at field 3 (state); starttime is field 22.
        for (int field = 3; field < 22; field++)
        {
            int space = rest.IndexOf((byte)' ');
            if (space < 0)
            {
                return null;
            }
            rest = rest[(space + 1)..];
        }
        return Utf8Parser.TryParse(rest, out long value, out _) ? value : null;
    }
}
