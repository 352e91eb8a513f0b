using System;
using System.Collections.Generic;
using System.CommandLine;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shm.Interop;
using Spectre.Console;

namespace Shm.Tool;

/// <summary>
/// <c>shm ls</c>, <c>shm stat NAME</c>, <c>shm rm NAME...</c> and <c>shm rm --orphans</c>: the
/// segments in /dev/shm, who maps or holds them, and cleaning up after crashed creators. Exit codes
/// as <c>ls</c> and <c>rm</c> have them: 0 done, 1 something could not be done, 2 bad usage.
/// </summary>
public static class Program
{
    private const int Failed = 1;
    private const int Usage = 2;

    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table." };
        var list = new Command("ls", "List the segments in /dev/shm: size, mode, owner, age, and the processes that map or hold them; orphans are used by none.") { json };
        list.SetAction(parsed => List(parsed.GetValue(json)));

        var statName = new Argument<string>("name") { Description = "The segment's name (a leading / is optional)." };
        var bytes = new Option<int>("--bytes") { Description = "How many leading bytes to show in hex.", DefaultValueFactory = _ => 64 };
        var stat = new Command("stat", "Show one segment in detail, with its first bytes in hex.") { statName, bytes, json };
        stat.SetAction(parsed => Show(parsed.GetValue(statName)!, parsed.GetValue(bytes), parsed.GetValue(json)));

        var names = new Argument<string[]>("names") { Description = "Segments to remove; with --orphans, shell patterns (* and ?) that limit which orphans.", Arity = ArgumentArity.ZeroOrMore };
        var orphans = new Option<bool>("--orphans") { Description = "Remove every segment no process maps or holds." };
        var olderThan = new Option<string?>("--older-than") { Description = "With --orphans: only those older than this (90s, 10m, 2h, 7d)." };
        var force = new Option<bool>("--force", "-f") { Description = "Remove even segments a live process maps or holds (they keep the memory until they unmap it)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation (required when not on a terminal)." };
        var remove = new Command("rm", "Unlink segments by name, or the orphans. A segment a live process uses is kept unless --force.") { names, orphans, olderThan, force, yes };
        remove.SetAction(parsed => Remove(parsed.GetValue(names) ?? [], parsed.GetValue(orphans), parsed.GetValue(olderThan), parsed.GetValue(force), parsed.GetValue(yes)));

        var root = new RootCommand("shm: see and clean POSIX shared memory segments (/dev/shm).") { list, stat, remove };
        ParseResult result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors)
            {
                Console.Error.WriteLine($"shm: {error.Message}");
            }
            Console.Error.WriteLine("Try 'shm --help'.");
            return Usage;
        }
        return result.Invoke();
    }

    private static int List(bool json)
    {
        List<Segment> segments = Segment.All();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(segments.Select(Describe), Json.Options));
            return 0;
        }
        if (Console.IsOutputRedirected)
        {
            // Piped, like ls: one line per segment, never wrapped, for grep and awk.
            Console.WriteLine("NAME\tSIZE\tMODE\tOWNER\tAGE\tUSED BY");
            foreach (Segment segment in segments)
            {
                Console.WriteLine($"{segment.Name}\t{segment.Size}\t{Mode(segment.Mode)}\t{segment.Owner}\t{Durations.Format(segment.Age)}\t{(segment.Orphan ? "orphan" : UsedBy(segment))}");
            }
            return 0;
        }
        var table = new Table().AddColumns("NAME", "SIZE", "MODE", "OWNER", "AGE", "USED BY");
        foreach (Segment segment in segments)
        {
            table.AddRow(
                Markup.Escape(segment.Name),
                segment.Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Mode(segment.Mode),
                Markup.Escape(segment.Owner),
                Durations.Format(segment.Age),
                segment.Orphan ? "[yellow]orphan[/]" : Markup.Escape(UsedBy(segment)));
        }
        AnsiConsole.Write(table);
        return 0;
    }

    private static int Show(string name, int count, bool json)
    {
        if (Segment.Find(name) is not Segment segment)
        {
            Console.Error.WriteLine($"shm: cannot stat '{name}': No such segment in {Segment.Directory}");
            return Failed;
        }
        string hex;
        try
        {
            using SharedRegion region = SharedRegion.OpenNamed(segment.Name, RegionAccess.ReadOnly);
            hex = Convert.ToHexString(region.AsReadOnlySpan(0, (int)Math.Min(Math.Max(0, count), region.Length)));
        }
        catch (Exception failure) when (failure is ShmException or InvalidOperationException)
        {
            hex = $"(unreadable: {failure.Message})";
        }
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(Describe(segment) with { FirstBytes = hex }, Json.Options));
            return 0;
        }
        Console.WriteLine($"name:     {segment.Name}");
        Console.WriteLine($"path:     {segment.Path}");
        Console.WriteLine($"size:     {segment.Size}");
        Console.WriteLine($"mode:     {Mode(segment.Mode)}");
        Console.WriteLine($"owner:    {segment.Owner}");
        Console.WriteLine($"created:  {segment.Created:u} ({Durations.Format(segment.Age)} ago)");
        Console.WriteLine($"mapped:   {(segment.Mappers.Count == 0 ? "by no process" : "by " + string.Join(", ", segment.Mappers))}");
        Console.WriteLine($"held:     {(segment.Holders.Count == 0 ? "by no process" : "by " + string.Join(", ", segment.Holders))}");
        Console.WriteLine($"orphan:   {(segment.Orphan ? "yes" : "no")}");
        Console.WriteLine($"bytes:    {hex}");
        return 0;
    }

    private static int Remove(string[] names, bool orphans, string? olderThan, bool force, bool yes)
    {
        TimeSpan minimumAge = TimeSpan.Zero;
        if (olderThan is not null && (!orphans || !Durations.TryParse(olderThan, out minimumAge)))
        {
            Console.Error.WriteLine(orphans ? $"shm: rm: bad duration '{olderThan}' (try 90s, 10m, 2h, 7d)" : "shm: rm: --older-than needs --orphans");
            return Usage;
        }
        if (!orphans && names.Length == 0)
        {
            Console.Error.WriteLine("shm: rm: name the segments to remove, or pass --orphans");
            return Usage;
        }

        int status = 0;
        List<Segment> all = Segment.All();
        var chosen = new List<Segment>();
        if (orphans)
        {
            chosen.AddRange(all.Where(segment => segment.Orphan && segment.Age >= minimumAge &&
                (names.Length == 0 || names.Any(pattern => Glob(pattern.TrimStart('/'), segment.Name)))));
        }
        else
        {
            foreach (string name in names)
            {
                if (all.FirstOrDefault(segment => segment.Name == name.TrimStart('/')) is Segment segment)
                {
                    chosen.Add(segment);
                }
                else
                {
                    Console.Error.WriteLine($"shm: cannot remove '{name}': No such segment in {Segment.Directory}");
                    status = Failed;
                }
            }
        }
        foreach (Segment inUse in chosen.Where(segment => !segment.Orphan && !force).ToList())
        {
            Console.Error.WriteLine($"shm: not removing '{inUse.Name}': in use by {UsedBy(inUse)} (use --force)");
            chosen.Remove(inUse);
            status = Failed;
        }
        if (chosen.Count == 0)
        {
            return status;
        }
        if (!yes)
        {
            if (Console.IsInputRedirected)
            {
                Console.Error.WriteLine($"shm: rm: would remove {chosen.Count} segment(s); not on a terminal, so pass --yes to confirm");
                return Failed;
            }
            if (!AnsiConsole.Confirm($"Remove {chosen.Count} segment(s): {Markup.Escape(string.Join(", ", chosen.Select(segment => segment.Name)))}?", defaultValue: false))
            {
                return Failed;
            }
        }
        foreach (Segment segment in chosen)
        {
            try
            {
                SharedRegion.Unlink(segment.Name);
                Console.WriteLine($"removed '{segment.Name}'");
            }
            catch (Exception failure) when (failure is ShmException or ArgumentException)
            {
                Console.Error.WriteLine($"shm: cannot remove '{segment.Name}': {failure.Message}");
                status = Failed;
            }
        }
        return status;
    }

    private static string UsedBy(Segment segment) =>
        string.Join("; ", new[]
        {
            segment.Mappers.Count > 0 ? "mapped by " + string.Join(", ", segment.Mappers) : null,
            segment.Holders.Count > 0 ? "held by " + string.Join(", ", segment.Holders) : null,
        }.OfType<string>());

    private static string Mode(UnixFileMode mode) =>
        Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');

    private static bool Glob(string pattern, string name) =>
        System.Text.RegularExpressions.Regex.IsMatch(name, "^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$");

    private static SegmentReport Describe(Segment segment) =>
        new(segment.Name, segment.Path, segment.Size, Mode(segment.Mode), segment.Owner, segment.Created, (long)segment.Age.TotalSeconds, segment.Mappers, segment.Holders, segment.Orphan, null);
}

/// <summary>What --json prints for a segment.</summary>
internal sealed record SegmentReport(
    string Name, string Path, long Size, string Mode, string Owner, DateTime Created, long AgeSeconds,
    IReadOnlyList<int> MappedBy, IReadOnlyList<int> HeldBy, bool Orphan, string? FirstBytes);

/// <summary>JSON as scripts expect it: camelCase, indented.</summary>
internal static class Json
{
    public static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };
}
