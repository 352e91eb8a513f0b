using System;
using System.Globalization;

namespace Shm.Tool;

/// <summary>Sizes as <c>ls -h</c> prints them: powers of 1024, rounded up, one decimal below 10 (4.0K, 1.5M, 12G).</summary>
internal static class Sizes
{
    private const string Units = "KMGTPE";

    public static string Format(long bytes, bool human)
    {
        if (!human || bytes < 1024)
        {
            return bytes.ToString(CultureInfo.InvariantCulture);
        }
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        // Round up as ls does; rounding can reach the next unit (1023.9K is 1.0M).
        double shown = value < 10 ? Math.Ceiling(value * 10) / 10 : Math.Ceiling(value);
        if (shown >= 1024 && unit < Units.Length - 1)
        {
            (shown, unit) = (1, unit + 1);
        }
        return (shown < 10 ? shown.ToString("0.0", CultureInfo.InvariantCulture) : shown.ToString("0", CultureInfo.InvariantCulture)) + Units[unit];
    }
}
