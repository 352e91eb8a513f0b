namespace Shm.Fun

#nowarn "1204" // the builder is the caller the hidden plumbing exists for

open System
open System.Runtime.ExceptionServices
open Shm.Interop

/// Children as scoped resources, with nursery semantics: a block that ends normally waits for
/// (reaps) every child still running; a failing block kills and reaps them. Either way this
/// happens before any region acquired earlier is unmapped, since release runs newest first.
[<RequireQualifiedAccess>]
[<CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Child =

    /// Waits for each child the user has not disposed. A child found unable to wake without a signal
    /// fails the block, naming it: killed and reported (ChildDeadlockedException) under
    /// ChildDeadlockPolicy.Kill; under Report (the default) the untimed wait throws
    /// ChildDeadlockSuspectedException, and the nursery then terminates every child as on failure.
    let private join (kids: Shm.Interop.Child seq) =
        kids
        |> Seq.iteri (fun index kid ->
            if not kid.IsDisposed then
                let exit = kid.Wait()

                if exit.Deadlocked then
                    raise (ChildDeadlockedException(exit, index)))

    [<Sealed>]
    type private Nursery(kids: Shm.Interop.Child seq, terminate: unit -> unit) =
        interface IScopeFinalizer with
            member _.Release failed =
                // Terminate runs whatever the wait threw (a deadlocked child, a disposed group), so
                // no child outlives the block; the wait's exception, if any, leaves afterwards.
                let waitFailure =
                    if failed then
                        None
                    else
                        try
                            join kids
                            None
                        with failure ->
                            Some(ExceptionDispatchInfo.Capture failure)

                terminate ()
                waitFailure |> Option.iter _.Throw()

        interface IDisposable with
            member this.Dispose() = (this :> IScopeFinalizer).Release false

    /// Registers a child (or group) whose normal release waits for it and whose failure release terminates it.
    let private nursery
        (scope: Scope)
        (owner: 'T)
        (kids: Shm.Interop.Child seq)
        (terminate: unit -> unit)
        : 'T =
        scope.Add(owner, new Nursery(kids, terminate))
        owner

    /// <summary>
    /// Forks <paramref name="count"/> children with <paramref name="options"/> (e.g. a
    /// <c>DeadlockPolicy</c>); child i runs <c>body i</c> and exits with its value.
    /// </summary>
    let childrenWith (options: ForkOptions) (count: int) (body: int -> int) : Shm<Children> =
        (fun scope ->
            let group = Children.Fork(count, Func<int, int> body, options)
            nursery scope group group group.Dispose)

    /// <summary>
    /// Forks <paramref name="count"/> children; child i runs <c>body i</c> and exits with its value.
    /// See <see cref="T:Shm.Interop.Child"/> for what a forked child may do.
    /// </summary>
    let children (count: int) (body: int -> int) : Shm<Children> =
        (fun scope -> childrenWith ForkOptions.Default count body scope)

    /// <summary>Forks one child with <paramref name="options"/> that runs <paramref name="body"/> and exits with its value.</summary>
    let forkWith (options: ForkOptions) (body: unit -> int) : Shm<Shm.Interop.Child> =
        (fun scope ->
            let one = Shm.Interop.Child.Fork(Func<int> body, options)
            nursery scope one [ one ] one.Dispose)

    /// <summary>Forks one child that runs <paramref name="body"/> and exits with its value.</summary>
    let fork (body: unit -> int) : Shm<Shm.Interop.Child> =
        (fun scope -> forkWith ForkOptions.Default body scope)

    /// <summary>Spawns <paramref name="fileName"/> with <paramref name="arguments"/>, handing it <paramref name="regions"/> (see <c>Child.Spawn</c>); waited for or killed like a forked child.</summary>
    let spawn
        (fileName: string)
        (arguments: string seq)
        (regions: SharedRegion list)
        : Shm<Shm.Interop.Child> =
        (fun scope ->
            let one = Shm.Interop.Child.Spawn(fileName, arguments, Array.ofList regions)
            nursery scope one [ one ] one.Dispose)
