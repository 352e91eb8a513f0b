using System;
using System.Globalization;

namespace Shm.Tool;

/// <summary>Durations as people type them: 90s, 10m, 2h, 7d.</summary>
internal static class Durations
{
    public static bool TryParse(string text, out TimeSpan duration)
    {
        duration = default;
        if (text.Length < 2 || !double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out double amount) || amount < 0)
        {
            return false;
        }
        duration = char.ToLowerInvariant(text[^1]) switch
        {
            's' => TimeSpan.FromSeconds(amount),
            'm' => TimeSpan.FromMinutes(amount),
            'h' => TimeSpan.FromHours(amount),
            'd' => TimeSpan.FromDays(amount),
            _ => TimeSpan.MinValue,
        };
        return duration != TimeSpan.MinValue;
    }

    public static string Format(TimeSpan age) =>
        age.TotalDays >= 1 ? $"{age.TotalDays:0}d" : age.TotalHours >= 1 ? $"{age.TotalHours:0}h" : age.TotalMinutes >= 1 ? $"{age.TotalMinutes:0}m" : $"{Math.Max(0, age.TotalSeconds):0}s";
}
