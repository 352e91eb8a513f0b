using System;
using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace Shm.Tool;

/// <summary>
/// <c>shm ls</c>, <c>shm stat NAME</c>, <c>shm rm NAME...</c> and <c>shm rm --orphans</c>: the
/// segments in /dev/shm, who maps or holds them, and cleaning up after crashed creators. Exit codes
/// as <c>ls</c> and <c>rm</c> have them: 0 done, 1 something could not be done, 2 bad usage.
/// </summary>
public static class Program
{
    private const string States = """
        STATE is what /proc says about a segment's users, matched by device and inode:
          used     a process maps it or holds it open (PID, COMMAND, USER: one line each)
          orphan   every process was read and none uses it: nothing but a person will remove it
          unknown  no process shm could read uses it, but some could not be read (another
                   user's, or one that made itself non-dumpable): it may be in use, so it is
                   never an orphan and rm --orphans keeps it. Run as root to know.
        Names are printed with C-style escapes (\n, \t, \\, \x1b, \u202e); --json has them exact.
        """;

    /// <summary>stat reads what it dumps into memory first: a megabyte is a screenful thousands of times over.</summary>
    private const int MaxDump = 1 << 20;

    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts (exact names, pids, state, unknownUsers)." };
        var human = new Option<bool>("--human-readable", "-h") { Description = "Sizes in powers of 1024 (4.0K, 1.5M), as ls -h." };
        var list = new Command("ls", "List the segments in /dev/shm, one line per segment and process that uses it: size, mode, owner, age, state, PID, COMMAND, USER, USE (map, fd), name; then Shm's services, one line per participant: kind, size, role, slot, PID, alive, state, pool in use, name.") { json, human };
        list.SetAction(parsed => Listing.Run(parsed.GetValue(json), parsed.GetValue(human)));

        var statName = new Argument<string>("name") { Description = "The segment's name (a leading / is optional)." };
        var bytes = new Option<int>("--bytes") { Description = $"How many leading bytes to dump, 0 to {MaxDump} (for more, hexdump the file).", DefaultValueFactory = _ => 64 };
        bytes.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 0 or > MaxDump)
            {
                result.AddError($"--bytes must be from 0 to {MaxDump}; got {result.GetValueOrDefault<int>()}.");
            }
        });
        var stat = new Command("stat", "Show one segment in detail: its users and its first bytes as hexdump -C shows them.") { statName, bytes, json };
        stat.SetAction(parsed => Inspection.Run(parsed.GetValue(statName)!, parsed.GetValue(bytes), parsed.GetValue(json)));

        var names = new Argument<string[]>("names") { Description = "Segments to remove; with --orphans, shell patterns (* and ?) that limit which orphans.", Arity = ArgumentArity.ZeroOrMore };
        var orphans = new Option<bool>("--orphans") { Description = "Remove the orphans (asks first; see STATE)." };
        var olderThan = new Option<string?>("--older-than") { Description = "With --orphans: only those older than this (90s, 10m, 2h, 7d)." };
        var force = new Option<bool>("--force", "-f") { Description = "Remove named segments even if a process uses them (it keeps the memory until it unmaps)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask: needed off a terminal for --orphans, and for a named segment that may be in use." };
        var remove = new Command(
            "rm",
            "Unlink segments by name, or the orphans. A named segment no process uses goes at once; one in use is kept unless --force; each is re-checked against every process right before its unlink.")
        { names, orphans, olderThan, force, yes };
        remove.SetAction(parsed => Removal.Run(parsed.GetValue(names) ?? [], parsed.GetValue(orphans), parsed.GetValue(olderThan), parsed.GetValue(force), parsed.GetValue(yes)));

        // Named "shm" whatever the executable is called. --help everywhere; -h only on its own
        // (shm -h), since after ls it means human sizes, as in ls -h.
        var root = new Command("shm", "See and clean POSIX shared memory segments (/dev/shm), and use Shm's services.") { list, stat, remove };
        ServiceCommands.Add(root);
        BridgeCommands.Add(root);
        root.Options.Add(new HelpOption("--help") { Action = new HelpWithStates(States) });
        root.Options.Add(new HelpOption("-h") { Recursive = false, Hidden = true, Action = new HelpWithStates(States) }); // shm -h, as git -h
        root.Options.Add(new VersionOption());
        root.SetAction(new HelpWithStates(States).Invoke); // a bare shm asks for help: stdout, exit 0, as shm --help

        ParseResult result = root.Parse(args);
        if (result.Errors.Count > 0 && result.Action is not HelpWithStates) // --help wins over a missing argument
        {
            foreach (var error in result.Errors)
            {
                Console.Error.WriteLine($"shm: {Escaping.Escape(error.Message)}");
            }
            Console.Error.WriteLine("Try 'shm --help'.");
            return Exit.Usage;
        }
        try
        {
            return result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception failure)
        {
            // /dev/shm or /proc missing or unreadable, most likely: said in one escaped line, not a stack trace.
            Console.Error.WriteLine($"shm: {(failure is System.IO.IOException or UnauthorizedAccessException ? "" : failure.GetType().Name + ": ")}{Escaping.Escape(failure.Message)}");
            return Exit.Failed;
        }
    }
}

/// <summary>The standard help, then what the states mean (for shm, ls and rm, whose output and choices turn on them).</summary>
internal sealed class HelpWithStates(string states) : SynchronousCommandLineAction
{
    public override int Invoke(ParseResult parseResult)
    {
        new HelpAction().Invoke(parseResult);
        if (parseResult.CommandResult.Command.Name is "shm" or "ls" or "rm")
        {
            Console.WriteLine(states);
        }
        return Exit.Done;
    }
}
