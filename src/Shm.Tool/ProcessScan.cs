using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Shm.Tool;

/// <summary>
/// Reads /proc for the processes that map (/proc/PID/maps: the device and inode columns) or hold
/// open (/proc/PID/fd/*, each followed with statx) files of one device, /dev/shm's. Files are
/// matched by device and inode only, never by the path text (which the kernel mangles and a name
/// can forge). A process that cannot be read is counted as unreadable, never as using nothing.
/// </summary>
internal static class ProcessScan
{
    private const uint PF_KTHREAD = 0x00200000;

    /// <summary>
    /// Scans every process now for its uses of files on the devices of <paramref name="segments"/>
    /// (normally /dev/shm's one tmpfs; a file bind-mounted over an entry lives on another).
    /// </summary>
    public static Usage Run(IEnumerable<Segment> segments)
    {
        var devices = new HashSet<(uint Major, uint Minor)>();
        foreach (Segment segment in segments)
        {
            devices.Add((segment.Status.Id.Major, segment.Status.Id.Minor));
        }
        var users = new Dictionary<FileId, SortedDictionary<int, SegmentUser>>();
        var unreadable = new List<int>();
        foreach (string entry in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) &&
                Examine(pid, devices, users) == Outcome.Unreadable)
            {
                unreadable.Add(pid);
            }
        }
        return new Usage(users, unreadable, ProcMount.HidesOthers());
    }

    private enum Outcome
    {
        Read,
        Gone,
        Unreadable,
    }

    private static Outcome Examine(int pid, HashSet<(uint Major, uint Minor)> devices, Dictionary<FileId, SortedDictionary<int, SegmentUser>> users)
    {
        string process = $"/proc/{pid}";
        int error = ProcFile.TryRead(process + "/stat", out byte[] stat);
        if (error != 0)
        {
            return Failed(error);
        }
        if (!TryParseStat(stat, out string command, out char state, out uint flags))
        {
            return Outcome.Unreadable;
        }
        if ((flags & PF_KTHREAD) != 0)
        {
            return Outcome.Read; // a kernel thread maps no user file and holds no descriptor of its own
        }
        // A main thread that exited (pthread_exit) is a zombie with no memory and no descriptors
        // while its other threads run on with both: read those through a live thread.
        string? task = state is 'Z' or 'X' ? LiveThread(process) : process;
        if (task is null)
        {
            return Outcome.Gone;
        }
        // Descriptors before mappings: a process that opens, maps, then closes (as every creator
        // does) holds the segment one way or the other all along, and is seen either way.
        var found = new Dictionary<FileId, (bool Mapped, bool Held)>();
        Outcome outcome = ReadDescriptors(task, devices, found);
        if (outcome == Outcome.Read)
        {
            outcome = ReadMappings(task, devices, found);
        }
        if (found.Count > 0)
        {
            uint? uid = EffectiveUid(process);
            foreach (var (id, use) in found)
            {
                if (!users.TryGetValue(id, out var byPid))
                {
                    users[id] = byPid = [];
                }
                byPid[pid] = new SegmentUser(pid, command, uid, use.Mapped, use.Held);
            }
        }
        return outcome;
    }

    /// <summary>Each line: "start-end perms offset MAJOR:MINOR inode path"; the path is never read.</summary>
    private static Outcome ReadMappings(string task, HashSet<(uint Major, uint Minor)> devices, Dictionary<FileId, (bool Mapped, bool Held)> found)
    {
        int error = ProcFile.TryRead(task + "/maps", out byte[] maps);
        if (error != 0)
        {
            return Failed(error);
        }
        ReadOnlySpan<byte> rest = maps;
        while (!rest.IsEmpty)
        {
            int end = rest.IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            if (!TryParseMapping(line, out FileId id))
            {
                return Outcome.Unreadable; // not the format we know: do not guess what it maps
            }
            if (id.Inode != 0 && devices.Contains((id.Major, id.Minor)))
            {
                found[id] = (true, found.GetValueOrDefault(id).Held);
            }
        }
        return Outcome.Read;
    }

    private static Outcome ReadDescriptors(string task, HashSet<(uint Major, uint Minor)> devices, Dictionary<FileId, (bool Mapped, bool Held)> found)
    {
        try
        {
            foreach (string descriptor in Directory.EnumerateFileSystemEntries(task + "/fd"))
            {
                int error = FileStatus.TryOfTarget(descriptor, out FileStatus status);
                if (error is Libc.EACCES or Libc.EPERM)
                {
                    return Outcome.Unreadable;
                }
                // Otherwise a failure is a descriptor closed meanwhile (ENOENT), or a file on
                // another file system that cannot answer: neither is a segment.
                if (error == 0 && devices.Contains((status.Id.Major, status.Id.Minor)))
                {
                    found[status.Id] = (found.GetValueOrDefault(status.Id).Mapped, true);
                }
            }
            return Outcome.Read;
        }
        catch (DirectoryNotFoundException)
        {
            return Outcome.Gone;
        }
        catch (Exception failure) when (failure is UnauthorizedAccessException or IOException)
        {
            return Outcome.Unreadable;
        }
    }

    /// <summary>The first thread of <paramref name="process"/> that is not a zombie, or null if none is left.</summary>
    private static string? LiveThread(string process)
    {
        try
        {
            foreach (string thread in Directory.EnumerateDirectories(process + "/task"))
            {
                if (ProcFile.TryRead(thread + "/stat", out byte[] stat) == 0 && TryParseStat(stat, out _, out char state, out _) && state is not ('Z' or 'X'))
                {
                    return thread;
                }
            }
        }
        catch (Exception failure) when (failure is UnauthorizedAccessException or IOException)
        {
            // ended while we looked
        }
        return null;
    }

    /// <summary>Only "no such process" means gone; anything else (EACCES, EPERM, ...) means alive but not ours to read.</summary>
    private static Outcome Failed(int error) => error is Libc.ENOENT or Libc.ESRCH ? Outcome.Gone : Outcome.Unreadable;

    /// <summary>/proc/PID/stat: "pid (comm) state ppid pgrp session tty tpgid flags ..."; comm may hold spaces and parentheses.</summary>
    private static bool TryParseStat(ReadOnlySpan<byte> stat, out string command, out char state, out uint flags)
    {
        command = "";
        state = '?';
        flags = 0;
        int open = stat.IndexOf((byte)'('), close = stat.LastIndexOf((byte)')');
        if (open < 0 || close < open || close + 2 > stat.Length)
        {
            return false;
        }
        command = Encoding.UTF8.GetString(stat[(open + 1)..close]);
        ReadOnlySpan<byte> fields = stat[(close + 2)..];
        int index = 0;
        foreach (Range field in fields.Split((byte)' '))
        {
            if (index == 0)
            {
                if (fields[field].Length != 1)
                {
                    return false;
                }
                state = (char)fields[field][0];
            }
            else if (index == 6)
            {
                return uint.TryParse(fields[field], NumberStyles.None, CultureInfo.InvariantCulture, out flags);
            }
            index++;
        }
        return false;
    }

    private static bool TryParseMapping(ReadOnlySpan<byte> line, out FileId id)
    {
        id = default;
        ReadOnlySpan<byte> device = default, inode = default;
        int index = 0;
        foreach (Range field in line.Split((byte)' '))
        {
            if (index == 3)
            {
                device = line[field];
            }
            else if (index == 4)
            {
                inode = line[field];
                break;
            }
            index++;
        }
        int colon = device.IndexOf((byte)':');
        if (index != 4 || colon < 0 ||
            !uint.TryParse(device[..colon], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint major) ||
            !uint.TryParse(device[(colon + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint minor) ||
            !ulong.TryParse(inode, NumberStyles.None, CultureInfo.InvariantCulture, out ulong number))
        {
            return false;
        }
        id = new FileId(major, minor, number);
        return true;
    }

    /// <summary>The second field of /proc/PID/status's Uid line: the effective uid (ps's USER), or null if gone.</summary>
    private static uint? EffectiveUid(string process)
    {
        if (ProcFile.TryRead(process + "/status", out byte[] status) != 0)
        {
            return null;
        }
        foreach (string line in Encoding.UTF8.GetString(status).Split('\n'))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                string[] ids = line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries);
                return ids.Length > 1 && uint.TryParse(ids[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint uid) ? uid : null;
            }
        }
        return null;
    }
}
