using System.Collections.Generic;
using System.Linq;

namespace Shm.Tool;

/// <summary>
/// Who uses which file of /dev/shm, by identity, as one scan of /proc found it; and how many
/// processes could not be read, each of which might use any segment.
/// </summary>
internal sealed class Usage(Dictionary<FileId, SortedDictionary<int, SegmentUser>> users, IReadOnlyList<int> unreadable, bool othersHidden)
{
    /// <summary>Processes whose mappings or descriptors could not be read (other users', non-dumpable ones).</summary>
    public IReadOnlyList<int> Unreadable { get; } = unreadable;

    /// <summary>True if /proc hides other users' processes from this one altogether (mounted with hidepid).</summary>
    public bool OthersHidden { get; } = othersHidden;

    /// <summary>True if some process might use a segment although the scan saw no use of it.</summary>
    public bool Incomplete => Unreadable.Count > 0 || OthersHidden;

    /// <summary>The processes that use the file <paramref name="id"/>, by pid.</summary>
    public IReadOnlyList<SegmentUser> UsersOf(FileId id) => users.TryGetValue(id, out var found) ? [.. found.Values] : [];

    /// <summary>Used if a process uses it; otherwise unknown if some process could not be read, orphan if none.</summary>
    public SegmentState StateOf(FileId id) =>
        users.ContainsKey(id) ? SegmentState.Used : Incomplete ? SegmentState.Unknown : SegmentState.Orphan;

    /// <summary>Why a segment no process was seen using may still be in use, or null when the scan was complete.</summary>
    public string? Reason() => !Incomplete ? null : string.Join(
        "; ",
        new[]
        {
            Unreadable.Count > 0 ? $"{Unreadable.Count} process{(Unreadable.Count == 1 ? "" : "es")} could not be read (another user's or non-dumpable)" : null,
            OthersHidden ? "/proc hides other users' processes (hidepid)" : null,
        }.OfType<string>());
}
