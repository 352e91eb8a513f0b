using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// Whether this runtime can fork safely. After fork only the calling thread exists in the child;
/// two runtime settings decide whether the managed code it runs is sound:
/// <list type="bullet">
/// <item>W^X (on by default): JIT code and stubs live in a shared double mapping
/// (<c>/memfd:doublemapper</c>) that fork does not copy, so a child that compiles anything writes
/// into the parent's code. <c>System.Runtime.EnableWriteXorExecute=false</c> removes it.</item>
/// <item>Tiered compilation (on by default): background recompilation and call counting take
/// runtime locks and suspend threads; children hang when one of them is in flight.</item>
/// </list>
/// A NativeAOT app has neither (no JIT at all) and forks without configuration.
/// </summary>
public static class ForkSupport
{
    private static readonly Lazy<string?> Problem = new(Diagnose);

    /// <summary>The MSBuild property that configures an app for fork.</summary>
    internal const string MsBuildSwitch = "<ShmEnableFork>true</ShmEnableFork>";

    /// <summary>True if this process may use <see cref="Child.Fork(Func{int}, ForkOptions?)"/>.</summary>
    public static bool IsSupported => Problem.Value is null;

    /// <summary>Why fork is refused here, naming the fix; null if it is supported.</summary>
    public static string? WhyNotSupported => Problem.Value;

    private static long s_retries;

    /// <summary>
    /// Forks redone so far in this process: children killed and forked again, before running any
    /// code of yours, because a GC overlapped their fork or they could not start (they inherited a
    /// lock another thread held at the instant of the fork). Steady growth means other threads
    /// compile, load types or allocate hard while forking; each retry costs a fork.
    /// </summary>
    public static long Retries => Interlocked.Read(ref s_retries);

    internal static void CountRetries(int count)
    {
        Interlocked.Add(ref s_retries, count);
        ShmDiagnostics.ForkRetried(count);
    }

    internal static void EnsureSupported()
    {
        if (Problem.Value is string problem)
        {
            throw new NotSupportedException(problem);
        }
    }

    private static string? Diagnose()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "Shm forks only on Linux.";
        }
        if (!RuntimeFeature.IsDynamicCodeCompiled)
        {
            return null; // NativeAOT: no JIT, no double-mapped code, no tiering, no type loading at run time
        }
        bool doubleMapped = File.ReadLines("/proc/self/maps").Any(line => line.Contains("doublemapper", StringComparison.Ordinal));
        bool tiered = TieredCompilationEnabled();
        if (!doubleMapped && !tiered)
        {
            return null;
        }
        string found = (doubleMapped, tiered) switch
        {
            (true, true) => "W^X is on (/memfd:doublemapper in /proc/self/maps) and tiered compilation is on",
            (true, false) => "W^X is on (/memfd:doublemapper in /proc/self/maps)",
            _ => "tiered compilation is on",
        };
        return $"This runtime cannot fork safely: {found}. Put {MsBuildSwitch} in the app's project file (it sets " +
            "<TieredCompilation>false</TieredCompilation> and the runtime option System.Runtime.EnableWriteXorExecute=false), " +
            "or set the environment variables DOTNET_EnableWriteXorExecute=0 and DOTNET_TieredCompilation=0. " +
            "To run arbitrary code in a child, use Child.Spawn instead.";
    }

    private static bool TieredCompilationEnabled()
    {
        // The runtime reads the environment first, then runtimeconfig.json.
        foreach (string prefix in new[] { "DOTNET_", "COMPlus_" })
        {
            if (Environment.GetEnvironmentVariable(prefix + "TieredCompilation") is string value)
            {
                return value.Trim() != "0";
            }
        }
        return AppContext.GetData("System.Runtime.TieredCompilation") is not object setting ||
            !bool.TryParse(setting.ToString(), out bool enabled) || enabled;
    }
}
