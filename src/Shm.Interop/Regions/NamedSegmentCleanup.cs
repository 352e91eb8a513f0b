using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// The names of the named segments this process created and has not released, unlinked when the
/// process ends by SIGINT, SIGTERM, SIGHUP or SIGQUIT, or exits normally (<c>ProcessExit</c>): what
/// neither Dispose nor a finalizer gets to do then.
/// </summary>
/// <remarks>
/// The signal handlers never cancel the signal: if no other handler does, the runtime restores the
/// default action and raises the signal again, so the process ends exactly as it would without them,
/// and other handlers still run. The order of handlers is unspecified; .NET 10 runs the newest
/// registration first and stops at the first that cancels. So an app handler registered after our
/// first <c>CreateNamed</c> that cancels runs before ours, which then does not run (or, on a runtime
/// that runs every handler, sees <c>Cancel</c> set and does nothing): the names stay, the process
/// goes on. One registered before runs after ours, which cannot know it will cancel: the process goes
/// on with its names already unlinked (its mappings stay valid). SIGKILL cannot be caught:
/// <c>shm rm --orphans</c> cleans up after it.
/// </remarks>
internal static class NamedSegmentCleanup
{
    private static readonly Lock Gate = new();
    private static readonly HashSet<CreatedName> Names = new(ReferenceEqualityComparer.Instance);
    private static PosixSignalRegistration[]? s_registrations;

    /// <summary>
    /// Installs the handlers, once per process: call before creating a name, so that no name exists
    /// unwatched. Not in a forked child (no runtime signal thread, and it ends with <c>_exit</c>).
    /// </summary>
    public static void EnsureWatching()
    {
        if (Volatile.Read(ref s_registrations) is not null || ForkedChild.IsThisProcess)
        {
            return;
        }
        lock (Gate)
        {
            if (s_registrations is not null)
            {
                return;
            }
            PosixSignalRegistration[] registrations =
            [
                PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal),
            ];
            AppDomain.CurrentDomain.ProcessExit += static (_, _) => UnlinkAll();
            Volatile.Write(ref s_registrations, registrations); // kept for the process's life: never disposed
        }
    }

    // A forked child neither adds nor removes: nothing would unlink its own names (no handlers, no
    // ProcessExit), and another parent thread may have held the lock at the instant of the fork.
    public static void Add(CreatedName name)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        lock (Gate)
        {
            Names.Add(name);
        }
    }

    public static void Remove(CreatedName name)
    {
        if (ForkedChild.IsThisProcess)
        {
            return;
        }
        lock (Gate)
        {
            Names.Remove(name);
        }
    }

    // Runs on the runtime's signal handling thread: must not throw. Leaves Cancel as it found it.
    private static void OnSignal(PosixSignalContext context)
    {
        if (!context.Cancel)
        {
            UnlinkAll();
        }
    }

    private static void UnlinkAll()
    {
        CreatedName[] names;
        lock (Gate)
        {
            names = [.. Names];
            Names.Clear();
        }
        foreach (CreatedName name in names)
        {
            try
            {
                name.Unlink();
            }
            catch (Exception)
            {
                // The process is ending: unlink what can be, whatever one name does.
            }
        }
    }
}
