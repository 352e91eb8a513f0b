/// The one fake the suite allows: an acquirer that logs acquire/release events and fails where told,
/// to test the scoping algebra itself.
module Shm.Fun.Tests.Instrumented

open System
open Shm.Fun

type Event =
    | Acquired of int
    | Released of int

exception AcquireFailed of int
exception ReleaseFailed of int
exception BodyFailed

type Log() =
    let events = ResizeArray<Event>()
    member _.Add event = events.Add event
    member _.Events = List.ofSeq events

    member _.Released =
        events
        |> Seq.choose (function
            | Released id -> Some id
            | _ -> None)
        |> List.ofSeq

/// A resource whose Dispose records its release: registering it twice would show as two releases.
type Token(id: int, log: Log, failRelease: bool) =
    member _.Id = id

    interface IDisposable with
        member _.Dispose() =
            log.Add(Released id)

            if failRelease then
                raise (ReleaseFailed id)

/// Acquisition number k (from 0) throws if k = failAt; releases of ids in failingReleases throw.
type Acquirer(log: Log, failAt: int option, failingReleases: Set<int>) =
    let mutable next = 0
    let mutable thrown: exn option = None

    /// The exception object the acquirer threw, if it did.
    member _.Thrown = thrown

    member _.Acquire() : Shm<Token> =
        Shm.make
            (fun () ->
                let id = next
                next <- next + 1

                if Some id = failAt then
                    let failure = AcquireFailed id
                    thrown <- Some failure
                    raise failure

                log.Add(Acquired id)
                new Token(id, log, failingReleases.Contains id))
            (fun token -> (token :> IDisposable).Dispose())

/// Runs f and returns what it threw, if anything.
let catching (f: unit -> unit) : exn option =
    try
        f ()
        None
    with e ->
        Some e
