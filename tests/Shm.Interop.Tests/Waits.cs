using System;
using System.Collections.Generic;
using System.Linq;
using Shm.TestSupport;

namespace Shm.Interop.Tests;

/// <summary>Every wait on a child in this suite is bounded: a child that does not end fails the test with its state, and is killed.</summary>
internal static class Waits
{
    /// <summary>Long enough for anything a test child does on a loaded machine.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>Waits up to <see cref="Bound"/> (or <paramref name="timeout"/>); fails with what the kernel says the child is doing.</summary>
    public static ChildExit WaitOrFail(this Child child, TimeSpan? timeout = null)
    {
        if (child.TryWait(out ChildExit? exit, timeout ?? Bound))
        {
            return exit;
        }
        string state = Native.Describe(child.Pid);
        child.Dispose();
        throw new TimeoutException($"child {child.Pid} did not end within {(timeout ?? Bound).TotalSeconds} s; {state}");
    }

    /// <summary>Waits up to <see cref="Bound"/> (or <paramref name="timeout"/>) for every child; fails with what the kernel says each one still running is doing.</summary>
    public static IReadOnlyList<ChildExit> WaitAllOrFail(this Children children, TimeSpan? timeout = null)
    {
        if (children.TryWaitAll(out IReadOnlyList<ChildExit?> exits, timeout ?? Bound))
        {
            return [.. exits.Select(exit => exit!)];
        }
        string states = string.Join("; ", children.Where(child => child.Exit is null).Select(child => Native.Describe(child.Pid)));
        children.Dispose();
        throw new TimeoutException($"children did not end within {(timeout ?? Bound).TotalSeconds} s; {states}");
    }
}
