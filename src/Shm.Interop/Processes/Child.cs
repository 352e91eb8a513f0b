using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A child process this process owns: forked to run a body (<see cref="Fork(Func{int}, ForkOptions?)"/>)
/// or spawned to run a program (<see cref="Spawn(string, IEnumerable{string}, SharedRegion[])"/>). Disposing a child that is still running sends
/// SIGTERM, waits a grace period, sends SIGKILL, and always reaps it: no zombie and no orphan outlives
/// the object. A child whose owner is forgotten is killed and reaped when the object is collected.
/// </summary>
/// <remarks>
/// <para>A forked child runs its body in a copy of this process with one thread. It may read and write
/// shared regions, compute, allocate up to <see cref="ForkOptions.AllocationBudget"/>, throw and
/// catch, and call libc. It must not start tasks or threads, use the thread pool, take locks other
/// threads may have held (including <see cref="Console"/>'s), or wait for other threads: they do not
/// exist in the child. It ends with <c>_exit</c>: no finalizer, <c>ProcessExit</c> handler or
/// <c>atexit</c> runs, and the parent's regions are not unmapped by the child's objects. For anything
/// else, spawn a fresh process.</para>
/// <para>Every wait on a forked child watches for the one deadlock a forked .NET process can fall
/// into: its only thread waiting for ever on a runtime lock that another parent thread held at the
/// instant of the fork. From outside that looks exactly like a child that waits on purpose to be
/// ended by a signal, so by default (<see cref="ChildDeadlockPolicy.Report"/>) such a child is never
/// killed: a wait without a bound throws <see cref="ChildDeadlockSuspectedException"/> within about
/// half a second instead of hanging, and <see cref="IsDeadlockSuspected"/> polls. Under
/// <see cref="ChildDeadlockPolicy.Kill"/> it is killed and reaped, and its <see cref="ChildExit"/>
/// says <see cref="ChildExit.Deadlocked"/>.</para>
/// <para>The child is reached through a pidfd, so a wait or a signal can never reach another process
/// that got the same pid after somebody else reaped this one (a process running as pid 1, or a
/// SIGCHLD handler that reaps every child).</para>
/// <para>Fork needs the runtime configured for it (see <see cref="ForkSupport"/>); spawn does not.</para>
/// </remarks>
public sealed partial class Child : IDisposable
{
    /// <summary>The exit status of a forked child whose body threw or returned a code outside 0 to 255 (its message goes to stderr): 70, EX_SOFTWARE.</summary>
    public static readonly int UnhandledExceptionExitCode = FailedBodyExitCode;

    /// <summary><see cref="UnhandledExceptionExitCode"/> as a constant, for the forked child's own path (no static to read there).</summary>
    internal const int FailedBodyExitCode = 70;

    private readonly SafeChildHandle _handle;
    private readonly TimeSpan _grace;
    private readonly Lock _gate = new();
    private readonly DeadlockWatch? _watch;
    private readonly ChildDeadlockPolicy _policy;
    private readonly int _owner;
    private ChildExit? _exit;
    private volatile bool _disposed;
    private bool _deadlockCounted;

    private Child(SafeChildHandle handle, TimeSpan grace, DeadlockWatch? watch, ChildDeadlockPolicy policy, int index)
    {
        _handle = handle;
        _grace = grace;
        _watch = watch;
        _policy = policy;
        _owner = Libc.getpid();
        Index = index;
    }

    /// <summary>
    /// Takes ownership of <paramref name="pid"/>, a forked child waiting for the handshake, so not yet
    /// able to end by itself. If its pidfd cannot be opened the child is killed and reaped, and the
    /// errno thrown. <paramref name="uncountedHandlers"/>: see <see cref="DeadlockWatch.UncountedHandlers"/>.
    /// </summary>
    internal static Child AdoptForked(int pid, ForkOptions options, int index, ulong uncountedHandlers)
    {
        int pidfd = Libc.pidfd_open(pid);
        if (pidfd < 0)
        {
            throw KillUnowned(pid, Marshal.GetLastPInvokeError());
        }
        return new Child(new SafeChildHandle(pid, pidfd), options.TerminateGracePeriod, new DeadlockWatch(pid, uncountedHandlers), options.DeadlockPolicy, index);
    }

    /// <summary>
    /// Takes ownership of <paramref name="pid"/>, a program just spawned, which may already have ended
    /// and, where another reaps every child (pid 1), been reaped: then (ESRCH) it is a child that ended
    /// with its status unknown, never an error. Any other failure kills and reaps it, and throws.
    /// </summary>
    internal static Child AdoptSpawned(int pid, TimeSpan grace)
    {
        int pidfd = Libc.pidfd_open(pid);
        if (pidfd >= 0)
        {
            return AdoptSpawnedPidfd(pid, pidfd, grace);
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno != LinuxErrno.ESRCH)
        {
            throw KillUnowned(pid, errno);
        }
        // No process has this pid: ours was reaped by someone else. No pidfd, so nothing can ever
        // be sent to whatever process gets the pid next.
        var child = new Child(new SafeChildHandle(pid, -1), grace, watch: null, ChildDeadlockPolicy.Report, index: 0);
        child.Record(ChildExit.UnknownReapedElsewhere(pid));
        return child;
    }

    /// <summary>Takes ownership of a spawned program through the pidfd <c>pidfd_spawnp</c> made for it.</summary>
    internal static Child AdoptSpawnedPidfd(int pid, int pidfd, TimeSpan grace) =>
        new(new SafeChildHandle(pid, pidfd), grace, watch: null, ChildDeadlockPolicy.Report, index: 0);

    /// <summary>
    /// The child's process id. It names the child only until the child is reaped; this object reaches
    /// the child through a pidfd, never through the pid. 0 in the rare case where a program spawned
    /// through <c>pidfd_spawnp</c> (glibc 2.39+) ended and was reaped by another process before its
    /// pid could be read.
    /// </summary>
    public int Pid => _handle.Pid;

    /// <summary>
    /// Takes a reading of a forked child's state: true once it has been seen, in readings at least
    /// 250 ms apart (by this property or by any wait), unable to wake without a signal (see
    /// <see cref="ChildDeadlockPolicy"/>). Poll it every 100 ms or so, or after a timed wait returned
    /// null. False for a spawned child, and once the child ended.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    public bool IsDeadlockSuspected
    {
        get
        {
            ThrowIfUnusable();
            using var held = new SafeHandleLease(_handle); // the pid is read in /proc only while the pidfd holds the process
            return _watch is not null && TryReap() is null && _watch.Check() is not null;
        }
    }

    /// <summary>True once <see cref="Dispose"/> ran (the child was terminated if need be, and reaped).</summary>
    public bool IsDisposed => _disposed;

    /// <summary>The child's index in its <see cref="Children"/> group (0 for a single child).</summary>
    internal int Index { get; }

    /// <summary>True for a forked child: its waits watch for a runtime deadlock.</summary>
    internal bool IsForked => _watch is not null;

    internal SafeChildHandle Handle => _handle;

    /// <summary>How the child ended if it ended already, else null (does not block).</summary>
    /// <exception cref="ShmException"><c>waitid</c> failed.</exception>
    public ChildExit? Exit
    {
        get
        {
            if (_exit is ChildExit exit || _disposed)
            {
                return _exit;
            }
            lock (_gate)
            {
                return TryReapLocked();
            }
        }
    }

    /// <summary>Forks a child that runs <paramref name="body"/> and exits with its return value (0 to 255).</summary>
    /// <param name="body">The child's work; see the remarks on <see cref="Child"/> for what it may do.</param>
    /// <param name="options">Tuning; <see cref="ForkOptions.Default"/> if null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (an allocation budget or a number of attempts below 1, a budget the GC refuses).</exception>
    /// <exception cref="NotSupportedException">The runtime is not configured for fork; the message names the fix.</exception>
    /// <exception cref="InvalidOperationException">This process is itself a forked child.</exception>
    /// <exception cref="ShmException"><c>fork</c> failed (e.g. EAGAIN over RLIMIT_NPROC), or <c>pidfd_open</c> did.</exception>
    /// <exception cref="TimeoutException">The child did not start after every attempt.</exception>
    public static Child Fork(Func<int> body, ForkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Forker.Fork(1, body, new SingleBody(body).Run, options ?? ForkOptions.Default)[0];
    }

    /// <summary>
    /// Waits for the child to end and reaps it. With a token that cannot be cancelled this is a wait
    /// without a bound: a forked child that cannot wake without a signal is, under
    /// <see cref="ChildDeadlockPolicy.Report"/> (the default), left running and reported by a
    /// <see cref="ChildDeadlockSuspectedException"/>; under <see cref="ChildDeadlockPolicy.Kill"/>,
    /// killed and reported (<see cref="ChildExit.Deadlocked"/>). With one that can, it waits until the
    /// token says stop (looked at every 100 ms).
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the child keeps running).</param>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChildDeadlockSuspectedException">The child cannot wake without a signal (policy Report, a token that cannot be cancelled); it still runs.</exception>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    /// <exception cref="ShmException"><c>waitid</c> or <c>poll</c> failed.</exception>
    public ChildExit Wait(CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable();
        return BlockingChildWait.WaitAll([this], Deadline.Never, cancellationToken)[0]!;
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for the child to end; false (and <paramref name="exit"/>
    /// null) if it is still running. With a bound, a child that cannot wake without a signal is waited
    /// for like any other under <see cref="ChildDeadlockPolicy.Report"/> (see
    /// <see cref="IsDeadlockSuspected"/> afterwards), and killed under <see cref="ChildDeadlockPolicy.Kill"/>;
    /// with <see cref="Timeout.InfiniteTimeSpan"/> this is <see cref="Wait"/>.
    /// </summary>
    /// <param name="exit">How it ended, once it did.</param>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="cancellationToken">Stops waiting (the child keeps running).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="ChildDeadlockSuspectedException">Only without a bound: as <see cref="Wait"/>.</exception>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    /// <exception cref="ShmException"><c>waitid</c> or <c>poll</c> failed.</exception>
    public bool TryWait([NotNullWhen(true)] out ChildExit? exit, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        ThrowIfUnusable();
        exit = BlockingChildWait.WaitAll([this], deadline, cancellationToken)[0];
        return exit is not null;
    }

    /// <summary>
    /// Waits for the child to end without blocking a thread: one watcher thread serves every
    /// asynchronous wait of the process, through an epoll set of pidfds. With a token that cannot be
    /// cancelled this is a wait without a bound: as <see cref="Wait"/>, the task faults with
    /// <see cref="ChildDeadlockSuspectedException"/> for a child that cannot wake without a signal
    /// (policy Report). With one that can, it waits until the token says stop.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the child keeps running).</param>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    public Task<ChildExit> WaitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable();
        return AsyncChildWatcher.WaitAsync(this, cancellationToken);
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for the child to end, without blocking a thread; null if
    /// it is still running then. As <see cref="TryWait"/> for a child that cannot wake without a signal.
    /// </summary>
    /// <param name="timeout">How long; <see cref="TimeSpan.Zero"/> to look once without waiting, <see cref="Timeout.InfiniteTimeSpan"/> for ever (then this is <see cref="WaitAsync"/>).</param>
    /// <param name="cancellationToken">Stops waiting (the child keeps running).</param>
    /// <returns>How the child ended, or null at the timeout.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    public Task<ChildExit?> TryWaitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Deadline deadline = Deadline.After(timeout);
        ThrowIfUnusable();
        return AsyncChildWatcher.TryWaitAsync(this, deadline, cancellationToken);
    }

    /// <summary>Sends <paramref name="signal"/> to the child, through its pidfd (nothing if it ended already).</summary>
    /// <param name="signal">A signal number, e.g. 15 for SIGTERM.</param>
    /// <exception cref="ShmException"><c>pidfd_send_signal</c> failed (EINVAL for a bad signal number).</exception>
    /// <exception cref="ObjectDisposedException">The child was disposed.</exception>
    /// <exception cref="InvalidOperationException">Called in a forked child on a sibling it inherited.</exception>
    public void Signal(int signal)
    {
        ThrowIfUnusable();
        lock (_gate)
        {
            if (TryReapLocked() is null)
            {
                SendLocked(signal);
            }
        }
    }

    /// <summary>Ends the child if it still runs (SIGTERM, the grace period, SIGKILL) and reaps it. Twice does nothing.</summary>
    public void Dispose() => TerminateAll([this]);

    /// <summary>
    /// Takes a reading of a running forked child's state (call while holding a reference on its
    /// pidfd, so the pid still names it). If it is confirmed unable to wake without a signal
    /// (<paramref name="seen"/> says what the readings saw): under <see cref="ChildDeadlockPolicy.Kill"/>,
    /// or when <paramref name="terminating"/>, kills and reaps it (<see cref="Suspicion.Killed"/>);
    /// otherwise leaves it running (<see cref="Suspicion.Suspected"/>).
    /// </summary>
    internal Suspicion Inspect(bool terminating, out DeadlockSuspicion seen)
    {
        seen = default;
        if (_watch is null || _exit is not null || _watch.Check() is not DeadlockSuspicion suspicion)
        {
            return Suspicion.None;
        }
        seen = suspicion;
        if (!_deadlockCounted)
        {
            _deadlockCounted = true;
            ShmDiagnostics.DeadlockSuspected(Pid);
        }
        if (_policy == ChildDeadlockPolicy.Report && !terminating)
        {
            return Suspicion.Suspected;
        }
        KillAndReap(deadlocked: _policy == ChildDeadlockPolicy.Kill);
        ShmDiagnostics.DeadlockKilled(Pid);
        return Suspicion.Killed;
    }

    /// <summary>The exception for a child <see cref="Inspect"/> found <see cref="Suspicion.Suspected"/>.</summary>
    internal ChildDeadlockSuspectedException SuspectedException(DeadlockSuspicion seen, int othersSuspected) =>
        new(Pid, Index, seen, othersSuspected);

    /// <summary>Reads a forked child's state from /proc.</summary>
    internal ThreadSample Sample() => ThreadSample.Read(_watch!.Paths, full: true);

    internal void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_owner != Libc.getpid())
        {
            throw new InvalidOperationException($"Child {Pid} belongs to process {_owner}: a forked child cannot wait for or signal a sibling it inherited.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"child {Pid} ({(_exit is null ? "running or unreaped" : _exit.ToString())})";

    /// <summary>What <see cref="Inspect"/> found.</summary>
    internal enum Suspicion
    {
        /// <summary>Nothing: it runs, ended, or was not confirmed stuck.</summary>
        None,

        /// <summary>It cannot wake without a signal, and was left running.</summary>
        Suspected,

        /// <summary>It could not wake without a signal, and was killed and reaped.</summary>
        Killed,
    }

    /// <summary>Adapts a <see cref="Func{TResult}"/> body to the fork path's indexed body.</summary>
    private sealed class SingleBody(Func<int> body)
    {
        public int Run(int index) => body();
    }
}
