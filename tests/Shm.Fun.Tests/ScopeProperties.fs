/// The release and exception contract, checked for every failure point.
module Shm.Fun.Tests.ScopeProperties

open System
open Expecto
open FsCheck
open Shm.Fun
open Shm.Fun.Tests.Instrumented

/// How one step of a block binds: each form must give the same lifetime.
type Binding =
    | Let
    | Use
    | And

let private program (acquirer: Acquirer) (bindings: Binding list) (bodyFailure: exn option) =
    let rec go bindings =
        match bindings with
        | [] ->
            shm {
                match bodyFailure with
                | Some failure -> raise failure
                | None -> ()
            }
        | Let :: rest ->
            shm {
                let! _ = acquirer.Acquire()
                return! go rest
            }
        | Use :: rest ->
            shm {
                use! _ = acquirer.Acquire()
                return! go rest
            }
        | And :: rest ->
            shm {
                let! _ = acquirer.Acquire()
                and! _ = acquirer.Acquire()
                return! go rest
            }

    go bindings

let private acquisitions bindings =
    bindings
    |> List.sumBy (function
        | And -> 2
        | _ -> 1)

let private failureIds (errors: exn seq) =
    errors
    |> Seq.map (function
        | ReleaseFailed id -> id
        | other -> failwithf "unexpected finalizer failure %O" other)
    |> List.ofSeq

[<Tests>]
let properties =
    testList
        "scope contract"
        [
            testProperty
                "releases are the successful acquisitions reversed, each once; the original exception wins"
            <| fun
                   (bindings: Binding list)
                   (failAt: NonNegativeInt option)
                   (failing: Set<NonNegativeInt>)
                   (bodyFails: bool) ->
                let total = acquisitions bindings
                let failAt = failAt |> Option.map (fun n -> n.Get % (total + 1))
                let failing = failing |> Set.map (fun n -> n.Get % (total + 1))
                let log = Log()
                let acquirer = Acquirer(log, failAt, failing)
                let bodyFailure = if bodyFails then Some BodyFailed else None

                let caught = catching (fun () -> program acquirer bindings bodyFailure |> Shm.run)

                let acquired =
                    match failAt with
                    | Some k when k < total -> k
                    | _ -> total

                let expectedEvents =
                    [ for i in 0 .. acquired - 1 -> Acquired i ]
                    @ [ for i in acquired - 1 .. -1 .. 0 -> Released i ]

                let expectedFailures =
                    [
                        for i in acquired - 1 .. -1 .. 0 do
                            if failing.Contains i then
                                i
                    ]

                let original =
                    match acquirer.Thrown with
                    | Some failure -> Some failure
                    | None when acquired = total -> bodyFailure
                    | None -> None

                Expect.equal log.Events expectedEvents "acquire in order, release in reverse, exactly once"

                match original, caught, expectedFailures with
                | Some original, Some caught, _ ->
                    Expect.isTrue (obj.ReferenceEquals(original, caught)) "the original exception, unchanged"

                    Expect.equal
                        (failureIds (Shm.suppressed caught))
                        expectedFailures
                        "finalizer failures attached"
                | Some _, None, _ -> failtest "the original exception was swallowed"
                | None, None, [] -> ()
                | None, Some(ReleaseFailed id), [ only ] ->
                    Expect.equal id only "a single failure is rethrown as is"
                | None, Some(:? AggregateException as all), _ :: _ :: _ ->
                    Expect.equal
                        (failureIds all.InnerExceptions)
                        expectedFailures
                        "several failures, in release order"
                | None, caught, _ -> failtestf "expected failures %A, caught %A" expectedFailures caught
        ]
