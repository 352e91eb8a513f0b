namespace Shm.Fun

open System
open Shm.Interop

/// Children as scoped resources, with nursery semantics: a block that ends normally waits for
/// (reaps) every child still running; a failing block kills and reaps them. Either way this
/// happens before any region acquired earlier is unmapped, since release runs newest first.
[<AutoOpen>]
module Processes =

    [<Sealed>]
    type private Nursery(wait: unit -> unit, terminate: unit -> unit) =
        interface IScopeFinalizer with
            member _.Release failed =
                if not failed then
                    wait ()

                terminate ()

        interface IDisposable with
            member this.Dispose() = (this :> IScopeFinalizer).Release false

    /// Registers a child (or group) whose normal release waits for it and whose failure release terminates it.
    let private nursery (scope: Scope) (owner: 'T) (wait: unit -> unit) (terminate: unit -> unit) : 'T =
        scope.Add(owner, new Nursery(wait, terminate))
        owner

    /// <summary>
    /// Forks <paramref name="count"/> children; child i runs <c>body i</c> and exits with its value.
    /// See <see cref="T:Shm.Interop.Child"/> for what a forked child may do.
    /// </summary>
    let children (count: int) (body: int -> int) : Shm<Children> =
        (fun scope ->
            let group = Children.Fork(count, Func<int, int> body)
            nursery scope group (fun () -> group.WaitAll() |> ignore) group.Dispose)

    /// <summary>Forks one child that runs <paramref name="body"/> and exits with its value.</summary>
    let child (body: unit -> int) : Shm<Child> =
        (fun scope ->
            let one = Child.Fork(Func<int> body)
            nursery scope one (fun () -> one.Wait() |> ignore) one.Dispose)

    /// <summary>Spawns <paramref name="fileName"/> with <paramref name="arguments"/>, handing it <paramref name="regions"/> (see <c>Child.Spawn</c>); waited for or killed like a forked child.</summary>
    let spawn (fileName: string) (arguments: string seq) (regions: SharedRegion list) : Shm<Child> =
        (fun scope ->
            let one = Child.Spawn(fileName, arguments, Array.ofList regions)
            nursery scope one (fun () -> one.Wait() |> ignore) one.Dispose)
