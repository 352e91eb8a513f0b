using System;
using System.Linq;
using System.Text.Json;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The shm tool's view of a request-response service: its kind, configuration, clients and servers.</summary>
public sealed class RequestResponseToolTests : IDisposable
{
    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Ls_lists_a_request_response_service_with_its_clients_and_servers()
    {
        string name = _names.Unique();
        using var service = RequestResponseService.Create(name, new RequestResponseConfig { MaxClients = 3, MaxServers = 2, QueueDepth = 5 });
        using Client client = service.CreateClient();
        using Server server = service.CreateServer();
        int self = Environment.ProcessId;

        ToolRun plain = ShmTool.Run("ls");
        ToolRun json = ShmTool.Run("ls", "--json");

        Assert.Equal(0, plain.Status);
        string[] lines = [.. plain.Output.Split('\n').Where(line => line.EndsWith(" " + name, StringComparison.Ordinal) && line.StartsWith("reqresp", StringComparison.Ordinal))];
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["client", "0", $"{self}", "yes", "attached"]));
        Assert.Contains(lines, line => Columns(line)[2..7].SequenceEqual(["server", "0", $"{self}", "yes", "attached"]));
        JsonElement report = json.Segment(Service.SegmentPrefix + name).GetProperty("service");
        Assert.Equal("reqresp", report.GetProperty("kind").GetString());
        Assert.Equal(3, report.GetProperty("requestResponse").GetProperty("maxClients").GetInt32());
        Assert.Equal(5, report.GetProperty("requestResponse").GetProperty("queueDepth").GetInt32());
        Assert.Contains(report.GetProperty("participants").EnumerateArray(), p => p.GetProperty("role").GetString() == "server" && p.GetProperty("pid").GetInt32() == self && p.GetProperty("alive").GetBoolean());
    }

    private static string[] Columns(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
}
