using System;
using System.IO;
using System.Linq;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>A region's descriptors: close-on-exec, inherited once, passed no further.</summary>
public class RegionDescriptorTests
{
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

    private static bool IsCloseOnExec(int fd)
    {
        string flags = File.ReadAllLines($"/proc/self/fdinfo/{fd}").First(line => line.StartsWith("flags:", StringComparison.Ordinal)).Split('\t')[1];
        return (Convert.ToInt32(flags, 8) & 0x80000) != 0; // O_CLOEXEC
    }
}
