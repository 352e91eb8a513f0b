using System;
using System.Diagnostics;
using System.Linq;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Request-response between real processes: forked clients and servers, and a server SIGKILLed holding requests.</summary>
public sealed class RequestResponseProcessTests : IDisposable
{
    private const int RequestsPerClient = 200;

    private readonly ServiceNames _names = new();

    /// <summary>Runs every child body once here (on threads of this process), so that nothing compiles in a forked child.</summary>
    public RequestResponseProcessTests()
    {
        using var service = RequestResponseService.Create(_names.Unique(), new RequestResponseConfig { MaxClients = 4, MaxServers = 2, MaxRequestBytes = 256, MaxResponseBytes = 256 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var never = SharedSemaphore.Create(region, 64, 0);
        using var results = SharedRegion.CreateAnonymous(4096);
        var server = System.Threading.Tasks.Task.Run(() => RequestResponseBodies.Serve(service, ready, results, 0));
        Assert.True(ready.TryWait(Waits.Bound));
        Assert.Equal(RequestResponseBodies.Ok, RequestResponseBodies.Ask(service, ready, 0, 6));
        results.Write(0, 1);
        Assert.True(server.Wait(Waits.Bound));
        Assert.Equal(RequestResponseBodies.Ok, server.Result);
        results.Write(0, 0);
        var holder = System.Threading.Tasks.Task.Run(() => RequestResponseBodies.TakeAndHold(service, ready, never, 1));
        never.Release();
        var asker = System.Threading.Tasks.Task.Run(() => RequestResponseBodies.ExpectServerDied(service, ready, 1, results, 0));
        Assert.True(holder.Wait(Waits.Bound));
        Assert.True(asker.Wait(Waits.Bound)); // the holder's process lives: the request ends (the holder completed it when disposed) without a death
        Assert.Equal(RequestResponseBodies.WrongFailure, asker.Result);
    }

    public void Dispose() => _names.Dispose();

    [Fact]
    public void Four_client_processes_and_two_server_processes_every_response_answers_its_own_request()
    {
        string name = _names.Unique();
        using var service = RequestResponseService.Create(name, new RequestResponseConfig { MaxClients = 4, MaxServers = 2, MaxRequestBytes = 256, MaxResponseBytes = 256, QueueDepth = RequestResponseBodies.Batch });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var results = SharedRegion.CreateAnonymous(4096);

        using Children servers = Children.Fork(2, i => RequestResponseBodies.Serve(service, ready, results, i));
        Assert.True(ready.TryWait(Waits.Bound) && ready.TryWait(Waits.Bound), "a server did not start");
        ServiceInfo listed = Service.List().Single(s => s.Name == name);
        Assert.Equal(ServiceKind.RequestResponse, listed.Kind);
        Assert.Equal(servers.Pids.Order(), listed.Participants.Where(p => p.Role == ParticipantRole.Server && p.IsAlive).Select(p => p.Pid).Order());

        using Children clients = Children.Fork(4, i => RequestResponseBodies.Ask(service, ready, i, RequestsPerClient));
        Assert.All(clients.WaitAllOrFail(), exit => Assert.Equal(RequestResponseBodies.Ok, exit.ExitCode));
        results.Write(0, 1);
        Assert.All(servers.WaitAllOrFail(), exit => Assert.Equal(RequestResponseBodies.Ok, exit.ExitCode));
        Assert.Equal(4L * RequestsPerClient, results.Read<long>(8) + results.Read<long>(16)); // each request taken by exactly one server
    }

    [Fact]
    public void A_server_killed_holding_requests_fails_every_pending_request_of_four_clients_naming_it()
    {
        const int perClient = 2;
        using var service = RequestResponseService.Create(_names.Unique(), new RequestResponseConfig { MaxClients = 4, MaxServers = 2, MaxRequestBytes = 256, MaxResponseBytes = 256, QueueDepth = perClient });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var taken = SharedSemaphore.Create(region, 64, 0);
        using var never = SharedSemaphore.Create(region, 128, 0);
        using var results = SharedRegion.CreateAnonymous(4096);

        using Child server = Child.Fork(() => RequestResponseBodies.TakeAndHold(service, taken, never, 4 * perClient));
        using Children clients = Children.Fork(4, i => RequestResponseBodies.ExpectServerDied(service, ready, perClient, results, i));
        Assert.True(taken.TryWait(Waits.Bound), "the server did not take every request");
        Assert.Equal(4, Enumerable.Range(0, 4).Count(_ => ready.TryWait(Waits.Bound)));
        foreach (Child client in clients)
        {
            Assert.Null(client.Exit); // all still waiting on a live server
        }

        int pid = server.Pid;
        var clock = Stopwatch.StartNew();
        server.Signal(Native.SIGKILL);
        Assert.Equal(Native.SIGKILL, server.WaitOrFail().Signal);
        Assert.All(clients.WaitAllOrFail(), exit => Assert.Equal(RequestResponseBodies.Ok, exit.ExitCode));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the clients took {clock.Elapsed} to learn the server died");
        for (int c = 0; c < 4; c++)
        {
            for (int i = 0; i < perClient; i++)
            {
                Assert.Equal(pid, results.Read<int>((64 * c) + (4 * i)));
            }
        }
    }
}
