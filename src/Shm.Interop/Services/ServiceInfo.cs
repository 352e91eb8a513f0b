using System.Collections.Generic;

namespace Shm.Interop;

/// <summary>One service as <see cref="Service.List"/> found it.</summary>
public sealed class ServiceInfo
{
    private readonly List<ServiceParticipant> _participants = [];

    internal ServiceInfo(string name, string segmentName)
    {
        Name = name;
        SegmentName = segmentName;
    }

    /// <summary>The service's name.</summary>
    public string Name { get; }

    /// <summary>Its segment's name in /dev/shm.</summary>
    public string SegmentName { get; }

    /// <summary>Its kind; <see cref="ServiceKind.Unknown"/> if it could not be read.</summary>
    public ServiceKind Kind { get; internal set; }

    /// <summary>The segment's size in bytes.</summary>
    public long SegmentBytes { get; internal set; }

    /// <summary>Why the service could not be read (another user's, being created, corrupt: the value named); null if it was.</summary>
    public string? Problem { get; internal set; }

    /// <summary>The configuration of a publish-subscribe service.</summary>
    public PublishSubscribeConfig? PublishSubscribe { get; internal set; }

    /// <summary>The configuration of a request-response service.</summary>
    public RequestResponseConfig? RequestResponse { get; internal set; }

    /// <summary>The configuration of a blackboard service.</summary>
    public BlackboardConfig? Blackboard { get; internal set; }

    /// <summary>The processes that have it open, and its publishers and subscribers, slot by slot (free slots left out).</summary>
    public IReadOnlyList<ServiceParticipant> Participants => _participants;

    internal void Add(ParticipantRole role, int slot, ulong owner, long poolBytesInUse)
    {
        if (owner == 0)
        {
            return;
        }
        if (!OwnerWord.IsValid(owner))
        {
            Problem ??= $"corrupt: {role.ToString().ToLowerInvariant()} slot {slot} holds 0x{owner:X16}; expected {OwnerWord.Expected}";
            return;
        }
        int pid = OwnerWord.PidOf(owner);
        _participants.Add(new ServiceParticipant(role, slot, pid, (ParticipantState)OwnerWord.StateOf(owner), ServiceInterop.IsAlive(pid, OwnerWord.StartOf(owner)), poolBytesInUse));
    }
}

/// <summary>A process's place in a service.</summary>
/// <param name="Role">Whether it has the service open, publishes, subscribes or writes.</param>
/// <param name="Slot">Its slot (a publisher's pool, a subscriber's bit).</param>
/// <param name="Pid">The process.</param>
/// <param name="State">Where the slot is in its life.</param>
/// <param name="IsAlive">False only if the kernel says the process is gone (or its pid now names another process).</param>
/// <param name="PoolBytesInUse">For a publisher: bytes of its pool not yet reclaimed (some may be released already).</param>
public sealed record ServiceParticipant(ParticipantRole Role, int Slot, int Pid, ParticipantState State, bool IsAlive, long PoolBytesInUse);

/// <summary>What a process does in a service.</summary>
public enum ParticipantRole
{
    /// <summary>It has the service open (which keeps the service's name while it lives).</summary>
    Opener,

    /// <summary>A publisher.</summary>
    Publisher,

    /// <summary>A subscriber.</summary>
    Subscriber,

    /// <summary>A blackboard's writer.</summary>
    Writer,

    /// <summary>A request-response client.</summary>
    Client,

    /// <summary>A request-response server.</summary>
    Server,
}

/// <summary>Where a participant's slot is in its life.</summary>
public enum ParticipantState
{
    /// <summary>Taking the slot.</summary>
    Attaching = 1,

    /// <summary>In use.</summary>
    Attached = 2,

    /// <summary>Its process died; its references are being cleared.</summary>
    Dead = 3,

    /// <summary>It left; what was delivered after is being cleared.</summary>
    Departed = 4,

    /// <summary>A subscriber clearing its own references as it leaves.</summary>
    Leaving = 5,
}
