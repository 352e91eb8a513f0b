using System;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public class MemoryControlTests
{
    [Fact]
    public void LockPages_and_UnlockPages_show_in_the_kernels_locked_count()
    {
        using var region = SharedRegion.CreateAnonymous(4 * Environment.SystemPageSize);

        region.LockPages();
        Assert.Equal(4 * Environment.SystemPageSize / 1024, ProcMaps.SmapsField(region.DangerousGetAddress(), "Locked"));

        region.UnlockPages();
        Assert.Equal(0, ProcMaps.SmapsField(region.DangerousGetAddress(), "Locked"));
    }

    [Fact]
    public void Protect_changes_the_kernels_permissions_and_the_API_follows()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        region.AsSpan()[0] = 9;

        region.Protect(Protection.Read);

        Assert.Equal("r--s", ProcMaps.At(region.DangerousGetAddress())!.Permissions);
        Assert.False(region.CanWrite);
        Assert.Throws<NotSupportedException>(() => region.AsSpan());
        Assert.Throws<NotSupportedException>(() => region.Write(0, 1));
        Assert.Equal(9, region.AsReadOnlySpan()[0]);

        region.Protect(Protection.None);
        Assert.Equal("---s", ProcMaps.At(region.DangerousGetAddress())!.Permissions);
        Assert.Throws<NotSupportedException>(() => region.AsReadOnlySpan());

        region.Protect(Protection.ReadWrite);
        Assert.Equal("rw-s", ProcMaps.At(region.DangerousGetAddress())!.Permissions);
        region.AsSpan()[0] = 10;
    }

    [Fact]
    public void Protect_refuses_unknown_bits()
    {
        using var region = SharedRegion.CreateAnonymous(4096);

        Assert.Throws<ArgumentOutOfRangeException>(() => region.Protect((Protection)4));
    }

    [Fact]
    public void Advise_Remove_frees_the_pages_so_reads_return_zeros()
    {
        using var region = SharedRegion.CreateAnonymous(2 * Environment.SystemPageSize);
        region.AsSpan().Fill(1);

        region.Advise(Advice.Remove);

        Assert.True(region.AsReadOnlySpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Advise_with_advice_the_kernel_does_not_know_raises_EINVAL()
    {
        using var region = SharedRegion.CreateAnonymous(4096);

        var error = Assert.Throws<ShmException>(() => region.Advise((Advice)999));

        Assert.Equal("madvise", error.Syscall);
        Assert.Equal(LinuxErrno.EINVAL, error.Errno);
    }

    [Fact]
    public void Flush_succeeds_both_ways_on_a_mapped_region()
    {
        using var region = SharedRegion.CreateAnonymous(4096);
        region.AsSpan()[0] = 1;

        region.Flush();
        region.Flush(asynchronous: true);
    }
}
