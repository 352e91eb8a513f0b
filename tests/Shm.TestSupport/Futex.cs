using System;
using System.Runtime.InteropServices;

namespace Shm.TestSupport;

/// <summary>
/// Raw futex and thread calls, to put a forked child into exactly the states the deadlock detector
/// must tell apart: an untimed wait on a private futex (nothing can wake it), a timed one, a wait on
/// a shared futex, a sleep, a second thread.
/// </summary>
public static unsafe partial class Futex
{
    private const int FutexWait = 0;
    private const int FutexWake = 1;
    private const int FutexPrivateFlag = 128;
    private static readonly long SysFutex = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 98 : 202;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, nint a1, nint a2, nint a3, nint a4, nint a5, nint a6);

    [LibraryImport("libc", EntryPoint = "nanosleep", SetLastError = true)]
    private static partial int NanoSleep(long* request, long* remaining);

    [LibraryImport("libc", EntryPoint = "pthread_create")]
    private static partial int PthreadCreate(nint* thread, nint attributes, nint start, nint argument);

    /// <summary>Waits on <paramref name="word"/> while it holds <paramref name="expected"/>: private, with no timeout.</summary>
    public static void WaitPrivateForever(int* word, int expected) =>
        Syscall(SysFutex, (nint)word, FutexWait | FutexPrivateFlag, expected, 0, 0, 0);

    /// <summary>The same wait, bounded by <paramref name="timeout"/>.</summary>
    public static void WaitPrivate(int* word, int expected, TimeSpan timeout)
    {
        long* spec = stackalloc long[2] { (long)timeout.TotalSeconds, (long)(timeout.Ticks % TimeSpan.TicksPerSecond * 100) };
        Syscall(SysFutex, (nint)word, FutexWait | FutexPrivateFlag, expected, (nint)spec, 0, 0);
    }

    /// <summary>Waits on <paramref name="word"/> (in shared memory) as any process may wake it: shared, with no timeout.</summary>
    public static void WaitSharedForever(int* word, int expected) =>
        Syscall(SysFutex, (nint)word, FutexWait, expected, 0, 0, 0);

    /// <summary>Wakes every waiter on the shared futex <paramref name="word"/>.</summary>
    public static void WakeShared(int* word) => Syscall(SysFutex, (nint)word, FutexWake, int.MaxValue, 0, 0, 0);

    /// <summary>Sleeps in nanosleep.</summary>
    public static void Sleep(TimeSpan duration)
    {
        long* spec = stackalloc long[2] { (long)duration.TotalSeconds, (long)(duration.Ticks % TimeSpan.TicksPerSecond * 100) };
        NanoSleep(spec, null);
    }

    /// <summary>Starts a native thread that sleeps in pause(2) for ever: no managed code, no runtime lock.</summary>
    public static void StartPausingThread()
    {
        nint pause = NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "pause");
        nint thread;
        if (PthreadCreate(&thread, 0, pause, 0) != 0)
        {
            throw new InvalidOperationException("pthread_create failed");
        }
    }
}
