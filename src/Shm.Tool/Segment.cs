using System;
using System.Collections.Generic;

namespace Shm.Tool;

/// <summary>One shared memory segment: a regular file in /dev/shm, as the kernel describes it.</summary>
/// <param name="Name">Its name (no leading slash), exactly as the directory holds it.</param>
/// <param name="Status">Its identity and attributes when it was looked at.</param>
internal sealed record Segment(string Name, FileStatus Status)
{
    public const string Directory = "/dev/shm";

    public string Path => Directory + "/" + Name;

    public TimeSpan Age => DateTime.UtcNow - Status.Created;

    public string Owner => UserNames.Of(Status.Uid);

    public string Mode => Convert.ToString(Status.Permissions & 0x1FF, 8).PadLeft(4, '0');

    /// <summary>
    /// Every segment in /dev/shm, by name. Entries that are not regular files (FIFOs, sockets,
    /// directories, devices, symbolic links) are not segments and are left out.
    /// </summary>
    public static List<Segment> All()
    {
        var segments = new List<Segment>();
        foreach (string path in System.IO.Directory.EnumerateFileSystemEntries(Directory))
        {
            if (FileStatus.TryOfEntry(path, out FileStatus status) == 0 && status.Kind == FileKind.Regular)
            {
                segments.Add(new Segment(System.IO.Path.GetFileName(path), status));
            }
        }
        segments.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return segments;
    }

    /// <summary>
    /// The segment a user named (leading slashes optional: shm_open strips them); or why there is
    /// none, and whether the name itself is malformed (bad usage).
    /// </summary>
    public static Segment? Find(string name, out string? problem, out bool malformed)
    {
        string bare = name.TrimStart('/');
        malformed = bare.Length == 0 || bare.Contains('/', StringComparison.Ordinal) || bare.Contains('\0', StringComparison.Ordinal) || bare is "." or "..";
        if (malformed)
        {
            problem = "not a segment name (no / after the leading ones, not empty, . or ..)";
            return null;
        }
        int error = FileStatus.TryOfEntry(Directory + "/" + bare, out FileStatus status);
        problem = error == Libc.ENOENT ? $"No such segment in {Directory}"
            : error != 0 ? Libc.Describe(error)
            : status.Kind != FileKind.Regular ? $"{Article(status.Kind)} in {Directory}, not a shared memory segment"
            : null;
        return problem is null ? new Segment(bare, status) : null;
    }

    /// <summary>"a FIFO", "a socket"...: what a non-segment entry is.</summary>
    public static string Article(FileKind kind) => kind switch
    {
        FileKind.Fifo => "a FIFO",
        FileKind.Socket => "a socket",
        FileKind.Directory => "a directory",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.Regular => "a regular file",
        _ => "a file of unknown kind",
    };
}
