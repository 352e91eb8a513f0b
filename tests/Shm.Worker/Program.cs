using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Shm.Interop;
using Shm.TestSupport;

namespace Shm.Worker;

/// <summary>Scenarios run in a process of their own. Exit 0 means the scenario's expectation held.</summary>
public static partial class Program
{
    /// <summary>Exit code when the scenario's expectation did not hold.</summary>
    public const int Unexpected = 1;

    /// <summary>Runs the scenario named by <paramref name="args"/>[0].</summary>
    public static int Main(string[] args) => args[0] switch
    {
        "attach" => Attach(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "fork-refused" => ForkRefused(),
        "nproc" => ForkFailsUnderNproc(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "orphan" => Orphan(),
        "open-denied" => OpenDenied(args[1]),
        "pid1" => ReapedByPidOne(),
        "pid1-spawn" => SpawnShortLivedAsPidOne(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "emfile" => PidfdUnavailable(),
        "attach-twice" => AttachTwice(),
        "leak-segment" => LeakSegment(args[1]),
        "segment-until-signal" => SegmentUntilSignal(args[1], args[2], int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture)),
        "channel-writer" => ChannelWriter(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "hold" => Hold(args[1..], nonDumpable: false),
        "hold-nondumpable" => Hold(args[1..], nonDumpable: true),
        "sync-victim" => AsyncVictim(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)),
        "await-dead-reader" => AwaitDeadReader(long.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "watcher-polling" => WatcherPolling(),
        "dispose-under-wait" => DisposeUnderWait(args[1]),
        "hold-futex-mutex" => HoldFutexMutex(),
        "hidden-peers" => HiddenPeers(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "timens-channel-peer" => TimeNamespacePeer.Run(args[1]),
        "json-reader" => JsonReader.Run(),
        _ => Unexpected,
    };

    /// <summary>
    /// Attaches inherited region 0 and fills it using the thread pool and tasks (what a forked child
    /// may not do), then records how many distinct memfds this process holds.
    /// </summary>
    private static int Attach(int value)
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        Span<int> ints = region.AsSpan<int>();
        int count = ints.Length - 1;
        int[] filled = new int[count];
        Parallel.For(0, count, i => filled[i] = value + i);
        Task.Run(() => filled.CopyTo(region.AsSpan<int>()[1..])).Wait();
        // Distinct memfds: the inherited descriptor and the region's duplicate name the same one.
        ints[0] = Directory.GetFiles("/proc/self/fd").Select(fd => new FileInfo(fd).LinkTarget).Where(target => target?.StartsWith("/memfd:", StringComparison.Ordinal) == true).Distinct().Count();
        return 0;
    }

    /// <summary>Run with the runtime misconfigured (by environment); fork must refuse and name the fix.</summary>
    private static int ForkRefused()
    {
        try
        {
            Child.Fork(() => 0).Dispose();
            return Unexpected;
        }
        catch (NotSupportedException refused)
        {
            Console.Error.WriteLine(refused.Message);
            bool named = refused.Message.Contains("System.Runtime.EnableWriteXorExecute", StringComparison.Ordinal) &&
                refused.Message.Contains("TieredCompilation", StringComparison.Ordinal) &&
                refused.Message.Contains("ShmEnableFork", StringComparison.Ordinal);
            return named ? 0 : Unexpected;
        }
    }

    /// <summary>
    /// Drops to uid nobody (root is exempt from RLIMIT_NPROC), allows <paramref name="room"/> more
    /// processes, and asks for more children than that: fork k must fail with EAGAIN, and when the
    /// exception arrives every child started before it is gone and reaped.
    /// </summary>
    private static unsafe int ForkFailsUnderNproc(int room)
    {
        using SharedRegion pids = SharedRegion.CreateAnonymous(4096);
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
        {
            return Unexpected;
        }
        long limit = TasksOfUser(65534) + room;
        long* rlimit = stackalloc long[] { limit, limit };
        if (setrlimit(6 /* RLIMIT_NPROC */, rlimit) != 0)
        {
            return Unexpected;
        }
        try
        {
            using Children children = Children.Fork(room + 3, i =>
            {
                pids.Write(i * sizeof(int), Native.GetPid());
                while (true)
                {
                    Thread.SpinWait(1000);
                }
            });
            return Unexpected;
        }
        catch (ShmException error) when (error.Syscall == "fork" && error.Errno == LinuxErrno.EAGAIN)
        {
            int[] started = pids.AsSpan<int>().ToArray().Where(pid => pid != 0).ToArray();
            Console.WriteLine($"fork failed as expected: {error.Message}; {started.Length} children had started: {string.Join(' ', started)}");
            bool reaped = Native.Children().Length == 0;
            bool gone = started.All(pid => !Native.Exists(pid));
            // The kernel counts children reaped by this process in RUSAGE_CHILDREN: the first ones
            // did exist (their page faults are there), and are reaped (nothing is left unreaped).
            long childFaults = ReapedChildrensMinorFaults();
            Console.WriteLine($"reaped children's minor faults: {childFaults}");
            return reaped && gone && childFaults > 0 ? 0 : Unexpected;
        }
    }

    /// <summary>
    /// Forks a child that records its pid in inherited region 0 and spins, then dies by SIGKILL:
    /// the child's death signal must end it too.
    /// </summary>
    private static int Orphan()
    {
        SharedRegion region = SharedRegion.OpenInherited();
        Child child = Child.Fork(() =>
        {
            region.Write(0, Native.GetPid());
            while (true)
            {
                Thread.SpinWait(1000);
            }
        });
        SpinWait.SpinUntil(() => region.Read<int>(0) == child.Pid, TimeSpan.FromSeconds(10));
        Native.Kill(Native.GetPid(), Native.SIGKILL);
        return Unexpected;
    }

    /// <summary>
    /// Run as pid 1 (unshare -fp --mount-proc), where the runtime reaps every child the moment it
    /// exits: waits must not fail with ECHILD, must learn the status through the pidfd, and
    /// terminating a group must reach every child.
    /// </summary>
    private static int ReapedByPidOne()
    {
        if (Environment.ProcessId != 1)
        {
            Console.WriteLine($"not pid 1 but {Environment.ProcessId}");
            return Unexpected;
        }
        // Process's SIGCHLD handling is what reaps every child of pid 1.
        System.Diagnostics.Process.Start("/bin/true")!.WaitForExit();

        using Child forked = Child.Fork(() => 3);
        // The shell ends only once we hold it: one reaped before its pidfd could be opened would
        // come back with its status unknown (the pid1-spawn scenario covers that case).
        string go = Path.Combine(Path.GetTempPath(), $"shm-pid1-{Guid.NewGuid():N}");
        using Child spawned = Child.Spawn("/bin/sh", ["-c", $"while [ ! -e {go} ]; do sleep 0.01; done; exit 4"]);
        File.WriteAllText(go, "");
        // Gone from /proc altogether: the runtime reaped them before any wait of ours.
        bool forkedGone = SpinWait.SpinUntil(() => !Native.Exists(forked.Pid), TimeSpan.FromSeconds(30));
        bool spawnedGone = SpinWait.SpinUntil(() => !Native.Exists(spawned.Pid), TimeSpan.FromSeconds(30));
        forked.TryWait(out ChildExit? a, TimeSpan.FromSeconds(30));
        spawned.TryWait(out ChildExit? b, TimeSpan.FromSeconds(30));
        Console.WriteLine($"reaped by the runtime first: {forkedGone}, {spawnedGone}; forked: {a}; spawned: {b}");

        var group = Children.Fork(3, _ =>
        {
            while (true)
            {
                Thread.SpinWait(1000);
            }
        });
        int[] pids = [.. group.Pids];
        group.Dispose();
        bool allGone = pids.All(pid => Native.WaitGone(pid, TimeSpan.FromSeconds(30)));
        Console.WriteLine($"group terminated: {string.Join(", ", group.Select(child => child.Exit?.ToString() ?? "not ended"))}; all gone: {allGone}");

        File.Delete(go);
        forked.Signal(Native.SIGKILL); // ended and reaped elsewhere: goes nowhere, throws nothing
        return forkedGone && spawnedGone && a is { ExitCode: 3, ReapedElsewhere: true } && b is { ExitCode: 4, ReapedElsewhere: true } &&
            allGone && group.All(child => child.Exit is not null) ? 0 : Unexpected;
    }

    /// <summary>
    /// Run as pid 1, whose runtime reaps every child the moment it exits: spawns /bin/true
    /// <paramref name="count"/> times. No spawn may throw (a program that ran is never an error);
    /// one reaped before its pidfd could be opened comes back ended, status unknown. Then, for such a
    /// child and for one reaped after, gives its pid to a new process (ns_last_pid) and checks that
    /// signalling and disposing the old child leaves the new process alone.
    /// </summary>
    private static int SpawnShortLivedAsPidOne(int count)
    {
        if (Environment.ProcessId != 1)
        {
            Console.WriteLine($"not pid 1 but {Environment.ProcessId}");
            return Unexpected;
        }
        System.Diagnostics.Process.Start("/bin/true")!.WaitForExit(); // from here the runtime reaps every child
        // Threads that keep the CPUs busy: the spawning thread is then often preempted between the
        // spawn and pidfd_open, while the program runs and the runtime reaps it.
        using var stop = new CancellationTokenSource();
        Thread[] spinners = [.. Enumerable.Range(0, Environment.ProcessorCount).Select(_ => new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Thread.SpinWait(1000);
            }
        }) { IsBackground = true })];
        Array.ForEach(spinners, spinner => spinner.Start());
        int thrown = 0, hung = 0, failed = 0, reapedElsewhere = 0, statusUnknown = 0;
        Child? unknown = null, known = null;
        for (int i = 0; i < count; i++)
        {
            try
            {
                Child child = Child.Spawn("/bin/true", []);
                hung += child.TryWait(out ChildExit? exit, TimeSpan.FromSeconds(30)) ? 0 : 1;
                failed += exit is { StatusKnown: true, Succeeded: false } ? 1 : 0;
                reapedElsewhere += exit?.ReapedElsewhere == true ? 1 : 0;
                statusUnknown += exit?.StatusKnown == false ? 1 : 0;
                if (exit?.StatusKnown == false && unknown is null)
                {
                    unknown = child; // kept undisposed for the pid-reuse check
                }
                else if (exit?.StatusKnown == true && known is null)
                {
                    known = child;
                }
                else
                {
                    child.Dispose();
                }
            }
            catch (Exception error)
            {
                thrown++;
                Console.WriteLine($"spawn {i}: {error.GetType().Name}: {error.Message}");
            }
        }
        stop.Cancel();
        Array.ForEach(spinners, spinner => spinner.Join());
        Console.WriteLine($"{count} spawns of /bin/true as pid 1, beside {spinners.Length} spinning threads: {thrown} threw, {hung} hung, {failed} failed; " +
            $"{reapedElsewhere} reaped by the runtime, of which {statusUnknown} before their pidfd could be opened (status unknown)");
        bool spared = SignalsSpareTheNextOwnerOfThePid(known, "reaped after its pidfd was opened") &
            SignalsSpareTheNextOwnerOfThePid(unknown, "reaped before its pidfd could be opened");
        return thrown == 0 && hung == 0 && failed == 0 && spared ? 0 : Unexpected;
    }

    /// <summary>
    /// Makes the kernel give the pid of <paramref name="ended"/> (a child that ended and was reaped by
    /// the runtime) to a new process, then signals and disposes <paramref name="ended"/>: the new
    /// process must be untouched. Nothing to check (true) without such a child.
    /// </summary>
    private static bool SignalsSpareTheNextOwnerOfThePid(Child? ended, string what)
    {
        if (ended is null)
        {
            Console.WriteLine($"no child {what}: nothing to check");
            return true;
        }
        // A thread the runtime starts in between may take the pid first: try a few times.
        System.Diagnostics.Process? sentinel = null;
        for (int attempt = 0; attempt < 10 && sentinel?.Id != ended.Pid; attempt++)
        {
            if (sentinel is not null)
            {
                sentinel.Kill();
                sentinel.WaitForExit();
                sentinel.Dispose();
            }
            File.WriteAllText("/proc/sys/kernel/ns_last_pid", (ended.Pid - 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            sentinel = System.Diagnostics.Process.Start("sleep", "60")!;
        }
        using var _ = sentinel;
        if (sentinel!.Id != ended.Pid)
        {
            Console.WriteLine($"the pid {ended.Pid} went to no new process (got {sentinel.Id}): cannot check");
            sentinel.Kill();
            return false;
        }
        ended.Signal(Native.SIGKILL);
        ended.Signal(Native.SIGTERM);
        ended.Dispose();
        bool alive = Native.IsAlive(sentinel.Id);
        Console.WriteLine($"child {what}: pid {ended.Pid} now names a new process, which after Signal and Dispose is {(alive ? "alive" : "GONE")}");
        sentinel.Kill();
        sentinel.WaitForExit();
        return alive;
    }

    /// <summary>
    /// With no descriptor left for the child's pidfd, Fork must fail with pidfd_open's EMFILE, and
    /// the child it forked must be killed and reaped, not left unowned.
    /// </summary>
    private static unsafe int PidfdUnavailable()
    {
        Child.Fork(() => 0).Dispose(); // the fork machinery's own descriptors are open from here on
        long* saved = stackalloc long[2];
        long* limit = stackalloc long[2];
        if (getrlimit(7 /* RLIMIT_NOFILE */, saved) != 0)
        {
            return Unexpected;
        }
        (limit[0], limit[1]) = (Directory.GetFiles("/proc/self/fd").Length + 16, saved[1]); // the soft limit only
        if (setrlimit(7, limit) != 0)
        {
            return Unexpected;
        }
        var fillers = new List<SafeHandle>();
        while (open("/dev/null", 0) is int fd && fd >= 0)
        {
            fillers.Add(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true)); // until EMFILE: not one descriptor to spare
        }
        ShmException? refused = null;
        try
        {
            Child.Fork(() => 0).Dispose();
        }
        catch (ShmException error) when (error.Syscall == "pidfd_open" && error.Errno == LinuxErrno.EMFILE)
        {
            refused = error;
        }
        fillers.ForEach(filler => filler.Dispose());
        setrlimit(7, saved); // room to look at /proc again
        int unreaped = Native.Children().Length;
        Console.WriteLine($"fork: {refused?.Message ?? "succeeded without a descriptor to spare"}; unreaped children: {unreaped}");
        return refused is not null && unreaped == 0 ? 0 : Unexpected;
    }

    /// <summary>
    /// Attaching the same inherited region twice gives two working regions with their own
    /// descriptors; the inherited descriptor is not passed on to this process's own children.
    /// </summary>
    private static int AttachTwice()
    {
        int inherited = int.Parse(Environment.GetEnvironmentVariable(SharedRegion.InheritedDescriptorsVariable)!, System.Globalization.CultureInfo.InvariantCulture);
        var first = SharedRegion.OpenInherited();
        var second = SharedRegion.OpenInherited();
        first.Write(0, 11);
        second.Write(4, 22);
        bool shared = second.Read<int>(0) == 11 && first.Read<int>(4) == 22;
        first.Dispose();
        second.Dispose();
        bool stillOpen = File.Exists($"/proc/self/fd/{inherited}");
        using Child shell = Child.Spawn("/bin/sh", ["-c", $"test ! -e /proc/self/fd/{inherited}"]);
        bool notPassedOn = shell.TryWait(out ChildExit? exit, TimeSpan.FromSeconds(30)) && exit.Succeeded;
        using var third = SharedRegion.OpenInherited();
        bool stillUsable = third.Read<int>(0) == 11;
        Console.WriteLine($"shared {shared}, inherited fd still open {stillOpen}, not passed on {notPassedOn}, usable again {stillUsable}");
        return shared && stillOpen && notPassedOn && stillUsable ? 0 : Unexpected;
    }

    /// <summary>Creates a named segment and dies by SIGKILL before it can unlink it: the crashed creator the shm tool cleans up after.</summary>
    private static int LeakSegment(string name)
    {
        SharedRegion region = SharedRegion.CreateNamed(name, 4096);
        region.Write(0, 0x4B49_4C4C); // "LLIK"
        Native.Kill(Native.GetPid(), Native.SIGKILL);
        GC.KeepAlive(region);
        return Unexpected;
    }

    private static SharedRegion? s_kept;

    /// <summary>Offsets of the ints in inherited region 0 that <see cref="SegmentUntilSignal"/> and its test share.</summary>
    private const int Ready = 0, HandlerRan = 4, Finish = 8, NameSeen = 12;

    /// <summary>
    /// Sets up as <paramref name="mode"/> says, raises the ready flag in inherited region 0, then waits
    /// until a signal ends it or the test raises the finish flag: then it records whether the name is
    /// still in /dev/shm and exits 42. Modes: "none" (no segment: how the process ends without the
    /// library), "segment" (creates <paramref name="name"/>), "handler+segment" (first registers a
    /// handler of its own for <paramref name="signal"/>, which raises a flag and does not cancel),
    /// "cancel-then-segment" and "segment-then-cancel" (a handler that raises the flag and cancels the
    /// signal, registered before or after the segment is created), "exit" (creates the segment and
    /// returns 0 at once).
    /// </summary>
    private static int SegmentUntilSignal(string mode, string name, int signal)
    {
        using SharedRegion shared = SharedRegion.OpenInherited();
        PosixSignalRegistration? handler = null;
        void Register(bool cancel) => handler = PosixSignalRegistration.Create((PosixSignal)signal, context =>
        {
            shared.Write(HandlerRan, 1);
            context.Cancel = cancel;
        });
        if (mode is "cancel-then-segment" or "handler+segment")
        {
            Register(cancel: mode == "cancel-then-segment");
        }
        s_kept = mode == "none" ? null : SharedRegion.CreateNamed(name, 4096); // never disposed, never collected
        if (mode == "exit")
        {
            return 0;
        }
        if (mode == "segment-then-cancel")
        {
            Register(cancel: true);
        }
        shared.Write(Ready, 1);
        while (shared.Read<int>(Finish) == 0)
        {
            Thread.Sleep(5);
        }
        shared.Write(NameSeen, File.Exists("/dev/shm/" + name) ? 1 : 2);
        handler?.Dispose();
        return 42;
    }

    /// <summary>Opens the channel in inherited region 0 and writes messages 0..N-1 of writer 0 (as ChannelMessages.MessageOf makes them).</summary>
    private static int ChannelWriter(int count)
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        using SharedChannel channel = SharedChannel.Open(region);
        using SharedChannelWriter writer = channel.OpenWriter();
        for (int i = 0; i < count; i++)
        {
            var bytes = new byte[8 + ((i * 37) % 3000)];
            BitConverter.TryWriteBytes(bytes, 0);
            BitConverter.TryWriteBytes(bytes.AsSpan(4), i);
            for (int k = 8; k < bytes.Length; k++)
            {
                bytes[k] = (byte)(i + k);
            }
            writer.Write(bytes);
        }
        return 0;
    }

    /// <summary>
    /// Run as another uid under a hidepid=2 /proc, where process <paramref name="peer"/> is invisible:
    /// inherited region 0 holds three channels of one 4 KiB lane. In the first the peer is the live
    /// reader, in the second a live silent writer, in the third a live reader that reads nothing.
    /// None of them may be taken for dead.
    /// </summary>
    private static int HiddenPeers(int peer)
    {
        bool hidden = !Directory.Exists($"/proc/{peer}") && Native.Kill(peer, 0) != 0 && Marshal.GetLastPInvokeError() == 1 /* EPERM */;
        using SharedRegion region = SharedRegion.OpenInherited();
        long each = SharedChannel.RequiredLength(4096);
        using SharedChannel withReader = SharedChannel.Open(region, 0);
        using SharedChannel withWriter = SharedChannel.Open(region, each);
        using SharedChannel withSilentReader = SharedChannel.Open(region, 2 * each);
        string readerTakenOver = "no";
        try
        {
            withReader.OpenReader().Dispose();
            readerTakenOver = "yes";
        }
        catch (InvalidOperationException)
        {
        }
        string writerSeen;
        using (SharedChannelReader reader = withWriter.OpenReader())
        {
            try
            {
                writerSeen = reader.TryRead(out ReceivedMessage message, TimeSpan.FromMilliseconds(300), CancellationToken.None)
                    ? "a message" : reader.DeadWriters.Count == 0 ? "alive" : "dead";
            }
            catch (ChannelClosedException ended)
            {
                writerSeen = ended.Message;
            }
        }
        string readerSeen;
        using (SharedChannelWriter writer = withSilentReader.OpenWriter())
        {
            try
            {
                while (writer.TryWrite(new byte[500]))
                {
                }
                readerSeen = writer.TryWrite(new byte[500], TimeSpan.FromMilliseconds(300)) ? "read" : "alive";
            }
            catch (ChannelClosedException died)
            {
                readerSeen = died.Message;
            }
        }
        Console.WriteLine($"peer {peer} hidden: {hidden}; its reader place taken over: {readerTakenOver}; its writer: {writerSeen}; its reader: {readerSeen}");
        return hidden && readerTakenOver == "no" && writerSeen == "alive" && readerSeen == "alive" ? 0 : Unexpected;
    }

    private static unsafe long ReapedChildrensMinorFaults()
    {
        long* usage = stackalloc long[18];
        getrusage(-1 /* RUSAGE_CHILDREN */, usage);
        return usage[8]; // ru_minflt, after two timevals (4 longs) and 4 longs
    }

    /// <summary>As uid nobody, opening root's 0600 segment must fail with EACCES.</summary>
    private static int OpenDenied(string name)
    {
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
        {
            return Unexpected;
        }
        try
        {
            SharedRegion.OpenNamed(name).Dispose();
            return Unexpected;
        }
        catch (ShmException denied) when (denied.Syscall == "shm_open" && denied.Errno == LinuxErrno.EACCES)
        {
            return 0;
        }
    }

    private static long TasksOfUser(int uid)
    {
        long tasks = 0;
        foreach (string dir in Directory.GetDirectories("/proc").Where(d => char.IsAsciiDigit(Path.GetFileName(d)[0])))
        {
            try
            {
                string[] status = File.ReadAllLines(Path.Combine(dir, "status"));
                string[] uids = status.First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries);
                if (int.Parse(uids[1], System.Globalization.CultureInfo.InvariantCulture) == uid)
                {
                    tasks += long.Parse(status.First(l => l.StartsWith("Threads:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // the process ended while we looked
            }
        }
        return tasks;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setresuid(int ruid, int euid, int suid);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setresgid(int rgid, int egid, int sgid);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int setrlimit(int resource, long* limit);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int getrlimit(int resource, long* limit);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int getrusage(int who, long* usage);
}
