using System;
using System.IO;
using System.Threading;
using Shm.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

/// <summary>
/// Issue 16, item 3: a process that created named segments and then ends by SIGINT, SIGTERM, SIGHUP
/// or SIGQUIT, or exits normally, leaves none of their names in /dev/shm, and ends exactly as it would
/// without the library. Real signals to real processes (tests/Shm.Worker, mode segment-until-signal).
/// </summary>
public sealed class NamedSegmentSignalTests(ITestOutputHelper output) : IDisposable
{
    private const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3;

    private const int Ready = 0, HandlerRan = 4, Finish = 8, NameSeen = 12;

    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Theory]
    [InlineData(SIGINT)]
    [InlineData(Native.SIGTERM)]
    [InlineData(SIGHUP)]
    [InlineData(SIGQUIT)]
    public void A_creator_ended_by_the_signal_leaves_no_name_and_ends_as_it_would_without_the_library(int signal)
    {
        ChildExit without = Signalled("none", signal, out _);
        string name = _shm.UniqueName();
        ChildExit with = Signalled("segment", signal, out _, name);
        string handled = _shm.UniqueName();
        ChildExit withHandler = Signalled("handler+segment", signal, out bool handlerRan, handled); // ours runs first

        output.WriteLine($"without the library: {without}; with a segment: {with}; with a segment and a handler of its own: {withHandler}");
        Assert.Equal(signal, without.Signal);
        Assert.Equal(How(without), How(with));
        Assert.Equal(How(without), How(withHandler));
        Assert.False(DevShm.Exists(name), $"{name} was left in /dev/shm");
        Assert.False(DevShm.Exists(handled), $"{handled} was left in /dev/shm");
        Assert.True(handlerRan, "the app's own handler ran after ours: ours does not cancel");

        // Everything the kernel said of the end, but the pid.
        static (int?, int?, bool, bool, bool) How(ChildExit exit) => (exit.ExitCode, exit.Signal, exit.CoreDumped, exit.Deadlocked, exit.ReapedElsewhere);
    }

    [Fact]
    public void A_creator_that_returns_from_Main_without_disposing_leaves_no_name()
    {
        string name = _shm.UniqueName();
        using var shared = SharedRegion.CreateMemfd("signal-test", 4096);
        using Child worker = Spawn(shared, "exit", name, SIGINT);

        ChildExit exit = worker.WaitOrFail();

        Assert.Equal(0, exit.ExitCode);
        Assert.False(DevShm.Exists(name), $"{name} was left in /dev/shm");
    }

    // .NET 10 runs the handlers of a signal newest registration first, and stops at the first that
    // cancels. A handler registered after our first CreateNamed therefore runs before ours.
    [Fact]
    public void A_handler_registered_after_the_first_segment_that_cancels_SIGINT_keeps_the_process_and_its_name()
    {
        (ChildExit exit, bool nameSeen, string name) = Cancelled("segment-then-cancel");

        Assert.Equal(42, exit.ExitCode); // it ran on after SIGINT, and exited when told
        Assert.True(nameSeen, "the cancelling handler ran first, so ours did not run: the name stayed");
        Assert.False(DevShm.Exists(name), "gone at the normal exit");
    }

    [Fact]
    public void A_handler_registered_before_the_first_segment_that_cancels_SIGINT_keeps_the_process_but_not_its_name()
    {
        // The documented limit: ours runs first, cannot know that a later handler cancels, and unlinks.
        (ChildExit exit, bool nameSeen, string name) = Cancelled("cancel-then-segment");

        Assert.Equal(42, exit.ExitCode);
        Assert.False(nameSeen, "ours ran before the cancelling handler and unlinked the name");
        Assert.False(DevShm.Exists(name));
    }

    /// <summary>Runs the worker in <paramref name="mode"/>, sends it <paramref name="signal"/> once it is ready, and returns how it ended.</summary>
    private static ChildExit Signalled(string mode, int signal, out bool handlerRan, string name = "unused")
    {
        using var shared = SharedRegion.CreateMemfd("signal-test", 4096);
        using Child worker = Spawn(shared, mode, name, signal);
        AwaitReady(worker, shared);

        worker.Signal(signal);
        ChildExit exit = worker.WaitOrFail();

        handlerRan = shared.Read<int>(HandlerRan) == 1;
        return exit;
    }

    private (ChildExit Exit, bool NameSeen, string Name) Cancelled(string mode)
    {
        string name = _shm.UniqueName();
        using var shared = SharedRegion.CreateMemfd("signal-test", 4096);
        using Child worker = Spawn(shared, mode, name, SIGINT);
        AwaitReady(worker, shared);

        worker.Signal(SIGINT);
        Assert.True(SpinWait.SpinUntil(() => shared.Read<int>(HandlerRan) == 1, Waits.Bound), "the app's handler did not run");
        shared.Write(Finish, 1);
        ChildExit exit = worker.WaitOrFail();
        int seen = shared.Read<int>(NameSeen);
        output.WriteLine($"{mode}: {exit}; the name after SIGINT was {(seen == 1 ? "still there" : seen == 2 ? "gone" : "not looked at")}");
        return (exit, seen == 1, name);
    }

    private static void AwaitReady(Child worker, SharedRegion shared) =>
        Assert.True(SpinWait.SpinUntil(() => shared.Read<int>(Ready) == 1 || worker.Exit is not null, Waits.Bound) && worker.Exit is null,
            $"the worker did not get ready: {worker.Exit?.ToString() ?? Native.Describe(worker.Pid)}");

    // Through a shell that forbids core files (SIGQUIT's default action would write one) and then
    // becomes the worker: the pid, and so the status, are the worker's own.
    private static Child Spawn(SharedRegion shared, string mode, string name, int signal) =>
        Child.Spawn("/bin/sh", ["-c", $"ulimit -c 0; exec dotnet '{Path.Combine(AppContext.BaseDirectory, "Shm.Worker.dll")}' segment-until-signal {mode} {name} {signal}"], shared);
}
