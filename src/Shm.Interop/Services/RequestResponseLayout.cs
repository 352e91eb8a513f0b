using System.Threading;

namespace Shm.Interop;

/*
 * A REQUEST-RESPONSE SERVICE (kind 2) in the service segment of ServiceLayout.cs (same header, handle
 * table, naming, create/open race and last-leaver removal).
 *
 *   [0, 4096)        header; configuration at 64: u32 max clients (1..64), 68 u32 max servers (1..64),
 *                    72 u32 max request bytes (1..2^20), 76 u32 max response bytes (1..2^20),
 *                    80 u32 queue depth (requests in flight per client, 1..256),
 *                    84 u32 response depth (responses buffered per request, 1..256);
 *                    192 u32 request signal (futex: bumped by a client after queuing a request),
 *                    196 u32 servers waiting on it
 *   [4096, 8192)     handle table
 *   8192             server slots: max servers x 64 bytes, u64 owner word (attaching, attached; 0 free)
 *   then             client slots: max clients x 64 bytes, u64 owner word
 *   then             request slots: max clients x queue depth x SlotStride, client c's slot i at
 *                    Requests + (c x depth + i) x SlotStride; the segment's size is their end rounded up to 4096
 *   SlotStride = 64 + align64(max request) + response depth x align64(16 + max response), at most 1 GiB in all
 *
 * REQUEST SLOT
 *    0 u64 word        state and process in one word, as an owner word (bits 56-63 state, 32-55 pid,
 *                      0-31 start time): 0 free, 1 queued (the client's process), 2 taken, 3 done,
 *                      4 cancelled (each of those the taking server's process)
 *    8 u64 request id  (the client's, increasing; echoed in every response entry)
 *   16 u32 request length     20 u32 response head (server)     24 u32 response tail (client)
 *   28 u32 to-client signal (futex: the server bumps it after a response, done, or freeing a cancelled slot)
 *   32 u32 to-server signal (futex: the client bumps it after taking a response or cancelling)
 *   36 u32 client waiting     40 u32 server waiting
 *   64 the request bytes, then response depth entries: u64 request id, u32 length, u32 0, the bytes
 *
 * PROTOCOL (copies through the segment: simple before zero copy)
 * - A client owns its slot's free request slots: it writes id, length, bytes, head = tail = 0, then the
 *   word queued (full fence), then bumps the request signal and wakes the servers.
 * - A server takes a queued request by compare-and-swap of the exact queued word to taken (its own
 *   process), if the client slot still names that client and the client lives (a dead client's queued
 *   requests are freed instead), then copies the request out (its length read once and checked).
 * - Responses: a ring per request, one producer (the taking server), one consumer (the client). The
 *   server checks the word is still its own, writes the entry at head mod depth, moves head, bumps the
 *   to-client signal; it waits for room on the to-server signal, bounded, looking at the client's life.
 *   Complete: taken -> done. The client reads the word, then head (so after done it sees every entry),
 *   checks 0 <= head - tail <= depth, the entry's id and length, copies it out, moves tail.
 *   After done and the ring drained, the client frees the slot.
 * - Cancel (a client's dispose of a pending response): queued -> free, taken -> cancelled (the server
 *   frees it at its next response or completion), done -> free.
 * - A server that dies: its taken requests name it; a client waiting on one finds the process gone
 *   (pid and start time), drains what it wrote, frees the slot and throws ServerDiedException. A
 *   request not yet taken stays queued for another server, up to the client's timeout.
 * - A client that dies: servers drop its queued requests, and a server responding to one of its taken
 *   requests is told so (RequestAbandonedException) when it would wait for room. A client taking a
 *   dead client's slot frees or cancels every request slot it finds in use.
 */

/// <summary>Where everything of one request-response service lives, computed once from its configuration (never from shared memory).</summary>
internal sealed class RequestResponseLayout
{
    public const int MaxClientsAt = 64;
    public const int MaxServersAt = 68;
    public const int MaxRequestAt = 72;
    public const int MaxResponseAt = 76;
    public const int QueueDepthAt = 80;
    public const int ResponseDepthAt = 84;
    public const int RequestSignal = 192;
    public const int RequestWaiters = 196;
    public const int ServerSlots = 8192;
    public const int SlotBytes = 64;

    // Request slot.
    public const int Word = 0;
    public const int RequestId = 8;
    public const int RequestLength = 16;
    public const int ResponseHead = 20;
    public const int ResponseTail = 24;
    public const int ToClient = 28;
    public const int ToServer = 32;
    public const int ClientWaiting = 36;
    public const int ServerWaiting = 40;
    public const int RequestBytes = 64;

    // Response entry.
    public const int EntryId = 0;
    public const int EntryLength = 8;
    public const int EntryHeaderBytes = 16;

    // States of a request slot's word.
    public const int Free = 0;
    public const int Queued = 1;
    public const int Taken = 2;
    public const int Done = 3;
    public const int Cancelled = 4;

    public const int MaxParticipants = 64;
    public const int MaxMessageBytes = 1 << 20;
    public const int MaxDepth = 256;
    public const long MaxTotalBytes = 1L << 30;

    public RequestResponseLayout(int maxClients, int maxServers, int maxRequest, int maxResponse, int queueDepth, int responseDepth)
    {
        MaxClients = maxClients;
        MaxServers = maxServers;
        MaxRequest = maxRequest;
        MaxResponse = maxResponse;
        QueueDepth = queueDepth;
        ResponseDepth = responseDepth;
        ClientSlots = ServerSlots + ((long)maxServers * SlotBytes);
        Requests = ClientSlots + ((long)maxClients * SlotBytes);
        EntryStride = EntryStrideOf(maxResponse);
        ResponsesAt = RequestBytes + ServiceLayout.Align64(maxRequest);
        SlotStride = SlotStrideOf(maxRequest, maxResponse, responseDepth);
        TotalBytes = (Requests + ((long)maxClients * queueDepth * SlotStride) + ServiceLayout.PageSize - 1) & ~(long)(ServiceLayout.PageSize - 1);
    }

    public int MaxClients { get; }

    public int MaxServers { get; }

    public int MaxRequest { get; }

    public int MaxResponse { get; }

    public int QueueDepth { get; }

    public int ResponseDepth { get; }

    public long ClientSlots { get; }

    public long Requests { get; }

    public long EntryStride { get; }

    public long ResponsesAt { get; }

    public long SlotStride { get; }

    public long TotalBytes { get; }

    public long ServerSlot(int s) => ServerSlots + ((long)s * SlotBytes);

    public long ClientSlot(int c) => ClientSlots + ((long)c * SlotBytes);

    public long RequestSlot(int c, int i) => Requests + ((((long)c * QueueDepth) + i) * SlotStride);

    public long Entry(long slot, uint position) => slot + ResponsesAt + ((position % (uint)ResponseDepth) * EntryStride);

    private static long EntryStrideOf(int maxResponse) => ServiceLayout.Align64(EntryHeaderBytes + (long)maxResponse);

    private static long SlotStrideOf(int maxRequest, int maxResponse, int responseDepth) =>
        RequestBytes + ServiceLayout.Align64(maxRequest) + (responseDepth * EntryStrideOf(maxResponse));

    /// <summary>Why a configuration cannot exist (the field's offset, its value, what was expected), or null.</summary>
    public static string? Check(int maxClients, int maxServers, int maxRequest, int maxResponse, int queueDepth, int responseDepth, out int field, out long value, out string expected)
    {
        (field, value, expected) = maxClients is < 1 or > MaxParticipants ? (MaxClientsAt, maxClients, "1 to 64")
            : maxServers is < 1 or > MaxParticipants ? (MaxServersAt, maxServers, "1 to 64")
            : maxRequest is < 1 or > MaxMessageBytes ? (MaxRequestAt, maxRequest, "1 to 1048576 bytes")
            : maxResponse is < 1 or > MaxMessageBytes ? (MaxResponseAt, maxResponse, "1 to 1048576 bytes")
            : queueDepth is < 1 or > MaxDepth ? (QueueDepthAt, queueDepth, "1 to 256")
            : responseDepth is < 1 or > MaxDepth ? (ResponseDepthAt, responseDepth, "1 to 256")
            : (long)maxClients * queueDepth * SlotStrideOf(maxRequest, maxResponse, responseDepth) > MaxTotalBytes
                ? (QueueDepthAt, queueDepth, $"at most {MaxTotalBytes / maxClients / SlotStrideOf(maxRequest, maxResponse, responseDepth)} with these sizes (1 GiB of request slots in all)")
            : (0, 0, "");
        return field == 0 ? null : $"{NameOf(field)} is {value}; expected {expected}";
    }

    /// <summary>The configuration property stored at <paramref name="field"/>.</summary>
    public static string NameOf(int field) => field switch
    {
        MaxClientsAt => nameof(RequestResponseConfig.MaxClients),
        MaxServersAt => nameof(RequestResponseConfig.MaxServers),
        MaxRequestAt => nameof(RequestResponseConfig.MaxRequestBytes),
        MaxResponseAt => nameof(RequestResponseConfig.MaxResponseBytes),
        QueueDepthAt => nameof(RequestResponseConfig.QueueDepth),
        _ => nameof(RequestResponseConfig.ResponseDepth),
    };

    public static unsafe void Write(byte* header, RequestResponseConfig config)
    {
        *(int*)(header + MaxClientsAt) = config.MaxClients;
        *(int*)(header + MaxServersAt) = config.MaxServers;
        *(int*)(header + MaxRequestAt) = config.MaxRequestBytes;
        *(int*)(header + MaxResponseAt) = config.MaxResponseBytes;
        *(int*)(header + QueueDepthAt) = config.QueueDepth;
        *(int*)(header + ResponseDepthAt) = config.ResponseDepth;
    }

    /// <summary>The stored configuration, each field read once and checked, and the layout it makes checked against the segment's size; false (and why) if it cannot be.</summary>
    public static unsafe bool Read(byte* header, long length, out RequestResponseConfig? config, out RequestResponseLayout? layout, out string field, out long offset, out long value, out string expected)
    {
        int clients = Volatile.Read(ref *(int*)(header + MaxClientsAt));
        int servers = Volatile.Read(ref *(int*)(header + MaxServersAt));
        int request = Volatile.Read(ref *(int*)(header + MaxRequestAt));
        int response = Volatile.Read(ref *(int*)(header + MaxResponseAt));
        int depth = Volatile.Read(ref *(int*)(header + QueueDepthAt));
        int responses = Volatile.Read(ref *(int*)(header + ResponseDepthAt));
        config = null;
        layout = null;
        field = "";
        if (Check(clients, servers, request, response, depth, responses, out int at, out value, out expected) is not null)
        {
            (field, offset) = (NameOf(at), at);
            return false;
        }
        var made = new RequestResponseLayout(clients, servers, request, response, depth, responses);
        if (made.TotalBytes != length)
        {
            (field, offset, value, expected) = ("size", ServiceLayout.SegmentBytes, length, $"{made.TotalBytes} bytes, what its configuration lays out");
            return false;
        }
        offset = 0;
        layout = made;
        config = new RequestResponseConfig
        {
            MaxClients = clients,
            MaxServers = servers,
            MaxRequestBytes = request,
            MaxResponseBytes = response,
            QueueDepth = depth,
            ResponseDepth = responses,
        };
        return true;
    }

    /// <summary>As <see cref="Read(byte*, long, out RequestResponseConfig?, out RequestResponseLayout?, out string, out long, out long, out string)"/> for a joined segment: corruption throws.</summary>
    public static unsafe (RequestResponseConfig Config, RequestResponseLayout Layout) Read(ServiceSegment segment) =>
        Read(segment.Base, segment.Length, out RequestResponseConfig? config, out RequestResponseLayout? layout, out string field, out long offset, out long value, out string expected)
            ? (config!, layout!)
            : throw segment.Corrupt($"request-response configuration {field}", offset, value, expected);

    /// <summary>True if a process following the protocol could have written request slot word <paramref name="word"/>.</summary>
    public static bool IsValidWord(ulong word) =>
        word == 0 || (OwnerWord.StateOf(word) is >= Queued and <= Cancelled && OwnerWord.PidOf(word) is > 0 and < ServiceInterop.PidMaxLimit);

    public const string ExpectedWord = "0 (free), or a state from 1 (queued) to 4 (cancelled) with a pid from 1 to 4194303";
}
