/// The main job: map a region, fork N children that each run run_app(i, ptr), wait for all,
/// unmap; if a fork (or any acquisition) fails, the children already started are terminated and
/// reaped, and everything is unmapped, before the error is reported.
module Shm.Sample.Program

// System.CommandLine's GetValue<T> is annotated T? (nullable), which F# cannot express for int.
#nowarn "3265"

open System
open System.IO
open System.CommandLine
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
        "Parent %d: SharedData (%d ints, %d floats) in one region, %d %s"
        Environment.ProcessId
        10
        10
        count
        (if count = 1 then "child" else "children")

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

/// The command line: --children N and --fail-at K, with --help; each error names its option and
/// the values it accepts, and exits 2 as a usage error does.
[<EntryPoint>]
let main argv =
    let children =
        Option<int>(
            "--children",
            Description = "How many children to fork, 1 to 10 (one slot of the shared struct each).",
            DefaultValueFactory = fun _ -> 3
        )

    let failAt =
        Option<Nullable<int>>(
            "--fail-at",
            Description =
                "Make acquisition K fail on purpose (a region the kernel refuses) after K children were forked, "
                + "0 to N-1: the children already started are terminated and reaped before the error is reported."
        )

    let root =
        RootCommand(
            "The main job: map a region, fork N children that each fill their slot of a shared struct, wait for all, unmap."
        )

    root.Options.Add children
    root.Options.Add failAt

    let usageError (message: string) =
        eprintfn "Shm.Sample: %s" message
        eprintfn "Try 'Shm.Sample --help'."
        2

    root.SetAction(fun parsed ->
        let count = parsed.GetValue children
        let k = parsed.GetValue failAt

        if count < 1 || count > 10 then
            usageError $"--children must be 1 to 10; got {count}."
        elif k.HasValue && (k.Value < 0 || k.Value >= count) then
            usageError
                $"--fail-at must be 0 to {count - 1} (it counts the {count} children forked); got {k.Value}."
        else
            run count (if k.HasValue then Some k.Value else None))

    let parsed = root.Parse argv

    if parsed.Errors.Count > 0 then
        parsed.Errors
        |> Seq.map _.Message
        |> String.concat "\nShm.Sample: "
        |> usageError
    else
        parsed.Invoke()
