using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// shm rm: what goes without asking, what needs a yes, and the re-check right before each unlink
/// that keeps a segment some process started using while the prompt waited.
/// </summary>
public sealed partial class ShmToolRemoveTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void rm_keeps_a_segment_a_live_process_uses_unless_forced_and_force_needs_no_yes()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);

        ToolRun refused = ShmTool.Run("rm", "--yes", name);
        Assert.True(refused.Status == 1, refused.ToString());
        Assert.Contains($"not removing '{name}': in use by {Environment.ProcessId} ({ShmTool.OwnCommand()}, ", refused.Error, StringComparison.Ordinal);
        Assert.True(DevShm.Exists(name));

        ToolRun forced = ShmTool.Run("rm", "--force", name);
        Assert.True(forced.Status == 0, forced.ToString());
        Assert.False(DevShm.Exists(name));
    }

    [RootFact]
    public void rm_orphans_removes_what_a_killed_process_left_and_keeps_what_a_live_process_maps()
    {
        string held = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(held, 4096);
        string leaked = ShmTool.LeakedByAKilledProcess(_shm);
        string pattern = held[..held.LastIndexOf('-')] + "-*"; // this test's names only

        var runs = ShmTool.Alone(["hold", held], asNobody: false, ["rm", "--orphans", "--older-than", "1h", "--yes", pattern], ["rm", "--orphans", "--yes", pattern]);

        Assert.True(runs[0].Status == 0 && runs[0].Output == "", runs[0].ToString()); // too young
        Assert.True(runs[1].Status == 0, runs[1].ToString());
        Assert.Equal($"removed '{leaked}'\n", runs[1].Output);
        Assert.False(DevShm.Exists(leaked));
        Assert.True(DevShm.Exists(held));
    }

    [RootFact]
    public void Off_a_terminal_rm_of_a_named_unused_segment_needs_no_yes_but_rm_orphans_does()
    {
        string leaked = ShmTool.LeakedByAKilledProcess(_shm);
        string pattern = leaked[..leaked.LastIndexOf('-')] + "-*";

        var runs = ShmTool.Alone(null, asNobody: false, ["rm", "--orphans", pattern], ["rm", leaked]);

        Assert.True(runs[0].Status == 1, runs[0].ToString());
        Assert.Contains("would remove 1 orphan; not on a terminal, so pass --yes", runs[0].Error, StringComparison.Ordinal);
        Assert.True(runs[1].Status == 0, runs[1].ToString());
        Assert.Equal($"removed '{leaked}'\n", runs[1].Output);
        Assert.False(DevShm.Exists(leaked));
    }

    [RootFact]
    public void rm_orphans_confirmed_on_a_terminal_removes_the_orphan()
    {
        string leaked = ShmTool.LeakedByAKilledProcess(_shm);
        try
        {
            var (status, transcript) = ConfirmOnTerminal(leaked, whilePrompted: _ => { });

            Assert.True(status == 0, transcript);
            Assert.Contains($"removed '{leaked}'", transcript, StringComparison.Ordinal);
            Assert.False(DevShm.Exists(leaked));
        }
        finally
        {
            ShmTool.UnlinkIfThere(leaked);
        }
    }

    [RootFact]
    public void rm_orphans_rechecks_each_segment_right_before_its_unlink_and_keeps_one_mapped_while_the_prompt_waited()
    {
        string leaked = ShmTool.LeakedByAKilledProcess(_shm);
        string said = Path.GetTempFileName();
        Child? holder = null;
        try
        {
            var (status, transcript) = ConfirmOnTerminal(leaked, whilePrompted: namespaceInit =>
            {
                // A process of the tool's namespace maps the orphan after the scan, before the answer.
                string hold = string.Join(' ', new[] { "dotnet", ShmTool.WorkerDll, "hold", leaked }.Select(ShmTool.Quote));
                holder = Child.Spawn("/bin/sh", ["-c", $"exec nsenter -t {namespaceInit} -p {hold} > {ShmTool.Quote(said)}"]);
                Assert.True(SpinWait.SpinUntil(() => File.ReadAllText(said) == "held\n", Waits.Bound), $"the holder did not map the segment: '{File.ReadAllText(said)}'");
            });

            Assert.True(status == 1, transcript);
            Assert.Contains($"not removing '{leaked}': in use now by ", transcript, StringComparison.Ordinal);
            Assert.True(DevShm.Exists(leaked));
            holder?.WaitOrFail(); // the namespace ended with the tool's session, and the holder with it
        }
        finally
        {
            holder?.Dispose();
            File.Delete(said);
            ShmTool.UnlinkIfThere(leaked);
        }
    }

    /// <summary>
    /// Runs <c>shm rm --orphans NAME</c> on a terminal (script(1) gives it a pty) alone in a new pid
    /// namespace; once it asks, runs <paramref name="whilePrompted"/> with the host pid of the
    /// namespace's first process, then answers y. Returns the exit status and what the terminal showed.
    /// </summary>
    private static (int Status, string Transcript) ConfirmOnTerminal(string name, Action<int> whilePrompted)
    {
        string directory = Directory.CreateTempSubdirectory("shm-tty-").FullName;
        string answers = Path.Combine(directory, "answers"), transcript = Path.Combine(directory, "transcript");
        Assert.Equal(0, mkfifo(answers, 0x180));
        // Held open for writing here: the tool's side opens it at once, and never sees an early end.
        int answer = open(answers, 2 /* O_RDWR */ | 0x80000 /* O_CLOEXEC */);
        Assert.True(answer >= 0, $"open {answers}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            string tool = ShmTool.Command("rm", "--orphans", name);
            using Child session = Child.Spawn("/bin/sh", ["-c", $"exec unshare -fp --mount-proc --kill-child script -qefc {ShmTool.Quote(tool)} /dev/null < {ShmTool.Quote(answers)} > {ShmTool.Quote(transcript)} 2>&1"]);
            Assert.True(
                SpinWait.SpinUntil(() => Shown(transcript).Contains("[y/n]", StringComparison.OrdinalIgnoreCase), Waits.Bound),
                $"no prompt: {Shown(transcript)}");
            int namespaceInit = int.Parse(File.ReadAllText($"/proc/{session.Pid}/task/{session.Pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);

            whilePrompted(namespaceInit);
            byte[] yes = Encoding.ASCII.GetBytes("y\n");
            Assert.Equal(yes.Length, (int)write(answer, yes, yes.Length));

            ChildExit exit = session.WaitOrFail();
            return (exit.ExitCode ?? -1, Shown(transcript).Replace("\r\n", "\n", StringComparison.Ordinal));
        }
        finally
        {
            close(answer);
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>What the terminal has shown so far (nothing before the shell has created the file).</summary>
    private static string Shown(string transcript) => File.Exists(transcript) ? File.ReadAllText(transcript) : "";

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int mkfifo(string path, int mode);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte[] buffer, nint count);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
