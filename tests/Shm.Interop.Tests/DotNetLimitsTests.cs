using System;
using System.IO.MemoryMappedFiles;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The README opens with what .NET itself cannot do on Linux; these keep that claim true.</summary>
public sealed class DotNetLimitsTests
{
    [Fact]
    public void MemoryMappedFile_refuses_named_maps_on_Linux()
    {
        var create = Assert.Throws<PlatformNotSupportedException>(() => MemoryMappedFile.CreateNew($"shm-claim-{Environment.ProcessId}", 4096));
        Assert.Contains("Named maps are not supported", create.Message, StringComparison.Ordinal);
#pragma warning disable CA1416 // the analyzer knows it too (OpenExisting is Windows-only): the test checks what happens on Linux
        Assert.Throws<PlatformNotSupportedException>(() => MemoryMappedFile.OpenExisting($"shm-claim-{Environment.ProcessId}"));
#pragma warning restore CA1416
    }

    [Fact]
    public void Shm_shares_the_same_name_that_MemoryMappedFile_refuses()
    {
        string name = $"shm-claim-{Environment.ProcessId}-{Guid.NewGuid():N}";
        using SharedRegion created = SharedRegion.CreateNamed(name, 4096);
        created.Write(0, 42L);
        using SharedRegion opened = SharedRegion.OpenNamed(name);
        Assert.Equal(42L, opened.Read<long>(0));
        Assert.True(System.IO.File.Exists("/dev/shm/" + name));
    }
}
