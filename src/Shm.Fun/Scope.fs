namespace Shm.Fun

#nowarn "1204" // the scope's own plumbing calls itself

open System
open System.Collections.Generic
open System.Runtime.CompilerServices
open System.Runtime.ExceptionServices

/// <summary>
/// A finalizer that needs to know how its scope closed: <c>failed</c> is true when an acquisition
/// or the body threw. Children use it: a block that ends normally waits for them, a failing one
/// kills them.
/// </summary>
type IScopeFinalizer =
    inherit IDisposable

    /// Releases, knowing whether the scope is closing because of a failure.
    abstract Release: failed: bool -> unit

/// One registered release: the object it releases (so a resource is never registered twice)
/// and the action that releases it.
[<Struct; NoEquality; NoComparison>]
type internal Finalizer =
    { Owner: objnull; Release: IDisposable }

/// <summary>
/// A stack of finalizers: what a <c>shm { }</c> block acquired, released newest first when it
/// closes. Every finalizer runs exactly once, even if earlier ones throw.
/// </summary>
/// <remarks>
/// Closing policy: if the scope closes because of an exception (the original), finalizer
/// failures are attached to it (read them with <c>Shm.suppressed</c>) and the original reaches
/// the caller unchanged. Without an original, one failure is rethrown as is and several become an
/// <see cref="AggregateException"/> in release order. A scope is used by one thread at a time.
/// </remarks>
[<Sealed>]
type Scope() =
    // Failures of finalizers, keyed by the exception that was propagating when they ran.
    static let suppressedTable = ConditionalWeakTable<exn, ResizeArray<exn>>()

    // Below this depth a linear scan is cheaper than a set; past it Contains would be quadratic in loops.
    static let ownerSetThreshold = 32

    let mutable entries: Finalizer[] = Array.Empty()
    let mutable depth = 0
    let mutable owners: HashSet<obj> | null = null
    let mutable closed = false

    let unwind (target: int) (failed: bool) =
        let mutable failures: ResizeArray<exn> | null = null

        while depth > target do
            depth <- depth - 1
            let entry = entries[depth]
            entries[depth] <- Unchecked.defaultof<_>

            // Plain null patterns: a tuple match through NonNull would allocate on every release.
            match owners with
            | null -> ()
            | set ->
                match entry.Owner with
                | null -> ()
                | owner -> set.Remove owner |> ignore

            try
                match entry.Release with
                | :? IScopeFinalizer as finalizer -> finalizer.Release failed
                | release -> release.Dispose()
            with failure ->
                let list =
                    match failures with
                    | NonNull list -> list
                    | Null -> ResizeArray()

                list.Add failure
                failures <- list

        failures

    /// <summary>The failures of finalizers that ran while <paramref name="original"/> propagated, in release order.</summary>
    static member Suppressed(original: exn) : exn list =
        match suppressedTable.TryGetValue original with
        | true, failures -> lock failures (fun () -> List.ofSeq failures)
        | _ -> []

    /// <summary>Attaches <paramref name="failures"/> to <paramref name="original"/> (see <see cref="Suppressed"/>).</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    static member AddSuppressed(original: exn, failures: exn seq) =
        let list = suppressedTable.GetValue(original, fun _ -> ResizeArray())
        lock list (fun () -> list.AddRange failures)

    /// <summary>How many finalizers are registered: a mark for <see cref="ReleaseTo"/>.</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    member _.Depth = depth

    /// <summary>True once the scope closed; it then accepts no more finalizers.</summary>
    member _.IsClosed = closed

    /// <summary>
    /// Registers <paramref name="release"/>, to run when the scope closes. <paramref name="owner"/>
    /// is the resource it releases (or null), so <see cref="Contains"/> can find it.
    /// </summary>
    member _.Add(owner: objnull, release: IDisposable) =
        if closed then
            // The resource exists already: release it now (as a failure: children are killed),
            // or a late registration would leak a named segment or a running child.
            let refused =
                ObjectDisposedException(
                    nameof Scope,
                    "The scope already closed; what was acquired for it has been released again."
                )

            try
                match release with
                | :? IScopeFinalizer as finalizer -> finalizer.Release true
                | release -> release.Dispose()
            with failure ->
                Scope.AddSuppressed(refused, [ failure ])

            raise refused

        if depth = entries.Length then
            Array.Resize(&entries, max 4 (depth * 2))

        entries[depth] <- { Owner = owner; Release = release }
        depth <- depth + 1

        match owners with
        | null -> ()
        | set ->
            match owner with
            | null -> ()
            | owner -> set.Add owner |> ignore

    /// <summary>Registers <paramref name="resource"/>'s Dispose unless it is null or already registered.</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    member this.Own(resource: IDisposable | null) =
        match resource with
        | NonNull resource when not (this.Contains resource) -> this.Add(resource, resource)
        | _ -> ()

    /// <summary>True if a finalizer for <paramref name="owner"/> is registered and has not run.</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    member _.Contains(owner: objnull) =
        match owner with
        | null -> false
        | owner ->
            match owners with
            | null when depth <= ownerSetThreshold ->
                let mutable found = false
                let mutable i = depth - 1

                while not found && i >= 0 do
                    found <- obj.ReferenceEquals(entries[i].Owner, owner)
                    i <- i - 1

                found
            | null ->
                let set = HashSet<obj>(ReferenceEqualityComparer.Instance)

                for i in 0 .. depth - 1 do
                    match entries[i].Owner with
                    | null -> ()
                    | registered -> set.Add registered |> ignore

                owners <- set
                set.Contains owner
            | set -> set.Contains owner

    /// <summary>
    /// Runs, newest first, the finalizers registered after <paramref name="mark"/> (a past
    /// <see cref="Depth"/>), attaching their failures to <paramref name="cause"/>. Used when a
    /// failure leaves a <c>try</c>: what it acquired is released before the handler runs.
    /// </summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    member _.ReleaseTo(mark: int, cause: exn) =
        match unwind mark true with
        | NonNull failures -> Scope.AddSuppressed(cause, failures)
        | Null -> ()

    /// <summary>Closes the scope because of <paramref name="cause"/>: releases everything and attaches failures to it.</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    member this.Abort(cause: exn) =
        closed <- true
        this.ReleaseTo(0, cause)

    /// <summary>Closes the scope normally, releasing everything; throws per the closing policy.</summary>
    member _.Dispose() =
        closed <- true

        match unwind 0 false with
        | NonNull failures when failures.Count = 1 -> ExceptionDispatchInfo.Throw failures[0]
        | NonNull failures -> raise (AggregateException(failures))
        | Null -> ()

    interface IDisposable with
        member this.Dispose() = this.Dispose()

/// Adapts a release function to the finalizer stack with one allocation.
[<Sealed>]
type internal Release<'T>(value: 'T, release: 'T -> unit) =
    interface IDisposable with
        member _.Dispose() = release value
