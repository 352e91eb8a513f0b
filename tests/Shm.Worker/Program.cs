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
        "emfile" => PidfdUnavailable(),
        "attach-twice" => AttachTwice(),
        "leak-segment" => LeakSegment(args[1]),
        "channel-writer" => ChannelWriter(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "hidden-peers" => HiddenPeers(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
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
        catch (ShmException error) when (error.Syscall == "fork" && error.Errno == Errno.EAGAIN)
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
        using Child spawned = Child.Spawn("/bin/sh", ["-c", "exit 4"]);
        // Gone from /proc altogether: the runtime reaped them before any wait of ours.
        bool forkedGone = SpinWait.SpinUntil(() => !Native.Exists(forked.Pid), TimeSpan.FromSeconds(30));
        bool spawnedGone = SpinWait.SpinUntil(() => !Native.Exists(spawned.Pid), TimeSpan.FromSeconds(30));
        ChildExit? a = forked.Wait(TimeSpan.FromSeconds(30));
        ChildExit? b = spawned.Wait(TimeSpan.FromSeconds(30));
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

        forked.Signal(Native.SIGKILL); // ended and reaped elsewhere: goes nowhere, throws nothing
        return forkedGone && spawnedGone && a is { ExitCode: 3, ReapedElsewhere: true } && b is { ExitCode: 4, ReapedElsewhere: true } &&
            allGone && group.All(child => child.Exit is not null) ? 0 : Unexpected;
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
        catch (ShmException error) when (error.Syscall == "pidfd_open" && error.Errno == Errno.EMFILE)
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
        bool notPassedOn = shell.Wait(TimeSpan.FromSeconds(30))?.Succeeded == true;
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

    /// <summary>Opens the channel in inherited region 0 and writes messages 0..N-1 of writer 0 (as ChannelTests.MessageOf makes them).</summary>
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
                readerSeen = writer.Write(new byte[500], TimeSpan.FromMilliseconds(300), CancellationToken.None) ? "read" : "alive";
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
        catch (ShmException denied) when (denied.Syscall == "shm_open" && denied.Errno == Errno.EACCES)
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
