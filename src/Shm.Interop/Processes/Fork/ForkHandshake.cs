using System;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// Both halves of the start handshake between the parent and a forked child. Each child of a batch
/// has one int in a shared page, and the page ends with a report counter. The child sets
/// <see cref="Started"/> once it has taken, once, the runtime locks its body is likely to need
/// (<see cref="RuntimeLockProbe"/>), and bumps the counter; the parent, which took the child's pidfd
/// right after the fork, answers with <see cref="Go"/>, and only then does the child run its body.
/// So the child cannot end (and be reaped by anyone) before the parent can name it, and a child the
/// parent gives up on has run no user code.
/// </summary>
/// <remarks>
/// The words are shared futexes (no FUTEX_PRIVATE_FLAG), so a child waiting for <see cref="Go"/> is
/// never taken for one stuck on a runtime lock, which waits on a private one. The child's half runs
/// in the forked child: the parent runs it once first (<see cref="Forker"/>'s rehearsal).
/// </remarks>
internal static unsafe class ForkHandshake
{
    /// <summary>Children forked per batch: one handshake int each, and the report counter after them.</summary>
    public const int Slots = 1024;

    /// <summary>Set by the child in its slot: it took the runtime's locks and is about to wait for <see cref="Go"/>.</summary>
    public const int Started = 1;

    /// <summary>Set by the parent in a child's slot once it saw <see cref="Started"/>: the body may run.</summary>
    public const int Go = 2;

    private static SharedRegion? s_page;

    /// <summary>
    /// The parent's page, made on first use (then <paramref name="created"/>). A memfd, so it never
    /// counts among the user's anonymous regions in <c>/proc/self/maps</c>. Call under the fork lock.
    /// </summary>
    public static int* Page(out bool created)
    {
        created = s_page is null;
        s_page ??= SharedRegion.CreateMemfd("shm-fork-handshake", (Slots + 1) * sizeof(int));
        return (int*)s_page.DangerousGetAddress();
    }

    /// <summary>The report counter at the end of <paramref name="page"/>.</summary>
    public static int* Reports(int* page) => &page[Slots];

    /// <summary>Parent: sleeps until a child reports (the counter moves from <paramref name="seen"/>) or <paramref name="pause"/> passes.</summary>
    public static void AwaitReport(int* reports, int seen, TimeSpan pause)
    {
        Libc.TimeSpec until = Deadline.After(pause).ToTimeSpec(Libc.CLOCK_MONOTONIC);
        Libc.FutexWait(reports, seen, &until);
    }

    /// <summary>Parent: if the child reported, gives it <see cref="Go"/> and returns true. Until then it runs no user code, so killing it is always safe.</summary>
    public static bool LetRun(int* slot)
    {
        if ((Volatile.Read(ref *slot) & Started) == 0)
        {
            return false;
        }
        Interlocked.Or(ref *slot, Go);
        Libc.FutexWake(slot, int.MaxValue);
        return true;
    }

    /// <summary>Child: says it started.</summary>
    public static void Report(int* slot, int* reports)
    {
        Interlocked.Or(ref *slot, Started);
        Interlocked.Increment(ref *reports);
        Libc.FutexWake(reports, int.MaxValue);
    }

    /// <summary>Child: waits, without a timeout, for the parent's <see cref="Go"/>.</summary>
    public static void AwaitGo(int* slot)
    {
        int value;
        while (((value = Volatile.Read(ref *slot)) & Go) == 0)
        {
            Libc.FutexWait(slot, value, null); // shared, so never mistaken for a deadlock
        }
    }
}
