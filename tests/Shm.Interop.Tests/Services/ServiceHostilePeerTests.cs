using System;
using System.Linq;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Services against a hostile peer: this process writes chosen bad values into a service's segment (as
/// any process that maps it may) while a forked victim opens it, subscribes or publishes. The victim's
/// mapping ends at a PROT_NONE page, so a stray access is a signal. Each victim must end normally,
/// within its bounds, having reported the corruption it met and named the structure, and must never be
/// handed a sample that was not published.
/// </summary>
public sealed class ServiceHostilePeerTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly ServiceNames _names = new();

    /// <summary>Runs each kind of victim once here, clean and corrupted, so that nothing compiles in a forked child.</summary>
    public ServiceHostilePeerTests()
    {
        foreach (string name in new[] { "magic", "descriptor of another subscriber generation", "mask without the subscriber's bit", "subscriber overflow policy 7", "queue tail ahead of the head", "departed publisher's sample rewritten" })
        {
            Assert.Equal(GuardedService.Corrupted, Face(ServiceHostilities.Named(name), inProcess: true).ExitCode);
        }
    }

    public void Dispose() => _names.Dispose();

    [Theory]
    [MemberData(nameof(Table))]
    public void A_forked_victim_reports_the_corruption_and_ends_normally(string hostility)
    {
        ServiceHostility h = ServiceHostilities.Named(hostility);

        (int? signal, int? exitCode, string report) = Face(h, inProcess: false);

        Assert.True(signal is null, $"the victim died of signal {signal}: {report}");
        if (h.Structure == "Refused")
        {
            Assert.True(exitCode == GuardedService.Refused, $"exit {exitCode}: {report}");
            return;
        }
        Assert.True(exitCode == GuardedService.Corrupted, $"exit {exitCode}: {report}");
        Assert.Equal($"{nameof(SharedMemoryCorruptedException)}: {h.Structure}", report);
    }

    public static TheoryData<string> Table => ServiceHostilities.Names();

    [Fact]
    public void Clean_victims_complete_so_the_table_tests_the_corruption_and_nothing_else()
    {
        var clean = new ServiceHostility("clean subscriber", ServiceVictim.Subscriber, "");
        Assert.Equal(GuardedService.TimedOut, Face(clean, inProcess: false).ExitCode); // two samples, then nothing more within its bound
        Assert.Equal(GuardedService.Completed, Face(new ServiceHostility("clean opener", ServiceVictim.Opener, ""), inProcess: false).ExitCode);
        Assert.Equal(GuardedService.Completed, Face(new ServiceHostility("clean publisher", ServiceVictim.Publisher, "") { DroppingPeer = true }, inProcess: false).ExitCode);
    }

    [Fact]
    public void A_victim_maps_the_segment_with_an_inaccessible_page_right_after_it()
    {
        using var g = new GuardedService(_names.Unique(), ServiceHostilities.Default);
        using Child victim = Child.Fork(() => g.Run(ServiceVictim.Subscriber));
        Assert.True(g.Ready.TryWait(Bound));

        string[] lines = [.. System.IO.File.ReadAllLines($"/proc/{victim.Pid}/maps").Where(line => line.EndsWith(ServiceNames.PathOf(g.Name), StringComparison.Ordinal))];
        g.Go.Set();
        victim.WaitOrFail(Bound);

        // The parent's own mapping (no guard) and the victim's: the segment read/write, then one page with no access.
        (long Start, long End, string Perms)[] maps = [.. lines.Select(line =>
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string[] range = fields[0].Split('-');
            return (Convert.ToInt64(range[0], 16), Convert.ToInt64(range[1], 16), fields[1]);
        })];
        Assert.Contains(maps, m => m.Perms == "---s" && m.End - m.Start == 4096 && maps.Any(s => s.Perms == "rw-s" && s.End == m.Start && s.End - s.Start == g.Bytes.Region.Length));
    }

    /// <summary>Sets the scene of <paramref name="h"/>, runs its victim (forked, or here), and says how it ended.</summary>
    private (int? Signal, int? ExitCode, string Report) Face(ServiceHostility h, bool inProcess)
    {
        using var g = new GuardedService(_names.Unique(), h.Config);
        using Publisher? peerPublisher = h.Victim == ServiceVictim.Subscriber ? g.Service.CreatePublisher() : null;
        using Subscriber? peerSubscriber = h.Victim == ServiceVictim.Publisher
            ? g.Service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = h.DroppingPeer ? OverflowPolicy.DropOldest : OverflowPolicy.Block })
            : null;
        using IDisposable? peer = h.Before?.Invoke(g);
        if (inProcess)
        {
            int result = -1;
            var victim = new System.Threading.Thread(() => result = g.Run(h.Victim));
            victim.Start();
            Pause(g, h, peerPublisher);
            Assert.True(victim.Join(Bound), "the victim did not end");
            return (null, result, g.Report);
        }
        using Child forked = Child.Fork(() => g.Run(h.Victim));
        Pause(g, h, peerPublisher);
        ChildExit exit = forked.WaitOrFail(Bound);
        return (exit.Signal, exit.ExitCode, g.Report);
    }

    private static void Pause(GuardedService g, ServiceHostility h, Publisher? peerPublisher)
    {
        if (h.Victim == ServiceVictim.Opener || h.FailsOnAttach)
        {
            return; // the victim fails as it opens or attaches
        }
        Assert.True(g.Ready.TryWait(Bound), $"the victim did not attach: {g.Report}");
        if (peerPublisher is not null && !h.Quiet)
        {
            Payloads.Publish(peerPublisher, 0, 0, 100);
            Payloads.Publish(peerPublisher, 0, 1, 100);
        }
        h.AtPause?.Invoke(g);
        g.Go.Set();
    }
}
