using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Shm.TestSupport;

/// <summary>One line of <c>/proc/PID/maps</c>.</summary>
/// <param name="Start">First address of the mapping.</param>
/// <param name="End">One past its last address.</param>
/// <param name="Permissions">Four letters such as <c>rw-s</c>.</param>
/// <param name="Path">The backing object as the kernel names it, e.g. <c>/dev/zero (deleted)</c>.</param>
public sealed record Mapping(long Start, long End, string Permissions, string Path)
{
    /// <summary>The mapping's size in bytes.</summary>
    public long Size => End - Start;

    /// <summary>True for a shared mapping (the fourth permission letter is <c>s</c>).</summary>
    public bool IsShared => Permissions.EndsWith('s');

    /// <summary>True for an anonymous <c>MAP_SHARED</c> mapping, which the kernel backs by a deleted <c>/dev/zero</c>.</summary>
    public bool IsAnonymousShared => IsShared && Path == "/dev/zero (deleted)";
}

/// <summary>The kernel's list of this process's mappings, read fresh on every call.</summary>
public static class ProcMaps
{
    /// <summary>Every mapping of process <paramref name="pid"/> (this process by default).</summary>
    public static IReadOnlyList<Mapping> Read(string pid = "self") =>
        File.ReadAllLines($"/proc/{pid}/maps").Select(Parse).ToList();

    /// <summary>The mapping that starts at <paramref name="address"/>, or null.</summary>
    public static Mapping? At(nint address) => Read().FirstOrDefault(m => m.Start == address);

    /// <summary>How many anonymous shared mappings this process has.</summary>
    public static int AnonymousSharedCount() => Read().Count(m => m.IsAnonymousShared);

    /// <summary>Anonymous shared mappings as (start, size) pairs, for before/after comparisons.</summary>
    public static HashSet<(long Start, long Size)> AnonymousShared() =>
        Read().Where(m => m.IsAnonymousShared).Select(m => (m.Start, m.Size)).ToHashSet();

    /// <summary>The value of a <c>/proc/self/smaps</c> field (in kB) for the mapping at <paramref name="address"/>.</summary>
    public static long SmapsField(nint address, string field)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            if (IsHeader(line))
            {
                inside = Parse(line).Start == address;
            }
            else if (inside && line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"No mapping at 0x{address:x} with field {field} in /proc/self/smaps.");
    }

    private static bool IsHeader(string line)
    {
        int dash = line.IndexOf('-', StringComparison.Ordinal);
        int space = line.IndexOf(' ', StringComparison.Ordinal);
        return dash > 0 && space > dash && line[..dash].All(char.IsAsciiHexDigit);
    }

    private static Mapping Parse(string line)
    {
        // start-end perms offset dev inode [path]; the path may contain spaces.
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        string[] range = fields[0].Split('-');
        return new Mapping(
            long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            fields[1],
            fields.Length > 5 ? fields[5].Trim() : "");
    }
}
