using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

/// <summary>The services of this machine, found by name in /dev/shm.</summary>
public static class Service
{
    /// <summary>Every service's segment is named this prefix and the service's name: <c>/dev/shm/shm-service.NAME</c>.</summary>
    public const string SegmentPrefix = ServiceLayout.Prefix;

    /// <summary>
    /// Describes every service in /dev/shm: kind, configuration, size and participants (pid, role,
    /// alive), read from a read-only mapping of each (nothing is written). Every value is checked: a
    /// service that cannot be read (another user's, being created, corrupt) is listed with its
    /// <see cref="ServiceInfo.Problem"/>, and what it says is not followed further.
    /// </summary>
    public static IReadOnlyList<ServiceInfo> List()
    {
        var services = new List<ServiceInfo>();
        foreach (string path in Directory.EnumerateFiles("/dev/shm", SegmentPrefix + "*"))
        {
            string segment = Path.GetFileName(path);
            services.Add(Describe(segment[SegmentPrefix.Length..], segment));
        }
        services.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return services;
    }

    private static unsafe ServiceInfo Describe(string name, string segment)
    {
        var info = new ServiceInfo(name, segment);
        SafeFileHandle fd = ServiceInterop.OpenSegment(segment, create: false, writable: false, 0);
        if (fd.IsInvalid)
        {
            info.Problem = $"cannot be opened: {LinuxErrorName(ServiceInterop.LastError)}";
            fd.Dispose();
            return info;
        }
        SafeMappingHandle? mapping = null;
        try
        {
            (long size, bool regular, _) = ServiceInterop.Status(fd);
            info.SegmentBytes = size;
            if (!regular || size < ServiceLayout.HeaderBytes)
            {
                info.Problem = !regular ? "not a regular file" : size == 0 ? "empty: being created, or its creator died before sizing it" : $"{size} bytes: too small for a service";
                return info;
            }
            mapping = ServiceInterop.Map(fd, size, writable: false, guardPage: false, $"service '{name}'");
            byte* @base = (byte*)mapping.DangerousGetHandle();
            Read(info, @base, size);
        }
        catch (Exception failure) when (failure is IOException or InvalidOperationException or ArgumentException)
        {
            info.Problem = failure.Message;
        }
        finally
        {
            mapping?.Dispose();
            fd.Dispose();
        }
        return info;
    }

    private static unsafe void Read(ServiceInfo info, byte* @base, long size)
    {
        int state = Volatile.Read(ref *(int*)(@base + ServiceLayout.State));
        if (state != ServiceLayout.Ready)
        {
            info.Problem = state switch
            {
                ServiceLayout.Uninitialised or ServiceLayout.Initialising => "being initialised",
                ServiceLayout.Abandoned => "abandoned: its creator died initialising it",
                _ => $"corrupt: state 0x{state:X8}",
            };
            return;
        }
        uint magic = Volatile.Read(ref *(uint*)(@base + ServiceLayout.MagicAt));
        int version = Volatile.Read(ref *(int*)(@base + ServiceLayout.VersionAt));
        int kind = Volatile.Read(ref *(int*)(@base + ServiceLayout.KindAt));
        long bytes = Volatile.Read(ref *(long*)(@base + ServiceLayout.SegmentBytes));
        if (magic != ServiceLayout.Magic || version != ServiceLayout.Version || bytes != size || kind != (int)ServiceKind.PublishSubscribe)
        {
            info.Problem = magic != ServiceLayout.Magic ? $"corrupt: magic 0x{magic:X8}"
                : version != ServiceLayout.Version ? $"layout version {version} (this library reads {ServiceLayout.Version})"
                : bytes != size ? $"corrupt: its header says {bytes} bytes, the segment has {size}"
                : $"corrupt: kind {kind}";
            return;
        }
        info.Kind = ServiceKind.PublishSubscribe;
        if (!PubSubConfig.Read(@base, size, out PublishSubscribeConfig? config, out PubSubLayout? layout, out string field, out _, out long value, out string expected))
        {
            info.Problem = $"corrupt: its {field} is {value}; expected {expected}";
            return;
        }
        info.PublishSubscribe = config;
        for (int i = 0; i < ServiceLayout.HandleSlots; i++)
        {
            info.Add(ParticipantRole.Opener, i, Volatile.Read(ref *(ulong*)(@base + ServiceLayout.HandlesOffset + (i * ServiceLayout.HandleSlotBytes))), 0);
        }
        for (int p = 0; p < layout!.MaxPublishers; p++)
        {
            info.Add(ParticipantRole.Publisher, p, Volatile.Read(ref *(ulong*)(@base + layout.PublisherSlot(p))), new PoolWalk(@base, layout, p).Allocated);
        }
        for (int s = 0; s < layout.MaxSubscribers; s++)
        {
            info.Add(ParticipantRole.Subscriber, s, Volatile.Read(ref *(ulong*)(@base + layout.SubscriberSlot(s))), 0);
        }
    }

    private static string LinuxErrorName(int errno) => errno switch
    {
        Errno.EACCES => "EACCES (another user's, and its mode does not let this one in)",
        Errno.ENOENT => "ENOENT (removed meanwhile)",
        _ => $"errno {errno}",
    };
}

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
/// <param name="Role">Whether it has the service open, publishes or subscribes.</param>
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
