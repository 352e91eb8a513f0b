using System;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The blackboard between real processes: three forked readers against a writer, and a writer killed in the middle of a write.</summary>
public sealed class BlackboardProcessTests : IDisposable
{
    /// <summary>How many updates the one-writer, three-reader load makes: 1,000,000 in CI; <c>SHM_BLACKBOARD_UPDATES=10000000</c> for the full load.</summary>
    private static readonly long Updates = long.TryParse(Environment.GetEnvironmentVariable("SHM_BLACKBOARD_UPDATES"), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : 1_000_000;

    private readonly ServiceNames _names = new();

    /// <summary>Runs every child body once here (on a thread of this process), so that nothing compiles in a forked child.</summary>
    public BlackboardProcessTests()
    {
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 2, ValueSize = 64 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var never = SharedSemaphore.Create(region, 64, 0);
        using var results = SharedRegion.CreateAnonymous(4096);
        using (BlackboardWriter writer = service.CreateWriter())
        {
            writer.Write(0, Board64.Of(5));
            Assert.Equal(BlackboardBodies.Ok, BlackboardBodies.ReadUntil(service, ready, 5, results, 0));
        }
        Assert.Equal(BlackboardBodies.Failed, BlackboardBodies.ExpectWriterDied(service, 0, 1));
        never.Release();
        Task<int> holder = Task.Run(() => BlackboardBodies.WriteThenHoldOdd(service, 1, ready, never));
        Assert.True(holder.Wait(Waits.Bound));
        using var bytes = new BlackboardBytes(service.Name);
        bytes.SetSequence(1, 4);
    }

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Three_reader_processes_never_see_a_torn_value_while_one_writer_updates()
    {
        long last = Updates - 1;
        using var service = BlackboardService.Create(_names.Unique(), new BlackboardConfig { Keys = 4, ValueSize = 64 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var results = SharedRegion.CreateAnonymous(4096);
        using BlackboardWriter writer = service.CreateWriter();
        writer.Write(0, Board64.Of(0));

        using Children readers = Children.Fork(3, i => BlackboardBodies.ReadUntil(service, ready, last, results, 64 * i));
        for (int i = 0; i < 3; i++)
        {
            Assert.True(ready.TryWait(Waits.Bound), "a reader did not start");
        }
        for (long i = 1; i <= last; i++)
        {
            writer.Write(0, Board64.Of(i));
        }

        Assert.All(readers.WaitAllOrFail(), exit => Assert.Equal(BlackboardBodies.Ok, exit.ExitCode));
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0, results.Read<long>((64 * i) + 8));
            Assert.True(results.Read<long>(64 * i) > 0, $"reader {i} read nothing");
        }
        Assert.True(service.TryRead(0, out Board64 final));
        Assert.Equal(Board64.Of(last), final);
    }

    [Fact]
    public void A_writer_killed_mid_write_is_reported_by_every_reader_within_its_bound_and_a_new_writer_repairs_the_entry()
    {
        string name = _names.Unique();
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 2, ValueSize = 64 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var never = SharedSemaphore.Create(region, 64, 0);
        using var bytes = new BlackboardBytes(name);

        using Child writer = Child.Fork(() => BlackboardBodies.WriteThenHoldOdd(service, 1, ready, never));
        Assert.True(ready.TryWait(Waits.Bound), "the writer did not start");
        Assert.Equal(3u, bytes.SequenceOf(1));
        Assert.Contains(Service.List().Single(s => s.Name == name).Participants, p => p.Role == ParticipantRole.Writer && p.Pid == writer.Pid && p.IsAlive);

        // Alive and mid-write: readers wait for it, bounded, and the other entry reads as usual.
        var clock = Stopwatch.StartNew();
        Assert.False(service.TryRead(1, out Board64 _, TimeSpan.FromMilliseconds(200)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(190), Waits.Bound);
        Assert.True(service.TryRead(0, out Board64 untouched));
        Assert.Equal(default, untouched);
        Assert.Throws<InvalidOperationException>(service.CreateWriter);

        // A reader asleep on the entry when the writer dies wakes and reports it.
        Task<bool> sleeping = Task.Run(() => service.TryRead(1, out Board64 _, Waits.Bound));
        int pid = writer.Pid;
        writer.Signal(Native.SIGKILL);
        Assert.Equal(Native.SIGKILL, writer.WaitOrFail().Signal);
        clock.Restart();
        var died = Assert.Throws<AggregateException>(() => sleeping.Wait(Waits.Bound)).InnerException as BlackboardWriterDiedException;
        Assert.NotNull(died);
        Assert.Equal((pid, 1), (died.WriterPid, died.Key));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the sleeping reader took {clock.Elapsed} to notice");

        using (Children readers = Children.Fork(3, _ => BlackboardBodies.ExpectWriterDied(service, 1, pid)))
        {
            Assert.All(readers.WaitAllOrFail(), exit => Assert.Equal(BlackboardBodies.Ok, exit.ExitCode));
        }

        // A new writer takes the dead one's slot: the entry is even again, and still reported torn until written.
        using BlackboardWriter next = service.CreateWriter();
        Assert.Equal(4u, bytes.SequenceOf(1));
        Assert.Equal((uint)pid, bytes.Region.Read<uint>(bytes.Entry(1) + BlackboardBytes.TornBy));
        Assert.Equal(pid, Assert.Throws<BlackboardWriterDiedException>(() => service.TryRead(1, out Board64 _)).WriterPid);
        next.Write(1, Board64.Of(42));
        Assert.Equal(Board64.Of(42), service.Read<Board64>(1));
    }
}
