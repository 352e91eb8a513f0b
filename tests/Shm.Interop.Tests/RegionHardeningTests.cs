using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Issue 9, descriptors and regions: each test failed before its fix.</summary>
public sealed class RegionHardeningTests : IDisposable
{
    private readonly DevShm _shm = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("shm-files-").FullName;

    public void Dispose()
    {
        Directory.Delete(_directory, recursive: true);
        _shm.Dispose();
    }

    [Fact]
    public void OpenDescriptor_keeps_its_duplicate_close_on_exec_so_it_leaks_into_no_spawned_program()
    {
        using var memfd = SharedRegion.CreateMemfd("original", 4096);
        using var attached = SharedRegion.OpenDescriptor(memfd.Descriptor!);
        int duplicate = (int)attached.Descriptor!.DangerousGetHandle();

        Assert.True(IsCloseOnExec(duplicate));
        using Child shell = Child.Spawn("/bin/sh", ["-c", $"test ! -e /proc/self/fd/{duplicate}"]);
        Assert.True(shell.WaitOrFail().Succeeded, $"descriptor {duplicate} leaked into the spawned shell");
    }

    [Fact]
    public void Attaching_an_inherited_region_twice_gives_two_regions_and_passes_the_descriptor_no_further()
    {
        using var region = SharedRegion.CreateMemfd("twice", 4096);
        using Child worker = Worker.Spawn(["attach-twice"], region);

        Assert.Equal(0, worker.WaitOrFail().ExitCode);
        Assert.Equal(22, region.Read<int>(4));
    }

    [Fact]
    public void A_spawned_process_cannot_truncate_a_memfd_under_this_ones_mapping()
    {
        using var region = SharedRegion.CreateMemfd("sealed", 64 * 1024);
        region.AsSpan().Fill(7);
        int fd = (int)region.Descriptor!.DangerousGetHandle();

        using Child truncate = Child.Spawn("/bin/sh", ["-c", $"truncate -s 0 /proc/self/fd/{fd}"], region);
        ChildExit exit = truncate.WaitOrFail();

        Assert.False(exit.Succeeded, "the truncation was allowed");
        Assert.Equal(64 * 1024 * 7L, region.AsReadOnlySpan().ToArray().Sum(b => (long)b)); // no SIGBUS: every page still there
        Assert.Equal(64 * 1024, RandomAccess.GetLength(region.Descriptor));
    }

    [Fact]
    public void MapFile_refuses_a_symbolic_link_planted_at_the_path()
    {
        string target = Path.Combine(_directory, "victim");
        File.WriteAllText(target, "precious");
        string link = Path.Combine(_directory, "link");
        File.CreateSymbolicLink(link, target);

        var error = Assert.Throws<ShmException>(() => SharedRegion.CreateFromFile(link, 1 << 20));

        Assert.Equal("open", error.Syscall);
        Assert.Equal(LinuxErrno.ELOOP, error.Errno);
        Assert.Equal("ELOOP", error.ErrnoName); // named, not "errno 40"
        Assert.Contains("ELOOP (40)", error.Message, StringComparison.Ordinal);
        Assert.Equal(8, new FileInfo(target).Length); // neither extended nor created anew
    }

    [Fact]
    public void MapFile_refuses_what_is_not_a_regular_file()
    {
        Assert.Equal("path", Assert.Throws<ArgumentException>(() => SharedRegion.CreateFromFile("/dev/null", 4096)).ParamName);
        string fifo = Path.Combine(_directory, "fifo");
        using (Child mkfifo = Child.Spawn("mkfifo", [fifo]))
        {
            Assert.True(mkfifo.WaitOrFail().Succeeded);
        }
        Assert.Throws<ArgumentException>(() => SharedRegion.CreateFromFile(fifo, 4096, RegionAccess.ReadOnly)); // O_RDONLY on a FIFO without a writer would block: refused first
    }

    [Fact]
    public void MapFile_creates_new_files_0600_and_removes_one_it_created_when_mapping_fails()
    {
        string path = Path.Combine(_directory, "new");
        using (SharedRegion.CreateFromFile(path, 4096))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        string huge = Path.Combine(_directory, "huge");
        var error = Assert.Throws<ShmException>(() => SharedRegion.CreateFromFile(huge, 1L << 50));

        Assert.Equal("posix_fallocate", error.Syscall);
        Assert.False(File.Exists(huge), "the half-made file was left behind");
    }

    [Fact]
    public void A_forgotten_creator_region_unlinks_its_name_when_collected()
    {
        string name = _shm.UniqueName();
        CreateAndForget(name);
        Assert.True(DevShm.Exists(name));

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();

        Assert.False(DevShm.Exists(name));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CreateAndForget(string name) => SharedRegion.CreateNamed(name, 4096);

    [Fact]
    public void A_forked_child_that_disposes_an_inherited_creator_region_leaves_the_parents_name()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);

        using Child child = Child.Fork(() =>
        {
            region.Dispose();
            return 0;
        });

        Assert.True(child.WaitOrFail().Succeeded);
        Assert.True(DevShm.Exists(name), "the child unlinked the parent's segment");
    }

    [Fact]
    public void Disposing_the_exposed_mapping_handle_makes_every_accessor_refuse()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();

        region.SafeMappingHandle.Dispose();

        Assert.True(region.IsDisposed);
        Assert.Null(ProcMaps.At(address));
        Assert.Throws<ObjectDisposedException>(() => region.Read<int>(0));
        Assert.Throws<ObjectDisposedException>(() => region.Write(0, 1));
        Assert.Throws<ObjectDisposedException>(() => region.AsSpan());
        Assert.Throws<ObjectDisposedException>(() => region.Flush());
        region.Dispose();
    }

    [Fact]
    public void Read_and_Write_racing_Dispose_either_finish_or_throw_ObjectDisposed_never_touch_unmapped_memory()
    {
        int disposedSeen = 0;
        for (int round = 0; round < 200; round++)
        {
            var region = SharedRegion.CreateAnonymous(64 * 1024);
            using var started = new ManualResetEventSlim();
            var hammer = new Thread(() =>
            {
                started.Set();
                try
                {
                    for (long i = 0; ; i++)
                    {
                        region.Write(i % 1024 * 8, i);
                        region.Read<long>((i + 7) % 1024 * 8);
                    }
                }
                catch (ObjectDisposedException)
                {
                    Interlocked.Increment(ref disposedSeen);
                }
            });
            hammer.Start();
            Assert.True(started.Wait(Waits.Bound), "the hammering thread did not start");
            Thread.SpinWait(round * 50);
            region.Dispose();
            Assert.True(hammer.Join(Waits.Bound));
        }

        Assert.Equal(200, disposedSeen);
    }

    [Fact]
    public void Every_libc_function_the_library_imports_exists_in_glibc_2_28()
    {
        string[] entryPoints = [.. typeof(SharedRegion).Assembly.GetType("Shm.Interop.Libc")!
            .GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Select(method => method.GetCustomAttribute<DllImportAttribute>()?.EntryPoint)
            .OfType<string>()
            .Distinct()];
        string symbols = RunToString("objdump", "-T", LibcPath());

        Assert.Contains("statx", entryPoints);
        foreach (string entryPoint in entryPoints)
        {
            var versions = Regex.Matches(symbols, $@"\(?GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)?\s+{Regex.Escape(entryPoint)}$", RegexOptions.Multiline)
                .Select(match => new Version(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture)))
                .ToList();
            Assert.True(versions.Count > 0, $"{entryPoint} is not exported by {LibcPath()}");
            Assert.True(versions.Min() <= new Version(2, 28), $"{entryPoint} exists only since glibc {versions.Min()}");
        }
    }

    [Fact]
    public void OpenNamed_on_a_segment_its_creator_has_not_sized_yet_says_so()
    {
        string name = _shm.UniqueName();
        File.Create(DevShm.PathOf(name)).Dispose(); // what shm_open(O_CREAT) leaves before ftruncate

        var error = Assert.Throws<InvalidOperationException>(() => SharedRegion.OpenNamed(name));

        Assert.Contains(name, error.Message, StringComparison.Ordinal);
        Assert.Contains("not sized it yet", error.Message, StringComparison.Ordinal);
        SharedRegion.Unlink(name);
    }

    private static bool IsCloseOnExec(int fd)
    {
        string flags = File.ReadAllLines($"/proc/self/fdinfo/{fd}").First(line => line.StartsWith("flags:", StringComparison.Ordinal)).Split('\t')[1];
        return (Convert.ToInt32(flags, 8) & 0x80000) != 0; // O_CLOEXEC
    }

    private static string LibcPath() =>
        ProcMaps.Read().Select(mapping => mapping.Path).First(path => Path.GetFileName(path).StartsWith("libc.so", StringComparison.Ordinal));

    private static string RunToString(string program, params string[] arguments)
    {
        string output = Path.GetTempFileName();
        try
        {
            string command = string.Join(' ', new[] { program }.Concat(arguments).Select(a => $"'{a}'"));
            using Child run = Child.Spawn("/bin/sh", ["-c", $"{command} > '{output}'"]);
            Assert.True(run.WaitOrFail().Succeeded, $"{program} failed");
            return File.ReadAllText(output);
        }
        finally
        {
            File.Delete(output);
        }
    }
}
