using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Shm.Tool;

/// <summary>
/// <c>shm rm NAME...</c> and <c>shm rm --orphans [PATTERN...]</c>. A segment is only unlinked if
/// a scan of every process, made again right before its own unlink, finds it no more in use than
/// what was agreed: orphans must still be orphans; a named segment must not be in use (unless
/// --force), and may be "unknown" only once confirmed (a y on the terminal, or --yes).
/// </summary>
internal static class Removal
{
    /// <summary>A segment to unlink, the worst state the re-check may find it in, and whether to ask first.</summary>
    private sealed record Candidate(Segment Segment, SegmentState Allowed, bool Ask, bool Named = true);

    public static int Run(string[] names, bool orphans, string? olderThan, bool force, bool yes)
    {
        if (Misuse(names, orphans, olderThan, force, out TimeSpan minimumAge) is string misuse)
        {
            Console.Error.WriteLine($"shm: rm: {misuse}");
            return Exit.Usage;
        }
        int status = Exit.Done;
        var chosen = new List<Candidate>();
        var named = new List<Segment>();
        foreach (string name in orphans ? [] : names)
        {
            if (Segment.Find(name, out string? problem, out bool malformed) is Segment segment)
            {
                named.Add(segment);
            }
            else
            {
                Console.Error.WriteLine($"shm: rm: cannot remove '{Escaping.Escape(name)}': {problem}");
                if (malformed)
                {
                    return Exit.Usage; // before anything is removed
                }
                status = Exit.Failed;
            }
        }
        // Listed before the scan: a segment some process was using when it was listed is seen in use.
        List<Segment> all = orphans ? Segment.All() : [];
        Usage usage = ProcessScan.Run(all.Concat(named));
        if (orphans)
        {
            List<Segment> matching = [.. all.Where(segment => segment.Age >= minimumAge && (names.Length == 0 || names.Any(pattern => Glob(pattern.TrimStart('/'), segment.Name))))];
            chosen.AddRange(matching.Where(segment => usage.StateOf(segment.Status.Id) == SegmentState.Orphan).Select(segment => new Candidate(segment, SegmentState.Orphan, Ask: !yes, Named: false)));
            int unknown = matching.Count(segment => usage.StateOf(segment.Status.Id) == SegmentState.Unknown);
            if (unknown > 0)
            {
                Console.Error.WriteLine($"shm: rm: keeping {unknown} segment{(unknown == 1 ? "" : "s")} that may be in use: {usage.Reason()}");
            }
        }
        foreach (Segment segment in named)
        {
            switch (usage.StateOf(segment.Status.Id))
            {
                case SegmentState.Used when !force:
                    Console.Error.WriteLine($"shm: rm: not removing '{Escaping.Escape(segment.Name)}': in use by {Describe(usage.UsersOf(segment.Status.Id))} (use --force)");
                    status = Exit.Failed;
                    break;
                case SegmentState.Used:
                    chosen.Add(new Candidate(segment, SegmentState.Used, Ask: false));
                    break;
                case SegmentState.Unknown:
                    chosen.Add(new Candidate(segment, force ? SegmentState.Used : SegmentState.Unknown, Ask: !yes && !force));
                    break;
                default:
                    chosen.Add(new Candidate(segment, force ? SegmentState.Used : yes ? SegmentState.Unknown : SegmentState.Orphan, Ask: false));
                    break;
            }
        }

        List<Candidate> asking = [.. chosen.Where(candidate => candidate.Ask)];
        if (asking.Count > 0 && !Confirmed(asking, orphans, usage))
        {
            chosen.RemoveAll(candidate => candidate.Ask);
            status = Exit.Failed;
        }
        foreach (Candidate candidate in chosen)
        {
            if (!RemoveIfStill(candidate))
            {
                status = Exit.Failed;
            }
        }
        return status;
    }

    private static string? Misuse(string[] names, bool orphans, string? olderThan, bool force, out TimeSpan minimumAge)
    {
        minimumAge = TimeSpan.Zero;
        return olderThan is not null && !orphans ? "--older-than needs --orphans"
            : olderThan is not null && !Durations.TryParse(olderThan, out minimumAge) ? $"--older-than: bad duration '{Escaping.Escape(olderThan)}' (try 90s, 10m, 2h, 7d)"
            : orphans && force ? "--force does not apply to --orphans (an orphan is used by no process; name a segment to force it)"
            : !orphans && names.Length == 0 ? "name the segments to remove, or pass --orphans"
            : null;
    }

    /// <summary>Asks on the terminal; off one, refuses and says to pass --yes.</summary>
    private static bool Confirmed(List<Candidate> asking, bool orphans, Usage usage)
    {
        if (Console.IsInputRedirected)
        {
            foreach (Candidate candidate in asking.Where(_ => !orphans))
            {
                Console.Error.WriteLine($"shm: rm: '{Escaping.Escape(candidate.Segment.Name)}' may be in use: {usage.Reason()}");
            }
            Console.Error.WriteLine($"shm: rm: would remove {Count(asking.Count, orphans)}; not on a terminal, so pass --yes to confirm");
            return false;
        }
        foreach (Candidate candidate in asking)
        {
            Console.Error.WriteLine($"  {Escaping.Escape(candidate.Segment.Name)}{(candidate.Allowed == SegmentState.Unknown ? $"  -- may be in use: {usage.Reason()}" : "")}");
        }
        if (Prompt.Confirm($"remove {Count(asking.Count, orphans)}?"))
        {
            return true;
        }
        Console.Error.WriteLine($"shm: rm: not confirmed: keeping {(asking.Count == 1 ? "it" : "them")}");
        return false;
    }

    /// <summary>Re-checks the segment, by identity, against a fresh scan of every process; unlinks it only if it is still no more in use than allowed.</summary>
    private static bool RemoveIfStill(Candidate candidate)
    {
        Segment segment = candidate.Segment;
        string name = Escaping.Escape(segment.Name);
        int error = FileStatus.TryOfEntry(segment.Path, out FileStatus now);
        if (error != 0)
        {
            Console.Error.WriteLine($"shm: rm: cannot remove '{name}': {(error == Libc.ENOENT ? "No such segment (removed meanwhile)" : Libc.Describe(error))}");
            return false;
        }
        if (now.Kind != FileKind.Regular || now.Id != segment.Status.Id)
        {
            Console.Error.WriteLine($"shm: rm: not removing '{name}': replaced by another file since it was looked at");
            return false;
        }
        Usage usage = ProcessScan.Run([segment]);
        SegmentState state = usage.StateOf(segment.Status.Id);
        if (state > candidate.Allowed)
        {
            Console.Error.WriteLine(state == SegmentState.Used
                ? $"shm: rm: not removing '{name}': in use now by {Describe(usage.UsersOf(segment.Status.Id))}{(candidate.Named ? " (use --force)" : "")}"
                : $"shm: rm: not removing '{name}': it may be in use now: {usage.Reason()}{(candidate.Named ? "; pass --yes to remove it anyway" : "")}");
            return false;
        }
        if (Libc.Unlink(segment.Path) != 0)
        {
            Console.Error.WriteLine($"shm: rm: cannot remove '{name}': {Libc.Describe(Marshal.GetLastPInvokeError())}");
            return false;
        }
        Console.WriteLine($"removed '{name}'");
        return true;
    }

    /// <summary>"1234 (dotnet, alice), 5678 (python3, bob)".</summary>
    private static string Describe(IReadOnlyList<SegmentUser> users) =>
        string.Join(", ", users.Select(user => $"{user.Pid} ({Escaping.Escape(user.Command)}, {Escaping.Escape(user.User)})"));

    private static string Count(int count, bool orphans) => $"{count} {(orphans ? "orphan" : "segment")}{(count == 1 ? "" : "s")}";

    private static bool Glob(string pattern, string name) =>
        Regex.IsMatch(name, "^" + Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "\\z", RegexOptions.Singleline);
}
