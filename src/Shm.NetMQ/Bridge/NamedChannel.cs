using System;
using System.Diagnostics;
using Shm.Interop;

namespace Shm.NetMQ;

/// <summary>
/// A channel local processes find by name: the named segment <c>/dev/shm/shm-channel.NAME</c>
/// holding a <see cref="SharedChannel"/> at offset 0. The bridge and the local writers and readers
/// (C ones too: <c>shm_open("/shm-channel.NAME")</c>, then the channel at offset 0) all use
/// <see cref="CreateOrOpen"/>; whoever comes first creates it, and its segment is unlinked when its
/// creator disposes it (or exits).
/// </summary>
public sealed class NamedChannel : IDisposable
{
    /// <summary>The prefix of the segment's name.</summary>
    public const string Prefix = "shm-channel.";

    /// <summary>How long an opener waits for a creator that made the segment to set the channel up.</summary>
    private static readonly TimeSpan SetUpBound = TimeSpan.FromSeconds(5);

    private readonly SharedRegion _region;

    private NamedChannel(string name, SharedRegion region, SharedChannel channel, bool created)
    {
        Name = name;
        _region = region;
        Channel = channel;
        Created = created;
    }

    /// <summary>The channel's name (without the prefix).</summary>
    public string Name { get; }

    /// <summary>The channel.</summary>
    public SharedChannel Channel { get; }

    /// <summary>True if this call created the segment (and its dispose unlinks it).</summary>
    public bool Created { get; }

    /// <summary>The segment's name in /dev/shm for a channel name.</summary>
    /// <param name="name">The channel's name.</param>
    public static string SegmentName(string name) => Prefix + name;

    /// <summary>Opens the named channel, creating it (with these sizes) if nobody has yet.</summary>
    /// <param name="name">The channel's name: the segment is <c>shm-channel.NAME</c>.</param>
    /// <param name="laneCapacity">Bytes per writer's ring if created: a power of two from 4 KiB to 1 GiB.</param>
    /// <param name="writers">Writers at once if created, 1 to 64.</param>
    /// <exception cref="ArgumentException">A bad name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A bad size.</exception>
    /// <exception cref="TimeoutException">The segment exists but no channel was set up in it within 5 s.</exception>
    /// <exception cref="ShmException">The segment could not be created or opened (EACCES...).</exception>
    /// <exception cref="SharedMemoryCorruptedException">What is there is not a sound channel.</exception>
    public static NamedChannel CreateOrOpen(string name, long laneCapacity = 1 << 20, int writers = 4)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        string segment = SegmentName(name);
        long length = SharedChannel.RequiredLength(laneCapacity, writers);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            SharedRegion? region = null;
            try
            {
                region = SharedRegion.CreateNamed(segment, length);
                return new NamedChannel(name, region, SharedChannel.Create(region, 0, laneCapacity, writers), created: true);
            }
            catch (ShmException exists) when (exists.Errno == 17 /* EEXIST */)
            {
                region?.Dispose();
            }
            catch
            {
                region?.Dispose();
                throw;
            }
            try
            {
                region = SharedRegion.OpenNamed(segment);
                return new NamedChannel(name, region, SharedChannel.Open(region), created: false);
            }
            catch (Exception settingUp) when (settingUp is InvalidOperationException or ShmException { Errno: 2 /* ENOENT: its creator just went */ })
            {
                region?.Dispose();
                if (clock.Elapsed > SetUpBound)
                {
                    throw new TimeoutException($"/dev/shm/{segment} exists but holds no channel after {SetUpBound.TotalSeconds} s: {settingUp.Message}", settingUp);
                }
                System.Threading.Thread.Sleep(1); // its creator is between shm_open and the channel's header: a moment
            }
            catch
            {
                region?.Dispose();
                throw;
            }
        }
    }

    /// <summary>Disposes the channel and the mapping (and unlinks the segment if this created it).</summary>
    public void Dispose()
    {
        Channel.Dispose();
        _region.Dispose();
    }
}
