using System.IO;

namespace Shm.Interop;

/// <summary>
/// The server that had taken a request died before completing its responses: the request is failed
/// (it is not handed to another server, which could repeat what the dead one did). Responses the server
/// wrote before it died were received first.
/// </summary>
public sealed class ServerDiedException : IOException
{
    internal ServerDiedException(string service, long requestId, int pid)
        : base($"The service '{service}': server process {pid} died while it held request {requestId}; the request failed.")
    {
        Service = service;
        RequestId = requestId;
        ServerPid = pid;
    }

    /// <summary>The request-response service's name.</summary>
    public string Service { get; }

    /// <summary>The failed request's id.</summary>
    public long RequestId { get; }

    /// <summary>The server's process, which died.</summary>
    public int ServerPid { get; }
}

/// <summary>
/// The client of a request no longer waits for its responses: it cancelled the request (disposed its
/// pending response) or its process died. The response was not delivered; stop answering this request.
/// </summary>
public sealed class RequestAbandonedException : IOException
{
    internal RequestAbandonedException(string service, long requestId, int pid, bool died)
        : base($"The service '{service}': request {requestId} was abandoned by its client, process {pid}, which {(died ? "died" : "cancelled it")}; the response was not delivered.")
    {
        Service = service;
        RequestId = requestId;
        ClientPid = pid;
        ClientDied = died;
    }

    /// <summary>The request-response service's name.</summary>
    public string Service { get; }

    /// <summary>The abandoned request's id.</summary>
    public long RequestId { get; }

    /// <summary>The client's process.</summary>
    public int ClientPid { get; }

    /// <summary>True if the client's process died (or its slot was taken by another client); false if it cancelled the request.</summary>
    public bool ClientDied { get; }
}
