using System;
using System.IO;

namespace Shm.Interop.Tests;

/// <summary>Spawns tests/Shm.Worker, a fresh .NET process, for scenarios that need their own process.</summary>
internal static class Worker
{
    private static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "Shm.Worker.dll");

    public static Child Spawn(string[] arguments, params SharedRegion[] inherit) =>
        Child.Spawn("dotnet", [Dll, .. arguments], inherit);

    /// <summary>
    /// unshare's arguments to run the worker in a new time namespace whose boot-time clock runs
    /// <paramref name="boottimeOffset"/> seconds ahead (as CRIU-restored processes run): it sees every
    /// process's start time (field 22 of /proc/PID/stat) shifted by that much. Needs root.
    /// </summary>
    public static string[] InTimeNamespace(int boottimeOffset, params string[] arguments) =>
        ["--time", "--boottime", boottimeOffset.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet", Dll, .. arguments];

    /// <summary>Runs the worker as pid 1 of a new pid namespace (as a container's entry point), and returns how it ended.</summary>
    public static ChildExit RunAsPidOne(params string[] arguments) => RunAsPidOne(null, arguments);

    /// <summary>The same, handing what the worker printed to <paramref name="output"/>.</summary>
    public static ChildExit RunAsPidOne(Action<string>? output, params string[] arguments)
    {
        string log = Path.GetTempFileName();
        try
        {
            using Child worker = Child.Spawn("/bin/sh", ["-c", $"unshare -fp --mount-proc dotnet '{Dll}' {string.Join(' ', arguments)} > '{log}' 2>&1"]);
            ChildExit exit = worker.WaitOrFail();
            output?.Invoke(File.ReadAllText(log));
            return exit.Succeeded ? exit : throw new Xunit.Sdk.XunitException($"the worker {exit}: {File.ReadAllText(log)}");
        }
        finally
        {
            File.Delete(log);
        }
    }

    /// <summary>
    /// Runs the worker as uid nobody in a mount namespace of its own whose /proc is mounted with
    /// hidepid=2, so that it cannot see this process at all; <paramref name="inherit"/> is passed on.
    /// </summary>
    public static ChildExit RunHidden(SharedRegion inherit, params string[] arguments)
    {
        string log = Path.GetTempFileName();
        try
        {
            string hidden = $"mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=65534 --regid=65534 --clear-groups dotnet '{Dll}' {string.Join(' ', arguments)}";
            using Child worker = Child.Spawn("/bin/sh", ["-c", $"unshare -m --propagation private sh -c \"{hidden}\" > '{log}' 2>&1"], inherit);
            ChildExit exit = worker.WaitOrFail();
            return exit.Succeeded ? exit : throw new Xunit.Sdk.XunitException($"the worker {exit}: {File.ReadAllText(log)}");
        }
        finally
        {
            File.Delete(log);
        }
    }

    /// <summary>Runs the worker with one environment variable set for it, and returns how it ended.</summary>
    public static ChildExit RunWith(string variable, string value, params string[] arguments)
    {
        string? saved = Environment.GetEnvironmentVariable(variable);
        Environment.SetEnvironmentVariable(variable, value);
        try
        {
            using Child worker = Spawn(arguments);
            return worker.TryWait(out ChildExit? exit, TimeSpan.FromSeconds(60)) ? exit : throw new TimeoutException("the worker hung");
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, saved);
        }
    }
}
