/// The main job: map a region, fork N children that each run run_app(i, ptr), wait for all,
/// unmap; if a fork (or any acquisition) fails, the children already started are terminated and
/// reaped, and everything is unmapped, before the error is reported.
module Shm.Sample.Program

open System
open System.IO
open System.Threading
open Shm.Fun
open Shm.Interop

/// What each child runs: fill slot i of the shared struct.
let runApp (i: int) (data: SharedRegion<SharedData>) =
    (SharedData.ints data)[i] <- (i + 1) * (i + 1)
    (SharedData.floats data)[i] <- MathF.Sqrt(float32 i)

/// Children wait for the parent's go, so that a failure shows them being killed, not finished.
let waitForGo (control: SharedRegion) =
    while control.Read<int> 0L = 0 do
        Thread.SpinWait 20

let printRow (data: SharedRegion<SharedData>) (i: int) (exit: ChildExit) =
    let value = (SharedData.ints data).[i]
    let root = (SharedData.floats data).[i]
    printfn "  %5d  %5d  %8d  %9.4f  %s" i exit.Pid value root (string exit)

let gone (pid: int) =
    if Directory.Exists $"/proc/{pid}" then
        "still there!"
    else
        "gone from /proc"

let describe (child: Child) =
    match child.Exit with
    | null -> "running"
    | exit -> string exit

let run (count: int) (failAt: int option) =
    let started = ResizeArray<Child>()

    printfn
        "Parent %d: SharedData (%d ints, %d floats) in one region, %d children"
        Environment.ProcessId
        10
        10
        count

    let program =
        shm {
            let! data = typed<SharedData>
            let! control = region 64
            // Run the child's path once here, so forked children do not each compile it.
            runApp 0 data
            data.Value <- SharedData()

            for i in 0 .. count - 1 do
                if Some i = failAt then
                    printfn "  acquisition %d fails on purpose (a 1 PiB region the kernel refuses)" i
                    let! _ = region (1L <<< 50)
                    ()

                let! kid =
                    Child.fork (fun () ->
                        waitForGo control
                        runApp i data
                        0)

                started.Add kid
                printfn "  forked child %d: pid %d" i kid.Pid

            control.Write(0L, 1) // go
            let exits = started |> Seq.map _.Wait() |> List.ofSeq

            printfn ""
            printfn "  child    pid   ints[i]  floats[i]  exit"

            exits |> List.iteri (printRow data)
        }

    try
        Shm.run program
        printfn "All children reaped, regions unmapped."
        0
    with :? ShmException as error ->
        printfn ""
        printfn "  failed: %s" error.Message

        for kid in started do
            printfn "  child pid %d: %s, %s" kid.Pid (describe kid) (gone kid.Pid)

        printfn "Every child started before the failure was terminated and reaped; regions unmapped."
        1

let usage () =
    eprintfn "usage: Shm.Sample [--children N (1-10, default 3)] [--fail-at K]"
    2

[<EntryPoint>]
let main argv =
    let rec parse args count failAt =
        match args with
        | [] -> Some(count, failAt)
        | "--children" :: n :: rest ->
            match Int32.TryParse n with
            | true, n when n >= 1 && n <= 10 -> parse rest n failAt
            | _ -> None
        | "--fail-at" :: k :: rest ->
            match Int32.TryParse k with
            | true, k when k >= 0 -> parse rest count (Some k)
            | _ -> None
        | _ -> None

    match parse (List.ofArray argv) 3 None with
    | Some(count, failAt) -> run count failAt
    | None -> usage ()
