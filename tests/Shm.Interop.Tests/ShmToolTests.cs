using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The shm tool against real segments: one this process holds, and one a killed process left behind.</summary>
public sealed class ShmToolTests : IDisposable
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "Shm.Tool.dll");
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void ls_json_lists_a_held_segment_with_this_process_and_marks_one_a_killed_creator_left_as_orphan()
    {
        string held = _shm.UniqueName();
        string leaked = LeakedByAKilledProcess();
        using var region = SharedRegion.CreateNamed(held, 8192);

        var (status, output, _) = Run("ls", "--json");

        Assert.Equal(0, status);
        JsonElement[] segments = [.. JsonDocument.Parse(output).RootElement.EnumerateArray()];
        JsonElement ours = segments.Single(s => s.GetProperty("name").GetString() == held);
        Assert.Equal(8192, ours.GetProperty("size").GetInt64());
        Assert.Equal("0600", ours.GetProperty("mode").GetString());
        Assert.Contains(Environment.ProcessId, ours.GetProperty("mappedBy").EnumerateArray().Select(p => p.GetInt32()));
        Assert.Contains(Environment.ProcessId, ours.GetProperty("heldBy").EnumerateArray().Select(p => p.GetInt32()));
        Assert.False(ours.GetProperty("orphan").GetBoolean());
        JsonElement left = segments.Single(s => s.GetProperty("name").GetString() == leaked);
        Assert.True(left.GetProperty("orphan").GetBoolean());
        SharedRegion.Unlink(leaked);
    }

    [Fact]
    public void ls_prints_a_table_naming_the_segment()
    {
        string held = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(held, 4096);

        var (status, output, _) = Run("ls");

        Assert.Equal(0, status);
        Assert.Contains(held, output, StringComparison.Ordinal);
        Assert.Contains("NAME", output, StringComparison.Ordinal);
    }

    [Fact]
    public void stat_shows_size_mode_users_and_the_first_bytes_in_hex()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        "hello"u8.CopyTo(region.AsSpan());

        var (status, output, _) = Run("stat", name, "--bytes", "8");

        Assert.Equal(0, status);
        Assert.Contains("size:     4096", output, StringComparison.Ordinal);
        Assert.Contains("mode:     0600", output, StringComparison.Ordinal);
        Assert.Contains($"mapped:   by {Environment.ProcessId}", output, StringComparison.Ordinal);
        Assert.Contains("bytes:    68656C6C6F000000", output, StringComparison.Ordinal);
    }

    [Fact]
    public void rm_keeps_a_segment_a_live_process_uses_unless_forced()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);

        var refused = Run("rm", "--yes", name);
        Assert.Equal(1, refused.Status);
        Assert.Contains("in use by", refused.Error, StringComparison.Ordinal);
        Assert.True(DevShm.Exists(name));

        var forced = Run("rm", "--yes", "--force", name);
        Assert.Equal(0, forced.Status);
        Assert.False(DevShm.Exists(name));
    }

    [Fact]
    public void rm_orphans_removes_what_a_killed_process_left_and_nothing_in_use()
    {
        string held = _shm.UniqueName();
        string leaked = LeakedByAKilledProcess();
        using var region = SharedRegion.CreateNamed(held, 4096);
        string pattern = held[..held.LastIndexOf('-')] + "-*"; // this test's names only

        var tooYoung = Run("rm", "--orphans", "--older-than", "1h", "--yes", pattern);
        Assert.Equal(0, tooYoung.Status);
        Assert.True(DevShm.Exists(leaked));

        var (status, output, _) = Run("rm", "--orphans", "--yes", pattern);

        Assert.Equal(0, status);
        Assert.Contains($"removed '{leaked}'", output, StringComparison.Ordinal);
        Assert.False(DevShm.Exists(leaked));
        Assert.True(DevShm.Exists(held));
    }

    [Fact]
    public void rm_without_a_terminal_or_yes_asks_for_confirmation_and_removes_nothing()
    {
        string leaked = LeakedByAKilledProcess();

        var (status, _, error) = Run("rm", leaked);

        Assert.Equal(1, status);
        Assert.Contains("pass --yes", error, StringComparison.Ordinal);
        Assert.True(DevShm.Exists(leaked));
        SharedRegion.Unlink(leaked);
    }

    [Fact]
    public void Errors_and_exit_codes_follow_ls_and_rm()
    {
        var missing = Run("rm", "--yes", _shm.UniqueName());
        Assert.Equal(1, missing.Status);
        Assert.Contains("No such segment", missing.Error, StringComparison.Ordinal);

        Assert.Equal(1, Run("stat", _shm.UniqueName()).Status);
        Assert.Equal(2, Run("frobnicate").Status);
        Assert.Equal(2, Run("rm").Status);
        Assert.Equal(2, Run("rm", "--orphans", "--older-than", "soon").Status);
    }

    private string LeakedByAKilledProcess()
    {
        string name = _shm.UniqueName();
        using Child worker = Worker.Spawn(["leak-segment", name]);
        Assert.Equal(Native.SIGKILL, worker.WaitOrFail().Signal);
        Assert.True(DevShm.Exists(name));
        return name;
    }

    private static (int Status, string Output, string Error) Run(params string[] arguments)
    {
        string output = Path.GetTempFileName(), error = Path.GetTempFileName();
        try
        {
            string command = string.Join(' ', arguments.Select(a => $"'{a}'"));
            using Child tool = Child.Spawn("/bin/sh", ["-c", $"dotnet '{Tool}' {command} > '{output}' 2> '{error}' < /dev/null"]);
            ChildExit exit = tool.WaitOrFail();
            return (exit.ExitCode ?? -1, File.ReadAllText(output), File.ReadAllText(error));
        }
        finally
        {
            File.Delete(output);
            File.Delete(error);
        }
    }
}
