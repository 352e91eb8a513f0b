namespace Shm.Interop;

/// <summary>What a <see cref="SharedPrimitive"/> is; stored with its layout version in its second word.</summary>
internal enum PrimitiveKind
{
    /// <summary>A <see cref="SharedMutex"/>.</summary>
    SharedMutex = 1,

    /// <summary>A <see cref="SharedSemaphore"/>.</summary>
    SharedSemaphore = 2,

    /// <summary>A <see cref="SharedEvent"/>.</summary>
    SharedEvent = 3,

    /// <summary>A <see cref="SharedCondition"/>.</summary>
    SharedCondition = 4,

    /// <summary>A <see cref="SharedChannel"/>.</summary>
    SharedChannel = 5,

    /// <summary>A <see cref="SharedFutexMutex"/>.</summary>
    SharedFutexMutex = 6,
}

/// <summary>The layout version of each kind, kept with the kinds so the header check needs nothing from the layers that use it.</summary>
internal static class PrimitiveKinds
{
    /// <summary>The layout version of every kind but the channel.</summary>
    public const int PrimitiveLayoutVersion = 1;

    /// <summary>The channel's layout version (<see cref="ChannelLayout.Version"/>): 2, the lane generation and final head words and the record check word.</summary>
    public const int ChannelLayoutVersion = 2;

    /// <summary>The layout version of <paramref name="kind"/>: each kind's layout changes on its own.</summary>
    public static int LayoutVersion(PrimitiveKind kind) => kind == PrimitiveKind.SharedChannel ? ChannelLayoutVersion : PrimitiveLayoutVersion;
}
