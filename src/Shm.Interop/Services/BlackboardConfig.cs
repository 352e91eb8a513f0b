using System;

namespace Shm.Interop;

/// <summary>
/// The static configuration of a <see cref="BlackboardService"/>: stored in its segment by its
/// creator, fixed for its life, and compared field by field by every process that opens it with
/// <see cref="BlackboardService.CreateOrOpen"/>.
/// </summary>
public sealed record BlackboardConfig
{
    /// <summary>How many entries the table holds, keys 0 to <c>Keys - 1</c>, 1 to 1,048,576. Default 16.</summary>
    public int Keys { get; init; } = 16;

    /// <summary>The size in bytes of every entry's value (the size of the unmanaged type read and written), 1 to 1,048,576. Default 64.</summary>
    public int ValueSize { get; init; } = 64;

    /// <summary>
    /// True to create the segment with mode 0660 (the owner's group may open it) instead of 0600. Used
    /// only when the service is created; not part of the configuration compared on open.
    /// </summary>
    public bool ShareWithGroup { get; init; }

    /// <summary>The layout of this configuration, or <see cref="ArgumentOutOfRangeException"/> naming the field that makes it impossible.</summary>
    internal BlackboardLayout Layout()
    {
        if (BlackboardLayout.Check(Keys, ValueSize, out string field, out long value, out string expected) is not null)
        {
            string property = field == BlackboardLayout.KeysField ? nameof(Keys) : nameof(ValueSize);
            throw new ArgumentOutOfRangeException(property, value, $"The blackboard configuration's {property} is {value}; expected {expected}.");
        }
        return new BlackboardLayout(Keys, ValueSize);
    }

    /// <summary>The first field in which <paramref name="stored"/> differs from this requested configuration, or null.</summary>
    internal string? Mismatch(BlackboardConfig stored) =>
        stored.Keys != Keys ? $"Keys: the service has {stored.Keys}, this process asked for {Keys}"
        : stored.ValueSize != ValueSize ? $"ValueSize: the service has {stored.ValueSize}, this process asked for {ValueSize}"
        : null;
}
