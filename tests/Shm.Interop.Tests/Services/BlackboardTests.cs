using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The blackboard in one process: its API, its configuration and listing, and what a hostile peer's bytes do to it.</summary>
public sealed class BlackboardTests : IDisposable
{
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public async Task Values_written_are_read_back_by_every_form_and_unwritten_entries_read_as_zeros()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 3, ValueSize = 64 });
        using var other = BlackboardService.Open(service.Name);
        using BlackboardWriter writer = service.CreateWriter();
        writer.Write(0, Board64.Of(7));
        writer.Write(2, Board64.Of(9));
        writer.Write(2, Board64.Of(10));

        Assert.Equal(Board64.Of(7), other.Read<Board64>(0));
        Assert.True(other.TryRead(2, out Board64 two));
        Assert.Equal(Board64.Of(10), two);
        Assert.True(other.TryRead(1, out Board64 one, TimeSpan.Zero));
        Assert.Equal(default, one);
        Assert.Equal(Board64.Of(7), await other.ReadAsync<Board64>(0).AsTask().WaitAsync(Waits.Bound));
        Assert.Equal(Board64.Of(10), await other.TryReadAsync<Board64>(2, TimeSpan.Zero).AsTask().WaitAsync(Waits.Bound));
        Assert.Equal(new BlackboardConfig { Keys = 3, ValueSize = 64 }, other.Config);
        Assert.False(other.Created);
    }

    [Fact]
    public void Bad_keys_and_value_types_are_refused_by_name()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 3, ValueSize = 64 });
        using BlackboardWriter writer = service.CreateWriter();
        Assert.Equal("key", Assert.Throws<ArgumentOutOfRangeException>(() => service.Read<Board64>(3)).ParamName);
        Assert.Equal("key", Assert.Throws<ArgumentOutOfRangeException>(() => service.TryRead(-1, out Board64 _)).ParamName);
        Assert.Equal("key", Assert.Throws<ArgumentOutOfRangeException>(() => writer.Write(int.MaxValue, Board64.Of(1))).ParamName);
        Assert.Contains("holds values of 64 bytes; Int64 is 8 bytes", Assert.Throws<ArgumentException>(() => service.Read<long>(0)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => writer.Write(0, 5L));
        Assert.Equal("timeout", Assert.Throws<ArgumentOutOfRangeException>(() => service.TryRead(0, out Board64 _, TimeSpan.FromSeconds(-2))).ParamName);
        Assert.Equal("timeout", Assert.Throws<ArgumentOutOfRangeException>(() => service.TryReadAsync<Board64>(0, TimeSpan.FromSeconds(-2)).AsTask().GetAwaiter().GetResult()).ParamName);
        Assert.Equal("Keys", Assert.Throws<ArgumentOutOfRangeException>(() => BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 0 })).ParamName);
        Assert.Equal("ValueSize", Assert.Throws<ArgumentOutOfRangeException>(() => BlackboardService.Create(_names.Unique(), new BlackboardConfig { ValueSize = (1 << 20) + 1 })).ParamName);
        Assert.Equal("Keys", Assert.Throws<ArgumentOutOfRangeException>(() => BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 1 << 20, ValueSize = 4096 })).ParamName);
    }

    [Fact]
    public void One_writer_at_a_time_and_a_configuration_or_kind_mismatch_is_named()
    {
        string name = _names.Unique();
        using var service = BlackboardService.CreateOrOpen(name, new BlackboardConfig { Keys = 4, ValueSize = 8 });
        using (BlackboardWriter writer = service.CreateWriter())
        {
            Assert.Contains($"process {Environment.ProcessId}", Assert.Throws<InvalidOperationException>(service.CreateWriter).Message, StringComparison.Ordinal);
            ServiceInfo listed = Service.List().Single(s => s.Name == name);
            Assert.Equal(ServiceKind.Blackboard, listed.Kind);
            Assert.Null(listed.Problem);
            Assert.Equal(new BlackboardConfig { Keys = 4, ValueSize = 8 }, listed.Blackboard);
            Assert.Contains(listed.Participants, p => p.Role == ParticipantRole.Writer && p.Pid == Environment.ProcessId && p.IsAlive);
        }
        using (service.CreateWriter())
        {
            // The slot was given back.
        }
        Assert.Contains("ValueSize: the service has 8, this process asked for 16", Assert.Throws<InvalidOperationException>(() => BlackboardService.CreateOrOpen(name, new BlackboardConfig { Keys = 4, ValueSize = 16 })).Message, StringComparison.Ordinal);
        Assert.Contains("is a Blackboard service, not PublishSubscribe", Assert.Throws<InvalidOperationException>(() => PublishSubscribeService.Open(name)).Message, StringComparison.Ordinal);
        string pubsub = _names.Unique();
        using var other = PublishSubscribeService.Create(pubsub, new PublishSubscribeConfig());
        Assert.Contains("is a PublishSubscribe service, not Blackboard", Assert.Throws<InvalidOperationException>(() => BlackboardService.Open(pubsub)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sequence_a_live_writer_keeps_odd_times_out_every_form_within_its_bound()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 1, ValueSize = 64 });
        using BlackboardWriter writer = service.CreateWriter();
        using var bytes = new BlackboardBytes(service.Name);
        bytes.SetSequence(0, 1);

        var clock = Stopwatch.StartNew();
        Assert.False(service.TryRead(0, out Board64 _));
        Assert.False(service.TryRead(0, out Board64 _, TimeSpan.FromMilliseconds(100)));
        Assert.Null(await service.TryReadAsync<Board64>(0, TimeSpan.FromMilliseconds(100)).AsTask().WaitAsync(Waits.Bound));
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => service.Read<Board64>(0, cancel.Token));
        }
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => service.ReadAsync<Board64>(0, cancel.Token).AsTask().WaitAsync(Waits.Bound));
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"four 100 ms waits took {clock.Elapsed}");

        // The write ends: a pending asynchronous read completes with the value.
        ValueTask<Board64> pending = service.ReadAsync<Board64>(0);
        bytes.Region.Write(bytes.Entry(0) + BlackboardBytes.Value, Board64.Of(3));
        bytes.SetSequence(0, 2);
        Assert.Equal(Board64.Of(3), await pending.AsTask().WaitAsync(Waits.Bound));
    }

    [Fact]
    public async Task A_sequence_that_keeps_changing_ends_the_read_by_its_bound_with_a_whole_value_or_a_timeout()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 1, ValueSize = 64 });
        using BlackboardWriter writer = service.CreateWriter();
        writer.Write(0, Board64.Of(12));
        using var bytes = new BlackboardBytes(service.Name);
        using var stop = new CancellationTokenSource();
        Task bumper = Task.Run(() =>
        {
            ref uint sequence = ref bytes.Region.As<uint>(bytes.Entry(0));
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sequence);
            }
        });
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var clock = Stopwatch.StartNew();
                bool read = service.TryRead(0, out Board64 value, TimeSpan.FromMilliseconds(50));
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"a 50 ms read took {clock.Elapsed}");
                Assert.True(!read || value.Equals(Board64.Of(12)), $"read {value.Index}");
            }
        }
        finally
        {
            stop.Cancel();
            await bumper.WaitAsync(Waits.Bound);
        }
    }

    [Fact]
    public void Hostile_slot_torn_by_and_sequence_words_are_reported_as_corruption()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 2, ValueSize = 64 });
        using var bytes = new BlackboardBytes(service.Name);

        // Odd with no writer at all: no write can be in flight.
        bytes.SetSequence(0, 7);
        var odd = Assert.Throws<SharedMemoryCorruptedException>(() => service.TryRead(0, out Board64 _, Waits.Bound));
        Assert.Equal((BlackboardBytes.Entries, 7L), (odd.Offset, odd.Value));
        bytes.SetSequence(0, 8);

        // A torn-by word that cannot be a pid.
        bytes.Region.Write(bytes.Entry(1) + BlackboardBytes.TornBy, uint.MaxValue);
        Assert.Equal(bytes.Entry(1) + BlackboardBytes.TornBy, Assert.Throws<SharedMemoryCorruptedException>(() => service.Read<Board64>(1)).Offset);
        bytes.Region.Write(bytes.Entry(1) + BlackboardBytes.TornBy, 0u);

        // A writer slot word no process could have written.
        bytes.Region.Write(BlackboardBytes.WriterSlot, ulong.MaxValue);
        Assert.Equal(BlackboardBytes.WriterSlot, Assert.Throws<SharedMemoryCorruptedException>(service.CreateWriter).Offset);
        bytes.SetSequence(0, 9);
        Assert.Equal(BlackboardBytes.WriterSlot, Assert.Throws<SharedMemoryCorruptedException>(() => service.TryRead(0, out Board64 _, Waits.Bound)).Offset);
        bytes.SetSequence(0, 10);
        bytes.Region.Write(BlackboardBytes.WriterSlot, 0UL);
        Assert.True(service.TryRead(0, out Board64 _));
    }

    [Theory]
    [InlineData(ServiceBytes.Magic, 0)]
    [InlineData(ServiceBytes.Kind, 7)]
    [InlineData(ServiceBytes.SegmentBytes, 4096)]
    [InlineData(BlackboardBytes.KeysAt, 0)]
    [InlineData(BlackboardBytes.KeysAt, -1)]
    [InlineData(BlackboardBytes.KeysAt, 100)]
    [InlineData(BlackboardBytes.ValueSizeAt, 0)]
    [InlineData(BlackboardBytes.ValueSizeAt, int.MaxValue)]
    [InlineData(BlackboardBytes.ValueSizeAt, 4096)]
    public void An_impossible_configuration_is_refused_on_open_and_listed_as_corrupt(int offset, int value)
    {
        string name = _names.Unique();
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 2, ValueSize = 64 });
        using (var bytes = new BlackboardBytes(name))
        {
            bytes.Region.Write(offset, value);
        }
        var corrupt = Assert.Throws<SharedMemoryCorruptedException>(() => BlackboardService.Open(name));
        Assert.True(corrupt.Offset == offset || corrupt.Offset == ServiceBytes.SegmentBytes, $"offset {corrupt.Offset}");
        Assert.StartsWith("corrupt:", Service.List().Single(s => s.Name == name).Problem, StringComparison.Ordinal);
    }
}
