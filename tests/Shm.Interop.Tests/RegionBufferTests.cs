using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public sealed class RegionBufferTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public async Task Socket_ReceiveAsync_lands_in_the_segment_where_dev_shm_shows_it()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        (Socket sender, Socket receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        {
            ValueTask<int> receiving = receiver.ReceiveAsync(region.AsMemory(100, 64), SocketFlags.None); // pending: nothing sent yet
            await sender.SendAsync("over the wire"u8.ToArray(), SocketFlags.None);

            int received = await receiving.AsTask().WaitAsync(Waits.Bound);

            Assert.Equal(13, received);
            byte[] seen = File.ReadAllBytes(DevShm.PathOf(name));
            Assert.Equal("over the wire"u8.ToArray(), seen[100..113]);
        }
    }

    [Fact]
    public async Task A_file_copied_into_the_region_stream_is_in_the_region()
    {
        string path = Path.GetTempFileName();
        try
        {
            byte[] content = new byte[100_000];
            Random.Shared.NextBytes(content);
            await File.WriteAllBytesAsync(path, content);
            using var region = SharedRegion.CreateMemfd("copy", 128 * 1024);

            await using (FileStream file = File.OpenRead(path))
            await using (Stream stream = region.AsStream())
            {
                Assert.True(stream.CanWrite);
                await file.CopyToAsync(stream);
                Assert.Equal(content.Length, stream.Position);
            }

            Assert.False(region.IsDisposed); // the stream's Dispose leaves the region alone
            Assert.Equal(content, region.AsReadOnlySpan(0, content.Length).ToArray());
            using var overflow = region.AsStream(region.Length - 10, 10);
            Assert.Throws<NotSupportedException>(() => overflow.Write(new byte[11])); // fixed length: no growth past the region
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_read_only_region_gives_read_only_memory_and_stream_only()
    {
        string name = _shm.UniqueName();
        using var creator = SharedRegion.CreateNamed(name, 4096);
        creator.Write(0, 0x2A);
        using var reader = SharedRegion.OpenNamed(name, RegionAccess.ReadOnly);

        using Stream stream = reader.AsStream();

        Assert.False(stream.CanWrite);
        Assert.Equal(0x2A, stream.ReadByte());
        Assert.Throws<NotSupportedException>(() => stream.WriteByte(1));
        Assert.Throws<NotSupportedException>(() => reader.AsMemory());
        Assert.Equal(0x2A, reader.AsReadOnlyMemory().Span[0]);
    }

    [Fact]
    public unsafe void After_Dispose_a_memory_taken_before_stays_usable_and_mapped_the_region_refuses()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();
        Memory<byte> memory = region.AsMemory();

        region.Dispose();

        Assert.NotNull(ProcMaps.At(address)); // still mapped: the memory holds the mapping
        memory.Span[0] = 7;
        using (var pin = memory.Pin())
        {
            Assert.Equal(address, (nint)pin.Pointer);
        }
        Assert.Equal(7, memory.Span[0]);
        Assert.Throws<ObjectDisposedException>(() => region.AsMemory());
        Assert.Throws<ObjectDisposedException>(() => region.AsStream());
    }

    [Fact]
    public void A_stream_refuses_once_its_region_is_disposed()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        Stream stream = region.AsStream();
        nint address = region.DangerousGetAddress();

        region.Dispose();

        Assert.Null(ProcMaps.At(address)); // a stream holds no reference between calls: unmapped at once
        Assert.Throws<ObjectDisposedException>(() => stream.ReadByte());
        Assert.Throws<ObjectDisposedException>(() => stream.Write([1, 2]));
    }

    [Fact]
    public async Task A_receive_pending_when_the_region_is_disposed_still_writes_mapped_memory_and_the_munmap_waits_for_the_memory()
    {
        var region = SharedRegion.CreateAnonymous(4096);
        nint address = region.DangerousGetAddress();
        (Socket sender, Socket receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        {
            Task<int> receiving = ReceiveIntoAsync(receiver, region);

            region.Dispose();
            Assert.NotNull(ProcMaps.At(address)); // the pending receive's memory keeps the range mapped
            await sender.SendAsync("late"u8.ToArray(), SocketFlags.None);

            Assert.Equal(4, await receiving.WaitAsync(Waits.Bound)); // no fault: it wrote to the still-mapped range
        }

        // The memory is unreachable now: once the collector finalizes it, the range is unmapped.
        for (int i = 0; i < 50 && ProcMaps.At(address) is not null; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.Null(ProcMaps.At(address));
    }

    // In its own frame, so no local of the test method keeps the memory reachable afterwards.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task<int> ReceiveIntoAsync(Socket receiver, SharedRegion region) =>
        receiver.ReceiveAsync(region.AsMemory(0, 64), SocketFlags.None).AsTask();

    private static async Task<(Socket Sender, Socket Receiver)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Task<Socket> accepting = listener.AcceptAsync();
        await sender.ConnectAsync(listener.LocalEndPoint!);
        return (sender, await accepting.WaitAsync(Waits.Bound));
    }
}
