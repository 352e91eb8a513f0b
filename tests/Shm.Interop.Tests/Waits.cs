using System;
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
        if (child.Wait(timeout ?? Bound) is ChildExit exit)
        {
            return exit;
        }
        string state = Native.Describe(child.Pid);
        child.Dispose();
        throw new TimeoutException($"child {child.Pid} did not end within {(timeout ?? Bound).TotalSeconds} s; {state}");
    }
}
