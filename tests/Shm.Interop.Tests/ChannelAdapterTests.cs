using System;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;
using static Shm.Interop.Tests.ChannelMessages;

namespace Shm.Interop.Tests;

/// <summary>The channel through System.Threading.Channels: the reader and writer adapters.</summary>
public sealed class ChannelAdapterTests
{
    public ChannelAdapterTests() => WarmUp();

    [Fact]
    public async Task ChannelReader_adapters_give_async_streams_without_a_thread_per_channel()
    {
        // Sixty-four channels wait at once: a thread each would show as sixty-four more.
        const int Channels = 64, Messages = 200;
        long each = SharedChannel.RequiredLength(4096);
        using var region = SharedRegion.CreateAnonymous(4096 + (Channels * each));
        SharedChannel[] channels = [.. Enumerable.Range(0, Channels).Select(k => SharedChannel.Create(region, 4096 + (k * each), 4096))];
        SharedChannelReader[] readers = [.. channels.Select(channel => channel.OpenReader())];
        using var go = SharedEvent.Create(region, 0, EventResetMode.ManualReset);
        try
        {
            using Child writer = Child.Fork(() =>
            {
                var writers = new SharedChannelWriter[Channels];
                for (int k = 0; k < Channels; k++)
                {
                    writers[k] = channels[k].OpenWriter();
                }
                go.TryWait(Bound);
                for (int i = 0; i < Messages; i++)
                {
                    foreach (SharedChannelWriter w in writers)
                    {
                        while (!w.TryWrite((long)i * i))
                        {
                            Thread.SpinWait(10);
                        }
                    }
                }
                foreach (SharedChannelWriter w in writers)
                {
                    w.Dispose();
                }
                return 0;
            });
            int threads = ProcStatus.Threads();
            // Started here, not with Task.Run: each runs until its first wait, so no thread-pool work
            // is queued while they wait, and any new thread is one the library started.
            Task<System.Collections.Generic.List<long>>[] consuming = [.. readers.Select(ConsumeAll)];
            await Task.Delay(300);
            int waiting = ProcStatus.Threads();
            go.Set();
            var received = await Task.WhenAll(consuming).WaitAsync(Bound);

            Assert.True(waiting - threads < 8, $"{threads} threads before, {waiting} while {Channels} channels waited");
            Assert.All(received, values => Assert.Equal(Enumerable.Range(0, Messages).Select(i => (long)i * i), values));
            Assert.Equal(0, writer.WaitOrFail().ExitCode);
        }
        finally
        {
            foreach (SharedChannelReader reader in readers)
            {
                reader.Dispose();
            }
            foreach (SharedChannel channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    private static async Task<System.Collections.Generic.List<long>> ConsumeAll(SharedChannelReader reader)
    {
        var values = new System.Collections.Generic.List<long>();
        ChannelReader<byte[]> adapter = reader.AsChannelReader();
        await foreach (byte[] bytes in adapter.ReadAllAsync())
        {
            values.Add(BitConverter.ToInt64(bytes));
        }
        await adapter.Completion;
        return values;
    }
}
