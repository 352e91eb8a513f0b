using System;
using System.Collections.Generic;
using System.IO;

namespace Shm.Tool;

/// <summary>Which processes map (/proc/PID/maps) or hold open (/proc/PID/fd) which files of /dev/shm.</summary>
internal sealed class Users
{
    private readonly Dictionary<string, SortedSet<int>> _mappers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedSet<int>> _holders = new(StringComparer.Ordinal);

    public static Users Scan()
    {
        var users = new Users();
        foreach (string process in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(process), out int pid))
            {
                continue;
            }
            try
            {
                foreach (string line in File.ReadLines(Path.Combine(process, "maps")))
                {
                    int at = line.IndexOf(" /dev/shm/", StringComparison.Ordinal);
                    if (at > 0 && !line.EndsWith(" (deleted)", StringComparison.Ordinal))
                    {
                        Add(users._mappers, line[(at + 1)..].Trim(), pid);
                    }
                }
                foreach (string fd in Directory.GetFiles(Path.Combine(process, "fd")))
                {
                    if (new FileInfo(fd).LinkTarget is string target && target.StartsWith("/dev/shm/", StringComparison.Ordinal))
                    {
                        Add(users._holders, target, pid);
                    }
                }
            }
            catch (Exception failure) when (failure is IOException or UnauthorizedAccessException)
            {
                // the process ended while we looked, or is not ours to see
            }
        }
        return users;
    }

    public IReadOnlyList<int> Mappers(string path) => _mappers.TryGetValue(path, out var pids) ? [.. pids] : [];

    public IReadOnlyList<int> Holders(string path) => _holders.TryGetValue(path, out var pids) ? [.. pids] : [];

    private static void Add(Dictionary<string, SortedSet<int>> index, string path, int pid)
    {
        if (!index.TryGetValue(path, out SortedSet<int>? pids))
        {
            index[path] = pids = [];
        }
        pids.Add(pid);
    }
}
