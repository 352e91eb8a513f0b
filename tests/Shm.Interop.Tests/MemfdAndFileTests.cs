using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public sealed class MemfdAndFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shm-file-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_memfd_region_shows_as_memfd_in_the_maps_and_goes_with_Dispose()
    {
        var region = SharedRegion.CreateMemfd("visible", 3 * 4096);
        nint address = region.DangerousGetAddress();

        Assert.Equal("/memfd:visible (deleted)", ProcMaps.At(address)!.Path);
        Assert.Equal("rw-s", ProcMaps.At(address)!.Permissions);
        Assert.Equal(RegionKind.Memfd, region.Kind);
        int fd = (int)region.Descriptor!.DangerousGetHandle();
        Assert.StartsWith("/memfd:visible", new FileInfo($"/proc/self/fd/{fd}").LinkTarget, StringComparison.Ordinal);

        region.Dispose();

        Assert.NotEqual("/memfd:visible (deleted)", ProcMaps.At(address)?.Path);
        Assert.False(File.Exists($"/proc/self/fd/{fd}") && new FileInfo($"/proc/self/fd/{fd}").LinkTarget!.StartsWith("/memfd:visible", StringComparison.Ordinal));
    }

    [Fact]
    public void OpenDescriptor_maps_the_same_object_through_its_own_descriptor()
    {
        using var region = SharedRegion.CreateMemfd("twice", 4096);
        using (var again = SharedRegion.OpenDescriptor(region.Descriptor!))
        {
            again.Write(0, 99);
            Assert.Equal(4096, again.Length);
            Assert.NotEqual(region.DangerousGetAddress(), again.DangerousGetAddress());
        }

        Assert.Equal(99, region.Read<int>(0));
        Assert.False(region.Descriptor!.IsClosed); // the caller's descriptor stays open
        Assert.Equal(LinuxErrno.EBADF, Assert.Throws<ShmException>(() => SharedRegion.OpenDescriptor(new SafeFileHandle(987654, ownsHandle: false))).Errno);
    }

    [Theory]
    [InlineData("")]
    [InlineData("nul\0")]
    public void Bad_memfd_names_are_refused(string name)
    {
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => SharedRegion.CreateMemfd(name, 10)).ParamName);
    }

    [Fact]
    public void A_file_region_creates_the_file_and_Flush_makes_bytes_durable()
    {
        string path = Path.Combine(_directory, "data.bin");

        using (var region = SharedRegion.CreateFromFile(path, 5096))
        {
            Assert.Equal(RegionKind.File, region.Kind);
            Assert.Equal(path, ProcMaps.At(region.DangerousGetAddress())!.Path);
            Encoding.ASCII.GetBytes("persistent").CopyTo(region.AsSpan(100, 10));
            region.Flush();
        }

        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(5096, bytes.Length);
        Assert.Equal("persistent", Encoding.ASCII.GetString(bytes, 100, 10));
    }

    [Fact]
    public void A_file_region_extends_a_shorter_file_and_keeps_its_bytes()
    {
        string path = Path.Combine(_directory, "short.bin");
        File.WriteAllBytes(path, [1, 2, 3]);

        using (var region = SharedRegion.CreateFromFile(path, 8192))
        {
            Assert.Equal([1, 2, 3], region.AsReadOnlySpan(0, 3).ToArray());
            region.AsSpan()[8191] = 9;
        }

        Assert.Equal(8192, new FileInfo(path).Length);
        Assert.Equal(9, File.ReadAllBytes(path)[8191]);
    }

    [Fact]
    public void A_read_only_file_region_refuses_writes_and_needs_the_file()
    {
        string path = Path.Combine(_directory, "ro.bin");
        File.WriteAllBytes(path, new byte[4096]);

        using (var region = SharedRegion.CreateFromFile(path, 4096, RegionAccess.ReadOnly))
        {
            Assert.Equal("r--s", ProcMaps.At(region.DangerousGetAddress())!.Permissions);
            Assert.Throws<NotSupportedException>(() => region.AsSpan());
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => SharedRegion.CreateFromFile(path, 8192, RegionAccess.ReadOnly));
        var missing = Assert.Throws<ShmException>(() => SharedRegion.CreateFromFile(Path.Combine(_directory, "none"), 10, RegionAccess.ReadOnly));
        Assert.Equal(("open", LinuxErrno.ENOENT), (missing.Syscall, missing.Errno));
        Assert.False(File.Exists(Path.Combine(_directory, "none")));
    }

    [Fact]
    public void A_second_process_sees_a_file_regions_bytes_through_the_file()
    {
        string path = Path.Combine(_directory, "shared.bin");
        using var region = SharedRegion.CreateFromFile(path, 4096);
        SharedRegion.CreateFromFile(path, 4096).Dispose(); // the child's path, run once here

        using Child child = Child.Fork(() =>
        {
            using var mine = SharedRegion.CreateFromFile(path, 4096);
            mine.Write(8, 1234L);
            return 0;
        });

        Assert.True(child.WaitOrFail().Succeeded);
        Assert.Equal(1234L, region.Read<long>(8));
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
}
