using System;
using System.Runtime.InteropServices;
using Xunit;

namespace Shm.Interop.Tests;

public class RegionAccessTests
{
    [StructLayout(LayoutKind.Sequential)]
    public struct Pair
    {
        public int Count;
        public double Sum;
    }

    [Fact]
    public void A_new_region_is_zeroed_and_bytes_written_read_back()
    {
        using var region = SharedRegion.CreateAnonymous(5096);

        Assert.True(region.AsReadOnlySpan().IndexOfAnyExcept((byte)0) < 0);
        region.AsSpan().Fill(0xAB);
        region.AsSpan(5095, 1)[0] = 7;

        Assert.Equal(0xAB, region.AsReadOnlySpan()[0]);
        Assert.Equal(7, region.AsReadOnlySpan(5095, 1)[0]);
        Assert.Equal(5096, region.AsSpan().Length);
    }

    [Fact]
    public void Typed_views_share_the_same_bytes()
    {
        using var region = SharedRegion.CreateAnonymous(64);

        ref Pair pair = ref region.As<Pair>(16);
        pair.Count = 3;
        pair.Sum = 1.5;

        Assert.Equal(3, region.AsSpan<int>()[4]);
        Assert.Equal(1.5, region.Read<double>(24));
        region.Write(24, 2.5);
        Assert.Equal(2.5, region.As<Pair>(16).Sum);
        Assert.Equal(16, region.AsSpan<int>().Length);
        Assert.Equal(2, region.AsSpan<long>(48, 2).Length);
    }

    [Fact]
    public void The_typed_region_holds_one_value_in_place()
    {
        using var region = SharedRegion.CreateAnonymous<Pair>();

        region.Value.Count = 42;

        Assert.Equal(Marshal.SizeOf<Pair>(), region.Length);
        Assert.Equal(42, region.Read<int>(0));
    }

    [Fact]
    public void A_type_larger_than_the_region_is_refused()
    {
        using var region = SharedRegion.CreateAnonymous(8);

        Assert.Throws<ArgumentException>(() => region.As<Pair>());
        Assert.Throws<ArgumentException>(() => region.AsSpan<Pair>());
    }

    [Fact]
    public void A_misaligned_offset_is_refused()
    {
        using var region = SharedRegion.CreateAnonymous(64);

        Assert.Equal("offset", Assert.Throws<ArgumentException>(() => region.As<long>(4)).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentException>(() => region.As<Pair>(2)).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentException>(() => region.AsSpan<int>(1, 2)).ParamName);
        region.As<int>(4) = 1; // int needs 4, not 8
    }

    [Theory]
    [InlineData(-1, 1)]
    [InlineData(0, 101)]
    [InlineData(100, 1)]
    [InlineData(101, 0)]
    [InlineData(50, -1)]
    [InlineData(long.MaxValue, 1)]
    public void Slices_outside_the_region_are_refused(long offset, int length)
    {
        using var region = SharedRegion.CreateAnonymous(100);

        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsSpan(offset, length));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsReadOnlySpan(offset, length));
    }

    [Fact]
    public void Typed_reads_and_writes_past_the_end_are_refused()
    {
        using var region = SharedRegion.CreateAnonymous(100);

        Assert.Throws<ArgumentOutOfRangeException>(() => region.Read<long>(93));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.Write(97, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.As<int>(100));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsSpan<int>(0, 26));
        region.AsSpan(100, 0); // an empty slice at the end is fine
    }
}
