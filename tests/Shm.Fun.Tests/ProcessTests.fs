/// Children in shm { }: nursery semantics, checked against /proc.
module Shm.Fun.Tests.ProcessTests

open System
open Expecto
open FsCheck
open Shm.Fun
open Shm.Interop
open Shm.TestSupport
open Shm.Fun.Tests.Instrumented
open Shm.Fun.Tests.Kernel

type Step =
    | Region
    | Kids of NonNegativeInt
    | Kid
    | FailingAcquisition

/// Spins until the parent raises the flag at offset 0, then exits 0.
let private waitForGo (go: SharedRegion) =
    while go.Read<int> 0L = 0 do
        ()

    0

/// The exit code of a reaped child (None if it was not reaped or was killed by a signal).
let private exitCode (child: Child) =
    match child.Exit with
    | null -> None
    | exit -> Option.ofNullable exit.ExitCode

[<Tests>]
let tests =
    testList
        "children"
        [
            test "a block that ends normally waits for its children, before earlier regions are unmapped" {
                let mutable reapedBeforeRegion = false
                let mutable group: Children option = None

                shm {
                    let! results = region 4096

                    do!
                        Shm.defer (fun () ->
                            reapedBeforeRegion <- group.Value |> Seq.forall (fun c -> not (isNull c.Exit)))

                    let! kids =
                        Child.children 3 (fun i ->
                            results.Write(int64 (i * 4), i + 10)
                            i)

                    group <- Some kids
                }
                |> Shm.run

                let exits = group.Value |> Seq.map exitCode |> List.ofSeq
                Expect.equal exits [ Some 0; Some 1; Some 2 ] "waited for, not killed"
                Expect.isTrue reapedBeforeRegion "reaped before the region's release"
                Expect.isEmpty (Native.Children()) "nothing unreaped"
            }

            test "a failing block kills and reaps its children" {
                let mutable pids = []

                let caught =
                    try
                        shm {
                            let! go = region 64
                            let! kids = Child.children 2 (fun _ -> waitForGo go)
                            let! one = Child.fork (fun () -> waitForGo go)
                            pids <- one.Pid :: List.ofSeq kids.Pids
                            failwith "the body failed"
                        }
                        |> Shm.run

                        None
                    with e ->
                        Some e.Message

                Expect.equal caught (Some "the body failed") "the original exception"
                Expect.equal pids.Length 3 "three children ran"

                for pid in pids do
                    Expect.isFalse (Native.Exists pid) $"child {pid} is gone, not even a zombie"
            }

            test
                "a block whose child deadlocked fails with an exception that names the child, and nothing outlives it" {
                use held = new HeldLock()
                let mutable pids = []
                let kill = ForkOptions(DeadlockPolicy = ChildDeadlockPolicy.Kill)

                let caught =
                    catching (fun () ->
                        shm {
                            let! kids =
                                Child.childrenWith kill 3 (fun i ->
                                    (if i = 1 then
                                         held.Take())

                                    i)

                            pids <- List.ofSeq kids.Pids
                        }
                        |> Shm.run)

                match caught with
                | Some(:? ChildDeadlockedException as deadlocked) ->
                    Expect.equal deadlocked.Index 1 "names the child by index"
                    Expect.equal deadlocked.Pid pids[1] "and by pid"
                    Expect.stringContains deadlocked.Message "Child.Spawn" "says what to do"
                | other -> failtestf "expected ChildDeadlockedException, got %A" other

                for pid in pids do
                    Expect.isFalse (Native.Exists pid) $"child {pid} is gone, not even a zombie"
            }

            test
                "under the default policy a block whose child cannot wake fails with the suspicion, naming it, and nothing outlives it" {
                use held = new HeldLock()
                let mutable pids = []
                let clock = Diagnostics.Stopwatch.StartNew()

                let caught =
                    catching (fun () ->
                        shm {
                            let! kids =
                                Child.children 3 (fun i ->
                                    (if i = 1 then
                                         held.Take())

                                    i)

                            pids <- List.ofSeq kids.Pids
                        }
                        |> Shm.run)

                match caught with
                | Some(:? ChildDeadlockSuspectedException as suspected) ->
                    Expect.equal suspected.Index 1 "names the child by index"
                    Expect.equal suspected.Pid pids[1] "and by pid"
                    Expect.stringContains suspected.Message "left running" "says the wait did not kill it"
                | other -> failtestf "expected ChildDeadlockSuspectedException, got %A" other

                for pid in pids do
                    Expect.isFalse (Native.Exists pid) $"child {pid} is gone, not even a zombie"

                // Terminating a child found stuck sends SIGKILL at once: no 2 s grace period waited out.
                Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 1.9) "killed at once"
            }

            test
                "a child the user disposed inside the block does not stop the others being waited for or killed" {
                use go = SharedRegion.CreateAnonymous 64
                let mutable pids = []

                shm {
                    let! kids = Child.children 3 (fun _ -> waitForGo go)
                    pids <- List.ofSeq kids.Pids
                    kids[0].Dispose()
                    go.Write(0L, 1)
                }
                |> Shm.run

                for pid in pids do
                    Expect.isFalse (Native.Exists pid) $"child {pid} outlived the block"

                Expect.isEmpty (Native.Children()) "nothing left unreaped"
            }

            test "SpawnSelf starts this program again, which attaches the region it inherits" {
                use region = SharedRegion.CreateMemfd("self", 4096)

                use worker = Child.SpawnSelf([ "--spawned-worker"; "77" ], region)

                Expect.isTrue (waitOrFail worker).Succeeded "the worker ran"
                Expect.equal (region.Read<int> 0L) 77 "and wrote through the inherited memfd"
            }

            test "spawn in shm { } waits for the program at the end of the block" {
                let mutable code = None
                let mutable shell: Child option = None

                shm {
                    let! shared = Shm.ofDisposable (SharedRegion.CreateMemfd("for-sh", 4096))
                    // Registered first, so it runs after the nursery has waited for the shell.
                    do! Shm.defer (fun () -> code <- shell |> Option.bind exitCode)
                    let! sh = Child.spawn "/bin/sh" [ "-c"; "test -n \"$SHM_INHERITED_FDS\"" ] [ shared ]
                    shell <- Some sh
                }
                |> Shm.run

                Expect.equal code (Some 0) "the shell saw the descriptor and exited 0"
            }

            test "use! on children does not register them twice" {
                let mutable exits = []

                shm {
                    use! kids = Child.children 2 (fun i -> i + 1)
                    kids |> Seq.iter (waitOrFail >> ignore)
                    exits <- kids |> Seq.map exitCode |> List.ofSeq
                }
                |> Shm.run

                Expect.equal exits [ Some 1; Some 2 ] "exits"
            }

            testProperty "no child outlives its scope, whatever the failure point"
            <| fun (steps: Step list) (bodyFails: bool) ->
                let steps = steps |> List.truncate 6
                let before = anonymousShared ()
                let pids = ResizeArray<int>()

                let program =
                    shm {
                        let! go = region 64

                        for step in steps do
                            match step with
                            | Region ->
                                let! _ = region 4096
                                ()
                            | Kids n ->
                                let! kids = Child.children (n.Get % 3 + 1) (fun _ -> waitForGo go)
                                pids.AddRange kids.Pids
                            | Kid ->
                                let! one = Child.fork (fun () -> waitForGo go)
                                pids.Add one.Pid
                            | FailingAcquisition ->
                                let! _ = region (1L <<< 50)
                                ()

                        if bodyFails then
                            failwith "body"

                        go.Write(0L, 1) // the children may finish: the normal end waits for them
                    }

                let failed = (catching (fun () -> Shm.run program)).IsSome

                let expectFailure = bodyFails || List.contains FailingAcquisition steps
                Expect.equal failed expectFailure "fails exactly when told"

                for pid in pids do
                    Expect.isFalse (Native.Exists pid) $"child {pid} outlived its scope"

                Expect.isEmpty (Native.Children()) "nothing left unreaped"
                Expect.equal (anonymousShared ()) before "every region unmapped"
        ]
