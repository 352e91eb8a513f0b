using System;
using System.Threading;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Disposing a region, or its mapping handle, while it is in use.</summary>
public class RegionDisposeTests
{
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
}
