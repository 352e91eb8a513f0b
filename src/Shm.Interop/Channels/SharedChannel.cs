using System;
using System.Collections.Generic;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// A message channel in a shared region: variable-length byte messages from one writer (SPSC) or
/// many (MPSC) to one reader, with zero copy on both sides, no system call per message while both
/// sides are busy, and no wedge when a peer dies. Works in any region kind: anonymous (forked
/// children), memfd (spawned processes), named (unrelated processes) and file. C reads and writes it
/// too (<c>include/shm/shm.h</c>).
/// </summary>
/// <remarks>
/// <para>Each writer owns a lane, a single-writer ring of <c>laneCapacity</c> bytes: it writes a
/// record (an 8-byte header, then the bytes) and only then publishes the lane's head, so a writer
/// killed in the middle of a message leaves nothing half-written for the reader, and never stalls
/// the other lanes. The reader takes messages from the lanes in turn and publishes the tail as it
/// releases them. Order is kept per writer.</para>
/// <para>Waiting spins briefly, then parks on a shared futex; a side wakes the other only when the
/// other said it sleeps. A reader whose writers are all gone gets every committed message, then the
/// end: <see cref="System.Threading.Channels.ChannelClosedException"/> naming the processes that
/// died, or a normal end if they all completed. A writer whose reader died fails as soon as it would
/// have to wait for room. Peers are named by pid and start time, so a reused pid is not mistaken
/// for a live peer.</para>
/// <para>The channel's memory is untrusted: every value read from it (lane count and capacity once
/// at <see cref="Open"/>, then heads, tails, record headers, lane states) is read once, checked, and
/// refused with <see cref="SharedMemoryCorruptedException"/> if impossible. A reader or writer that
/// met corruption refuses further use; the process is unharmed.</para>
/// </remarks>
public sealed unsafe class SharedChannel : SharedPrimitive
{
    private readonly List<object> _endpoints = [];

    private SharedChannel(SharedRegion region, long offset, long size, bool create, TimeSpan timeout, Action<nint>? initialise)
        : base(region, offset, size, PrimitiveKind.SharedChannel, create, timeout, initialise)
    {
        // Read once, here: every later use takes these copies, never the shared words.
        LaneCount = Volatile.Read(ref Header.Lanes);
        LaneCapacity = Volatile.Read(ref Header.LaneCapacity);
    }

    /// <summary>How many writers may be attached at once (1: single-producer).</summary>
    public int LaneCount { get; }

    /// <summary>Bytes in each writer's ring.</summary>
    public long LaneCapacity { get; }

    /// <summary>The longest message: a lane less one record header.</summary>
    public int MaxMessageLength => (int)(LaneCapacity - ChannelLayout.RecordHeaderSize);

    internal ChannelHeaderView Header => new(Bytes);

    internal LaneView Lane(int index) => new(Bytes + ChannelLayout.HeaderSize + (index * ChannelLayout.LaneStride(LaneCapacity)));

    /// <summary>Where <paramref name="address"/>, inside the channel, lives in the region (for corruption reports).</summary>
    internal long RegionOffsetOf(byte* address) => Offset + (address - Bytes);

    /// <summary>The bytes a channel of <paramref name="writers"/> lanes of <paramref name="laneCapacity"/> bytes needs.</summary>
    /// <param name="laneCapacity">Bytes per lane: a power of two from 4 KiB to 1 GiB.</param>
    /// <param name="writers">Writers at once, 1 to 64.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not usable.</exception>
    public static long RequiredLength(long laneCapacity, int writers = 1)
    {
        Validate(laneCapacity, writers);
        return ChannelLayout.RequiredLength(laneCapacity, writers);
    }

    /// <summary>Creates a channel at <paramref name="offset"/> of <paramref name="region"/> (zeroed bytes, 8-byte aligned).</summary>
    /// <param name="region">A writable region the peers map.</param>
    /// <param name="offset">Where, a multiple of 8.</param>
    /// <param name="laneCapacity">Bytes per writer's ring: a power of two from 4 KiB to 1 GiB.</param>
    /// <param name="writers">Writers that may be attached at once: 1 for a single-producer channel, up to 64.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the channel does not fit in the region from there (<see cref="RequiredLength"/>), or a size is not usable.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">A primitive is already there, or the bytes are not zero.</exception>
    public static SharedChannel Create(SharedRegion region, long offset, long laneCapacity, int writers = 1)
    {
        Validate(laneCapacity, writers);
        return new(region, offset, ChannelLayout.RequiredLength(laneCapacity, writers), create: true, TimeSpan.Zero, words =>
        {
            var header = new ChannelHeaderView((byte*)words);
            header.Lanes = writers;
            header.LaneCapacity = laneCapacity;
        });
    }

    /// <summary>Opens the channel another process created at <paramref name="offset"/>.</summary>
    /// <param name="region">The region it lives in.</param>
    /// <param name="offset">Where it was created.</param>
    /// <exception cref="ArgumentNullException"><paramref name="region"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative, or the channel does not fit in the region from there (its header, then the lanes it describes).</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="NotSupportedException">The region is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="InvalidOperationException">Nothing, or something other than a channel (or one of another layout version), is there.</exception>
    /// <exception cref="TimeoutException">It was still being initialised after 5 s (its creator may have died while initialising it).</exception>
    /// <exception cref="SharedMemoryCorruptedException">The channel's lane count or capacity is impossible.</exception>
    public static SharedChannel Open(SharedRegion region, long offset = 0)
    {
        var channel = new SharedChannel(region, offset, ChannelLayout.HeaderSize, create: false, DefaultInitialisationTimeout, null);
        try
        {
            if (channel.LaneCount is < 1 or > ChannelLayout.MaximumWriters)
            {
                throw new SharedMemoryCorruptedException("channel lane count", offset + ChannelLayout.Lanes, channel.LaneCount, $"1 to {ChannelLayout.MaximumWriters}");
            }
            if (!ChannelLayout.IsValidCapacity(channel.LaneCapacity))
            {
                throw new SharedMemoryCorruptedException("channel lane capacity", offset + ChannelLayout.LaneCapacity, channel.LaneCapacity,
                    $"a power of two from {ChannelLayout.MinimumLaneCapacity} to {ChannelLayout.MaximumLaneCapacity}");
            }
            long needed = ChannelLayout.RequiredLength(channel.LaneCapacity, channel.LaneCount);
            if (offset > region.Length - needed)
            {
                throw new ArgumentOutOfRangeException(nameof(region), region.Length, $"The channel at offset {offset} needs {needed} bytes; the region holds {region.Length}.");
            }
            return channel;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    /// <summary>Attaches a writer: claims a free lane for this process and thread of use.</summary>
    /// <exception cref="InvalidOperationException">Every lane has a writer.</exception>
    /// <exception cref="System.Threading.Channels.ChannelClosedException">The reader already saw the end of the stream.</exception>
    /// <exception cref="SharedMemoryCorruptedException">The claimed lane's head or tail, or the closed flag, is impossible (the lane is given back).</exception>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public SharedChannelWriter OpenWriter()
    {
        ThrowIfDisposed();
        return new SharedChannelWriter(this);
    }

    /// <summary>Attaches the reader (one per channel; a dead reader's place is taken over).</summary>
    /// <exception cref="InvalidOperationException">Another live process is the reader.</exception>
    /// <exception cref="SharedMemoryCorruptedException">The reader's place, a lane's head or a tail is impossible (the place is given back).</exception>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public SharedChannelReader OpenReader()
    {
        ThrowIfDisposed();
        return new SharedChannelReader(this);
    }

    internal void EnsureUsable() => ThrowIfDisposed();

    /// <summary>
    /// Registers a reader or writer: it holds the region mapped until <see cref="Detach"/> (so its
    /// own dispose can still write its lane or place), and the channel's dispose ends its pending waits.
    /// </summary>
    internal void Attach(object endpoint)
    {
        lock (_endpoints)
        {
            ThrowIfDisposed();
            bool added = false;
            Region.SafeMappingHandle.DangerousAddRef(ref added);
            _endpoints.Add(endpoint);
        }
    }

    /// <summary>Ends the endpoint's pending waits and gives its hold on the region back.</summary>
    internal void Detach(object endpoint)
    {
        FutexWatcher.Abandon(endpoint);
        lock (_endpoints)
        {
            if (!_endpoints.Remove(endpoint))
            {
                return;
            }
        }
        Region.SafeMappingHandle.DangerousRelease();
    }

    /// <summary>Ends the pending waits of every reader and writer of this object.</summary>
    private protected override void OnDispose()
    {
        object[] endpoints;
        lock (_endpoints)
        {
            endpoints = [.. _endpoints];
        }
        foreach (object endpoint in endpoints)
        {
            FutexWatcher.Abandon(endpoint);
        }
    }

    private static void Validate(long laneCapacity, int writers)
    {
        if (!ChannelLayout.IsValidCapacity(laneCapacity))
        {
            throw new ArgumentOutOfRangeException(nameof(laneCapacity), laneCapacity,
                $"A lane's capacity is a power of two from {ChannelLayout.MinimumLaneCapacity} bytes to 1 GiB.");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(writers, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(writers, ChannelLayout.MaximumWriters);
    }
}
