using System;
using System.Runtime.CompilerServices;
using System.Text;

namespace Shm.Interop;

/// <summary>
/// What a forked child runs, from the return of fork to _exit. The parent rehearses this exact
/// path once (with the harmful calls skipped) so that, in the child, nothing is compiled, bound or
/// initialised for the first time: those steps take runtime locks that another thread of the
/// parent may have held at the instant of the fork, and in the child nobody would ever release them.
/// Whatever the body does, the child ends in <c>_exit</c>: it never returns into the parent's frames.
/// </summary>
internal static unsafe class ChildEntry
{
    /// <summary>Larger than the GC's allocation quantum (8 KB), so allocating it takes the allocator's lock.</summary>
    private const int AllocatorProbeBytes = 32 * 1024;

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Run(Func<int, int> body, int index, int* slot, int* reports, int parent, Libc.SigSet* mask, bool probe, bool rehearsal)
    {
        int code = Child.FailedBodyExitCode;
        try
        {
            if (!rehearsal)
            {
                ForkedChild.Mark();
            }
            ResetSignals(rehearsal);
            SetDeathSignal(parent, rehearsal);
            Libc.pthread_sigmask(Libc.SIG_SETMASK, mask, null);
            ProbeAllocator();
            if (probe && !rehearsal)
            {
                RuntimeLockProbe.Run();
            }
            ForkHandshake.Report(slot, reports);
            ForkHandshake.AwaitGo(slot);
            code = ExitCode(body(index), rehearsal);
        }
        catch (Exception exception)
        {
            code = Child.FailedBodyExitCode;
            PrintUnhandled(exception, rehearsal); // if even this throws, the finally still ends the process
        }
        finally
        {
            if (!rehearsal)
            {
                Libc._exit(code);
            }
        }
    }

    // The runtime's handlers for SIGTERM, SIGINT, SIGCHLD... hand the signal to a thread that only
    // the parent has, through a pipe the child shares: a SIGTERM sent to the child would stop the
    // parent. Hardware faults stay with the runtime, which turns them into exceptions on this thread.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ResetSignals(bool rehearsal)
    {
        for (int signal = 1; signal <= Libc.SIGSYS; signal++)
        {
            if (rehearsal || signal is Libc.SIGKILL or Libc.SIGSTOP or Libc.SIGSEGV or Libc.SIGBUS or Libc.SIGFPE or Libc.SIGILL or Libc.SIGTRAP)
            {
                continue;
            }
            if (Libc.signal(signal, Libc.SIG_DFL) == Libc.SIG_IGN)
            {
                Libc.signal(signal, Libc.SIG_IGN); // keep what the parent ignores ignored, as exec would
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SetDeathSignal(int parent, bool rehearsal)
    {
        if (rehearsal)
        {
            int current;
            Libc.prctl(Libc.PR_GET_PDEATHSIG, (nuint)(&current), 0, 0, 0);
            Libc.getppid();
            return;
        }
        Libc.prctl(Libc.PR_SET_PDEATHSIG, Libc.SIGKILL, 0, 0, 0);
        if (Libc.getppid() != parent)
        {
            Libc._exit(Child.FailedBodyExitCode); // the parent died before the death signal was armed
        }
    }

    // Another parent thread may have held the GC's allocation lock at the instant of the fork. That
    // thread does not exist here, so the first allocation that needs the lock would wait for ever.
    // Taking it once before reporting turns that hang into a failed start, which the parent kills
    // and forks again; once taken here, nobody else can hold it in this process.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ProbeAllocator() => GC.KeepAlive(new byte[AllocatorProbeBytes]);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ExitCode(int code, bool rehearsal)
    {
        if (code is >= 0 and <= 255)
        {
            return code;
        }
        // The kernel keeps only the low 8 bits: 256 would read as a success.
        Print($"Forked child {Libc.getpid()}: the body returned {code}; an exit status is 0 to 255.\n", rehearsal);
        return Child.FailedBodyExitCode;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void PrintUnhandled(Exception exception, bool rehearsal)
    {
        string text;
        try
        {
            text = $"Unhandled exception in forked child {Libc.getpid()}: {exception.GetType().FullName}: {exception.Message}\n";
        }
        catch (Exception)
        {
            text = $"Unhandled exception in forked child {Libc.getpid()} (its message could not be read).\n";
        }
        Print(text, rehearsal);
    }

    // Console takes locks another parent thread may have held at the fork: write(2) directly.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Print(string text, bool rehearsal)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        fixed (byte* start = bytes)
        {
            Libc.write(2, start, rehearsal ? 0 : (nuint)bytes.Length);
        }
    }
}
