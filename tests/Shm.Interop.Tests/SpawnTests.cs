using System;
using System.IO;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

public class SpawnTests(ITestOutputHelper output)
{
    [Fact]
    public void As_pid_1_a_thousand_spawns_of_a_program_that_ends_at_once_never_throw_and_never_signal_a_reused_pid()
    {
        ChildExit exit = Worker.RunAsPidOne(output.WriteLine, "pid1-spawn", "1000");

        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void A_spawned_dotnet_child_attaches_an_inherited_memfd_and_runs_arbitrary_code()
    {
        using var region = SharedRegion.CreateMemfd("spawned", 64 * sizeof(int));
        using var other = SharedRegion.CreateMemfd("not-passed", 4096);

        using Child worker = Worker.Spawn(["attach", "1000"], region);
        ChildExit exit = worker.WaitOrFail();

        Assert.True(exit.Succeeded, exit.ToString());
        Assert.Equal(1, region.Read<int>(0)); // it held exactly one memfd: ours, not the other
        for (int i = 1; i < 64; i++)
        {
            Assert.Equal(1000 + i - 1, region.AsSpan<int>()[i]);
        }
        Assert.False(Native.Exists(worker.Pid));
    }

    [Fact]
    public void The_parents_descriptor_stays_close_on_exec()
    {
        using var region = SharedRegion.CreateMemfd("cloexec", 4096);
        using Child shell = Child.Spawn("/bin/sh", ["-c", "exit 0"], region);
        Assert.True(shell.WaitOrFail().Succeeded);

        string flags = System.IO.File.ReadAllText($"/proc/self/fdinfo/{region.Descriptor!.DangerousGetHandle()}");
        int value = Convert.ToInt32(flags.Split('\n')[1].Split('\t')[1], 8);
        Assert.NotEqual(0, value & 0x80000); // O_CLOEXEC
    }

    [Fact]
    public void Any_command_can_be_spawned_and_sees_the_descriptor_list()
    {
        using var region = SharedRegion.CreateMemfd("for-sh", 4096);
        int fd = (int)region.Descriptor!.DangerousGetHandle();

        using Child shell = Child.Spawn("/bin/sh", ["-c", $"test \"$SHM_INHERITED_FDS\" = {fd} && test -e /proc/self/fd/{fd}"], region);

        Assert.True(shell.WaitOrFail().Succeeded);
    }

    [Fact]
    public void A_missing_program_raises_ENOENT()
    {
        var error = Assert.Throws<ShmException>(() => Child.Spawn("no-such-program-shm", []));

        Assert.Equal("posix_spawnp", error.Syscall);
        Assert.Equal(LinuxErrno.ENOENT, error.Errno);
    }

    [Fact]
    public void An_anonymous_region_cannot_be_passed()
    {
        using var region = SharedRegion.CreateAnonymous(4096);

        Assert.Equal("inherit", Assert.Throws<ArgumentException>(() => Child.Spawn("/bin/true", [], region)).ParamName);
    }

    [Fact]
    public void AttachInherited_without_a_spawning_parent_says_so()
    {
        Assert.Throws<InvalidOperationException>(() => SharedRegion.OpenInherited());
    }

    [Fact]
    public void A_spawned_program_keeps_the_signals_this_process_ignores_ignored_as_exec_would()
    {
        const int SIGHUP = 1;
        string report = Path.Combine(Path.GetTempPath(), $"shm-sigign-{Guid.NewGuid():N}");
        nint previous = Native.Signal(SIGHUP, Native.SIG_IGN); // as under nohup
        try
        {
            using Child shell = Child.Spawn("/bin/sh", ["-c", $"grep SigIgn /proc/self/status > {report}"]);
            Assert.True(shell.WaitOrFail().Succeeded);
        }
        finally
        {
            Native.Signal(SIGHUP, previous);
        }
        ulong ignored = Convert.ToUInt64(File.ReadAllText(report).Split('\t')[1].Trim(), 16);
        File.Delete(report);

        Assert.NotEqual(0UL, ignored & (1UL << (SIGHUP - 1)));
    }
}
