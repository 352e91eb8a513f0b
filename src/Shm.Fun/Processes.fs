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

    /// <summary>
    /// Forks <paramref name="count"/> children; child i runs <c>body i</c> and exits with its value.
    /// See <see cref="T:Shm.Interop.Child"/> for what a forked child may do.
    /// </summary>
    let children (count: int) (body: int -> int) : Shm<Children> =
        (fun scope ->
            let group = Children.Fork(count, Func<int, int> body)
            scope.Add(group, new Nursery((fun () -> group.WaitAll() |> ignore), group.Dispose))
            group)

    /// <summary>Forks one child that runs <paramref name="body"/> and exits with its value.</summary>
    let child (body: unit -> int) : Shm<Child> =
        (fun scope ->
            let one = Child.Fork(Func<int> body)
            scope.Add(one, new Nursery((fun () -> one.Wait() |> ignore), one.Dispose))
            one)

    /// <summary>Spawns <paramref name="fileName"/> with <paramref name="arguments"/>, handing it <paramref name="regions"/> (see <c>Child.Spawn</c>); waited for or killed like a forked child.</summary>
    let spawn (fileName: string) (arguments: string seq) (regions: SharedRegion list) : Shm<Child> =
        (fun scope ->
            let one = Child.Spawn(fileName, arguments, Array.ofList regions)
            scope.Add(one, new Nursery((fun () -> one.Wait() |> ignore), one.Dispose))
            one)
