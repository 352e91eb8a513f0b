using System;
using System.Diagnostics;

namespace Shm.Interop;

/// <summary>
/// Watches one forked child for the deadlock that no one can end: its only thread waiting for ever on
/// a private futex (see <see cref="ThreadSample"/>). A reading that shows it is confirmed by a later
/// one, at least <see cref="ConfirmAfter"/> apart, that shows the same wait and no wake-up in between.
/// </summary>
internal sealed class DeadlockWatch(int pid)
{
    /// <summary>How far apart two readings of the same wait must be (250 ms).</summary>
    public static readonly long ConfirmAfter = Stopwatch.Frequency / 4;

    /// <summary>How often waits read a forked child's state (100 ms): detection takes 250 to 400 ms.</summary>
    public const int SampleMilliseconds = 100;

    /// <summary>
    /// The interval between readings when <paramref name="children"/> forked children are waited for:
    /// 100 ms, and 1 ms more per child past 100, so that reading their state costs about one /proc
    /// read per millisecond however many there are (detection stays within about a second up to
    /// several hundred children).
    /// </summary>
    public static long SampleInterval(int children) =>
        Stopwatch.Frequency * Math.Max(SampleMilliseconds, children) / 1000;

    private ThreadSample _suspect;
    private long _suspectSince;

    public ProcPaths Paths { get; } = new(pid);

    /// <summary>Takes a reading; true once the deadlock is confirmed.</summary>
    public bool Check()
    {
        ThreadSample sample = ThreadSample.Read(Paths, full: false);
        long now = Stopwatch.GetTimestamp();
        lock (this)
        {
            if (!sample.CannotWake)
            {
                _suspectSince = 0;
                return false;
            }
            if (_suspectSince != 0 && sample.SameWaitAs(_suspect))
            {
                return now - _suspectSince >= ConfirmAfter;
            }
            _suspect = sample;
            _suspectSince = now;
            return false;
        }
    }
}
