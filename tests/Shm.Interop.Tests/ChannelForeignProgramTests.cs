using System;
using Shm.TestSupport;
using Xunit;
using static Shm.Interop.Tests.ChannelMessages;

namespace Shm.Interop.Tests;

/// <summary>The message channel with programs that are not forks of this one: a spawned .NET worker, C writers and readers.</summary>
public sealed class ChannelForeignProgramTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void A_spawned_process_writes_through_an_inherited_memfd_channel()
    {
        using var region = SharedRegion.CreateMemfd("channel", SharedChannel.RequiredLength(16 * 1024));
        using var channel = SharedChannel.Create(region, 0, 16 * 1024);
        using SharedChannelReader reader = channel.OpenReader();
        using Child worker = Worker.Spawn(["channel-writer", "5000"], region);

        int count = 0;
        DrainUntilEnd(reader, message => Assert.Equal((0, count++), Check(message)));

        Assert.Equal(5000, count);
        Assert.Equal(0, worker.WaitOrFail().ExitCode);
    }

    [Fact]
    public void A_C_writer_and_a_C_reader_exchange_messages_with_this_process_through_a_named_segment()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 2 * SharedChannel.RequiredLength(8 * 1024));
        long second = SharedChannel.RequiredLength(8 * 1024);
        using var fromC = SharedChannel.Create(region, 0, 8 * 1024);
        using var toC = SharedChannel.Create(region, second, 8 * 1024);
        string writer = Sources.CompileC("writer", Sources.CWriter, flags: Sources.StrictC);
        string reader = Sources.CompileC("reader", Sources.CReader, flags: Sources.StrictC);

        using SharedChannelReader fromReader = fromC.OpenReader();
        using Child cWriter = Child.Spawn(writer, ["/" + name, "0", "20000"]);
        using Child cReader = Child.Spawn(reader, ["/" + name, second.ToString(System.Globalization.CultureInfo.InvariantCulture), "20000"]);
        using (SharedChannelWriter toWriter = toC.OpenWriter())
        {
            for (int i = 0; i < 20_000; i++)
            {
                Assert.True(toWriter.TryWrite(MessageOf(1, i), Bound), $"the C reader took nothing for {Bound.TotalSeconds} s (message {i})");
            }
        }
        int count = 0;
        DrainUntilEnd(fromReader, message => Assert.Equal((2, count++), Check(message)));

        Assert.Equal(20_000, count);
        Assert.Equal(0, cWriter.WaitOrFail().ExitCode);
        Assert.Equal(0, cReader.WaitOrFail().ExitCode); // it checked every byte of every message
    }
}
