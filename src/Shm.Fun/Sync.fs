namespace Shm.Fun

#nowarn "1204" // attaches unlock failures as the builder does

open System.Threading
open Shm.Interop

/// <summary>
/// Cross-process mutexes, semaphores, events, condition variables and message channels in shared
/// regions, as scoped resources: each is released (its hold on the region dropped) when the scope closes; the primitive
/// itself stays in the shared memory for the other processes (see <c>SharedPrimitive</c>).
/// </summary>
[<RequireQualifiedAccess>]
module Sync =

    /// <summary>Creates a mutex at <paramref name="offset"/> of <paramref name="region"/> (64 zeroed bytes, 8-byte aligned).</summary>
    let createMutex (region: SharedRegion) (offset: int64) : Shm<SharedMutex> =
        fun scope -> Shm.acquire (fun () -> SharedMutex.Create(region, offset)) scope

    /// <summary>Opens the mutex another process created at <paramref name="offset"/>.</summary>
    let openMutex (region: SharedRegion) (offset: int64) : Shm<SharedMutex> =
        fun scope -> Shm.acquire (fun () -> SharedMutex.Open(region, offset)) scope

    /// <summary>
    /// Creates a futex mutex at <paramref name="offset"/> (64 zeroed bytes, 8-byte aligned): no pointers
    /// in shared memory, for processes that do not trust each other (see <c>SharedFutexMutex</c>).
    /// </summary>
    let createFutexMutex (region: SharedRegion) (offset: int64) : Shm<SharedFutexMutex> =
        fun scope -> Shm.acquire (fun () -> SharedFutexMutex.Create(region, offset)) scope

    /// <summary>Opens the futex mutex another process created at <paramref name="offset"/>.</summary>
    let openFutexMutex (region: SharedRegion) (offset: int64) : Shm<SharedFutexMutex> =
        fun scope -> Shm.acquire (fun () -> SharedFutexMutex.Open(region, offset)) scope

    /// <summary>Creates a counting semaphore holding <paramref name="initialCount"/>.</summary>
    let createSemaphore (region: SharedRegion) (offset: int64) (initialCount: int) : Shm<SharedSemaphore> =
        fun scope -> Shm.acquire (fun () -> SharedSemaphore.Create(region, offset, initialCount)) scope

    /// <summary>Opens the semaphore another process created at <paramref name="offset"/>.</summary>
    let openSemaphore (region: SharedRegion) (offset: int64) : Shm<SharedSemaphore> =
        fun scope -> Shm.acquire (fun () -> SharedSemaphore.Open(region, offset)) scope

    /// <summary>Creates an auto-reset or manual-reset event, not signalled.</summary>
    let createEvent (region: SharedRegion) (offset: int64) (mode: EventResetMode) : Shm<SharedEvent> =
        fun scope -> Shm.acquire (fun () -> SharedEvent.Create(region, offset, mode)) scope

    /// <summary>Opens the event another process created at <paramref name="offset"/>.</summary>
    let openEvent (region: SharedRegion) (offset: int64) : Shm<SharedEvent> =
        fun scope -> Shm.acquire (fun () -> SharedEvent.Open(region, offset)) scope

    /// <summary>Creates a condition variable, to use with a shared mutex.</summary>
    let createCondition (region: SharedRegion) (offset: int64) : Shm<SharedCondition> =
        fun scope -> Shm.acquire (fun () -> SharedCondition.Create(region, offset)) scope

    /// <summary>Opens the condition variable another process created at <paramref name="offset"/>.</summary>
    let openCondition (region: SharedRegion) (offset: int64) : Shm<SharedCondition> =
        fun scope -> Shm.acquire (fun () -> SharedCondition.Open(region, offset)) scope

    /// <summary>
    /// Creates a message channel at <paramref name="offset"/>: <paramref name="writers"/> lanes of
    /// <paramref name="laneCapacity"/> bytes (see <c>SharedChannel.Create</c>).
    /// </summary>
    let createChannel
        (region: SharedRegion)
        (offset: int64)
        (laneCapacity: int64)
        (writers: int)
        : Shm<SharedChannel> =
        fun scope -> Shm.acquire (fun () -> SharedChannel.Create(region, offset, laneCapacity, writers)) scope

    /// <summary>Opens the channel another process created at <paramref name="offset"/>.</summary>
    let openChannel (region: SharedRegion) (offset: int64) : Shm<SharedChannel> =
        fun scope -> Shm.acquire (fun () -> SharedChannel.Open(region, offset)) scope

    /// <summary>Attaches a writer to <paramref name="channel"/>; it completes its lane when the scope closes.</summary>
    let writer (channel: SharedChannel) : Shm<SharedChannelWriter> =
        fun scope -> Shm.acquire (fun () -> channel.OpenWriter()) scope

    /// <summary>Attaches the reader of <paramref name="channel"/>; it gives up its place when the scope closes.</summary>
    let reader (channel: SharedChannel) : Shm<SharedChannelReader> =
        fun scope -> Shm.acquire (fun () -> channel.OpenReader()) scope

    // Lock, run, unlock: on a dead owner, unlock and raise instead of running f on half-updated data.
    // Inline, so no closure is allocated per call (forked children lock in a no-GC budget).
    let inline private lockedWith (lock: unit -> unit) (unlock: unit -> unit) (f: unit -> 'T) : 'T =
        try
            lock ()
        with :? AbandonedMutexException ->
            unlock ()
            reraise ()

        // Not try/finally: an Unlock that throws must not replace the exception f threw.
        let result =
            try
                f ()
            with cause ->
                try
                    unlock ()
                with failure ->
                    Scope.AddSuppressed(cause, [ failure ])

                reraise ()

        unlock ()
        result

    /// <summary>
    /// Runs <paramref name="f"/> with <paramref name="mutex"/> locked and unlocks it, whatever
    /// <paramref name="f"/> does. If the previous owner died holding the mutex, <paramref name="f"/>
    /// does not run: the mutex is made consistent and unlocked, and <c>AbandonedMutexException</c>
    /// reaches the caller, who decides how to repair the data it guards.
    /// </summary>
    let locked (mutex: SharedMutex) (f: unit -> 'T) : 'T =
        lockedWith (fun () -> mutex.Lock() |> ignore) (fun () -> mutex.Unlock()) f

    /// <summary>
    /// <see cref="locked"/> for a <c>SharedFutexMutex</c>: runs <paramref name="f"/> under it; on a dead
    /// owner, unlocks it and raises <c>AbandonedMutexException</c> instead of running <paramref name="f"/>.
    /// </summary>
    let lockedFutex (mutex: SharedFutexMutex) (f: unit -> 'T) : 'T =
        lockedWith (fun () -> mutex.Lock() |> ignore) (fun () -> mutex.Unlock()) f
