namespace Shm.Interop;

/// <summary>
/// Whether this process is a child Shm forked (fork returned 0 here). Every layer asks: such a child
/// has one thread and no runtime signal thread, may have inherited any lock another parent thread
/// held at the fork, and ends with <c>_exit</c>. Kept at the bottom, beside the calls, so no layer
/// reaches up into Processes for it.
/// </summary>
internal static class ForkedChild
{
    // No initialiser, so no static constructor: the child reads it without a class-init check.
    private static volatile bool s_isThisProcess;

    /// <summary>True in a forked child (the copy of the flag in the parent stays false).</summary>
    public static bool IsThisProcess => s_isThisProcess;

    /// <summary>Called by the child, first thing after the fork.</summary>
    public static void Mark() => s_isThisProcess = true;
}
