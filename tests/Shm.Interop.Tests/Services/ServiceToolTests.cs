using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The shm tool's view of services: ls lists them with their participants; sub prints samples; pub publishes one.</summary>
public sealed class ServiceToolTests : IDisposable
{
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Ls_lists_a_service_with_its_participants_and_their_pids_roles_and_liveness()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxSubscribers = 3, QueueCapacity = 4 });
        using Publisher publisher = service.CreatePublisher();
        using Subscriber subscriber = service.CreateSubscriber();
        int self = Environment.ProcessId;

        ToolRun plain = ShmTool.Run("ls");
        ToolRun json = ShmTool.Run("ls", "--json");

        Assert.Equal(0, plain.Status);
        string[] lines = [.. plain.Output.Split('\n').Where(line => line.EndsWith(" " + name, StringComparison.Ordinal) && line.StartsWith("pubsub", StringComparison.Ordinal))];
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["publisher", "0", $"{self}", "yes", "attached"]));
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["subscriber", "0", $"{self}", "yes", "attached"]));
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["opener", "0", $"{self}", "yes", "attached"]));
        JsonElement report = json.Segment(Service.SegmentPrefix + name).GetProperty("service");
        Assert.Equal("pubsub", report.GetProperty("kind").GetString());
        Assert.Equal(3, report.GetProperty("publishSubscribe").GetProperty("maxSubscribers").GetInt32());
        Assert.Contains(report.GetProperty("participants").EnumerateArray(), p => p.GetProperty("role").GetString() == "subscriber" && p.GetProperty("pid").GetInt32() == self && p.GetProperty("alive").GetBoolean());
    }

    [Fact]
    public void Ls_lists_a_blackboard_with_its_configuration_and_writer()
    {
        string name = _names.Unique();
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 5, ValueSize = 24 });
        using BlackboardWriter writer = service.CreateWriter();
        int self = Environment.ProcessId;

        ToolRun plain = ShmTool.Run("ls");
        ToolRun json = ShmTool.Run("ls", "--json");

        Assert.Equal(0, plain.Status);
        string[] lines = [.. plain.Output.Split('\n').Where(line => line.EndsWith(" " + name, StringComparison.Ordinal) && line.StartsWith("blackboard", StringComparison.Ordinal))];
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["writer", "0", $"{self}", "yes", "attached"]));
        JsonElement report = json.Segment(Service.SegmentPrefix + name).GetProperty("service");
        Assert.Equal("blackboard", report.GetProperty("kind").GetString());
        Assert.Equal(5, report.GetProperty("blackboard").GetProperty("keys").GetInt32());
        Assert.Equal(24, report.GetProperty("blackboard").GetProperty("valueSize").GetInt32());
    }

    [Fact]
    public void Pub_publishes_one_sample_and_sub_prints_samples_as_they_come()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPublishers = 2, QueueCapacity = 4 });
        using Subscriber subscriber = service.CreateSubscriber();

        ToolRun pub = ShmTool.Run("pub", name, "hello, services");

        Assert.Equal(0, pub.Status);
        Assert.True(subscriber.TryReceive(out Sample sample, Waits.Bound), pub.ToString());
        using (sample)
        {
            Assert.Equal("hello, services", System.Text.Encoding.UTF8.GetString(sample.Span));
        }

        string output = Path.GetTempFileName();
        try
        {
            using Child sub = Child.Spawn("/bin/sh", ["-c", $"exec {ShmTool.Command("sub", name, "--count", "2", "--json")} > {ShmTool.Quote(output)} 2>&1"]);
            WaitForSubscriber(name, sub.Pid);
            using Publisher publisher = service.CreatePublisher();
            foreach (string text in new[] { "one", "two" })
            {
                using SampleLoan loan = publisher.Loan(text.Length);
                System.Text.Encoding.UTF8.GetBytes(text).CopyTo(loan.Span);
                loan.Publish();
            }
            Assert.Equal(0, sub.WaitOrFail().ExitCode);
            string[] printed = File.ReadAllLines(output);
            Assert.Equal(["one", "two"], printed.Select(line => JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()));
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void Sub_ended_by_ctrl_c_leaves_its_slot_and_exits_0()
    {
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig());
        string output = Path.GetTempFileName();
        try
        {
            using Child sub = Child.Spawn("/bin/sh", ["-c", $"exec {ShmTool.Command("sub", name)} > {ShmTool.Quote(output)} 2>&1"]);
            WaitForSubscriber(name, sub.Pid);

            sub.Signal(2); // SIGINT, as Ctrl+C

            Assert.Equal(0, sub.WaitOrFail().ExitCode);
            Assert.DoesNotContain(Service.List().Single(s => s.Name == name).Participants, p => p.Pid == sub.Pid && p.State == ParticipantState.Attached);
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static string[] Columns(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static void WaitForSubscriber(string name, int pid)
    {
        var clock = Stopwatch.StartNew();
        while (!Service.List().Any(s => s.Name == name && s.Participants.Any(p => p.Role == ParticipantRole.Subscriber && p.Pid == pid && p.State == ParticipantState.Attached)))
        {
            Assert.True(clock.Elapsed < Waits.Bound, $"shm sub (process {pid}) never attached");
            Assert.True(Native.Exists(pid), $"shm sub (process {pid}) ended before it attached");
            System.Threading.Thread.Sleep(1); // a polling interval: the condition above is what ends the wait
        }
    }
}
