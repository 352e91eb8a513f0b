using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// Forks children that run a managed body and never return into the runtime. One fork at a time
/// per process: the no-GC region and the handshake page are process-wide.
/// </summary>
/// <remarks>
/// Each child reports through <see cref="ForkHandshake"/> before it runs its body. A child that
/// cannot report (it inherited a lock another parent thread held at the instant of the fork) shows
/// itself in milliseconds (<see cref="StartPhase"/>): it is killed and forked again; no user code ran in it.
/// </remarks>
internal static unsafe class Forker
{
    private const int Slots = ForkHandshake.Slots;

    /// <summary>Rounds in which some fork overlapped a GC, before giving up (each retries at once).</summary>
    private const int MaxOverlappedRounds = 1000;

    private static readonly Lock Gate = new();

    /// <summary>
    /// Forks <paramref name="count"/> children that run <paramref name="body"/>; <paramref name="userBody"/>
    /// is the delegate the caller passed, whose code is compiled in the parent first.
    /// </summary>
    public static Child[] Fork(int count, Delegate userBody, Func<int, int> body, ForkOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.AllocationBudget, nameof(options.AllocationBudget));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.StartAttempts, nameof(options.StartAttempts));
        if (ForkedChild.IsThisProcess)
        {
            throw new InvalidOperationException(
                "This process is a forked child: it cannot fork (the parent's fork thread and locks do not exist here). " +
                "Fork every child from the parent, or start a fresh process with Child.Spawn.");
        }
        ForkSupport.EnsureSupported();
        BodyPreparer.Prepare(userBody);
        if (!ReferenceEquals(userBody, body))
        {
            BodyPreparer.Prepare(body);
        }

        var children = new Child?[count];
        lock (Gate)
        {
            int* page = ForkHandshake.Page(out bool created);
            if (created)
            {
                Rehearse();
            }
            try
            {
                for (int first = 0; first < count; first += Slots)
                {
                    int end = Math.Min(count, first + Slots);
                    var attempts = new int[end - first];
                    List<int> pending = Enumerable.Range(first, end - first).ToList();
                    for (int overlappedRounds = 0; pending.Count > 0;)
                    {
                        List<int> batch = pending;
                        List<int> again = [];
                        int firstOfBatch = first;
                        ForkThread.Run(() => again = Launch(batch, firstOfBatch, page, body, children, options));
                        List<int> stuck = AwaitStart([.. batch.Except(again)], first, page, children, options);
                        foreach (int index in stuck)
                        {
                            if (++attempts[index - first] >= options.StartAttempts)
                            {
                                throw new TimeoutException(
                                    $"Forked child {index} could not start {options.StartAttempts} times: each time it inherited a runtime lock that another " +
                                    "thread of this process held at the instant of the fork (it was killed and reaped before running any code of yours). " +
                                    "Other threads are compiling, loading types or allocating without pause; retry, raise ForkOptions.StartAttempts, " +
                                    "publish with NativeAOT, or use Child.Spawn.");
                            }
                        }
                        if (again.Count > 0 && ++overlappedRounds > MaxOverlappedRounds)
                        {
                            throw new TimeoutException($"Other threads allocate so fast that no fork of child {again[0]} could be kept clear of a garbage collection.");
                        }
                        pending = [.. again, .. stuck];
                        ForkSupport.CountRetries(pending.Count);
                    }
                }
            }
            catch
            {
                Child.TerminateAll(children);
                throw;
            }
        }
        return children!;
    }

    /// <summary>
    /// Forks each pending index with every signal blocked, inside an unbroken no-GC region, and takes
    /// each child's pidfd at once. Runs on <see cref="ForkThread"/>. Each child is in
    /// <paramref name="children"/> as soon as it exists, so a failure part-way leaves none untracked.
    /// Returns the indices whose fork a GC may have overlapped: those children were killed and reaped
    /// before running any user code, and are forked again.
    /// </summary>
    private static List<int> Launch(List<int> pending, int first, int* page, Func<int, int> body, Child?[] children, ForkOptions options)
    {
        foreach (int index in pending)
        {
            Volatile.Write(ref page[index - first], 0);
        }
        int parent = Libc.getpid();
        ulong uncountedHandlers = DeadlockWatch.UncountedHandlers(); // what every child of this batch inherits
        var again = new List<int>();
        Libc.SigSet all, old;
        Libc.sigfillset(&all);
        var window = new NoGcWindow(options.AllocationBudget);
        Libc.pthread_sigmask(Libc.SIG_BLOCK, &all, &old);
        try
        {
            foreach (int index in pending)
            {
                window.EnsureRoom();
                int* slot = &page[index - first];
                int pid = Libc.CheckIo(ForkOne(body, index, slot, ForkHandshake.Reports(page), parent, &old, options.ProbeRuntimeLocks), "fork", $"child {index}");
                bool overlapped = !window.Unbroken;
                Child child = Child.AdoptForked(pid, options, index, uncountedHandlers);
                if (overlapped)
                {
                    child.Discard();
                    again.Add(index);
                    continue;
                }
                children[index] = child;
            }
        }
        finally
        {
            Libc.pthread_sigmask(Libc.SIG_SETMASK, &old, null);
            window.Close();
        }
        return again;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ForkOne(Func<int, int> body, int index, int* slot, int* reports, int parent, Libc.SigSet* mask, bool probe)
    {
        int pid = Libc.fork();
        if (pid == 0)
        {
            ChildEntry.Run(body, index, slot, reports, parent, mask, probe, rehearsal: false); // ends in _exit
        }
        return pid;
    }

    /// <summary>
    /// Waits for each child to report, and lets it run. A child that cannot (<see cref="StartPhase.CannotStart"/>,
    /// it died, or <see cref="ForkOptions.StartTimeout"/> passed) is killed and reaped, and returned for another try.
    /// </summary>
    private static List<int> AwaitStart(List<int> pending, int first, int* page, Child?[] children, ForkOptions options)
    {
        var stuck = new List<int>();
        int* reports = ForkHandshake.Reports(page);
        Deadline deadline = Deadline.After(options.StartTimeout);
        TimeSpan pause = TimeSpan.FromMicroseconds(500);
        while (true)
        {
            int seen = Volatile.Read(ref *reports);
            pending.RemoveAll(index => ForkHandshake.LetRun(&page[index - first]));
            if (pending.Count == 0)
            {
                return stuck;
            }
            ForkHandshake.AwaitReport(reports, seen, pause);
            pause = TimeSpan.FromTicks(Math.Min(2 * pause.Ticks, TimeSpan.TicksPerMillisecond * 16));
            bool late = deadline.HasPassed;
            pending.RemoveAll(index =>
            {
                if (ForkHandshake.LetRun(&page[index - first]))
                {
                    return true;
                }
                Child child = children[index]!;
                bool cannotStart = StartPhase.CannotStart(child.Sample()); // unreadable (no descriptor to spare, say): only the clock decides
                if (!late && !cannotStart && child.TryReap() is null)
                {
                    return false;
                }
                child.Discard();
                children[index] = null;
                stuck.Add(index);
                return true;
            });
        }
    }

    /// <summary>
    /// Compiles and runs the child's path once in the parent (with the harmful calls skipped) and
    /// binds every libc call it makes, so that in the child nothing on that path is compiled, bound or
    /// initialised for the first time. <see cref="RuntimeLockProbe"/> alone stays untouched: every
    /// child must compile it afresh.
    /// </summary>
    private static void Rehearse()
    {
        foreach (MethodInfo method in typeof(Libc).GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        {
            if ((method.Attributes & MethodAttributes.PinvokeImpl) != 0)
            {
                Marshal.Prelink(method);
            }
            else if (!method.ContainsGenericParameters)
            {
                RuntimeHelpers.PrepareMethod(method.MethodHandle);
            }
        }
        PrepareAll(typeof(ChildEntry));
        PrepareAll(typeof(ForkHandshake));
        PrepareAll(typeof(ForkedChild));
        RuntimeHelpers.PrepareMethod(typeof(Forker).GetMethod(nameof(ForkOne), BindingFlags.Static | BindingFlags.NonPublic)!.MethodHandle);

        int slot = ForkHandshake.Go;
        int reports = 0;
        Libc.SigSet current;
        Libc.pthread_sigmask(Libc.SIG_BLOCK, null, &current);
        ChildEntry.Run(static index => index, 0, &slot, &reports, Libc.getpid(), &current, probe: false, rehearsal: true);
        ChildEntry.Run(static _ => 256, 0, &slot, &reports, Libc.getpid(), &current, probe: false, rehearsal: true);
        ChildEntry.Run(static _ => throw new InvalidOperationException("rehearsal"), 0, &slot, &reports, Libc.getpid(), &current, probe: false, rehearsal: true);
    }

    private static void PrepareAll([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods)] Type type)
    {
        foreach (MethodInfo method in type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        {
            RuntimeHelpers.PrepareMethod(method.MethodHandle);
        }
    }
}
