using System.Runtime.CompilerServices;

namespace Shm.Interop;

/// <summary>
/// The channel's header as its fields (<see cref="ChannelLayout"/>), as <see cref="LaneView"/> is a
/// lane's: typed references and futex pointers, each value read through it untrusted.
/// </summary>
internal readonly unsafe struct ChannelHeaderView
{
    private readonly byte* _header;

    public ChannelHeaderView(byte* header) => _header = header;

    /// <summary>u32: the lane count, written once by the creator.</summary>
    public ref int Lanes
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_header + ChannelLayout.Lanes);
    }

    /// <summary>u64: each lane's capacity, written once by the creator.</summary>
    public ref long LaneCapacity
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_header + ChannelLayout.LaneCapacity);
    }

    /// <summary>u32: 1 once the reader saw the end.</summary>
    public ref int Closed
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_header + ChannelLayout.Closed);
    }

    /// <summary>i32: the reader's pid, 0 for none.</summary>
    public ref int ReaderPid
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_header + ChannelLayout.ReaderPid);
    }

    /// <summary>u32: 1 once any writer attached.</summary>
    public ref int EverWritten
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_header + ChannelLayout.EverWritten);
    }

    /// <summary>i64: the reader's start time.</summary>
    public ref long ReaderStart
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_header + ChannelLayout.ReaderStart);
    }

    /// <summary>u32 futex: bumped by a writer that publishes while the reader sleeps.</summary>
    public int* ReaderSequence
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int*)(_header + ChannelLayout.ReaderSequence);
    }

    /// <summary>u32: 1 while the reader sleeps.</summary>
    public int* ReaderSleeping
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int*)(_header + ChannelLayout.ReaderSleeping);
    }

    /// <summary>Where field <paramref name="offset"/> (a <see cref="ChannelLayout"/> header offset) lives, for corruption reports.</summary>
    public byte* At(int offset) => _header + offset;
}
