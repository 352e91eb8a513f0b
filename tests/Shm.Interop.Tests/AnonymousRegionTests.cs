using System;
using System.Runtime.CompilerServices;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public class AnonymousRegionTests
{
    [Fact]
    public void Anonymous_maps_a_shared_read_write_region_the_kernel_lists()
    {
        using var region = SharedRegion.CreateAnonymous(5096);

        Mapping? mapping = ProcMaps.At(region.DangerousGetAddress());
        Assert.NotNull(mapping);
        Assert.Equal("/dev/zero (deleted)", mapping.Path);
        Assert.Equal("rw-s", mapping.Permissions);
        Assert.Equal(2 * Environment.SystemPageSize, mapping.Size);
        Assert.Equal(5096, region.Length);
    }

    [Fact]
    public void Dispose_unmaps_the_region()
    {
        var region = SharedRegion.CreateAnonymous(3 * Environment.SystemPageSize);
        nint address = region.DangerousGetAddress();

        region.Dispose();

        Assert.True(region.IsDisposed);
        Assert.False(ProcMaps.At(address) is { IsAnonymousShared: true } m && m.Size == 3 * Environment.SystemPageSize);
    }

    [Fact]
    public void A_forgotten_region_is_unmapped_when_collected()
    {
        var before = ProcMaps.AnonymousShared();
        (long start, long size) = MapAndForget(7 * Environment.SystemPageSize);
        Assert.Contains((start, size), ProcMaps.AnonymousShared());

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.DoesNotContain((start, size), ProcMaps.AnonymousShared());
        Assert.Equal(before, ProcMaps.AnonymousShared());
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, long) MapAndForget(long length)
    {
        var region = SharedRegion.CreateAnonymous(length);
        return (region.DangerousGetAddress(), length);
    }

    [Fact]
    public void Dispose_twice_does_nothing()
    {
        var region = SharedRegion.CreateAnonymous(100);
        region.Dispose();
        region.Dispose();
        Assert.True(region.IsDisposed);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(long.MinValue)]
    public void A_length_below_one_is_refused_before_any_syscall(long length)
    {
        var before = ProcMaps.AnonymousShared();

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => SharedRegion.CreateAnonymous(length));

        Assert.Equal("length", error.ParamName);
        Assert.Equal(before, ProcMaps.AnonymousShared());
    }

    [Theory]
    [InlineData(1L << 50)] // 1 PiB
    [InlineData(long.MaxValue)]
    public void A_length_the_kernel_refuses_raises_ShmException_with_ENOMEM(long length)
    {
        var error = Assert.Throws<ShmException>(() => SharedRegion.CreateAnonymous(length));

        Assert.Equal("mmap", error.Syscall);
        Assert.Equal(LinuxErrno.ENOMEM, error.Errno);
        Assert.Equal("ENOMEM", error.ErrnoName);
        Assert.Contains("mmap", error.Message, StringComparison.Ordinal);
        Assert.Contains("ENOMEM", error.Message, StringComparison.Ordinal);
        Assert.Contains("Cannot allocate memory", error.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<System.IO.IOException>(error);
    }

    [Fact]
    public void Every_access_after_dispose_throws_ObjectDisposedException()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        region.Dispose();

        Assert.Throws<ObjectDisposedException>(() => region.DangerousGetAddress());
        Assert.Throws<ObjectDisposedException>(() => region.AsSpan());
        Assert.Throws<ObjectDisposedException>(() => region.AsSpan(0, 1));
        Assert.Throws<ObjectDisposedException>(() => region.AsReadOnlySpan());
        Assert.Throws<ObjectDisposedException>(() => region.AsSpan<int>());
        Assert.Throws<ObjectDisposedException>(() => region.As<long>());
        Assert.Throws<ObjectDisposedException>(() => region.Read<int>(0));
        Assert.Throws<ObjectDisposedException>(() => region.Write(0, 1));
        Assert.Throws<ObjectDisposedException>(region.LockPages);
        Assert.Throws<ObjectDisposedException>(region.UnlockPages);
        Assert.Throws<ObjectDisposedException>(() => region.Flush());
        Assert.Throws<ObjectDisposedException>(() => region.Advise(Advice.WillNeed));
        Assert.Throws<ObjectDisposedException>(() => region.Protect(Protection.Read));
    }

    [Fact]
    public void A_call_holding_the_handle_defers_the_unmap_until_it_releases()
    {
        var region = SharedRegion.CreateAnonymous(11 * Environment.SystemPageSize);
        nint address = region.DangerousGetAddress();
        bool added = false;
        region.SafeMappingHandle.DangerousAddRef(ref added);

        region.Dispose();

        Assert.True(region.IsDisposed);
        Assert.True(ProcMaps.At(address) is { IsAnonymousShared: true }, "unmapped while a caller held a reference");
        region.SafeMappingHandle.DangerousRelease();
        Assert.Null(ProcMaps.At(address) is { IsAnonymousShared: true } m && m.Size == 11 * Environment.SystemPageSize ? m : null);
    }
}
