// Over 350 lines: creating, opening, joining and leaving a service segment are one protocol, kept in one place.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

/// <summary>
/// A service's named segment as this process holds it: mapped, its header checked once, a handle slot
/// taken (so the name stays while this process uses it), and the name removed by the last process to
/// leave. Counted: the service object and each of its participants hold it; the last release leaves.
/// </summary>
internal sealed unsafe class ServiceSegment
{
    /// <summary>How long an opener waits for a creator to size and initialise the segment.</summary>
    internal static readonly TimeSpan InitialisationTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Set (AppContext) to map a PROT_NONE page after each service segment: the hostile-peer tests use it.</summary>
    internal const string GuardPageSwitch = "Shm.Interop.Services.GuardPage";

    private static readonly Lock Open_ = new();
    private static readonly HashSet<ServiceSegment> Joined = new(ReferenceEqualityComparer.Instance);
    private static bool s_exitHooked;

    private readonly (ulong Device, ulong Inode) _id;
    private int _handle;
    private ulong _handleWord;
    private int _references = 1;

    private ServiceSegment(string name, SafeMappingHandle mapping, long length, (ulong, ulong) id, int handle, ulong handleWord, bool created)
    {
        Name = name;
        Mapping = mapping;
        Base = (byte*)mapping.DangerousGetHandle();
        Length = length;
        _id = id;
        _handle = handle;
        _handleWord = handleWord;
        Created = created;
    }

    /// <summary>The service's name, without the prefix.</summary>
    public string Name { get; }

    public string SegmentName => ServiceLayout.Prefix + Name;

    public SafeMappingHandle Mapping { get; }

    public byte* Base { get; }

    /// <summary>The segment's size (statx), which bounds every offset.</summary>
    public long Length { get; }

    /// <summary>True if this process created the segment.</summary>
    public bool Created { get; }

    public bool IsReleased => Volatile.Read(ref _references) == 0;

    /// <summary>The segment name of service <paramref name="name"/>, or <see cref="ArgumentException"/>.</summary>
    public static string SegmentNameOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string bare = ServiceLayout.Prefix + name;
        int bytes = Encoding.UTF8.GetByteCount(bare);
        if (name.Length == 0 || bytes > 255 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"A service name is 1 to {255 - ServiceLayout.Prefix.Length} bytes with no '/' and no NUL (its segment is /dev/shm/{ServiceLayout.Prefix}NAME); got \"{name.Replace("\0", "\\0", StringComparison.Ordinal)}\".",
                nameof(name));
        }
        return bare;
    }

    /// <summary>
    /// Creates the service's segment (when <paramref name="create"/>) or opens the existing one (when
    /// <paramref name="open"/>), race-free between processes starting together: one creates and
    /// initialises (<paramref name="initialise"/> writes the configuration at the header's offset 64),
    /// the others wait, bounded, for it to be ready. <paramref name="validate"/> checks an opened
    /// segment's configuration (and throws) before this process joins it.
    /// </summary>
    public static ServiceSegment Acquire(string name, ServiceKind kind, bool create, bool open, long length, UnixFileMode mode, Action<nint>? initialise, Action<ServiceSegment> validate)
    {
        string bare = SegmentNameOf(name);
        long deadline = ServiceInterop.Deadline(InitialisationTimeout);
        string? waitingFor = null;
        while (true)
        {
            if (open)
            {
                SafeFileHandle fd = ServiceInterop.OpenSegment(bare, create: false, writable: true, 0);
                if (!fd.IsInvalid)
                {
                    ServiceSegment? joined = TryJoin(name, fd, kind, validate, out waitingFor);
                    if (joined is not null)
                    {
                        return joined;
                    }
                    if (Stopwatch.GetTimestamp() >= deadline)
                    {
                        throw new TimeoutException($"The service '{name}' did not become ready within {InitialisationTimeout.TotalSeconds:0} s: {waitingFor}. If no process is creating it, remove it: shm rm {bare}");
                    }
                    Thread.Sleep(1);
                    continue;
                }
                int error = ServiceInterop.LastError;
                fd.Dispose();
                if (error != ServiceInterop.ENOENT || !create)
                {
                    throw error == ServiceInterop.ENOENT
                        ? new ShmException("open", error, $"no service named '{name}' (/dev/shm/{bare}): create it first")
                        : new ShmException("open", error, $"service '{name}' (/dev/shm/{bare})");
                }
            }
            SafeFileHandle made = ServiceInterop.OpenSegment(bare, create: true, writable: true, mode);
            if (!made.IsInvalid)
            {
                return Initialise(name, made, kind, length, mode, initialise!);
            }
            int failed = ServiceInterop.LastError;
            made.Dispose();
            if (failed != ServiceInterop.EEXIST || !open)
            {
                throw new ShmException("open", failed, failed == ServiceInterop.EEXIST ? $"a service named '{name}' exists already (/dev/shm/{bare})" : $"service '{name}' (/dev/shm/{bare})");
            }
        }
    }

    // The creator: sizes the segment, names itself, moves the state to initialising, writes the header
    // and configuration, joins (handle slot) and only then says ready.
    private static ServiceSegment Initialise(string name, SafeFileHandle fd, ServiceKind kind, long length, UnixFileMode mode, Action<nint> initialise)
    {
        string bare = ServiceLayout.Prefix + name;
        SafeMappingHandle? mapping = null;
        (ulong, ulong) id = default;
        try
        {
            id = ServiceInterop.Status(fd).Id;
            ServiceInterop.SizeSegment(fd, length, mode, $"service '{name}'");
            mapping = ServiceInterop.Map(fd, length, writable: true, GuardPage(), $"service '{name}'");
            byte* header = (byte*)mapping.DangerousGetHandle();
            (int pid, uint start) = ServiceInterop.Self();
            Volatile.Write(ref *(ulong*)(header + ServiceLayout.Creator), OwnerWord.Of(OwnerWord.Attached, pid, start));
            Interlocked.Exchange(ref *(int*)(header + ServiceLayout.State), ServiceLayout.Initialising);
            *(uint*)(header + ServiceLayout.MagicAt) = ServiceLayout.Magic;
            *(int*)(header + ServiceLayout.VersionAt) = ServiceLayout.Version;
            *(int*)(header + ServiceLayout.KindAt) = (int)kind;
            *(long*)(header + ServiceLayout.SegmentBytes) = length;
            initialise((nint)header);
            ulong me = OwnerWord.Of(OwnerWord.Attached, pid, start);
            Volatile.Write(ref *(ulong*)(header + ServiceLayout.HandlesOffset), me); // handle slot 0: nobody else has joined
            Interlocked.Exchange(ref *(int*)(header + ServiceLayout.State), ServiceLayout.Ready);
            ServiceInterop.FutexWakeAll((int*)(header + ServiceLayout.State));
            var segment = new ServiceSegment(name, mapping, length, id, 0, me, created: true);
            Track(segment);
            return segment;
        }
        catch
        {
            mapping?.Dispose();
            if (id != default)
            {
                ServiceInterop.UnlinkIfSame(bare, id);
            }
            else
            {
                SharedRegionUnlink(bare);
            }
            throw;
        }
        finally
        {
            fd.Dispose();
        }
    }

    private static void SharedRegionUnlink(string bare)
    {
        try
        {
            SharedRegion.Unlink(bare);
        }
        catch (ShmException)
        {
            // statx failed on the segment we just made exclusively: nothing more to do.
        }
    }

    /// <summary>
    /// Maps and checks an existing segment and joins it; null (and why, in <paramref name="waitingFor"/>)
    /// if it is not ready yet, its creator died initialising it (then it is removed, and created again
    /// by the next pass), or it is being removed.
    /// </summary>
    private static ServiceSegment? TryJoin(string name, SafeFileHandle fd, ServiceKind kind, Action<ServiceSegment> validate, out string? waitingFor)
    {
        string bare = ServiceLayout.Prefix + name;
        waitingFor = null;
        SafeMappingHandle? mapping = null;
        try
        {
            (long size, bool regular, (ulong, ulong) id) = ServiceInterop.Status(fd);
            if (!regular)
            {
                throw new ArgumentException($"/dev/shm/{bare} is not a shared memory segment (a regular file); someone else put it there.", nameof(name));
            }
            if (size == 0)
            {
                waitingFor = "its segment is still empty (its creator has not sized it; it may have died before)";
                return null;
            }
            if (size < ServiceLayout.HeaderBytes)
            {
                throw new SharedMemoryCorruptedException("service segment size", 0, size, $"at least {ServiceLayout.HeaderBytes} bytes: /dev/shm/{bare} is not a Shm service");
            }
            mapping = ServiceInterop.Map(fd, size, writable: true, GuardPage(), $"service '{name}'");
            byte* header = (byte*)mapping.DangerousGetHandle();
            int state = Volatile.Read(ref *(int*)(header + ServiceLayout.State));
            if (state != ServiceLayout.Ready)
            {
                waitingFor = NotReady(bare, header, state, id);
                mapping.Dispose();
                return null;
            }
            var segment = new ServiceSegment(name, mapping, size, id, -1, 0, created: false);
            segment.CheckHeader(kind);
            validate(segment);
            segment._handle = segment.TakeHandle(out segment._handleWord);
            if (segment._handle < 0)
            {
                waitingFor = "its last participant was removing it";
                mapping.Dispose();
                return null;
            }
            Track(segment);
            return segment;
        }
        catch
        {
            mapping?.Dispose();
            throw;
        }
        finally
        {
            fd.Dispose();
        }
    }

    /// <summary>What an opener of a segment that is not ready waits for; a creator that died initialising has its segment removed.</summary>
    private static string NotReady(string bare, byte* header, int state, (ulong, ulong) id)
    {
        if (state is ServiceLayout.Uninitialised or ServiceLayout.Initialising)
        {
            ulong creator = Volatile.Read(ref *(ulong*)(header + ServiceLayout.Creator));
            if (state == ServiceLayout.Initialising && OwnerWord.IsValid(creator) && creator != 0 && !ServiceInterop.IsAlive(OwnerWord.PidOf(creator), OwnerWord.StartOf(creator))
                && Interlocked.CompareExchange(ref *(int*)(header + ServiceLayout.State), ServiceLayout.Abandoned, ServiceLayout.Initialising) == ServiceLayout.Initialising)
            {
                ServiceInterop.UnlinkIfSame(bare, id); // the next pass creates it afresh
                return "its creator died while initialising it";
            }
            ServiceInterop.FutexWait((int*)(header + ServiceLayout.State), state, ServiceInterop.Deadline(TimeSpan.FromMilliseconds(10)));
            return creator == 0 ? "its creator has not started initialising it" : $"process {OwnerWord.PidOf(creator)} is initialising it";
        }
        if (state == ServiceLayout.Abandoned)
        {
            ServiceInterop.UnlinkIfSame(bare, id); // whoever abandoned it may have died before removing it
            return "its creator died while initialising it";
        }
        throw new SharedMemoryCorruptedException("service state", ServiceLayout.State, state, $"0x{ServiceLayout.Ready:X8} (ready), or 0x{ServiceLayout.Initialising:X8} while its creator initialises it: /dev/shm/{bare} is not a Shm service");
    }

    /// <summary>Checks the header words every kind shares, read once each.</summary>
    private void CheckHeader(ServiceKind kind)
    {
        uint magic = Volatile.Read(ref *(uint*)(Base + ServiceLayout.MagicAt));
        if (magic != ServiceLayout.Magic)
        {
            throw Corrupt("service magic", ServiceLayout.MagicAt, magic, $"0x{ServiceLayout.Magic:X8} (\"SHMS\"): /dev/shm/{SegmentName} is not a Shm service");
        }
        int version = Volatile.Read(ref *(int*)(Base + ServiceLayout.VersionAt));
        if (version != ServiceLayout.Version)
        {
            throw new InvalidOperationException($"The service '{Name}' has layout version {version}; this library reads version {ServiceLayout.Version}.");
        }
        int stored = Volatile.Read(ref *(int*)(Base + ServiceLayout.KindAt));
        if (stored != (int)kind)
        {
            throw stored is (int)ServiceKind.PublishSubscribe or (int)ServiceKind.RequestResponse or (int)ServiceKind.Blackboard
                ? new InvalidOperationException($"The service '{Name}' is a {(ServiceKind)stored} service, not {kind}.")
                : Corrupt("service kind", ServiceLayout.KindAt, stored, "1 (publish-subscribe), 2 (request-response) or 3 (blackboard)");
        }
        long bytes = Volatile.Read(ref *(long*)(Base + ServiceLayout.SegmentBytes));
        if (bytes != Length)
        {
            throw Corrupt("service segment size", ServiceLayout.SegmentBytes, bytes, $"{Length}, the segment's size");
        }
    }

    /// <summary>
    /// Takes a handle slot (a free one, or one whose process died), then reads the retired word: -1 if
    /// the name is being removed (the slot is given back; start again).
    /// </summary>
    private int TakeHandle(out ulong word)
    {
        (int pid, uint start) = ServiceInterop.Self();
        word = OwnerWord.Of(OwnerWord.Attached, pid, start);
        for (int pass = 0; pass < 2; pass++)
        {
            for (int i = 0; i < ServiceLayout.HandleSlots; i++)
            {
                ulong* slot = HandleSlot(i);
                ulong seen = Volatile.Read(ref *slot);
                if (!OwnerWord.IsValid(seen) || (seen != 0 && OwnerWord.StateOf(seen) != OwnerWord.Attached))
                {
                    throw Corrupt("service handle slot", (byte*)slot - Base, (long)seen, "0 (free) or an attached owner word", i);
                }
                bool take = seen == 0 || (pass == 1 && !ServiceInterop.IsAlive(OwnerWord.PidOf(seen), OwnerWord.StartOf(seen)));
                if (take && Interlocked.CompareExchange(ref *slot, word, seen) == seen)
                {
                    bool retired = true;
                    try
                    {
                        retired = IsRetired();
                    }
                    finally
                    {
                        if (retired)
                        {
                            Interlocked.CompareExchange(ref *slot, 0, word); // being removed, or a corrupt word: the slot goes back
                        }
                    }
                    return retired ? -1 : i;
                }
            }
        }
        throw new InvalidOperationException($"The service '{Name}' is open in {ServiceLayout.HandleSlots} live handles already.");
    }

    /// <summary>After a participant took its slot: false if the last participant is removing the name.</summary>
    public bool IsRetired()
    {
        int retired = Volatile.Read(ref *(int*)(Base + ServiceLayout.Retired));
        return (uint)retired <= 1 ? retired == 1 : throw Corrupt("service retired flag", ServiceLayout.Retired, retired, "0 or 1");
    }

    /// <summary>One more holder (a participant); false if the segment was released meanwhile.</summary>
    public bool AddReference()
    {
        int seen = Volatile.Read(ref _references);
        while (seen > 0)
        {
            int was = Interlocked.CompareExchange(ref _references, seen + 1, seen);
            if (was == seen)
            {
                return true;
            }
            seen = was;
        }
        return false;
    }

    /// <summary>One holder fewer; the last leaves the service (and removes its name if no other process uses it) and unmaps.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0)
        {
            return;
        }
        if (!ServiceInterop.InForkedChild)
        {
            lock (Open_) // not in a forked child: it registered nothing, and another thread of its parent may have held the lock at the fork
            {
                Joined.Remove(this);
            }
        }
        try
        {
            Leave();
        }
        catch (SharedMemoryCorruptedException)
        {
            // A corrupt slot: leave the name to shm rm rather than fail a dispose.
        }
        Mapping.Dispose();
    }

    /// <summary>
    /// Gives the handle slot back; if no live process holds a handle or a participant slot, marks the
    /// service retired, looks once more (a joiner may have come: then it is put back) and removes the name.
    /// </summary>
    private void Leave()
    {
        if (ServiceInterop.InForkedChild && _handle >= 0 && ServiceInterop.Self().Pid != OwnerWord.PidOf(_handleWord))
        {
            return; // a forked child's copy: the handle is its parent's
        }
        if (_handle >= 0)
        {
            Interlocked.CompareExchange(ref *HandleSlot(_handle), 0, _handleWord);
        }
        if (AnyoneLive())
        {
            return;
        }
        int* retired = (int*)(Base + ServiceLayout.Retired);
        int seen = Volatile.Read(ref *retired);
        if (seen == 1 || Interlocked.CompareExchange(ref *retired, 1, seen) != seen)
        {
            return; // another leaver decides (a value other than 0 or 1 was written by a peer: the last leaver still removes the name)
        }
        if (AnyoneLive())
        {
            Interlocked.Exchange(ref *retired, 0);
            return;
        }
        ServiceInterop.UnlinkIfSame(SegmentName, _id);
    }

    /// <summary>True if a live process holds a handle, or a publisher or subscriber slot (attaching or attached).</summary>
    private bool AnyoneLive()
    {
        for (int i = 0; i < ServiceLayout.HandleSlots; i++)
        {
            if (IsLive(Volatile.Read(ref *HandleSlot(i))))
            {
                return true;
            }
        }
        int kind = Volatile.Read(ref *(int*)(Base + ServiceLayout.KindAt));
        if (kind == (int)ServiceKind.PublishSubscribe && PubSubConfig.TryRead(this, out PublishSubscribeConfig? config, out PubSubLayout? layout))
        {
            for (int p = 0; p < layout!.MaxPublishers; p++)
            {
                if (IsLive(Volatile.Read(ref *(ulong*)(Base + layout.PublisherSlot(p)))))
                {
                    return true;
                }
            }
            for (int s = 0; s < layout.MaxSubscribers; s++)
            {
                if (IsLive(Volatile.Read(ref *(ulong*)(Base + layout.SubscriberSlot(s)))))
                {
                    return true;
                }
            }
            _ = config;
        }
        if (kind == (int)ServiceKind.RequestResponse && RequestResponseLayout.Read(Base, Length, out _, out RequestResponseLayout? rr, out _, out _, out _, out _))
        {
            for (int i = 0; i < rr!.MaxServers + rr.MaxClients; i++)
            {
                if (IsLive(Volatile.Read(ref *(ulong*)(Base + rr.ServerSlot(i))))) // the client slots follow the server slots
                {
                    return true;
                }
            }
        }
        if (kind == (int)ServiceKind.Blackboard && IsLive(Volatile.Read(ref *(ulong*)(Base + BlackboardLayout.WriterSlot))))
        {
            return true;
        }
        return false;
    }

    private static bool IsLive(ulong word) =>
        OwnerWord.IsValid(word) && OwnerWord.StateOf(word) is OwnerWord.Attaching or OwnerWord.Attached && ServiceInterop.IsAlive(OwnerWord.PidOf(word), OwnerWord.StartOf(word));

    private ulong* HandleSlot(int i) => (ulong*)(Base + ServiceLayout.HandlesOffset + ((long)i * ServiceLayout.HandleSlotBytes));

    /// <summary>Tells publishers to look at the participant slots again.</summary>
    public void BumpMembership() => Interlocked.Increment(ref *(int*)(Base + ServiceLayout.Membership));

    public int Membership => Volatile.Read(ref *(int*)(Base + ServiceLayout.Membership));

    /// <summary>Takes the cleanup lock if it is free or its holder died; false if a live process holds it.</summary>
    public bool TryLockCleanup(out ulong me)
    {
        (int pid, uint start) = ServiceInterop.Self();
        me = OwnerWord.Of(OwnerWord.Attached, pid, start);
        ulong* word = (ulong*)(Base + ServiceLayout.CleanupLock);
        ulong seen = Volatile.Read(ref *word);
        if (seen != 0 && (!OwnerWord.IsValid(seen) || OwnerWord.StateOf(seen) != OwnerWord.Attached))
        {
            throw Corrupt("service cleanup lock", ServiceLayout.CleanupLock, (long)seen, "0 (free) or an attached owner word");
        }
        if (seen != 0 && (seen == me || ServiceInterop.IsAlive(OwnerWord.PidOf(seen), OwnerWord.StartOf(seen))))
        {
            return false;
        }
        return Interlocked.CompareExchange(ref *word, me, seen) == seen;
    }

    public void UnlockCleanup(ulong me) => Interlocked.CompareExchange(ref *(ulong*)(Base + ServiceLayout.CleanupLock), 0, me);

    /// <summary>A corruption of the value at <paramref name="offset"/> of the segment.</summary>
    public SharedMemoryCorruptedException Corrupt(string structure, long offset, long value, string expected, int? slot = null) =>
        new(structure, offset, value, expected, slot);

    private static bool GuardPage() => AppContext.TryGetSwitch(GuardPageSwitch, out bool guard) && guard;

    // A process that ends without disposing its services still leaves them: its slots would be found
    // dead anyway, but the name is removed now if it was the last.
    private static void Track(ServiceSegment segment)
    {
        if (ServiceInterop.InForkedChild)
        {
            return;
        }
        lock (Open_)
        {
            Joined.Add(segment);
            if (!s_exitHooked)
            {
                s_exitHooked = true;
                AppDomain.CurrentDomain.ProcessExit += static (_, _) => LeaveAll();
            }
        }
    }

    private static void LeaveAll()
    {
        ServiceSegment[] joined;
        lock (Open_)
        {
            joined = [.. Joined];
            Joined.Clear();
        }
        foreach (ServiceSegment segment in joined)
        {
            try
            {
                segment.Leave();
            }
            catch (Exception)
            {
                // The process is ending: leave what can be left.
            }
        }
    }
}
