using System;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Shm.Interop.Tests;

/// <summary>
/// The randomized corruption soak (see <see cref="ChannelSoak"/>). Short in CI; the long form on
/// demand: <c>SHM_SOAK_CORRUPTIONS=100000 dotnet test tests/Shm.Interop.Tests -c Release --filter
/// "FullyQualifiedName~ChannelSoakTests" --logger "console;verbosity=detailed"</c> (and
/// <c>SHM_SOAK_SEED</c> to replay a seed).
/// </summary>
public sealed class ChannelSoakTests(ITestOutputHelper output)
{
    [Fact]
    public void Random_flips_of_control_words_and_record_headers_under_live_processes_crash_nothing_hang_nothing_and_lose_or_invent_no_message()
    {
        long corruptions = long.TryParse(Environment.GetEnvironmentVariable("SHM_SOAK_CORRUPTIONS"), CultureInfo.InvariantCulture, out long asked) ? asked : 1500;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("SHM_SOAK_SEED"), CultureInfo.InvariantCulture, out int given) ? given : 20261129;
        using var soak = new ChannelSoak(seed);
        soak.Warm();
        var clock = Stopwatch.StartNew();

        ChannelSoak.Counts counts = soak.Run(corruptions);

        output.WriteLine($"seed {seed}, {clock.Elapsed.TotalSeconds:0} s: {counts}");
        Assert.True(counts.Crashes == 0 && counts.Hangs == 0 && counts.InvalidDeliveries == 0 && counts.SilentLosses == 0,
            $"{counts}\n{string.Join("\n", counts.Failures.Take(20))}");
        Assert.True(counts.Delivered > 0 && counts.Detected > 0, $"the soak exercised nothing: {counts}");
    }
}
