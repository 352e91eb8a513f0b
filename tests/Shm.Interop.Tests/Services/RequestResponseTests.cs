using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Request-response within one process: the API's shapes, streams, timeouts, cancellation, abandonment, and the configuration.</summary>
public sealed class RequestResponseTests : IDisposable
{
    private static readonly RequestResponseConfig Small = new() { MaxClients = 2, MaxServers = 2, MaxRequestBytes = 64, MaxResponseBytes = 64, QueueDepth = 4, ResponseDepth = 2 };

    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Fact]
    public async Task A_stream_of_responses_arrives_in_order_past_the_ring_and_then_ends()
    {
        using var service = RequestResponseService.Create(_names.Unique(), Small);
        using Client client = service.CreateClient();
        using Server server = service.CreateServer();
        using PendingResponse pending = client.Send("count"u8);
        Assert.True(server.TryReceive(out ActiveRequest? request, Waits.Bound));
        Assert.Equal("count", Encoding.ASCII.GetString(request.Span));
        Assert.Equal(pending.RequestId, request.RequestId);
        Assert.Equal(Environment.ProcessId, request.ClientPid);

        // Ten responses through a ring of two: the server waits for room as the client takes them.
        Task responder = Task.Run(() =>
        {
            using (request)
            {
                for (int i = 0; i < 10; i++)
                {
                    request.Respond([(byte)i]);
                }
                request.Complete();
            }
        });
        for (int i = 0; i < 10; i++)
        {
            Response response = pending.Receive();
            Assert.Equal([(byte)i], response.Span.ToArray());
            Assert.Equal(pending.RequestId, response.RequestId);
        }
        await responder.WaitAsync(Waits.Bound);
        Assert.False(pending.TryReceive(out Response? none, Waits.Bound));
        Assert.Null(none);
        Assert.True(pending.IsCompleted);
        Assert.Throws<EndOfStreamException>(() => pending.Receive());
        Assert.Throws<InvalidOperationException>(() => request.Respond("late"u8));
    }

    [Fact]
    public async Task Async_forms_receive_requests_and_responses()
    {
        using var service = RequestResponseService.Create(_names.Unique(), Small);
        using Client client = service.CreateClient();
        using Server server = service.CreateServer();
        ValueTask<ActiveRequest> taking = server.ReceiveAsync();
        Assert.False(taking.IsCompleted);
        using PendingResponse pending = client.Send("ping"u8);
        using (ActiveRequest request = await taking.AsTask().WaitAsync(Waits.Bound))
        {
            ValueTask<Response> receiving = pending.ReceiveAsync();
            request.Respond("pong"u8);
            Assert.Equal("pong", Encoding.ASCII.GetString((await receiving.AsTask().WaitAsync(Waits.Bound)).Span));
        }
        Assert.Null(await pending.TryReceiveAsync(Waits.Bound));
        Assert.True(pending.IsCompleted);
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await pending.ReceiveAsync());
        Assert.Null(await server.TryReceiveAsync(TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public async Task Waits_end_at_their_timeout_or_token_and_a_request_no_server_took_stays_queued_for_one()
    {
        using var service = RequestResponseService.Create(_names.Unique(), Small);
        using Client client = service.CreateClient();
        using PendingResponse pending = client.Send("anyone?"u8);

        var clock = Stopwatch.StartNew();
        Assert.False(pending.TryReceive(out _, TimeSpan.FromMilliseconds(200)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(190), Waits.Bound);
        Assert.Null(await pending.TryReceiveAsync(TimeSpan.FromMilliseconds(100)));
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => pending.Receive(cancel.Token));
        }
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pending.ReceiveAsync(cancel.Token));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => pending.TryReceive(out _, TimeSpan.FromMilliseconds(-2)));

        // Still queued: the first server to come takes it.
        using Server server = service.CreateServer();
        Assert.True(server.TryReceive(out ActiveRequest? request));
        Assert.Equal(pending.RequestId, request!.RequestId);
        request.Dispose();
        Assert.False(pending.TryReceive(out _, Waits.Bound));
        Assert.True(pending.IsCompleted);

        clock.Restart();
        Assert.False(server.TryReceive(out _, TimeSpan.FromMilliseconds(200)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(190), Waits.Bound);
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => server.Receive(cancel.Token));
        }
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await server.ReceiveAsync(cancel.Token));
        }
    }

    [Fact]
    public void A_cancelled_request_is_withdrawn_if_untaken_and_its_server_is_told_if_taken()
    {
        using var service = RequestResponseService.Create(_names.Unique(), Small);
        using Client client = service.CreateClient();
        using Server server = service.CreateServer();

        client.Send("withdrawn"u8).Dispose();
        Assert.False(server.TryReceive(out _));

        PendingResponse pending = client.Send("taken"u8);
        Assert.True(server.TryReceive(out ActiveRequest? request));
        pending.Dispose();
        var abandoned = Assert.Throws<RequestAbandonedException>(() => request!.Respond("too late"u8));
        Assert.Equal((pending.RequestId, Environment.ProcessId, false), (abandoned.RequestId, abandoned.ClientPid, abandoned.ClientDied));
        Assert.True(request!.IsCompleted);
        Assert.Throws<ObjectDisposedException>(() => pending.TryReceive(out _));

        // A client that took its one answer and left before the end: completing it is no failure (nothing was lost).
        PendingResponse early = client.Send("one answer"u8);
        Assert.True(server.TryReceive(out ActiveRequest? last));
        last.Respond("the answer"u8);
        Assert.Equal("the answer", Encoding.ASCII.GetString(early.Receive().Span));
        early.Dispose();
        last.Complete();
        Assert.True(last.IsCompleted);

        // Every slot comes back: QueueDepth requests can be pending again, and one more is refused.
        PendingResponse[] all = [.. Enumerable.Range(0, Small.QueueDepth).Select(_ => client.Send("again"u8))];
        Assert.Throws<InvalidOperationException>(() => client.Send("one more"u8));
        all[0].Dispose();
        Assert.Throws<ArgumentException>(() => client.Send(new byte[Small.MaxRequestBytes + 1]));
        foreach (PendingResponse one in all)
        {
            one.Dispose();
        }
    }

    [Fact]
    public void A_client_that_died_abandons_its_taken_request_and_its_queued_ones_are_dropped()
    {
        string name = _names.Unique();
        using var service = RequestResponseService.Create(name, Small with { ResponseDepth = 1 });
        using var region = SharedRegion.CreateAnonymous(4096);
        using var ready = SharedSemaphore.Create(region, 0, 0);
        using var never = SharedSemaphore.Create(region, 64, 0);
        using Server server = service.CreateServer();

        int Body()
        {
            using Client client = service.CreateClient();
            client.Send("first"u8);
            client.Send("second"u8);
            ready.Release();
            never.TryWait(Waits.Bound);
            return 0;
        }

        never.Release();
        Assert.Equal(0, Body()); // warm: run once here
        while (server.TryReceive(out ActiveRequest? warm))
        {
            warm!.Dispose();
        }

        using Child child = Child.Fork(Body);
        Assert.True(ready.TryWait(Waits.Bound));
        Assert.True(server.TryReceive(out ActiveRequest? request, Waits.Bound));
        Assert.Equal(child.Pid, request!.ClientPid);
        request.Respond("fills the ring of one"u8);
        child.Signal(Shm.TestSupport.Native.SIGKILL);
        child.WaitOrFail();
        var abandoned = Assert.Throws<RequestAbandonedException>(() => request.Respond("no room, no client"u8));
        Assert.True(abandoned.ClientDied);
        Assert.False(server.TryReceive(out _)); // its second request was dropped, not served
    }

    [Fact]
    public void The_configuration_is_stored_compared_and_listed()
    {
        string name = _names.Unique();
        using var service = RequestResponseService.CreateOrOpen(name, Small);
        using var again = RequestResponseService.CreateOrOpen(name, Small);
        Assert.True(service.Created);
        Assert.False(again.Created);
        Assert.Equal(Small, again.Config);
        Assert.Contains("QueueDepth: the service has 4, this process asked for 8", Assert.Throws<InvalidOperationException>(() => RequestResponseService.CreateOrOpen(name, Small with { QueueDepth = 8 })).Message, StringComparison.Ordinal);
        Assert.Contains("is a RequestResponse service, not Blackboard", Assert.Throws<InvalidOperationException>(() => BlackboardService.Open(name)).Message, StringComparison.Ordinal);
        Assert.Equal("MaxClients", Assert.Throws<ArgumentOutOfRangeException>(() => RequestResponseService.Create(_names.Unique(), Small with { MaxClients = 65 })).ParamName);
        Assert.Equal("MaxResponseBytes", Assert.Throws<ArgumentOutOfRangeException>(() => RequestResponseService.Create(_names.Unique(), Small with { MaxResponseBytes = 0 })).ParamName);

        using Client client = again.CreateClient();
        using Server server = service.CreateServer();
        using (Client second = service.CreateClient())
        {
            Assert.Throws<InvalidOperationException>(service.CreateClient); // MaxClients = 2
        }
        ServiceInfo listed = Service.List().Single(s => s.Name == name);
        Assert.Equal(ServiceKind.RequestResponse, listed.Kind);
        Assert.Null(listed.Problem);
        Assert.Equal(Small, listed.RequestResponse);
        Assert.Single(listed.Participants, p => p.Role == ParticipantRole.Client && p.Pid == Environment.ProcessId && p.IsAlive);
        Assert.Single(listed.Participants, p => p.Role == ParticipantRole.Server && p.Pid == Environment.ProcessId && p.IsAlive);
    }

    [Fact]
    public void A_forked_childs_copies_of_a_client_and_its_request_leave_the_parents_alone_when_disposed()
    {
        string name = _names.Unique();
        using var service = RequestResponseService.Create(name, Small);
        using Server server = service.CreateServer();

        static int Body(Client client, PendingResponse pending)
        {
            pending.Dispose();
            client.Dispose();
            return 0;
        }

        using (Client warm = service.CreateClient())
        {
            Assert.Equal(0, Body(warm, warm.Send("warm"u8))); // here it does cancel: the parent's own
        }
        Assert.False(server.TryReceive(out _));

        using Client client = service.CreateClient();
        using PendingResponse pending = client.Send("the parent's"u8);
        using (Child child = Child.Fork(() => Body(client, pending)))
        {
            Assert.Equal(0, child.WaitOrFail().ExitCode);
        }
        Assert.True(server.TryReceive(out ActiveRequest? request), "the child's dispose withdrew the parent's request");
        using (request)
        {
            request.Respond("still wanted"u8);
        }
        Assert.Equal("still wanted", Encoding.ASCII.GetString(pending.Receive().Span));
        Assert.Single(Service.List().Single(s => s.Name == name).Participants, p => p.Role == ParticipantRole.Client && p.Pid == Environment.ProcessId && p.IsAlive);
    }
}
