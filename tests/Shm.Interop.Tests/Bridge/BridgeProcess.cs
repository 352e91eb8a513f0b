using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Shm.NetMQ;
using Shm.TestSupport;

namespace Shm.Interop.Tests.Bridge;

/// <summary>
/// A real <c>shm bridge</c> process (the built tool), optionally under a prefix such as
/// <c>ip netns exec NS</c>: started, waited for until its status file says it runs, read through
/// /proc and its status file, and killed (SIGKILL) or stopped (SIGTERM), always within a bound.
/// </summary>
internal sealed class BridgeProcess : IDisposable
{
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _errors = new();
    private readonly string _directory;

    private BridgeProcess(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    public int Pid => _process.Id;

    public string StatusPath => Path.Combine(_directory, "status.json");

    /// <summary>What it printed on stderr so far (its log).</summary>
    public string Log
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToString();
            }
        }
    }

    /// <summary>Starts <c>shm bridge ARGS --status DIR/status.json</c> and waits until its status file exists.</summary>
    public static BridgeProcess Start(string[]? prefix, params string[] arguments)
    {
        string directory = Directory.CreateTempSubdirectory("shm-bridge-test-").FullName;
        var start = new ProcessStartInfo(prefix is null ? "dotnet" : prefix[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string word in (prefix?.Skip(1) ?? []).Concat(prefix is null ? [] : ["dotnet"]).Concat([ShmTool.Dll, "bridge"]).Concat(arguments).Concat(["--status", Path.Combine(directory, "status.json")]))
        {
            start.ArgumentList.Add(word);
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var bridge = new BridgeProcess(process, directory);
        process.ErrorDataReceived += (_, line) =>
        {
            lock (bridge._errors)
            {
                bridge._errors.AppendLine(line.Data);
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        bridge.WaitFor(() => File.Exists(bridge.StatusPath) || process.HasExited, StartBound, "its status file");
        if (process.HasExited)
        {
            throw new InvalidOperationException($"shm bridge {string.Join(' ', arguments)} exited {process.ExitCode} at start:\n{bridge.Log}");
        }
        return bridge;
    }

    /// <summary>The status the bridge last wrote.</summary>
    public ShmBridgeStatus Status()
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return ShmBridge.ReadStatus(StatusPath);
            }
            catch (Exception racing) when (attempt < 10 && racing is IOException or System.Text.Json.JsonException)
            {
                System.Threading.Thread.Yield(); // replaced between open and read: the next one is whole
            }
        }
    }

    /// <summary>The resident set size the kernel reports (/proc/PID/status VmRSS), in bytes.</summary>
    public long ResidentBytes()
    {
        string line = File.ReadAllLines($"/proc/{Pid}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Waits (bounded) for <paramref name="condition"/>; fails with the bridge's status and log.</summary>
    public void WaitFor(Func<bool> condition, TimeSpan bound, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > bound)
            {
                string status = File.Exists(StatusPath) ? File.ReadAllText(StatusPath) : "(no status file)";
                throw new TimeoutException($"bridge {Pid}: no {what} within {bound.TotalSeconds} s.\nstatus: {status}\nlog:\n{Log}");
            }
            System.Threading.Thread.Sleep(20); // polling a file another process rewrites: the pause is the poll period, not a synchronisation
        }
    }

    /// <summary>SIGKILL, and waits until the kernel says it is gone.</summary>
    public void Kill()
    {
        _process.Kill();
        if (!_process.WaitForExit(Waits.Bound))
        {
            throw new TimeoutException($"bridge {Pid} survived SIGKILL for {Waits.Bound.TotalSeconds} s: {Native.Describe(Pid)}");
        }
    }

    /// <summary>SIGTERM (a clean stop), then SIGKILL if it lingers; removes its directory.</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Native.Kill(_process.Id, 15);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
            {
                _process.Kill();
                _process.WaitForExit(Waits.Bound);
            }
        }
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>A TCP port free on 127.0.0.1 now (the kernel's pick).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
