using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using Shm.Interop;

namespace Shm.Tool;

/// <summary>
/// The services part of <c>shm ls</c>: one line per participant of each service (who has it open,
/// its publishers and subscribers, with pid and whether the kernel says the process lives), read
/// from a read-only mapping of each service's segment (<see cref="Service.List"/>).
/// </summary>
internal static class ServiceListing
{
    public static void WriteTo(TextWriter output, TextWriter errors, IReadOnlyList<ServiceInfo> services, bool human)
    {
        if (services.Count == 0)
        {
            return;
        }
        var table = new Columns(("KIND", false), ("SIZE", true), ("ROLE", false), ("SLOT", true), ("PID", true), ("ALIVE", false), ("STATE", false), ("POOL", true), ("NAME", false));
        foreach (ServiceInfo service in services)
        {
            string kind = service.Problem is not null ? "unreadable" : KindWord(service.Kind);
            string size = Sizes.Format(service.SegmentBytes, human);
            if (service.Participants.Count == 0)
            {
                table.Add(kind, size, "-", "-", "-", "-", "-", "-", service.Name);
            }
            foreach (ServiceParticipant participant in service.Participants)
            {
                table.Add(kind, size, participant.Role.ToString().ToLowerInvariant(), participant.Slot.ToString(CultureInfo.InvariantCulture),
                    participant.Pid.ToString(CultureInfo.InvariantCulture), participant.IsAlive ? "yes" : "no", participant.State.ToString().ToLowerInvariant(),
                    participant.Role == ParticipantRole.Publisher ? Sizes.Format(participant.PoolBytesInUse, human) : "-", service.Name);
            }
            if (service.Problem is not null)
            {
                errors.WriteLine($"shm: ls: service {Escaping.Escape(service.Name)}: {Escaping.Escape(service.Problem)}");
            }
        }
        output.WriteLine();
        table.WriteTo(output);
    }

    /// <summary>What --json adds to a segment that is a service.</summary>
    public static ServiceReport? ReportFor(string segmentName, IReadOnlyList<ServiceInfo> services) =>
        services.FirstOrDefault(service => service.SegmentName == segmentName) is ServiceInfo found ? ServiceReport.Of(found) : null;

    public static string KindWord(ServiceKind kind) => kind switch
    {
        ServiceKind.PublishSubscribe => "pubsub",
        ServiceKind.Blackboard => "blackboard",
        ServiceKind.RequestResponse => "reqresp",
        _ => "unknown",
    };
}

/// <summary>A service in --json: its kind, configuration, what made it unreadable, and its participants.</summary>
internal sealed record ServiceReport(string Name, string Kind, string? Problem, PublishSubscribeReport? PublishSubscribe, BlackboardReport? Blackboard, IReadOnlyList<ParticipantReport> Participants, RequestResponseReport? RequestResponse = null)
{
    public static ServiceReport Of(ServiceInfo service) => new(
        service.Name,
        ServiceListing.KindWord(service.Kind),
        service.Problem,
        service.PublishSubscribe is PublishSubscribeConfig c
            ? new PublishSubscribeReport(c.MaxPublishers, c.MaxSubscribers, c.MaxPayload, c.PoolBytesPerPublisher, c.QueueCapacity, c.HistoryDepth, c.OverflowPolicy == OverflowPolicy.Block ? "block" : "dropOldest")
            : null,
        service.Blackboard is BlackboardConfig b ? new BlackboardReport(b.Keys, b.ValueSize) : null,
        [.. service.Participants.Select(p => new ParticipantReport(p.Role.ToString().ToLowerInvariant(), p.Slot, p.Pid, p.IsAlive, p.State.ToString().ToLowerInvariant(), p.PoolBytesInUse))],
        service.RequestResponse is RequestResponseConfig r ? new RequestResponseReport(r.MaxClients, r.MaxServers, r.MaxRequestBytes, r.MaxResponseBytes, r.QueueDepth, r.ResponseDepth) : null);
}

/// <summary>A publish-subscribe configuration in --json.</summary>
internal sealed record PublishSubscribeReport(int MaxPublishers, int MaxSubscribers, int MaxPayload, long PoolBytesPerPublisher, int QueueCapacity, int HistoryDepth, string OverflowPolicy);

/// <summary>A blackboard configuration in --json.</summary>
internal sealed record BlackboardReport(int Keys, int ValueSize);

/// <summary>A request-response configuration in --json.</summary>
internal sealed record RequestResponseReport(int MaxClients, int MaxServers, int MaxRequestBytes, int MaxResponseBytes, int QueueDepth, int ResponseDepth);

/// <summary>A participant in --json.</summary>
internal sealed record ParticipantReport(string Role, int Slot, int Pid, bool Alive, string State, long PoolBytesInUse);
