using System;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Shm.Tool;

/// <summary>Whether /proc shows this process every other process at all (proc(5): hidepid, gid).</summary>
internal static class ProcMount
{
    /// <summary>
    /// True if /proc is mounted with hidepid=invisible or ptraceable (2, 4) and this process is
    /// neither root nor in the exempt group: other users' processes are then missing from /proc,
    /// not merely unreadable, and nothing tells how many there are.
    /// </summary>
    public static bool HidesOthers()
    {
        if (ProcFile.TryRead("/proc/self/mountinfo", out byte[] mountinfo) != 0)
        {
            return true; // cannot tell: assume the worst
        }
        string? options = null;
        foreach (string line in Encoding.UTF8.GetString(mountinfo).Split('\n'))
        {
            // "id parent major:minor root mountpoint options [optional...] - fstype source superoptions"
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (fields.Length > 4 && fields[4] == "/proc" && separator > 0 && separator + 3 < fields.Length)
            {
                options = fields[separator + 3]; // the last mount on /proc is the one seen
            }
        }
        string[] settings = options?.Split(',') ?? [];
        string? hidepid = Setting(settings, "hidepid");
        if (hidepid is null or "0" or "off" or "1" or "noaccess" || Libc.GetEuid() == 0)
        {
            return false; // noaccess leaves the entries there, and reading them fails: counted as unreadable
        }
        return !(Setting(settings, "gid") is string gid && uint.TryParse(gid, NumberStyles.None, CultureInfo.InvariantCulture, out uint exempt) && InGroup(exempt));
    }

    private static string? Setting(string[] settings, string key) =>
        settings.FirstOrDefault(setting => setting.StartsWith(key + "=", StringComparison.Ordinal))?[(key.Length + 1)..];

    /// <summary>As the kernel's in_group_p: the file system gid (the Gid line's fourth field) or a supplementary group.</summary>
    private static bool InGroup(uint gid)
    {
        if (ProcFile.TryRead("/proc/self/status", out byte[] status) != 0)
        {
            return false;
        }
        string wanted = gid.ToString(CultureInfo.InvariantCulture);
        foreach (string line in Encoding.UTF8.GetString(status).Split('\n'))
        {
            string[] ids = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if ((line.StartsWith("Gid:", StringComparison.Ordinal) && ids.Length > 3 && ids[3] == wanted) ||
                (line.StartsWith("Groups:", StringComparison.Ordinal) && ids.Contains(wanted)))
            {
                return true;
            }
        }
        return false;
    }
}
