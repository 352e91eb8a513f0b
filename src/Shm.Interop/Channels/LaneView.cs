using System.Runtime.CompilerServices;

namespace Shm.Interop;

/// <summary>
/// One lane of a channel as its header's fields (<see cref="ChannelLayout"/>): typed references for
/// <see cref="System.Threading.Volatile"/> and <see cref="System.Threading.Interlocked"/>, the futex
/// words as pointers, the ring after them. Every value read through it is untrusted: callers read
/// each once and check it. A pointer and nothing else, so every accessor inlines to the cast it names.
/// </summary>
internal readonly unsafe struct LaneView
{
    private readonly byte* _lane;

    public LaneView(byte* lane) => _lane = lane;

    /// <summary>u64: bytes committed by the writer.</summary>
    public ref long Head
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_lane + ChannelLayout.Head);
    }

    /// <summary>i32: the writer's pid, 0 for a free lane.</summary>
    public ref int WriterPid
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_lane + ChannelLayout.WriterPid);
    }

    /// <summary>u32: <see cref="LaneStates"/>.</summary>
    public ref int State
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_lane + ChannelLayout.LaneState);
    }

    /// <summary>i64: the writer's start time.</summary>
    public ref long WriterStart
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_lane + ChannelLayout.WriterStart);
    }

    /// <summary>u32: bumped by every writer that attaches, which keeps its value.</summary>
    public ref int Generation
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(int*)(_lane + ChannelLayout.Generation);
    }

    /// <summary>u64: the head when the writer completed.</summary>
    public ref long FinalHead
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_lane + ChannelLayout.FinalHead);
    }

    /// <summary>u64: bytes released by the reader.</summary>
    public ref long Tail
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref *(long*)(_lane + ChannelLayout.Tail);
    }

    /// <summary>u32 futex: bumped by the reader that frees space while the writer sleeps.</summary>
    public int* SpaceSequence
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int*)(_lane + ChannelLayout.SpaceSequence);
    }

    /// <summary>u32: 1 while the writer sleeps.</summary>
    public int* WriterSleeping
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int*)(_lane + ChannelLayout.WriterSleeping);
    }

    /// <summary>The ring: <c>capacity</c> bytes of records after the lane header.</summary>
    public byte* Ring
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _lane + ChannelLayout.LaneHeaderSize;
    }

    /// <summary>Where field <paramref name="offset"/> (a <see cref="ChannelLayout"/> lane offset) lives, for corruption reports.</summary>
    public byte* At(int offset) => _lane + offset;
}
