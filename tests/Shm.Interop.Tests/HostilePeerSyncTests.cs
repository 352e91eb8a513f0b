using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using Shm.TestSupport;
using Shm.Worker;
using Xunit;
using Outcome = Shm.Worker.SyncVictim.Outcome;

namespace Shm.Interop.Tests;

/// <summary>
/// A peer writes chosen bad values into a primitive (its state, its kind, each of its own words)
/// while our side waits on it, blockingly in a forked child or asynchronously in a spawned process,
/// or opens it. The victim must end normally, never by a signal, having reported the corruption or
/// timed out, and never wait past its timeout. This process plays the peer: it writes, then wakes
/// the word's sleepers, as a peer may.
/// </summary>
public sealed class HostilePeerSyncTests
{
    private static readonly TimeSpan WaitTimeout = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>A write of the peer: into int <paramref name="Word"/> of the primitive (or the long there, if <paramref name="Wide"/>), a value computed from what is there.</summary>
    private sealed record Write(int Word, Func<long, long> Value, bool Wide = false);

    /// <summary>One attack: what the victim does, what the peer writes (before the victim starts, or once it waits), and how the victim may end.</summary>
    private sealed record Case(string Primitive, Write[] Writes, bool Before, params Outcome[] Allowed)
    {
        public bool Asynchronous => Primitive is "semaphore" or "event" && !Before;
    }

    /// <summary>The pid of a child that ended and was reaped just before the attack: a tid no thread has now (pids wrap at pid_max).</summary>
    private static int s_deadTid;
    private static readonly int PidMax = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), CultureInfo.InvariantCulture);

    private static Write At(int word, long value) => new(word, _ => value);

    /// <summary>The word (or, wide, the owner record) naming the dead tid as owner, at a generation.</summary>
    private static Write DeadOwner(int word, int generation, bool wide = false) => new(word, _ => s_deadTid | (generation << 22), wide);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["semaphore count negative"] = new("semaphore", [At(2, -1)], false, Outcome.Corrupted),
        ["semaphore count past its maximum"] = new("semaphore", [At(2, 7)], false, Outcome.Corrupted),
        ["semaphore maximum zero"] = new("semaphore", [At(4, 0)], false, Outcome.Corrupted),
        ["semaphore maximum negative"] = new("semaphore", [At(4, int.MinValue)], false, Outcome.Corrupted),
        ["semaphore waiter count negative"] = new("semaphore", [At(3, -100)], false, Outcome.Corrupted),
        ["semaphore state scribbled"] = new("semaphore", [At(0, 0x0BAD_F00D)], false, Outcome.TimedOut),
        ["semaphore kind scribbled"] = new("semaphore", [At(1, 0x7FFF_0001)], false, Outcome.TimedOut),
        ["event signal 2"] = new("event", [At(2, 2)], false, Outcome.Corrupted),
        ["event signal negative"] = new("event", [At(2, -1)], false, Outcome.Corrupted),
        ["event mode unknown"] = new("event", [At(4, 9), At(2, 1)], false, Outcome.Corrupted),
        ["event waiter count negative"] = new("event", [At(3, -1)], false, Outcome.Corrupted),
        ["condition sequence bumped"] = new("condition", [new(2, seen => seen + 12345)], false, Outcome.Took),
        ["condition waiter count negative"] = new("condition", [At(3, -5)], true, Outcome.Corrupted),
        ["futex mutex free with the sleepers bit"] = new("futex-mutex", [At(2, unchecked((int)0x8000_0000))], false, Outcome.Corrupted),
        ["futex mutex owner tid past pid_max"] = new("futex-mutex", [At(2, PidMax | (3 << 22))], false, Outcome.Corrupted),
        ["futex mutex owner that no longer exists"] = new("futex-mutex", [DeadOwner(2, 5)], false, Outcome.Abandoned),
        ["futex mutex record naming an impossible pid"] = new("futex-mutex", [DeadOwner(4, 6, wide: true), At(3, -7), DeadOwner(2, 6)], false, Outcome.Corrupted),
        ["futex mutex record scribbled under its owner"] = new("futex-mutex-unlock", [At(4, 0x1234_5678_0000_0001) with { Wide = true }], false, Outcome.Corrupted),
        ["futex mutex generation changed under its owner"] = new("futex-mutex-unlock", [new(2, word => word ^ (1 << 22))], false, Outcome.Corrupted),
        ["open while the state stays initialising"] = new("open-semaphore", [At(0, 0x5449_4E49)], true, Outcome.TimedOut),
        ["open with a scribbled state"] = new("open-semaphore", [At(0, 0x0BAD_F00D)], true, Outcome.Refused),
        ["open with a scribbled kind"] = new("open-semaphore", [At(1, 0x00FF_0001)], true, Outcome.Refused),
    };

    public static TheoryData<string> BlockingCases => [.. Cases.Keys];

    public static TheoryData<string> AsynchronousCases => [.. Cases.Where(c => c.Value.Asynchronous).Select(c => c.Key)];

    /// <summary>Before the fix, "semaphore count negative" and "event signal 2" spun for ever, ignoring the timeout; the others waited it out silently.</summary>
    [Theory]
    [MemberData(nameof(BlockingCases))]
    public void A_blocking_victim_reports_the_corruption_or_times_out_and_ends_normally(string attack) => Attack(attack, asynchronous: false);

    /// <summary>Before the fix, the watcher thread spun on the impossible values and the waits never ended.</summary>
    [Theory]
    [MemberData(nameof(AsynchronousCases))]
    public void An_asynchronous_victim_reports_the_corruption_or_times_out_and_ends_normally(string attack) => Attack(attack, asynchronous: true);

    private static void Attack(string attack, bool asynchronous)
    {
        Case c = Cases[attack];
        if (attack.Contains("pid_max", StringComparison.Ordinal) && PidMax > 0x3F_FFFF)
        {
            return; // pid_max is PID_MAX_LIMIT here: no tid field value lies past it
        }
        s_deadTid = ReapedPid();
        using var region = SharedRegion.CreateMemfd("hostile", 4096);
        List<IDisposable> primitives = Prepare(region, c.Primitive);
        try
        {
            if (c.Before)
            {
                Apply(region, c.Writes);
            }
            using Child victim = asynchronous
                ? Worker.Spawn(["sync-victim", c.Primitive, ((int)WaitTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)], region)
                : Child.Fork(() => SyncVictim.Run(region, c.Primitive, asynchronous: false, WaitTimeout));
            if (!c.Before)
            {
                Assert.True(SpinWait.SpinUntil(() => Waiting(region, c.Primitive) || victim.TryWait(out _, TimeSpan.Zero), Bound),
                    $"the victim never started waiting: {Native.Describe(victim.Pid)}");
                Apply(region, c.Writes);
                if (c.Primitive == "futex-mutex-unlock")
                {
                    region.Write(SyncVictim.HandshakeWord, 2);
                }
            }
            ChildExit exit = victim.WaitOrFail(TimeSpan.FromSeconds(20));

            Assert.True(exit is { Signal: null, ExitCode: int }, $"{attack}: the victim died by signal {exit.Signal}");
            var outcome = (Outcome)exit.ExitCode!.Value;
            Assert.True(c.Allowed.Contains(outcome), $"{attack}: the victim ended {outcome} ({exit}), expected {string.Join(" or ", c.Allowed)}");
            TimeSpan limit = (c.Primitive == "open-semaphore" ? TimeSpan.FromSeconds(5) : WaitTimeout) + Slack;
            int elapsed = region.Read<int>(SyncVictim.ElapsedWord);
            Assert.True(elapsed <= limit.TotalMilliseconds, $"{attack}: the victim's wait took {elapsed} ms, past its timeout");
        }
        finally
        {
            primitives.ForEach(primitive => primitive.Dispose());
        }
    }

    /// <summary>Creates the primitive the victim opens; for a futex mutex to wait on, this thread holds it (alive) meanwhile.</summary>
    private static List<IDisposable> Prepare(SharedRegion region, string primitive)
    {
        long at = SyncVictim.PrimitiveOffset;
        switch (primitive)
        {
            case "semaphore" or "open-semaphore":
                return [SharedSemaphore.Create(region, at, 0, maximumCount: 1)];
            case "event":
                return [SharedEvent.Create(region, at, EventResetMode.AutoReset)];
            case "condition":
                return [SharedCondition.Create(region, at), SharedMutex.Create(region, SyncVictim.MutexOffset)];
            case "futex-mutex":
                var held = SharedFutexMutex.Create(region, at);
                held.Lock();
                return [held];
            default:
                return [SharedFutexMutex.Create(region, at)];
        }
    }

    /// <summary>True once the victim waits: counted among the waiters, asleep on the futex mutex, or holding it.</summary>
    private static bool Waiting(SharedRegion region, string primitive) => primitive switch
    {
        "futex-mutex" => region.Read<int>(SyncVictim.PrimitiveOffset + 8) < 0,
        "futex-mutex-unlock" => region.Read<int>(SyncVictim.HandshakeWord) == 1,
        _ => region.Read<int>(SyncVictim.PrimitiveOffset + 12) > 0,
    };

    private static void Apply(SharedRegion region, Write[] writes)
    {
        foreach (Write write in writes)
        {
            long offset = SyncVictim.PrimitiveOffset + (write.Word * 4);
            if (write.Wide)
            {
                region.Write(offset, write.Value(region.Read<long>(offset)));
            }
            else
            {
                region.Write(offset, (int)write.Value(region.Read<int>(offset)));
                Wake(region, offset);
            }
        }
    }

    private static unsafe void Wake(SharedRegion region, long offset) => Futex.WakeShared((int*)(region.DangerousGetAddress() + (nint)offset));

    private static int ReapedPid()
    {
        using Child child = Child.Fork(() => 0);
        child.WaitOrFail();
        return child.Pid;
    }
}
