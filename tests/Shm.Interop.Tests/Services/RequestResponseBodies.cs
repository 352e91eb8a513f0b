using System;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>
/// What forked clients and servers do with a request-response service, as exit codes (a forked child
/// reports by its status and through a shared results region). Each test runs these once in its own
/// process before forking, so that nothing compiles in a child.
/// </summary>
internal static class RequestResponseBodies
{
    public const int Ok = 0;
    public const int TimedOut = 10;
    public const int Mismatch = 11;
    public const int NotEnded = 12;
    public const int Corrupted = 13;
    public const int WrongFailure = 14;
    public const int Failed = 15;

    /// <summary>Requests in flight per client in the correlation test: sent together, received in reverse order.</summary>
    public const int Batch = 4;

    /// <summary>The request a client sends: client, index, and a length that varies, every byte derived from the pair.</summary>
    public static byte[] RequestOf(int client, long index) => Fill(new byte[Payloads.LengthOf(client, index, 200)], client, index);

    /// <summary>What a server answers to <paramref name="request"/>: its bytes reversed and one byte more, so a response to another request cannot pass.</summary>
    public static byte[] Answer(ReadOnlySpan<byte> request)
    {
        byte[] answer = new byte[request.Length + 1];
        for (int i = 0; i < request.Length; i++)
        {
            answer[i] = request[request.Length - 1 - i];
        }
        answer[^1] = (byte)request.Length;
        return answer;
    }

    /// <summary>
    /// A server: says so on <paramref name="ready"/>, answers each request with <see cref="Answer"/> then
    /// completes it, until the int at <paramref name="results"/> offset 0 is not 0; counts what it served
    /// at offset 8 + 8 * <paramref name="slot"/>.
    /// </summary>
    public static int Serve(RequestResponseService service, SharedSemaphore ready, SharedRegion results, int slot)
    {
        try
        {
            using Server server = service.CreateServer();
            ready.Release();
            long served = 0;
            while (Volatile.Read(ref results.As<int>(0)) == 0)
            {
                if (!server.TryReceive(out ActiveRequest? request, TimeSpan.FromMilliseconds(50)))
                {
                    continue;
                }
                using (request!)
                {
                    request.Respond(Answer(request.Span));
                    request.Complete();
                }
                served++;
            }
            results.Write(8 + (8 * slot), served);
            return Ok;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
    }

    /// <summary>
    /// A client: says so on <paramref name="ready"/>, sends <paramref name="count"/> requests in batches of
    /// <see cref="Batch"/> and receives each batch in reverse order: each response must be the answer to its
    /// own request, followed by the end of its stream.
    /// </summary>
    public static int Ask(RequestResponseService service, SharedSemaphore ready, int client, int count)
    {
        try
        {
            using Client me = service.CreateClient();
            ready.Release();
            var pending = new PendingResponse?[Batch];
            var sent = new byte[Batch][];
            for (int first = 0; first < count; first += Batch)
            {
                int n = Math.Min(Batch, count - first);
                for (int k = 0; k < n; k++)
                {
                    sent[k] = RequestOf(client, first + k);
                    pending[k] = me.Send(sent[k]);
                }
                for (int k = n - 1; k >= 0; k--)
                {
                    using PendingResponse one = pending[k]!;
                    if (!one.TryReceive(out Response? response, Waits.Bound))
                    {
                        return TimedOut;
                    }
                    if (response!.RequestId != one.RequestId || !response.Span.SequenceEqual(Answer(sent[k])))
                    {
                        return Mismatch;
                    }
                    if (one.TryReceive(out _, Waits.Bound) || !one.IsCompleted)
                    {
                        return NotEnded;
                    }
                }
            }
            return Ok;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
    }

    /// <summary>A server that takes <paramref name="count"/> requests, says so on <paramref name="ready"/>, and holds them (until killed).</summary>
    public static int TakeAndHold(RequestResponseService service, SharedSemaphore ready, SharedSemaphore never, int count)
    {
        using Server server = service.CreateServer();
        var held = new ActiveRequest?[count];
        for (int i = 0; i < count; i++)
        {
            if (!server.TryReceive(out held[i], Waits.Bound))
            {
                return TimedOut;
            }
        }
        ready.Release();
        never.TryWait(Waits.Bound);
        foreach (ActiveRequest? request in held)
        {
            request?.Dispose(); // completes it: its client ends without a response
        }
        return Failed;
    }

    /// <summary>
    /// A client that sends <paramref name="count"/> requests, says so on <paramref name="ready"/>, and expects
    /// each to fail with <see cref="ServerDiedException"/>; the dead server's pid goes to <paramref name="results"/>
    /// at offset 64 * <paramref name="slot"/> + 4 * i.
    /// </summary>
    public static int ExpectServerDied(RequestResponseService service, SharedSemaphore ready, int count, SharedRegion results, int slot)
    {
        using Client me = service.CreateClient();
        var pending = new PendingResponse[count];
        for (int i = 0; i < count; i++)
        {
            pending[i] = me.Send(RequestOf(slot, i));
        }
        ready.Release();
        for (int i = 0; i < count; i++)
        {
            try
            {
                pending[i].TryReceive(out _, Waits.Bound);
                return WrongFailure;
            }
            catch (ServerDiedException died)
            {
                if (died.RequestId != pending[i].RequestId)
                {
                    return Mismatch;
                }
                results.Write((64 * slot) + (4 * i), died.ServerPid);
            }
        }
        return Ok;
    }

    private static byte[] Fill(byte[] bytes, int client, long index)
    {
        Payloads.Fill(bytes, client, index);
        return bytes;
    }
}
