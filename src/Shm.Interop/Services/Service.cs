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
        if (magic != ServiceLayout.Magic || version != ServiceLayout.Version || bytes != size || kind is not ((int)ServiceKind.PublishSubscribe or (int)ServiceKind.RequestResponse or (int)ServiceKind.Blackboard))
        {
            info.Problem = magic != ServiceLayout.Magic ? $"corrupt: magic 0x{magic:X8}"
                : version != ServiceLayout.Version ? $"layout version {version} (this library reads {ServiceLayout.Version})"
                : bytes != size ? $"corrupt: its header says {bytes} bytes, the segment has {size}"
                : $"corrupt: kind {kind}";
            return;
        }
        if (kind == (int)ServiceKind.Blackboard)
        {
            ReadBlackboard(info, @base, size);
            return;
        }
        if (kind == (int)ServiceKind.RequestResponse)
        {
            ReadRequestResponse(info, @base, size);
            return;
        }
        info.Kind = ServiceKind.PublishSubscribe;
        if (!PubSubConfig.Read(@base, size, out PublishSubscribeConfig? config, out PubSubLayout? layout, out string field, out _, out long value, out string expected))
        {
            info.Problem = $"corrupt: its {field} is {value}; expected {expected}";
            return;
        }
        info.PublishSubscribe = config;
        AddHandles(info, @base);
        for (int p = 0; p < layout!.MaxPublishers; p++)
        {
            info.Add(ParticipantRole.Publisher, p, Volatile.Read(ref *(ulong*)(@base + layout.PublisherSlot(p))), new PoolWalk(@base, layout, p).Allocated);
        }
        for (int s = 0; s < layout.MaxSubscribers; s++)
        {
            info.Add(ParticipantRole.Subscriber, s, Volatile.Read(ref *(ulong*)(@base + layout.SubscriberSlot(s))), 0);
        }
    }

    private static unsafe void ReadBlackboard(ServiceInfo info, byte* @base, long size)
    {
        info.Kind = ServiceKind.Blackboard;
        if (!BlackboardLayout.Read(@base, size, out BlackboardConfig? config, out _, out string field, out _, out long value, out string expected))
        {
            info.Problem = $"corrupt: its {field} is {value}; expected {expected}";
            return;
        }
        info.Blackboard = config;
        AddHandles(info, @base);
        info.Add(ParticipantRole.Writer, 0, Volatile.Read(ref *(ulong*)(@base + BlackboardLayout.WriterSlot)), 0);
    }

    private static unsafe void ReadRequestResponse(ServiceInfo info, byte* @base, long size)
    {
        info.Kind = ServiceKind.RequestResponse;
        if (!RequestResponseLayout.Read(@base, size, out RequestResponseConfig? config, out RequestResponseLayout? layout, out string field, out _, out long value, out string expected))
        {
            info.Problem = $"corrupt: its {field} is {value}; expected {expected}";
            return;
        }
        info.RequestResponse = config;
        AddHandles(info, @base);
        for (int s = 0; s < layout!.MaxServers; s++)
        {
            info.Add(ParticipantRole.Server, s, Volatile.Read(ref *(ulong*)(@base + layout.ServerSlot(s))), 0);
        }
        for (int c = 0; c < layout.MaxClients; c++)
        {
            info.Add(ParticipantRole.Client, c, Volatile.Read(ref *(ulong*)(@base + layout.ClientSlot(c))), 0);
        }
    }

    private static unsafe void AddHandles(ServiceInfo info, byte* @base)
    {
        for (int i = 0; i < ServiceLayout.HandleSlots; i++)
        {
            info.Add(ParticipantRole.Opener, i, Volatile.Read(ref *(ulong*)(@base + ServiceLayout.HandlesOffset + (i * ServiceLayout.HandleSlotBytes))), 0);
        }
    }

    private static string LinuxErrorName(int errno) => errno switch
    {
        LinuxErrno.EACCES => "EACCES (another user's, and its mode does not let this one in)",
        LinuxErrno.ENOENT => "ENOENT (removed meanwhile)",
        _ => $"errno {errno}",
    };
}
