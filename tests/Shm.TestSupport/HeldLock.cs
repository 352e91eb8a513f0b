using System;
using System.Threading;

namespace Shm.TestSupport;

/// <summary>
/// A lock another thread holds until disposed: fork while it is held, and a child that takes it
/// deadlocks for real, exactly as one does on a runtime lock held by the JIT or the type loader.
/// </summary>
public sealed class HeldLock : IDisposable
{
    private readonly Lock _lock = new();
    private readonly ManualResetEventSlim _held = new();
    private readonly ManualResetEventSlim _release = new();
    private readonly Thread _holder;

    /// <summary>Starts the holder thread and returns once it holds the lock.</summary>
    public HeldLock()
    {
        _holder = new Thread(() =>
        {
            using (_lock.EnterScope())
            {
                _held.Set();
                _release.Wait();
            }
        })
        { IsBackground = true, Name = "lock holder" };
        _holder.Start();
        if (!_held.Wait(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException("the holder thread did not take the lock");
        }
    }

    /// <summary>Takes the lock: in a child forked while it was held, this never returns.</summary>
    public void Take()
    {
        _lock.Enter();
        _lock.Exit();
    }

    /// <summary>Releases the lock and ends the holder.</summary>
    public void Dispose()
    {
        _release.Set();
        _holder.Join(TimeSpan.FromSeconds(30));
    }
}
