using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A child process this process owns: forked to run a body (<see cref="Fork(Func{int}, ForkOptions?)"/>)
/// or spawned to run a program (<see cref="Spawn"/>). Disposing a child that is still running sends
/// SIGTERM, waits a grace period, sends SIGKILL, and always reaps it: no zombie and no orphan outlives
/// the object. A child whose owner is forgotten is killed and reaped when the object is collected.
/// </summary>
/// <remarks>
/// <para>A forked child runs its body in a copy of this process with one thread. It
/// may read and write shared regions, compute, allocate up to <see cref="ForkOptions.AllocationBudget"/>,
/// throw and catch, and call libc. It must not start tasks or threads, use the thread pool, take locks
/// other threads may have held (including <see cref="Console"/>'s), or wait for other threads: they
/// do not exist in the child. It ends with <c>_exit</c>: no finalizer, <c>ProcessExit</c> handler or
/// <c>atexit</c> runs, and the parent's regions are not unmapped by the child's objects. For anything
/// else, spawn a fresh process.</para>
/// <para>Fork needs the runtime configured for it (see <see cref="ForkSupport"/>); spawn does not.</para>
/// </remarks>
public sealed partial class Child : IDisposable
{
    /// <summary>The exit status of a forked child whose body threw (its message goes to stderr): 70, EX_SOFTWARE.</summary>
    public const int UnhandledExceptionExitCode = 70;

    private readonly SafeChildHandle _handle;
    private readonly TimeSpan _grace;
    private readonly Lock _gate = new();
    private ChildExit? _exit;
    private volatile bool _disposed;

    internal Child(int pid, TimeSpan grace)
    {
        // A pidfd lets waits time out without polling; it cannot outlive the pid's reuse.
        int pidfd = (int)Libc.syscall(Libc.SYS_pidfd_open, pid, 0, 0, 0, 0, 0);
        _handle = new SafeChildHandle(pid, pidfd);
        _grace = grace;
    }

    /// <summary>The child's process id.</summary>
    public int Pid => _handle.Pid;

    /// <summary>How the child ended if it was reaped already, else null (does not block).</summary>
    public ChildExit? Exit
    {
        get
        {
            lock (_gate)
            {
                return _exit ?? Reap(Libc.WNOHANG);
            }
        }
    }

    /// <summary>Forks a child that runs <paramref name="body"/> and exits with its return value (0 to 255).</summary>
    /// <param name="body">The child's work; see the remarks on <see cref="Child"/> for what it may do.</param>
    /// <param name="options">Tuning; <see cref="ForkOptions.Default"/> if null.</param>
    /// <exception cref="NotSupportedException">The runtime is not configured for fork; the message names the fix.</exception>
    /// <exception cref="ShmException"><c>fork</c> failed (e.g. EAGAIN over RLIMIT_NPROC).</exception>
    /// <exception cref="TimeoutException">The child did not start after every attempt.</exception>
    public static Child Fork(Func<int> body, ForkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Forker.Fork(1, _ => body(), options ?? ForkOptions.Default)[0];
    }

    /// <summary>Waits for the child to end and reaps it.</summary>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    public ChildExit Wait() => Wait(Timeout.InfiniteTimeSpan)!;

    /// <summary>Waits up to <paramref name="timeout"/> for the child to end; null if it is still running.</summary>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    public ChildExit? Wait(TimeSpan timeout) => WaitUntil(Deadline(timeout));

    /// <summary>Waits until <paramref name="deadline"/> (a <see cref="Deadline"/>); null if the child still runs then.</summary>
    internal ChildExit? WaitUntil(long deadline) => WaitUntil(deadline, CancellationToken.None);

    /// <summary>Waits for the child to end without blocking the caller's thread.</summary>
    /// <param name="cancellationToken">Stops waiting (the child keeps running).</param>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    public Task<ChildExit> WaitAsync(CancellationToken cancellationToken = default) =>
        Task.Factory.StartNew(
            () => WaitUntil(long.MaxValue, cancellationToken)!,
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

    /// <summary>Sends <paramref name="signal"/> to the child (nothing if it was reaped already).</summary>
    /// <param name="signal">A signal number, e.g. 15 for SIGTERM.</param>
    /// <exception cref="ShmException"><c>kill</c> failed.</exception>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    public void Signal(int signal)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            // Until it is reaped the pid cannot be reused, so this reaches our child and no other.
            if (_exit is null && Libc.kill(Pid, signal) != 0)
            {
                throw ShmException.FromLastError("kill", $"pid {Pid}");
            }
        }
    }

    /// <summary>Ends the child if it still runs (SIGTERM, the grace period, SIGKILL) and reaps it. Twice does nothing.</summary>
    public void Dispose() => TerminateAll([this]);

    /// <summary>Terminates several children together, so their grace periods overlap.</summary>
    internal static void TerminateAll(IEnumerable<Child?> children)
    {
        var running = new List<Child>();
        foreach (Child? child in children)
        {
            if (child is not null && !child._disposed)
            {
                child._disposed = true;
                if (child.Exit is null)
                {
                    Libc.kill(child.Pid, Libc.SIGTERM);
                    running.Add(child);
                }
                else
                {
                    child._handle.Dispose();
                }
            }
        }
        foreach (Child child in running)
        {
            if (child.WaitUntil(Deadline(child._grace), CancellationToken.None, ignoreDisposed: true) is null)
            {
                child.KillAndReap();
            }
            child._handle.Dispose();
        }
    }

    /// <summary>SIGKILL and a blocking reap, for a child that must go now.</summary>
    internal void KillAndReap()
    {
        lock (_gate)
        {
            if (_exit is null)
            {
                Libc.kill(Pid, Libc.SIGKILL);
                Reap(0);
            }
        }
        _disposed = true;
        _handle.Dispose();
    }

    private unsafe ChildExit? WaitUntil(long deadline, CancellationToken cancellationToken, bool ignoreDisposed = false)
    {
        if (!ignoreDisposed)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            int pidfd = (int)_handle.DangerousGetHandle();
            while (true)
            {
                if (Exit is ChildExit exit)
                {
                    return exit;
                }
                long remaining = deadline == long.MaxValue ? long.MaxValue : deadline - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    return null;
                }
                // Wake at least every 100 ms to observe cancellation.
                int milliseconds = (int)Math.Min(cancellationToken.CanBeCanceled ? 100 : int.MaxValue, remaining * 1000 / Stopwatch.Frequency + 1);
                cancellationToken.ThrowIfCancellationRequested();
                if (pidfd >= 0)
                {
                    Libc.PollFd poll = new() { Fd = pidfd, Events = Libc.POLLIN };
                    Libc.poll(&poll, 1, deadline == long.MaxValue && !cancellationToken.CanBeCanceled ? -1 : milliseconds);
                }
                else
                {
                    Thread.Sleep(Math.Min(milliseconds, 10)); // no pidfd (Linux before 5.3): poll waitpid
                }
            }
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// <c>waitpid</c> with <paramref name="options"/> (0 blocks, WNOHANG does not): records how the
    /// child ended and returns it, or null if it still runs. Call under <see cref="_gate"/>.
    /// </summary>
    private unsafe ChildExit? Reap(int options)
    {
        int status;
        int result;
        while ((result = Libc.waitpid(Pid, &status, options)) < 0)
        {
            if (Marshal.GetLastPInvokeError() != Errno.EINTR)
            {
                throw ShmException.FromLastError("waitpid", $"pid {Pid}");
            }
        }
        if (result != Pid)
        {
            return null;
        }
        _handle.Reaped = true;
        return _exit = ChildExit.FromStatus(Pid, status);
    }

    /// <summary>The <see cref="Stopwatch"/> timestamp <paramref name="timeout"/> from now; <see cref="long.MaxValue"/> for ever.</summary>
    internal static long Deadline(TimeSpan timeout) =>
        timeout == Timeout.InfiniteTimeSpan
            ? long.MaxValue
            : Stopwatch.GetTimestamp() + (long)(Math.Max(0, timeout.TotalSeconds) * Stopwatch.Frequency);

    /// <inheritdoc/>
    public override string ToString() => $"child {Pid} ({(_exit is null ? "running or unreaped" : _exit.ToString())})";
}
