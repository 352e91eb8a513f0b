using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Shm.Tool;

/// <summary>One entry of /dev/shm and the processes that use it, as the kernel reports them.</summary>
/// <param name="Name">The segment's name (no leading slash).</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Mode">Its permission bits.</param>
/// <param name="Owner">The owning user's name (or uid).</param>
/// <param name="Created">When it was created (or last changed, where the file system keeps no birth time).</param>
/// <param name="Mappers">Processes that map it (from /proc/PID/maps).</param>
/// <param name="Holders">Processes that hold it open (from /proc/PID/fd).</param>
internal sealed record Segment(string Name, long Size, UnixFileMode Mode, string Owner, DateTime Created, IReadOnlyList<int> Mappers, IReadOnlyList<int> Holders)
{
    public const string Directory = "/dev/shm";

    /// <summary>True if no process maps or holds it: nothing will ever unlink it but a person.</summary>
    public bool Orphan => Mappers.Count == 0 && Holders.Count == 0;

    public TimeSpan Age => DateTime.UtcNow - Created;

    public string Path => System.IO.Path.Combine(Directory, Name);

    /// <summary>Every segment in /dev/shm, with its users.</summary>
    public static List<Segment> All()
    {
        var users = Users.Scan();
        var owners = Owners();
        var segments = new List<Segment>();
        foreach (string path in System.IO.Directory.GetFiles(Directory))
        {
            try
            {
                var info = new FileInfo(path);
                if (info.LinkTarget is not null)
                {
                    continue; // a symbolic link is no segment
                }
                int uid = Stat.Owner(path);
                segments.Add(new Segment(
                    info.Name,
                    info.Length,
                    info.UnixFileMode,
                    owners.TryGetValue(uid, out string? name) ? name : uid.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    info.CreationTimeUtc,
                    users.Mappers(path),
                    users.Holders(path)));
            }
            catch (IOException)
            {
                // unlinked while we looked
            }
        }
        return [.. segments.OrderBy(segment => segment.Name, StringComparer.Ordinal)];
    }

    /// <summary>The segment named <paramref name="name"/> (leading slash optional), or null.</summary>
    public static Segment? Find(string name) =>
        All().FirstOrDefault(segment => segment.Name == name.TrimStart('/'));

    private static Dictionary<int, string> Owners()
    {
        var owners = new Dictionary<int, string>();
        try
        {
            foreach (string line in File.ReadLines("/etc/passwd"))
            {
                string[] fields = line.Split(':');
                if (fields.Length > 2 && int.TryParse(fields[2], out int uid))
                {
                    owners.TryAdd(uid, fields[0]);
                }
            }
        }
        catch (IOException)
        {
        }
        return owners;
    }
}
