using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using Shm.NetMQ;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests.Bridge;

/// <summary>A fact that makes network namespaces: root and iproute2's ip; skipped with the reason otherwise.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed partial class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (geteuid() != 0)
        {
            Skip = "needs root: it makes two network namespaces (ip netns add) and a veth pair to stand for two hosts";
        }
        else if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
        {
            Skip = "needs iproute2's ip to make network namespaces";
        }
    }

    [LibraryImport("libc")]
    private static partial uint geteuid();
}

/// <summary>
/// The README's two-host example, with two network namespaces joined by a veth pair standing for
/// hosts A (10.213.N.1) and B (10.213.N.2): <c>shm bridge --listen ... --export</c> in A,
/// <c>shm bridge --connect ... --import</c> in B. /dev/shm is shared (ip netns exec keeps it), so the
/// two local channels have different names.
/// </summary>
[Collection("bridge")]
public sealed class BridgeNetnsTests(ITestOutputHelper output)
{
    private const long Writer = 3;
    private const int Messages = 20_000;

    [NetnsFact]
    public void The_two_host_example_runs_between_two_network_namespaces()
    {
        int id = Environment.ProcessId % 250;
        string hostA = $"h21a-{Environment.ProcessId}", hostB = $"h21b-{Environment.ProcessId}";
        string addressA = $"10.213.{id}.1";
        try
        {
            Ip($"netns add {hostA}");
            Ip($"netns add {hostB}");
            Ip($"link add h21va{id} netns {hostA} type veth peer name h21vb{id} netns {hostB}");
            Ip($"-n {hostA} addr add {addressA}/24 dev h21va{id}");
            Ip($"-n {hostB} addr add 10.213.{id}.2/24 dev h21vb{id}");
            Ip($"-n {hostA} link set h21va{id} up");
            Ip($"-n {hostB} link set h21vb{id} up");
            Ip($"-n {hostA} link set lo up");
            Ip($"-n {hostB} link set lo up");

            using NamedChannel telemetry = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("telemetry-a"), 64 * 1024, writers: 1);
            using NamedChannel received = NamedChannel.CreateOrOpen(BridgeTransferTests.Unique("telemetry-b"), 64 * 1024, writers: 1);
            string ip = File.Exists("/usr/sbin/ip") ? "/usr/sbin/ip" : File.Exists("/sbin/ip") ? "/sbin/ip" : "/usr/bin/ip";
            // Host A listens on every address of its namespace; host B reaches it over the veth.
            var (exporter, importer) = BridgeTransferTests.StartPair("telemetry", telemetry.Name, received.Name,
                exporterPrefix: [ip, "netns", "exec", hostA], importerPrefix: [ip, "netns", "exec", hostB], listenAt: "0.0.0.0", connectTo: addressA);
            using (exporter)
            using (importer)
            {
                Assert.Contains(addressA, importer.Status().Endpoint, StringComparison.Ordinal);
                using SharedChannelReader reader = received.Channel.OpenReader();
                using SharedChannelWriter writer = telemetry.Channel.OpenWriter();
                Span<byte> message = stackalloc byte[Stamped.Length];
                long written = 0, read = 0;
                var clock = Stopwatch.StartNew();
                while (read < Messages)
                {
                    Assert.True(clock.Elapsed < Waits.Bound, $"{read} of {Messages} messages in {Waits.Bound.TotalSeconds} s\n{importer.Status()}\n{importer.Log}\n{exporter.Log}");
                    while (written < Messages)
                    {
                        Stamped.Fill(message, Writer, written + 1);
                        if (!writer.TryWrite(message))
                        {
                            break;
                        }
                        written++;
                    }
                    if (reader.TryRead(out ReceivedMessage got, TimeSpan.FromMilliseconds(100)))
                    {
                        using (got)
                        {
                            Assert.Equal(++read, Stamped.Check(got.Span, Writer));
                        }
                    }
                }
                output.WriteLine($"{Messages} messages from namespace {hostA} to {hostB} in {clock.ElapsedMilliseconds} ms");
            }
        }
        finally
        {
            // Always: deleting a namespace deletes its end of the veth pair, and so the pair.
            RunIp($"netns del {hostA}");
            RunIp($"netns del {hostB}");
        }
        Assert.DoesNotContain(hostA, RunIp("netns list").Output, StringComparison.Ordinal);
    }

    private static void Ip(string arguments)
    {
        (int status, string text) = RunIp(arguments);
        Assert.True(status == 0, $"ip {arguments}: exit {status}: {text}");
    }

    private static (int Status, string Output) RunIp(string arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string word in arguments.Split(' '))
        {
            start.ArgumentList.Add(word);
        }
        using var process = Process.Start(start)!;
        string text = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        if (!process.WaitForExit(Waits.Bound))
        {
            process.Kill();
            throw new TimeoutException($"ip {arguments} did not end");
        }
        return (process.ExitCode, text);
    }
}
