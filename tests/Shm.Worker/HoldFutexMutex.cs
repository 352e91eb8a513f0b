using System;
using System.Threading;
using Shm.Interop;

namespace Shm.Worker;

/// <summary>An owner of a futex mutex that lives in another process (and, for the tests, another namespace).</summary>
public static partial class Program
{
    /// <summary>
    /// Locks the futex mutex at <see cref="SyncVictim.PrimitiveOffset"/> of inherited region 0, says
    /// so with a 1 in <see cref="SyncVictim.HandshakeWord"/>, holds it until the peer writes 2 there
    /// (or 60 s pass), then unlocks it. Exit 0 if it held the mutex throughout and unlocked it.
    /// </summary>
    private static int HoldFutexMutex()
    {
        using SharedRegion region = SharedRegion.OpenInherited();
        using SharedFutexMutex mutex = SharedFutexMutex.Open(region, SyncVictim.PrimitiveOffset);
        if (!mutex.TryLock(TimeSpan.FromSeconds(10)))
        {
            return Unexpected;
        }
        region.Write(SyncVictim.HandshakeWord, 1);
        bool released = SpinWait.SpinUntil(() => region.Read<int>(SyncVictim.HandshakeWord) == 2, TimeSpan.FromSeconds(60));
        try
        {
            mutex.Unlock(); // throws if another took it over meanwhile: this owner never stopped living
            return released ? 0 : Unexpected;
        }
        catch (Exception failure)
        {
            Console.Error.WriteLine(failure.Message);
            return Unexpected;
        }
    }
}
