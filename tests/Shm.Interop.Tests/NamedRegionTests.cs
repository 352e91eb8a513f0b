using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

public sealed class NamedRegionTests(ITestOutputHelper output) : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void CreateNamed_makes_a_dev_shm_segment_of_the_length_with_mode_0600_and_maps_it()
    {
        string name = _shm.UniqueName();

        using var region = SharedRegion.CreateNamed(name, 5096);

        Assert.True(DevShm.Exists(name));
        Assert.Equal(5096, DevShm.Size(name));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, DevShm.Mode(name));
        Assert.Equal($"/dev/shm/{name}", ProcMaps.At(region.DangerousGetAddress())!.Path);
        Assert.Equal("rw-s", ProcMaps.At(region.DangerousGetAddress())!.Permissions);
        Assert.Equal(name, region.Name);
        Assert.Equal(RegionKind.Named, region.Kind);
    }

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)]
    public void The_mode_is_exactly_what_was_asked_whatever_the_umask(UnixFileMode mode)
    {
        string name = _shm.UniqueName();

        using var region = SharedRegion.CreateNamed(name, 100, mode);

        Assert.Equal(mode, DevShm.Mode(name));
    }

    [Fact]
    public void The_creators_Dispose_unlinks_an_openers_does_not()
    {
        string name = "/" + _shm.UniqueName(); // the leading slash is optional
        var creator = SharedRegion.CreateNamed(name, 4096);
        creator.AsSpan()[10] = 42;

        using (var opener = SharedRegion.OpenNamed(name))
        {
            Assert.Equal(42, opener.AsReadOnlySpan()[10]);
            Assert.Equal(4096, opener.Length);
        }
        Assert.True(DevShm.Exists(name));

        creator.Dispose();
        Assert.False(DevShm.Exists(name));
    }

    [Fact]
    public void Unlink_removes_the_name_while_mappings_stay_valid()
    {
        string name = _shm.UniqueName();
        var creator = SharedRegion.CreateNamed(name, 4096);
        using var opener = SharedRegion.OpenNamed(name);

        SharedRegion.Unlink(name);

        Assert.False(DevShm.Exists(name));
        opener.AsSpan()[0] = 7;
        Assert.Equal(7, creator.AsReadOnlySpan()[0]);
        creator.Dispose(); // someone else unlinked it: tolerated, no exception
        Assert.Equal(LinuxErrno.ENOENT, Assert.Throws<ShmException>(() => SharedRegion.Unlink(name)).Errno);
    }

    [Fact]
    public void After_a_foreign_unlink_Dispose_leaves_a_new_segment_of_the_same_name_alone()
    {
        string name = _shm.UniqueName();
        var first = SharedRegion.CreateNamed(name, 4096);
        File.Delete(DevShm.PathOf(name));
        using var second = SharedRegion.CreateNamed(name, 8192);

        first.Dispose();

        Assert.True(DevShm.Exists(name));
        Assert.Equal(8192, DevShm.Size(name));
    }

    [Fact]
    public void Creating_an_existing_name_raises_EEXIST_and_leaves_it_intact()
    {
        string name = _shm.UniqueName();
        using var first = SharedRegion.CreateNamed(name, 4096);
        first.AsSpan()[0] = 1;

        var error = Assert.Throws<ShmException>(() => SharedRegion.CreateNamed(name, 100));

        Assert.Equal(("shm_open", LinuxErrno.EEXIST), (error.Syscall, error.Errno));
        Assert.Equal(4096, DevShm.Size(name));
        Assert.Equal(1, first.AsReadOnlySpan()[0]);
    }

    [Fact]
    public void Opening_a_missing_segment_raises_ENOENT()
    {
        var error = Assert.Throws<ShmException>(() => SharedRegion.OpenNamed(_shm.UniqueName()));

        Assert.Equal(("shm_open", LinuxErrno.ENOENT), (error.Syscall, error.Errno));
        Assert.Contains("ENOENT", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Another_user_is_refused_by_the_mode_with_EACCES()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);

        using Child worker = Worker.Spawn(["open-denied", name]);

        Assert.Equal(0, worker.WaitOrFail().ExitCode);
    }

    [Theory]
    [InlineData(RegionAccess.ReadOnly, false)]
    [InlineData(RegionAccess.ReadWrite, false)]
    [InlineData(RegionAccess.ReadOnly, true)]
    [InlineData(RegionAccess.ReadWrite, true)]
    public void OpenNamed_refuses_a_FIFO_planted_under_the_name_at_once_instead_of_waiting_for_a_writer(RegionAccess access, bool otherOwner)
    {
        if (otherOwner && Environment.UserName != "root")
        {
            output.WriteLine("skipped: only root can give the FIFO to another uid");
            return;
        }
        string name = _shm.UniqueName();
        string path = DevShm.PathOf(name);
        Run("mkfifo", "-m", "0666", path);
        if (otherOwner)
        {
            Run("chown", "65534:65534", path); // nobody's, as if planted by another user
        }
        try
        {
            Task<SharedRegion> opening = Task.Run(() => SharedRegion.OpenNamed(name, access));
            bool ended = ((IAsyncResult)opening).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10));

            Assert.True(ended, "OpenNamed blocked on the FIFO for 10 s");
            var refused = Assert.IsType<ArgumentException>(opening.Exception?.InnerException, exactMatch: true);
            Assert.Equal("name", refused.ParamName);
            Assert.Contains(name, refused.Message, StringComparison.Ordinal);
            Assert.Contains("a FIFO", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Native.ReleaseFifoReaders(path); // a blocked open gets its writer and returns
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    [InlineData("a/b")]
    [InlineData("//a")]
    [InlineData(".")]
    [InlineData("/..")]
    [InlineData("nul\0inside")]
    public void Invalid_names_are_refused_before_any_syscall(string name)
    {
        string[] before = Directory.GetFiles("/dev/shm");

        Assert.Equal("name", Assert.Throws<ArgumentException>(() => SharedRegion.CreateNamed(name, 100)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => SharedRegion.OpenNamed(name)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => SharedRegion.Unlink(name)).ParamName);
        Assert.Equal(before, Directory.GetFiles("/dev/shm"));
    }

    [Fact]
    public void Names_of_255_bytes_are_allowed_and_256_refused()
    {
        string prefix = _shm.UniqueName();
        string longest = prefix + new string('x', 255 - prefix.Length);

        using (SharedRegion.CreateNamed(longest, 10))
        {
            Assert.True(DevShm.Exists(longest));
        }
        Assert.Throws<ArgumentException>(() => SharedRegion.CreateNamed(longest + "x", 10));
        Assert.Throws<ArgumentException>(() => SharedRegion.CreateNamed(prefix + new string('é', 200), 10)); // 400+ bytes in UTF-8
    }

    [Fact]
    public void A_bad_length_is_refused_before_the_segment_exists()
    {
        string name = _shm.UniqueName();

        Assert.Throws<ArgumentOutOfRangeException>(() => SharedRegion.CreateNamed(name, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SharedRegion.CreateNamed(name, -5));

        Assert.False(DevShm.Exists(name));
    }

    [Fact]
    public void A_segment_larger_than_dev_shm_fails_at_creation_with_ENOSPC_and_leaves_nothing()
    {
        string name = _shm.UniqueName();
        long tooLarge = DevShm.Capacity() + (1L << 30);

        var error = Assert.Throws<ShmException>(() => SharedRegion.CreateNamed(name, tooLarge));

        Assert.Equal(("posix_fallocate", LinuxErrno.ENOSPC), (error.Syscall, error.Errno));
        Assert.False(DevShm.Exists(name));
    }

    [Fact]
    public void A_read_only_open_maps_PROT_READ_and_the_API_refuses_writes()
    {
        string name = _shm.UniqueName();
        using var creator = SharedRegion.CreateNamed(name, 4096);
        creator.AsSpan()[0] = 5;

        using var reader = SharedRegion.OpenNamed(name, RegionAccess.ReadOnly);

        Assert.Equal("r--s", ProcMaps.At(reader.DangerousGetAddress())!.Permissions);
        Assert.False(reader.CanWrite);
        Assert.Equal(5, reader.AsReadOnlySpan()[0]);
        Assert.Throws<NotSupportedException>(() => reader.AsSpan());
        Assert.Throws<NotSupportedException>(() => reader.As<int>());
        Assert.Throws<NotSupportedException>(() => reader.Write(0, 1));
        var error = Assert.Throws<ShmException>(() => reader.Protect(Protection.ReadWrite));
        Assert.Equal(("mprotect", LinuxErrno.EACCES), (error.Syscall, error.Errno));
    }

    [Fact]
    public void A_forked_child_opens_the_segment_by_name_and_the_parent_sees_its_bytes()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        SharedRegion.OpenNamed(name).Dispose(); // the child's path, run once here

        using Child child = Child.Fork(() =>
        {
            using var mine = SharedRegion.OpenNamed(name);
            mine.Write(100, 0xABCDEFL);
            return 0;
        });

        Assert.True(child.WaitOrFail().Succeeded);
        Assert.Equal(0xABCDEFL, region.Read<long>(100));
    }

    [Fact]
    public void A_named_segment_can_be_handed_to_a_spawned_process_by_descriptor()
    {
        using var region = SharedRegion.CreateNamed(_shm.UniqueName(), 16 * sizeof(int));

        using Child worker = Worker.Spawn(["attach", "5"], region);

        Assert.True(worker.WaitOrFail().Succeeded);
        Assert.Equal(5, region.AsSpan<int>()[1]);
    }

    [Fact]
    public void Dispose_never_throws_and_access_afterwards_is_refused()
    {
        var region = SharedRegion.CreateNamed(_shm.UniqueName(), 100);

        region.Dispose();
        region.Dispose();

        Assert.Throws<ObjectDisposedException>(() => region.Descriptor);
        Assert.Throws<ObjectDisposedException>(() => region.AsSpan());
    }

    private static void Run(string program, params string[] arguments)
    {
        using Child child = Child.Spawn(program, arguments);
        Assert.True(child.WaitOrFail().Succeeded, $"{program} {string.Join(' ', arguments)} failed");
    }

    [Fact]
    public void Bytes_written_are_text_other_programs_read_at_offset_zero()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 16);
        Encoding.ASCII.GetBytes("raw at offset 0").CopyTo(region.AsSpan());

        Assert.Equal("raw at offset 0", Encoding.ASCII.GetString(File.ReadAllBytes(DevShm.PathOf(name)), 0, 15));
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
    public void OpenNamed_on_a_segment_its_creator_has_not_sized_yet_says_so()
    {
        string name = _shm.UniqueName();
        File.Create(DevShm.PathOf(name)).Dispose(); // what shm_open(O_CREAT) leaves before ftruncate

        var error = Assert.Throws<InvalidOperationException>(() => SharedRegion.OpenNamed(name));

        Assert.Contains(name, error.Message, StringComparison.Ordinal);
        Assert.Contains("not sized it yet", error.Message, StringComparison.Ordinal);
        SharedRegion.Unlink(name);
    }
}
