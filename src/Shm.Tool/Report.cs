using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Shm.Tool;

/// <summary>What --json prints for a segment: the exact name (JSON escapes it, nothing else does).</summary>
internal sealed record SegmentReport(
    string Name,
    string Path,
    long Size,
    string Mode,
    string Owner,
    uint Uid,
    DateTime Created,
    long AgeSeconds,
    string State,
    bool Orphan,
    int UnknownUsers,
    IReadOnlyList<int> MappedBy,
    IReadOnlyList<int> HeldBy,
    IReadOnlyList<UserReport> Users)
{
    /// <summary>stat only: the first bytes in hex.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FirstBytes { get; init; }

    /// <summary>stat only: why the first bytes could not be read.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FirstBytesError { get; init; }

    /// <summary>ls only: the service this segment holds, if it is one.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ServiceReport? Service { get; init; }

    public static SegmentReport Of(Segment segment, Usage usage)
    {
        IReadOnlyList<SegmentUser> users = usage.UsersOf(segment.Status.Id);
        SegmentState state = usage.StateOf(segment.Status.Id);
        return new(
            segment.Name,
            segment.Path,
            segment.Status.Size,
            segment.Mode,
            segment.Owner,
            segment.Status.Uid,
            segment.Status.Created,
            (long)Math.Max(0, segment.Age.TotalSeconds),
            Words.Of(state),
            state == SegmentState.Orphan,
            usage.Unreadable.Count,
            [.. users.Where(user => user.Mapped).Select(user => user.Pid)],
            [.. users.Where(user => user.Held).Select(user => user.Pid)],
            [.. users.Select(user => new UserReport(user.Pid, user.Command, user.User, user.Mapped, user.Held))]);
    }
}

/// <summary>A process that uses a segment, in --json.</summary>
internal sealed record UserReport(int Pid, string Command, string User, bool Mapped, bool Held);

/// <summary>JSON as scripts expect it: camelCase, indented, exact strings.</summary>
internal static class Json
{
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    // Relaxed: non-ASCII names stay readable (not HTML-escaped); control characters are still \u-escaped.
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

/// <summary>The words ls, stat and --json use for a state.</summary>
internal static class Words
{
    public static string Of(SegmentState state) => state switch
    {
        SegmentState.Used => "used",
        SegmentState.Unknown => "unknown",
        _ => "orphan",
    };
}
