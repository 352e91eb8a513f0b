using System;
using System.IO;
using System.Linq;

namespace Shm.TestSupport;

/// <summary>
/// Unique segment names for one test, and the kernel's view of /dev/shm: dispose it at the end of
/// the test to check that none of its names is left behind.
/// </summary>
public sealed class DevShm : IDisposable
{
    private const string Directory = "/dev/shm";
    private readonly string _prefix = $"shm-test-{Guid.NewGuid():N}";
    private int _next;

    /// <summary>A fresh name no other test uses (no leading slash).</summary>
    public string UniqueName() => $"{_prefix}-{_next++}";

    /// <summary>True if /dev/shm has an entry named <paramref name="name"/> (leading slash optional).</summary>
    public static bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>The permission bits of the segment <paramref name="name"/>.</summary>
    public static UnixFileMode Mode(string name) => File.GetUnixFileMode(PathOf(name));

    /// <summary>The segment's size as /dev/shm reports it.</summary>
    public static long Size(string name) => new FileInfo(PathOf(name)).Length;

    /// <summary>The file backing segment <paramref name="name"/>.</summary>
    public static string PathOf(string name) => Path.Combine(Directory, name.TrimStart('/'));

    /// <summary>Total bytes of the /dev/shm file system.</summary>
    public static long Capacity() => new DriveInfo(Directory).TotalSize;

    /// <summary>Entries this test created and left behind.</summary>
    public string[] Leftovers() =>
        System.IO.Directory.GetFiles(Directory, _prefix + "*").Select(Path.GetFileName).OfType<string>().ToArray();

    /// <summary>Fails if the test left any of its segments in /dev/shm (and removes them).</summary>
    public void Dispose()
    {
        string[] left = Leftovers();
        foreach (string name in left)
        {
            File.Delete(PathOf(name));
        }
        if (left.Length > 0)
        {
            throw new InvalidOperationException($"The test left {string.Join(", ", left)} in /dev/shm.");
        }
    }
}
