using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// Spawn: a fresh process for children that must run arbitrary managed code.
public sealed partial class Child
{
    /// <summary>
    /// Starts <paramref name="fileName"/> (searched in PATH) as a fresh process that inherits the
    /// descriptors of <paramref name="inherit"/> (and only those: the others stay close-on-exec).
    /// The child attaches with <see cref="SharedRegion.OpenInherited"/>. No code of this process
    /// runs in the child (<c>posix_spawn</c>), so spawn needs no runtime configuration.
    /// </summary>
    /// <remarks>A fresh .NET process takes about 50 ms to start: keep spawned workers alive and reuse them.</remarks>
    /// <param name="fileName">The program, a path or a name found in PATH.</param>
    /// <param name="arguments">Its arguments (argv[1..]).</param>
    /// <param name="inherit">Regions with a descriptor (memfd, named, file) to hand over, in order.</param>
    /// <exception cref="ArgumentNullException"><paramref name="fileName"/>, <paramref name="arguments"/>, <paramref name="inherit"/> or one of its regions is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="fileName"/> is empty, or a region has no descriptor (anonymous regions cannot be passed).</exception>
    /// <exception cref="ObjectDisposedException">A region was disposed.</exception>
    /// <exception cref="ShmException"><c>posix_spawnp</c> (or <c>pidfd_spawnp</c>, glibc 2.39+) failed (e.g. ENOENT for a missing program).</exception>
    public static Child Spawn(string fileName, IEnumerable<string> arguments, params SharedRegion[] inherit) =>
        Spawn(fileName, arguments, ChildOptions.Default, inherit);

    /// <summary>
    /// <see cref="Spawn(string, IEnumerable{string}, SharedRegion[])"/> with <paramref name="options"/>
    /// (the grace period its <see cref="Dispose"/> gives it after SIGTERM).
    /// </summary>
    /// <param name="fileName">The program, a path or a name found in PATH.</param>
    /// <param name="arguments">Its arguments (argv[1..]).</param>
    /// <param name="options">What every child has; <see cref="ChildOptions.Default"/> for the defaults.</param>
    /// <param name="inherit">Regions with a descriptor (memfd, named, file) to hand over, in order.</param>
    /// <exception cref="ArgumentNullException"><paramref name="fileName"/>, <paramref name="arguments"/>, <paramref name="options"/>, <paramref name="inherit"/> or one of its regions is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="fileName"/> is empty, or a region has no descriptor (anonymous regions cannot be passed).</exception>
    /// <exception cref="ObjectDisposedException">A region was disposed.</exception>
    /// <exception cref="ShmException"><c>posix_spawnp</c> (or <c>pidfd_spawnp</c>, glibc 2.39+) failed (e.g. ENOENT for a missing program).</exception>
    public static Child Spawn(string fileName, IEnumerable<string> arguments, ChildOptions options, params SharedRegion[] inherit)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inherit);
        SafeFileHandle[] fds = inherit.Select((region, i) => (region ?? throw new ArgumentNullException(nameof(inherit), $"Region {i} is null.")).Descriptor
            ?? throw new ArgumentException($"Region {i} ({region}) has no descriptor; create it with CreateMemfd, CreateNamed or CreateFromFile to pass it to a process.", nameof(inherit))).ToArray();
        return SpawnCore(fileName, [fileName, .. arguments], fds, options.TerminateGracePeriod);
    }

    /// <summary>
    /// Spawns this same program again with <paramref name="arguments"/> (for a worker entry point):
    /// the app host, or <c>dotnet</c> with the entry assembly.
    /// </summary>
    /// <param name="arguments">The worker's arguments, typically a mode switch the program's Main recognises.</param>
    /// <param name="inherit">Regions to hand over, in order.</param>
    /// <exception cref="InvalidOperationException">The process path or entry assembly is unknown.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="arguments"/>, <paramref name="inherit"/> or one of its regions is null.</exception>
    /// <exception cref="ArgumentException">A region has no descriptor.</exception>
    /// <exception cref="ObjectDisposedException">A region was disposed.</exception>
    /// <exception cref="ShmException">Spawning failed.</exception>
    public static Child SpawnSelf(IEnumerable<string> arguments, params SharedRegion[] inherit) =>
        SpawnSelf(arguments, ChildOptions.Default, inherit);

    /// <summary><see cref="SpawnSelf(IEnumerable{string}, SharedRegion[])"/> with <paramref name="options"/>.</summary>
    /// <param name="arguments">The worker's arguments, typically a mode switch the program's Main recognises.</param>
    /// <param name="options">What every child has; <see cref="ChildOptions.Default"/> for the defaults.</param>
    /// <param name="inherit">Regions to hand over, in order.</param>
    /// <exception cref="InvalidOperationException">The process path or entry assembly is unknown.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="arguments"/>, <paramref name="options"/>, <paramref name="inherit"/> or one of its regions is null.</exception>
    /// <exception cref="ArgumentException">A region has no descriptor.</exception>
    /// <exception cref="ObjectDisposedException">A region was disposed.</exception>
    /// <exception cref="ShmException">Spawning failed.</exception>
    public static Child SpawnSelf(IEnumerable<string> arguments, ChildOptions options, params SharedRegion[] inherit)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string host = System.Environment.ProcessPath ?? throw new InvalidOperationException("The path of this program is unknown.");
        bool viaDotnet = System.IO.Path.GetFileNameWithoutExtension(host) == "dotnet";
#pragma warning disable IL3000 // A single-file app runs as its own host, so this path is only read when it is not one.
        string? assembly = Assembly.GetEntryAssembly()?.Location;
#pragma warning restore IL3000
        if (viaDotnet && string.IsNullOrEmpty(assembly))
        {
            throw new InvalidOperationException("The entry assembly of this program is unknown.");
        }
        return Spawn(host, viaDotnet ? [assembly!, .. arguments] : arguments, options, inherit);
    }

    private static unsafe Child SpawnCore(string fileName, string[] argv, SafeFileHandle[] fds, TimeSpan grace)
    {
        var added = new bool[fds.Length];
        var strings = new List<nint>();
        byte* fileActions = stackalloc byte[Libc.SpawnFileActionsSize];
        byte* attributes = stackalloc byte[Libc.SpawnAttrSize];
        Libc.CheckError(Libc.posix_spawn_file_actions_init(fileActions), "posix_spawn_file_actions_init");
        int attributesReady = Libc.posix_spawnattr_init(attributes);
        try
        {
            Libc.CheckError(attributesReady, "posix_spawnattr_init");
            var numbers = new int[fds.Length];
            for (int i = 0; i < fds.Length; i++)
            {
                fds[i].DangerousAddRef(ref added[i]);
                numbers[i] = (int)fds[i].DangerousGetHandle();
                Libc.CheckError(Libc.posix_spawn_file_actions_adddup2(fileActions, numbers[i], numbers[i]), "posix_spawn_file_actions_adddup2");
            }

            // Dispositions as exec leaves them (and as Process.Start does): handlers become the
            // default, what this process ignores stays ignored (nohup's SIGHUP; the runtime's SIGPIPE).
            // The child starts with no signal blocked, like a shell's child.
            Libc.SigSet none;
            Libc.sigemptyset(&none);
            Libc.CheckError(Libc.posix_spawnattr_setsigmask(attributes, &none), "posix_spawnattr_setsigmask");
            Libc.CheckError(Libc.posix_spawnattr_setflags(attributes, Libc.POSIX_SPAWN_SETSIGMASK), "posix_spawnattr_setflags");

            byte** args = NullTerminated(argv, strings);
            byte** env = NullTerminated(ChildEnvironment(fds.Length == 0 ? null : string.Join(',', numbers)), strings);
            byte* file = Utf8(fileName, strings);
            if (Libc.PidfdSpawn.IsAvailable)
            {
                int pidfd;
                int failed = Libc.PidfdSpawn.pidfd_spawnp(&pidfd, file, fileActions, attributes, args, env);
                if (failed != LinuxErrno.ENOSYS)
                {
                    Libc.CheckError(failed, "pidfd_spawnp", fileName);
                    // The pidfd holds the process whoever reaps it; its pid is readable only until then.
                    return AdoptSpawnedPidfd(Math.Max(Libc.PidfdSpawn.pidfd_getpid(pidfd), 0), pidfd, grace);
                }
                Libc.PidfdSpawn.MarkUnsupported(); // clone3 refused (a seccomp profile): no process was made
            }
            int pid;
            int error = Libc.posix_spawnp(&pid, file, fileActions, attributes, args, env);
            Libc.CheckError(error, "posix_spawnp", fileName);
            // A reaper of every child (pid 1's runtime) may have reaped a short-lived program already.
            return AdoptSpawned(pid, grace);
        }
        finally
        {
            if (attributesReady == 0)
            {
                Libc.posix_spawnattr_destroy(attributes);
            }
            Libc.posix_spawn_file_actions_destroy(fileActions);
            foreach (nint p in strings)
            {
                NativeMemory.Free((void*)p);
            }
            for (int i = 0; i < fds.Length; i++)
            {
                if (added[i])
                {
                    fds[i].DangerousRelease();
                }
            }
        }
    }

    private static string[] ChildEnvironment(string? inherited)
    {
        var variables = new List<string>();
        foreach (DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
        {
            if ((string)entry.Key != SharedRegion.InheritedDescriptorsVariable)
            {
                variables.Add($"{entry.Key}={entry.Value}");
            }
        }
        if (inherited is not null)
        {
            variables.Add($"{SharedRegion.InheritedDescriptorsVariable}={inherited}");
        }
        return [.. variables];
    }

    private static unsafe byte** NullTerminated(string[] values, List<nint> strings)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(values.Length + 1), (nuint)sizeof(nint));
        strings.Add((nint)array);
        for (int i = 0; i < values.Length; i++)
        {
            array[i] = Utf8(values[i], strings);
        }
        return array;
    }

    private static unsafe byte* Utf8(string value, List<nint> strings)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        var bytes = (byte*)NativeMemory.AllocZeroed((nuint)length + 1);
        strings.Add((nint)bytes);
        Encoding.UTF8.GetBytes(value, new Span<byte>(bytes, length));
        return bytes;
    }
}
