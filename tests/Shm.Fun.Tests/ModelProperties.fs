/// Random programs run through shm { } and through a plain stack model must release alike.
module Shm.Fun.Tests.ModelProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Shm.Fun
open Shm.Fun.Tests.Instrumented

type Op =
    | Acquire
    | Fail
    | Loop of count: int * body: Op list
    | Scoped of Op list
    | TryWith of Op list
    | Allocate of Op list

exception ProgramFailed

let rec private genOps size : Gen<Op list> =
    gen {
        let! length = Gen.choose (0, min 6 (max 1 size))
        return! Gen.listOfLength length (genOp size)
    }

and private genOp size : Gen<Op> =
    let leaves = [ 6, Gen.constant Acquire; 1, Gen.constant Fail ]

    if size <= 1 then
        Gen.frequency leaves
    else
        let inner = genOps (size / 2)

        Gen.frequency (
            leaves
            @ [
                1, Gen.map2 (fun n body -> Loop(n, body)) (Gen.choose (0, 3)) inner
                1, Gen.map Scoped inner
                1, Gen.map TryWith inner
                1, Gen.map Allocate inner
            ]
        )

type Programs =
    static member Ops() : Arbitrary<Op list> = Arb.fromGen (Gen.sized genOps)

/// The specification: one stack per scope; a failing try unwinds to its mark; allocated scopes
/// are released by their owner (here: after the run, newest first).
let model (ops: Op list) : Event list * bool =
    let trace = ResizeArray()
    let allocated = ResizeArray<ResizeArray<int>>()
    let mutable next = 0

    let release (stack: ResizeArray<int>) mark =
        while stack.Count > mark do
            let id = stack[stack.Count - 1]
            stack.RemoveAt(stack.Count - 1)
            trace.Add(Released id)

    let rec run (stack: ResizeArray<int>) ops =
        for op in ops do
            step stack op

    and step stack op =
        match op with
        | Acquire ->
            trace.Add(Acquired next)
            stack.Add next
            next <- next + 1
        | Fail -> raise ProgramFailed
        | Loop(n, body) ->
            for _ in 1..n do
                run stack body
        | Scoped body ->
            let inner = ResizeArray()

            try
                run inner body
            finally
                release inner 0
        | TryWith body ->
            let mark = stack.Count

            try
                run stack body
            with ProgramFailed ->
                release stack mark
        | Allocate body ->
            let inner = ResizeArray()

            try
                run inner body
            with ProgramFailed ->
                release inner 0
                reraise ()

            allocated.Add inner

    let top = ResizeArray()

    let failed =
        try
            run top ops
            false
        with ProgramFailed ->
            true

    release top 0

    for scope in Seq.rev allocated do
        release scope 0

    List.ofSeq trace, failed

/// The same program through the library.
let real (ops: Op list) : Event list * bool =
    let log = Log()
    let allocated = ResizeArray<IDisposable>()
    let mutable next = 0

    let acquire () =
        Shm.make
            (fun () ->
                let id = next
                next <- next + 1
                log.Add(Acquired id)
                id)
            (fun id -> log.Add(Released id))

    let rec compile ops : Shm<unit> =
        shm {
            for op in ops do
                do! compileOp op
        }

    and compileOp op : Shm<unit> =
        match op with
        | Acquire -> acquire () |> Shm.map ignore
        | Fail -> fun _ -> raise ProgramFailed
        | Loop(n, body) ->
            shm {
                for _ in 1..n do
                    do! compile body
            }
        | Scoped body -> Shm.scoped (compile body)
        | TryWith body ->
            shm {
                try
                    do! compile body
                with ProgramFailed ->
                    ()
            }
        | Allocate body ->
            shm {
                let struct ((), release) = Shm.allocate (compile body)
                allocated.Add release
            }

    let failed =
        try
            Shm.run (compile ops)
            false
        with ProgramFailed ->
            true

    for release in Seq.rev allocated do
        release.Dispose()

    log.Events, failed

let private config =
    { FsCheckConfig.defaultConfig with
        arbitrary = [ typeof<Programs> ]
        maxTest = 500
        endSize = 40
    }

[<Tests>]
let properties =
    testList
        "model"
        [
            testPropertyWithConfig config "shm { } releases exactly as the stack model does"
            <| fun (ops: Op list) -> Expect.equal (real ops) (model ops) "event trace and outcome"

            testPropertyWithConfig config "every acquisition is released exactly once, after it"
            <| fun (ops: Op list) ->
                let events, _ = real ops

                let position event = events |> List.findIndex ((=) event)

                for event in events do
                    match event with
                    | Acquired id ->
                        let releases = events |> List.filter ((=) (Released id)) |> List.length
                        Expect.equal releases 1 $"resource {id} released once"
                        Expect.isGreaterThan (position (Released id)) (position event) "release after acquire"
                    | Released _ -> ()
        ]
