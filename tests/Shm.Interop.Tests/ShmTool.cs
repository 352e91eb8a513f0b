using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>One run of the shm tool: its exit status and what it printed.</summary>
internal sealed record ToolRun(int Status, string Output, string Error)
{
    /// <summary>The segment named <paramref name="name"/> in <c>ls --json</c> or <c>stat --json</c> output.</summary>
    public JsonElement Segment(string name)
    {
        JsonElement root = JsonDocument.Parse(Output).RootElement;
        IEnumerable<JsonElement> all = root.ValueKind == JsonValueKind.Array ? root.EnumerateArray() : [root];
        return all.SingleOrDefault(s => s.GetProperty("name").GetString() == name) is { ValueKind: JsonValueKind.Object } found
            ? found
            : throw new Xunit.Sdk.XunitException($"'{name}' is not in the tool's output:\n{Output}\n{Error}");
    }

    public override string ToString() => $"exit {Status}\nstdout:\n{Output}\nstderr:\n{Error}";
}

/// <summary>
/// Runs the built shm tool (<c>dotnet Shm.Tool.dll</c>) as a real process, off a terminal (stdin
/// /dev/null): here, as uid nobody, or alone in a new pid namespace where every process can be
/// read (so a segment nothing there uses is exactly an orphan), optionally beside a holder.
/// </summary>
internal static partial class ShmTool
{
    /// <summary>The tool under test; SHM_TOOL_DLL points the tests at another build (an older one, to see a test fail).</summary>
    public static readonly string Dll = Environment.GetEnvironmentVariable("SHM_TOOL_DLL") ?? Path.Combine(AppContext.BaseDirectory, "Shm.Tool.dll");

    public static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Shm.Worker.dll");

    public const int Nobody = 65534;

    private const string AsNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";

    /// <summary>Runs the tool in this pid namespace, as this user.</summary>
    public static ToolRun Run(params string[] arguments) => Session(isolated: false, sessionUser: "", toolUser: "", prelude: null, holder: null, [arguments])[0];

    /// <summary>Runs the tool in this pid namespace as uid and gid 65534 (nobody), with no groups.</summary>
    public static ToolRun RunAsNobody(params string[] arguments) => Session(isolated: false, sessionUser: AsNobody, toolUser: "", prelude: null, holder: null, [arguments])[0];

    /// <summary>
    /// Runs each command in turn, in one new pid namespace (its own /proc) where the only other
    /// processes are its shell and, if given, a worker running <paramref name="holder"/> (e.g.
    /// ["hold", name]) that has mapped its segments before the first command starts.
    /// </summary>
    public static IReadOnlyList<ToolRun> Alone(string[]? holder, bool asNobody, params string[][] commands) =>
        Session(isolated: true, sessionUser: asNobody ? AsNobody : "", toolUser: "", prelude: null, holder, commands);

    /// <summary>
    /// As <see cref="Alone"/>, with the holder run as root and the tool as nobody, in a namespace
    /// whose /proc is mounted hidepid=invisible: the holder is not unreadable to the tool but absent.
    /// </summary>
    public static IReadOnlyList<ToolRun> AloneWithOthersHidden(string[] holder, params string[][] commands) =>
        Session(isolated: true, sessionUser: "", toolUser: AsNobody, prelude: "mount -o remount,hidepid=invisible /proc", holder, commands);

    /// <summary>The tool's command line for sh.</summary>
    public static string Command(params string[] arguments) => string.Join(' ', new[] { "dotnet", Dll }.Concat(arguments).Select(Quote));

    /// <summary>A word sh reads back exactly, whatever it holds (newlines, quotes, escapes).</summary>
    public static string Quote(string word) => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static IReadOnlyList<ToolRun> Session(bool isolated, string sessionUser, string toolUser, string? prelude, string[]? holder, string[][] commands)
    {
        string directory = Directory.CreateTempSubdirectory("shm-tool-").FullName;
        File.SetUnixFileMode(directory, (UnixFileMode)0x1FF); // nobody writes its outputs here
        try
        {
            var script = new List<string> { "d=" + Quote(directory) };
            if (prelude is not null)
            {
                script.Add($"{prelude} || echo 'the prelude failed' >&2");
            }
            if (holder is not null)
            {
                script.Add("mkfifo \"$d/ready\"");
                script.Add($"{string.Join(' ', new[] { "dotnet", WorkerDll }.Concat(holder).Select(Quote))} > \"$d/ready\" & holder=$!");
                script.Add("read ready < \"$d/ready\"; [ \"$ready\" = held ] || echo \"the holder did not hold: '$ready'\" >&2");
            }
            for (int i = 0; i < commands.Length; i++)
            {
                script.Add($"{toolUser} {Command(commands[i])} > \"$d/out.{i}\" 2> \"$d/err.{i}\" < /dev/null; echo $? > \"$d/status.{i}\"");
            }
            if (holder is not null)
            {
                script.Add("kill $holder; wait $holder");
            }
            string shell = $"sh -c {Quote(string.Join('\n', script))}";
            // --kill-child: if the test gives up on it, the whole namespace goes with it.
            string line = isolated ? $"exec unshare -fp --mount-proc --kill-child {sessionUser} {shell}" : $"exec {sessionUser} {shell}";
            using (Child session = Child.Spawn("/bin/sh", ["-c", $"{line} 2> {Quote(Path.Combine(directory, "session.err"))}"]))
            {
                session.WaitOrFail();
            }
            string problems = File.ReadAllText(Path.Combine(directory, "session.err"));
            if (problems.Contains("the holder did not hold", StringComparison.Ordinal) || problems.Contains("the prelude failed", StringComparison.Ordinal))
            {
                throw new Xunit.Sdk.XunitException(problems);
            }
            return [.. Enumerable.Range(0, commands.Length).Select(i =>
            {
                string status = Path.Combine(directory, $"status.{i}");
                return File.Exists(status)
                    ? new ToolRun(int.Parse(File.ReadAllText(status).Trim(), System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(directory, $"out.{i}")), File.ReadAllText(Path.Combine(directory, $"err.{i}")))
                    : throw new Xunit.Sdk.XunitException($"command {i} did not run: {problems}");
            })];
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A segment whose creator was SIGKILLed before it could unlink it: nothing maps or holds it.</summary>
    public static string LeakedByAKilledProcess(DevShm shm)
    {
        string name = shm.UniqueName();
        using Child worker = Worker.Spawn(["leak-segment", name]);
        Assert.Equal(Native.SIGKILL, worker.WaitOrFail().Signal);
        Assert.True(DevShm.Exists(name));
        return name;
    }

    /// <summary>Cleans up after a test whose tool may (wrongly, in a failing run) have removed the segment already.</summary>
    public static void UnlinkIfThere(string name)
    {
        if (DevShm.Exists(name))
        {
            SharedRegion.Unlink(name);
        }
    }

    /// <summary>This process's command name, as /proc (and so the tool) shows it.</summary>
    public static string OwnCommand() => File.ReadAllText("/proc/self/comm").TrimEnd('\n');

    /// <summary>chown(2), for segments another user owns.</summary>
    public static void Chown(string path, int uid, int gid)
    {
        if (chown(path, uid, gid) != 0)
        {
            throw new IOException($"chown {path}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int chown(string path, int uid, int gid);
}

/// <summary>A fact that needs root (setpriv, unshare, chown): skipped, with the reason, for anyone else.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed partial class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (geteuid() != 0)
        {
            Skip = "needs root: it runs the tool as another user (setpriv) or in a new pid namespace (unshare)";
        }
    }

    [LibraryImport("libc")]
    private static partial uint geteuid();
}
