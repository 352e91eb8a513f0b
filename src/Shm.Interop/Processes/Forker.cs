using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// Forks children that run a managed body and never return into the runtime. One fork at a time
/// per process: the no-GC region and the start handshake page are process-wide.
/// </summary>
internal static unsafe class Forker
{
    /// <summary>Children forked per batch: one handshake slot (an int) each in one page.</summary>
    private const int Slots = 1024;

    /// <summary>Rounds in which some fork overlapped a GC, before giving up (each retries at once).</summary>
    private const int MaxOverlappedRounds = 1000;

    private static readonly Lock Gate = new();
    private static SharedRegion? s_handshake;

    public static Child[] Fork(int count, Func<int, int> body, ForkOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.AllocationBudget, nameof(options.AllocationBudget));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.StartAttempts, nameof(options.StartAttempts));
        ForkSupport.EnsureSupported();
        PrepareBody(body);

        var children = new Child?[count];
        lock (Gate)
        {
            int* slots = HandshakeSlots();
            try
            {
                for (int first = 0; first < count; first += Slots)
                {
                    var pending = new List<int>();
                    for (int i = first; i < Math.Min(count, first + Slots); i++)
                    {
                        pending.Add(i);
                    }
                    int stuckRounds = 0;
                    for (int overlapped = 0; pending.Count > 0;)
                    {
                        List<int> batch = pending;
                        List<int> again = [];
                        ForkThread.Run(() => again = Launch(batch, first, slots, body, children, options));
                        List<int> stuck = AwaitStart(pending.Except(again).ToList(), first, slots, children, options);
                        stuckRounds += stuck.Count > 0 ? 1 : 0;
                        overlapped += again.Count > 0 ? 1 : 0;
                        if (stuckRounds >= options.StartAttempts || overlapped > MaxOverlappedRounds)
                        {
                            throw new TimeoutException(stuck.Count > 0
                                ? $"Forked child {stuck[0]} did not start within {options.StartTimeout.TotalSeconds:0.#} s, {options.StartAttempts} times; it was killed and reaped."
                                : $"Other threads allocate so fast that no fork of child {again[0]} could be kept clear of a garbage collection.");
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
    /// Forks each pending index with every signal blocked, inside an unbroken no-GC region. Runs on
    /// <see cref="ForkThread"/>. Returns the indices whose fork a GC may have overlapped: those
    /// children were killed and reaped, and are forked again.
    /// </summary>
    private static List<int> Launch(List<int> pending, int first, int* slots, Func<int, int> body, Child?[] children, ForkOptions options)
    {
        foreach (int index in pending)
        {
            Volatile.Write(ref slots[index - first], 0);
        }
        int parent = Libc.getpid();
        int* pids = stackalloc int[pending.Count];
        bool* unsafeFork = stackalloc bool[pending.Count];
        int forked = 0;
        int error = 0;
        Libc.SigSet all, old;
        Libc.sigfillset(&all);
        var window = new NoGcWindow(options.AllocationBudget);
        Libc.pthread_sigmask(Libc.SIG_BLOCK, &all, &old);
        try
        {
            for (; forked < pending.Count; forked++)
            {
                window.EnsureRoom();
                int pid = ForkOne(body, pending[forked], &slots[pending[forked] - first], parent, &old);
                if (pid < 0)
                {
                    error = Marshal.GetLastPInvokeError();
                    break;
                }
                pids[forked] = pid;
                unsafeFork[forked] = !window.Unbroken;
            }
        }
        finally
        {
            Libc.pthread_sigmask(Libc.SIG_SETMASK, &old, null);
            window.Close();
        }
        var again = new List<int>();
        for (int k = 0; k < forked; k++)
        {
            var child = new Child(pids[k], options.TerminateGracePeriod);
            if (unsafeFork[k])
            {
                child.KillAndReap();
                again.Add(pending[k]);
            }
            else
            {
                children[pending[k]] = child;
            }
        }
        if (forked < pending.Count)
        {
            throw new ShmException("fork", error, $"child {pending[forked]}");
        }
        return again;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ForkOne(Func<int, int> body, int index, int* started, int parent, Libc.SigSet* mask)
    {
        int pid = Libc.fork();
        if (pid == 0)
        {
            ChildEntry.Run(body, index, started, parent, mask, rehearsal: false); // ends in _exit
        }
        return pid;
    }

    /// <summary>Waits for each child to report; kills and reaps those that did not, and returns them for another try.</summary>
    private static List<int> AwaitStart(List<int> pending, int first, int* slots, Child?[] children, ForkOptions options)
    {
        long deadline = Child.Deadline(options.StartTimeout);
        var stuck = new List<int>();
        foreach (int index in pending)
        {
            int* slot = &slots[index - first];
            while (Volatile.Read(ref *slot) == 0)
            {
                long remaining = deadline - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    break;
                }
                long nanoseconds = (long)(remaining * (1e9 / Stopwatch.Frequency));
                Libc.TimeSpec timeout = new() { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
                Libc.syscall(Libc.SYS_futex, (nint)slot, Libc.FUTEX_WAIT, 0, (nint)(&timeout), 0, 0);
            }
            if (Volatile.Read(ref *slot) == 0)
            {
                children[index]!.KillAndReap();
                stuck.Add(index);
                children[index] = null;
            }
        }
        return stuck;
    }

    private static int* HandshakeSlots()
    {
        if (s_handshake is null)
        {
            // Named, so the page never counts among the user's anonymous regions in /proc/self/maps.
            s_handshake = SharedRegion.CreateMemfd("shm-fork-handshake", Slots * sizeof(int));
            Rehearse();
        }
        return (int*)s_handshake.Address;
    }

    /// <summary>Compiles and runs the child's path once in the parent, and binds every libc call it makes.</summary>
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
        foreach (MethodInfo method in typeof(ChildEntry).GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        {
            RuntimeHelpers.PrepareMethod(method.MethodHandle);
        }
        RuntimeHelpers.PrepareMethod(typeof(Forker).GetMethod(nameof(ForkOne), BindingFlags.Static | BindingFlags.NonPublic)!.MethodHandle);

        int started = 0;
        Libc.SigSet current;
        Libc.pthread_sigmask(Libc.SIG_BLOCK, null, &current);
        ChildEntry.Run(static index => index, 0, &started, Libc.getpid(), &current, rehearsal: true);
        ChildEntry.Run(static _ => throw new InvalidOperationException("rehearsal"), 0, &started, Libc.getpid(), &current, rehearsal: true);
    }

    private static void PrepareBody(Delegate body)
    {
        // Best effort: compiles the body's own method now. What it calls compiles in the child,
        // which W^X off and tiered compilation off make sound (see ForkSupport).
        try
        {
            if (!body.Method.ContainsGenericParameters)
            {
                RuntimeHelpers.PrepareMethod(body.Method.MethodHandle);
            }
        }
        catch (ArgumentException)
        {
            // Dynamic methods and some generic instantiations cannot be prepared ahead; they compile on first call.
        }
    }
}
