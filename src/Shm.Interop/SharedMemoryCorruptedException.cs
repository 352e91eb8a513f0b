using System.Globalization;
using System.IO;

namespace Shm.Interop;

/// <summary>
/// A value read from shared memory is impossible: another process that maps the region wrote bytes
/// this library never writes there (a bug, or a hostile peer), or died in a way no protocol step
/// allows. The value was read once, checked and refused: nothing outside the structure was read or
/// written because of it. The structure named here may be unusable from now on; the process is not
/// harmed.
/// </summary>
/// <remarks>
/// Shared memory is untrusted input: any process that maps a region may write any bytes there at any
/// moment. What such a process can ruin is the data it could write anyway; this exception is how the
/// rest of the process learns of it, instead of a crash, a hang or a wrong message.
/// <para>It derives from <see cref="IOException"/> (as <see cref="ShmException"/> does):
/// <see cref="InvalidDataException"/>, the BCL's word for corrupt data, is sealed.</para>
/// </remarks>
public sealed class SharedMemoryCorruptedException : IOException
{
    /// <summary>Describes a corrupt value.</summary>
    /// <param name="structure">The structure and field, e.g. <c>"channel lane head"</c>.</param>
    /// <param name="offset">Where the value lives, in bytes from the start of the region.</param>
    /// <param name="value">The value as read.</param>
    /// <param name="expected">What it should have been, in words (e.g. <c>"a multiple of 8"</c>).</param>
    /// <param name="lane">The channel lane (or other sub-structure index) it belongs to, if any.</param>
    public SharedMemoryCorruptedException(string structure, long offset, long value, string expected, int? lane = null)
        : base(Format(structure, offset, value, expected, lane))
    {
        Structure = structure;
        Offset = offset;
        Value = value;
        Lane = lane;
        ShmDiagnostics.Corruption(structure, offset, value);
    }

    /// <summary>The structure and field whose value was impossible.</summary>
    public string Structure { get; }

    /// <summary>Where the value lives, in bytes from the start of the region.</summary>
    public long Offset { get; }

    /// <summary>The value as read.</summary>
    public long Value { get; }

    /// <summary>The lane (or other sub-structure index) it belongs to; null if none.</summary>
    public int? Lane { get; }

    private static string Format(string structure, long offset, long value, string expected, int? lane)
    {
        string where = lane is int index ? string.Create(CultureInfo.InvariantCulture, $" of lane {index}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"Shared memory corrupted: {structure}{where} at region offset {offset} holds {value} (0x{value:X}); expected {expected}. Another process that maps the region wrote it; the structure is not used further.");
    }
}
