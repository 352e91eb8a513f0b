using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
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
        _ => Unexpected,
    };

    /// <summary>
    /// Attaches inherited region 0 and fills it using the thread pool and tasks (what a forked child
    /// may not do), then records how many memfd descriptors this process holds.
    /// </summary>
    private static int Attach(int value)
    {
        using SharedRegion region = SharedRegion.AttachInherited();
        Span<int> ints = region.AsSpan<int>();
        int count = ints.Length - 1;
        int[] filled = new int[count];
        Parallel.For(0, count, i => filled[i] = value + i);
        Task.Run(() => filled.CopyTo(region.AsSpan<int>()[1..])).Wait();
        ints[0] = Directory.GetFiles("/proc/self/fd").Count(fd => new FileInfo(fd).LinkTarget?.StartsWith("/memfd:", StringComparison.Ordinal) == true);
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
        using SharedRegion pids = SharedRegion.Anonymous(4096);
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
        SharedRegion region = SharedRegion.AttachInherited();
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

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int getrusage(int who, long* usage);
}
