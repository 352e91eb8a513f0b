using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The shm tool's command line, listing and stat output, against real segments and real processes.</summary>
public sealed class ShmToolTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void A_bare_shm_and_shm_help_print_the_help_as_shm_and_exit_0()
    {
        foreach (ToolRun run in new[] { ShmTool.Run(), ShmTool.Run("--help") })
        {
            Assert.True(run.Status == 0, run.ToString());
            Assert.Contains("Usage:\n  shm [command] [options]", run.Output, StringComparison.Ordinal);
            Assert.Contains("unknown", run.Output, StringComparison.Ordinal); // the states are explained
            Assert.DoesNotContain("Shm.Tool", run.Output, StringComparison.Ordinal);
            Assert.Equal("", run.Error);
        }
    }

    [Fact]
    public void ls_json_lists_a_held_segment_with_this_process_its_command_and_user_and_no_stat_fields()
    {
        string held = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(held, 8192);

        ToolRun run = ShmTool.Run("ls", "--json");

        Assert.True(run.Status == 0, run.ToString());
        JsonElement ours = run.Segment(held);
        Assert.Equal(8192, ours.GetProperty("size").GetInt64());
        Assert.Equal("0600", ours.GetProperty("mode").GetString());
        Assert.Equal("used", ours.GetProperty("state").GetString());
        Assert.False(ours.GetProperty("orphan").GetBoolean());
        Assert.Contains(Environment.ProcessId, ours.GetProperty("mappedBy").EnumerateArray().Select(p => p.GetInt32()));
        Assert.Contains(Environment.ProcessId, ours.GetProperty("heldBy").EnumerateArray().Select(p => p.GetInt32()));
        JsonElement me = ours.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("pid").GetInt32() == Environment.ProcessId);
        Assert.Equal(ShmTool.OwnCommand(), me.GetProperty("command").GetString());
        Assert.Equal(Environment.UserName, me.GetProperty("user").GetString());
        Assert.True(me.GetProperty("mapped").GetBoolean() && me.GetProperty("held").GetBoolean());
        // ls fills no first bytes, so it prints none: no "firstBytes": null on every row.
        Assert.False(ours.TryGetProperty("firstBytes", out _), run.Output);
        Assert.False(ours.TryGetProperty("firstBytesError", out _), run.Output);
    }

    [Fact]
    public void ls_prints_plain_columns_with_sizes_right_aligned_human_with_h_and_the_command_and_user_of_each_process()
    {
        string small = _shm.UniqueName(), large = _shm.UniqueName();
        using var a = SharedRegion.CreateNamed(small, 4096);
        using var b = SharedRegion.CreateNamed(large, 3 << 20);

        foreach (bool human in new[] { false, true })
        {
            ToolRun run = human ? ShmTool.Run("ls", "-h") : ShmTool.Run("ls");

            Assert.True(run.Status == 0, run.ToString());
            string[] lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Matches("^ *SIZE MODE +OWNER +AGE STATE +PID COMMAND +USER +USE +NAME$", lines[0]);
            Assert.DoesNotContain(run.Output, c => c is '│' or '─' or '┌' or '┃' or '|');
            string[] ours = [.. lines.Where(line => line.EndsWith(small, StringComparison.Ordinal) || line.EndsWith(large, StringComparison.Ordinal))];
            Assert.Equal(2, ours.Length);
            int sizeEnd = lines[0].IndexOf("SIZE", StringComparison.Ordinal) + 4;
            foreach (string line in ours)
            {
                string[] cells = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(line.Length - line.TrimStart().Length + cells[0].Length, sizeEnd); // right-aligned under SIZE
                Assert.Equal(["used", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), ShmTool.OwnCommand()], cells[4..7]);
                Assert.Equal("map,fd", cells[8]);
            }
            Assert.Equal(human ? ["4.0K", "3.0M"] : ["4096", "3145728"], ours.Select(line => line.TrimStart().Split(' ')[0]).ToArray());
        }
    }

    [Fact]
    public void stat_dumps_the_first_bytes_as_hexdump_C_does_and_stat_json_carries_them()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        "hello, \x1bworld\n\x7f\xff"u8.CopyTo(region.AsSpan());
        region.AsSpan().Slice(100, 3).Fill(0x41);

        ToolRun run = ShmTool.Run("stat", name, "--bytes", "150");
        ToolRun json = ShmTool.Run("stat", name, "--bytes", "8", "--json");

        Assert.True(run.Status == 0, run.ToString());
        Assert.Contains("size:     4096 (4.0K)", run.Output, StringComparison.Ordinal);
        Assert.Contains("mode:     0600", run.Output, StringComparison.Ordinal);
        Assert.Contains("state:    used", run.Output, StringComparison.Ordinal);
        Assert.Contains($"used by:  {Environment.ProcessId} {ShmTool.OwnCommand()} (", run.Output, StringComparison.Ordinal);
        Assert.Contains("bytes:    the first 150 of 4096\n", run.Output, StringComparison.Ordinal);
        string dump = run.Output[(run.Output.IndexOf("bytes:", StringComparison.Ordinal) + "bytes:    the first 150 of 4096\n".Length)..];
        Assert.Equal(HexdumpC(name, 150), dump);
        Assert.Equal("68656C6C6F2C201B", json.Segment(name).GetProperty("firstBytes").GetString());
    }

    [Fact]
    public void stat_refuses_a_negative_byte_count_naming_bytes_and_its_range()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);

        ToolRun run = ShmTool.Run("stat", name, "--bytes", "-5");

        Assert.True(run.Status == 2, run.ToString());
        Assert.Contains("--bytes must be from 0 to 1048576; got -5", run.Error, StringComparison.Ordinal);
        Assert.Equal("", run.Output);
    }

    [Fact]
    public void Errors_and_exit_codes_follow_ls_and_rm()
    {
        string missing = _shm.UniqueName();
        ToolRun rm = ShmTool.Run("rm", "--yes", missing);
        Assert.Equal(1, rm.Status);
        Assert.Contains($"shm: rm: cannot remove '{missing}': No such segment in /dev/shm", rm.Error, StringComparison.Ordinal);

        ToolRun stat = ShmTool.Run("stat", missing);
        Assert.Equal(1, stat.Status);
        Assert.Contains($"shm: stat: cannot stat '{missing}': No such segment in /dev/shm", stat.Error, StringComparison.Ordinal);

        Assert.Contains("'frobnicate'", ShmTool.Run("frobnicate") is { Status: 2 } unknown ? unknown.Error : "exit status was not 2", StringComparison.Ordinal);
        Assert.Contains("name the segments", ShmTool.Run("rm") is { Status: 2 } bare ? bare.Error : "exit status was not 2", StringComparison.Ordinal);
        Assert.Contains("--older-than", ShmTool.Run("rm", "--orphans", "--older-than", "soon") is { Status: 2 } soon ? soon.Error : "exit status was not 2", StringComparison.Ordinal);
        Assert.Contains("--force", ShmTool.Run("rm", "--orphans", "--force") is { Status: 2 } force ? force.Error : "exit status was not 2", StringComparison.Ordinal);
        Assert.Contains("cannot stat '../etc/passwd': not a segment name", ShmTool.Run("stat", "../etc/passwd") is { Status: 2 } path ? path.Error : "exit status was not 2", StringComparison.Ordinal);
    }

    /// <summary>What hexdump -C prints for the segment's first <paramref name="count"/> bytes.</summary>
    private static string HexdumpC(string name, int count)
    {
        string output = Path.GetTempFileName();
        try
        {
            using (Child hexdump = Child.Spawn("/bin/sh", ["-c", $"head -c {count} {ShmTool.Quote(DevShm.PathOf(name))} | hexdump -C > {ShmTool.Quote(output)}"]))
            {
                Assert.True(hexdump.WaitOrFail().Succeeded, "hexdump -C failed");
            }
            return File.ReadAllText(output);
        }
        finally
        {
            File.Delete(output);
        }
    }
}
