using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Who uses a segment, as the shm tool finds it: by device and inode, never by path text; and a
/// process it cannot read makes a segment "unknown", never an orphan.
/// </summary>
public sealed class ShmToolUsersTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void Segments_are_matched_by_identity_whatever_their_names_look_like_in_proc_maps()
    {
        string plain = ShmTool.LeakedByAKilledProcess(_shm); // mapped by nobody
        string[] tricky = [plain + " ", plain + "  (deleted)", plain + "\n7f00-7f01 rw-s 00000000 00:1a 1 " + plain, plain + "\\012"];
        SharedRegion[] regions = [.. tricky.Select(name => SharedRegion.CreateNamed(name, 4096))];
        try
        {
            ToolRun run = ShmTool.Run("ls", "--json");

            Assert.True(run.Status == 0, run.ToString());
            foreach (string name in tricky)
            {
                JsonElement segment = run.Segment(name);
                Assert.Contains(Environment.ProcessId, Pids(segment, "mappedBy"));
                Assert.Contains(Environment.ProcessId, Pids(segment, "heldBy"));
                Assert.Equal("used", segment.GetProperty("state").GetString());
            }
            JsonElement unused = run.Segment(plain);
            Assert.Empty(Pids(unused, "mappedBy"));
            Assert.Empty(Pids(unused, "heldBy"));
            Assert.NotEqual("used", unused.GetProperty("state").GetString());
        }
        finally
        {
            Array.ForEach(regions, region => region.Dispose());
            ShmTool.UnlinkIfThere(plain);
        }
    }

    [Fact]
    public void A_process_whose_main_thread_exited_still_uses_what_its_other_thread_maps()
    {
        string program = Sources.CompileC("main-thread-exits", MainThreadExits);
        string name = ShmTool.LeakedByAKilledProcess(_shm);
        string said = Path.GetTempFileName();
        try
        {
            using Child holder = Child.Spawn("/bin/sh", ["-c", $"exec {ShmTool.Quote(program)} /{name} > {ShmTool.Quote(said)}"]);
            string status = $"/proc/{holder.Pid}/status";
            Assert.True(
                SpinWait.SpinUntil(() => File.ReadAllText(said) == "held\n" && File.ReadAllText(status).Contains("zombie", StringComparison.Ordinal), Waits.Bound),
                $"the program did not map the segment and end its main thread: '{File.ReadAllText(said)}', {Native.Describe(holder.Pid)}");

            ToolRun run = ShmTool.Run("ls", "--json");

            JsonElement segment = run.Segment(name);
            Assert.Equal([holder.Pid], Pids(segment, "mappedBy"));
            Assert.Equal("used", segment.GetProperty("state").GetString());
            holder.Signal(Native.SIGKILL);
            holder.WaitOrFail();
        }
        finally
        {
            File.Delete(said);
            ShmTool.UnlinkIfThere(name);
        }
    }

    [RootFact]
    public void A_segment_a_root_process_maps_is_not_an_orphan_to_another_user_and_rm_orphans_keeps_it()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        ShmTool.Chown(DevShm.PathOf(name), ShmTool.Nobody, ShmTool.Nobody); // nobody may unlink it: /dev/shm is sticky, the file is nobody's

        ToolRun list = ShmTool.RunAsNobody("ls", "--json");
        ToolRun orphans = ShmTool.RunAsNobody("rm", "--orphans", "--yes", name);
        ToolRun named = ShmTool.RunAsNobody("rm", name);

        JsonElement segment = list.Segment(name);
        Assert.False(segment.GetProperty("orphan").GetBoolean(), list.ToString());
        Assert.Equal("unknown", segment.GetProperty("state").GetString());
        Assert.True(segment.GetProperty("unknownUsers").GetInt32() > 0, list.ToString());
        Assert.True(orphans.Status == 0, orphans.ToString());
        Assert.DoesNotContain("removed", orphans.Output, StringComparison.Ordinal);
        Assert.Contains("keeping 1 segment that may be in use", orphans.Error, StringComparison.Ordinal);
        Assert.True(named.Status == 1, named.ToString()); // named, but it may be in use: only with --yes
        Assert.Contains("may be in use", named.Error, StringComparison.Ordinal);
        Assert.True(DevShm.Exists(name));
    }

    [RootFact]
    public void A_non_dumpable_process_of_the_same_user_makes_every_unused_segment_unknown_and_rm_orphans_keeps_them()
    {
        string used = ShmTool.LeakedByAKilledProcess(_shm), unused = ShmTool.LeakedByAKilledProcess(_shm);
        ShmTool.Chown(DevShm.PathOf(used), ShmTool.Nobody, ShmTool.Nobody);
        ShmTool.Chown(DevShm.PathOf(unused), ShmTool.Nobody, ShmTool.Nobody);
        string pattern = used[..used.LastIndexOf('-')] + "-*";
        try
        {
            // Alone in a pid namespace, as nobody: every process there is readable but the holder,
            // which might use any segment; so neither is an orphan, and nothing is removed.
            var hidden = ShmTool.Alone(["hold-nondumpable", used], asNobody: true, ["ls", "--json"], ["rm", "--orphans", "--yes", pattern]);

            foreach (string name in new[] { used, unused })
            {
                Assert.False(hidden[0].Segment(name).GetProperty("orphan").GetBoolean(), hidden[0].ToString());
                Assert.Equal("unknown", hidden[0].Segment(name).GetProperty("state").GetString());
                Assert.Equal(1, hidden[0].Segment(name).GetProperty("unknownUsers").GetInt32());
            }
            Assert.True(hidden[1].Status == 0 && hidden[1].Output == "", hidden[1].ToString());
            Assert.Contains("keeping 2 segments that may be in use", hidden[1].Error, StringComparison.Ordinal);
            Assert.True(DevShm.Exists(used) && DevShm.Exists(unused));

            // The same, with a holder that stays dumpable: now the tool knows, exactly.
            var seen = ShmTool.Alone(["hold", used], asNobody: true, ["ls", "--json"], ["rm", "--orphans", "--yes", pattern]);

            Assert.Equal("used", seen[0].Segment(used).GetProperty("state").GetString());
            Assert.Equal("orphan", seen[0].Segment(unused).GetProperty("state").GetString());
            Assert.Equal(0, seen[0].Segment(unused).GetProperty("unknownUsers").GetInt32());
            Assert.Equal($"removed '{unused}'\n", seen[1].Output);
            Assert.True(DevShm.Exists(used));
            Assert.False(DevShm.Exists(unused));
        }
        finally
        {
            Array.ForEach([used, unused], ShmTool.UnlinkIfThere);
        }
    }

    [RootFact]
    public void With_proc_hiding_other_users_processes_a_segment_a_hidden_process_maps_is_not_an_orphan()
    {
        string name = ShmTool.LeakedByAKilledProcess(_shm);
        ShmTool.Chown(DevShm.PathOf(name), ShmTool.Nobody, ShmTool.Nobody);
        try
        {
            // /proc mounted hidepid=invisible: nobody does not see root's holder at all, so no read fails.
            var runs = ShmTool.AloneWithOthersHidden(["hold", name], ["ls", "--json"], ["rm", "--orphans", "--yes", name]);

            JsonElement segment = runs[0].Segment(name);
            Assert.False(segment.GetProperty("orphan").GetBoolean(), runs[0].ToString());
            Assert.Equal("unknown", segment.GetProperty("state").GetString());
            Assert.Contains("hidepid", runs[0].Error, StringComparison.Ordinal);
            Assert.True(runs[1].Status == 0 && runs[1].Output == "", runs[1].ToString());
            Assert.True(DevShm.Exists(name));
        }
        finally
        {
            ShmTool.UnlinkIfThere(name);
        }
    }

    private static int[] Pids(JsonElement segment, string property) => [.. segment.GetProperty(property).EnumerateArray().Select(p => p.GetInt32())];

    /// <summary>Maps argv[1] from a second thread, says "held", and ends its main thread (pthread_exit): the leader is a zombie, the process lives on.</summary>
    private const string MainThreadExits = """
        #include <fcntl.h>
        #include <pthread.h>
        #include <stdio.h>
        #include <sys/mman.h>
        #include <unistd.h>

        static const char *name;

        static void *hold(void *unused)
        {
            int fd = shm_open(name, O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); _exit(2); }
            void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) { perror("mmap"); _exit(3); }
            close(fd); /* mapped, not held: only /proc/PID/maps shows it */
            printf("held\n");
            fflush(stdout);
            for (;;) pause();
        }

        int main(int argc, char **argv)
        {
            name = argv[1];
            pthread_t thread;
            if (pthread_create(&thread, NULL, hold, NULL) != 0) return 4;
            pthread_exit(NULL);
        }
        """;
}
