module Shm.Sample.Program

open System
open System.IO
open Shm.Fun
open Shm.Interop

/// The kernel's own count of this process's anonymous shared mappings.
let anonymousMappings () =
    File.ReadLines "/proc/self/maps"
    |> Seq.filter (fun line -> line.EndsWith "/dev/zero (deleted)")
    |> Seq.length

/// Spans cannot live inside a computation expression's closures, so the element loops sit here.
let fill (data: SharedRegion<SharedData>) =
    let ints = SharedData.ints data
    let floats = SharedData.floats data

    for i in 0..9 do
        ints[i] <- i * i
        floats[i] <- float32 i + 0.5f

let oneBlock () =
    printfn "One shm { } block: SharedData and two regions"

    shm {
        let! data = typed<SharedData>
        let! a = region 5096
        let! b = region 5096

        fill data
        a.AsSpan().Fill 0xA5uy
        b.Write(0L, 123_456_789L)

        printfn "  SharedData: %d bytes at 0x%x" data.Length data.Address
        printfn "  ints   = %s" (String.Join(" ", (SharedData.ints data).ToArray()))
        printfn "  floats = %s" (String.Join(" ", (SharedData.floats data).ToArray()))
        printfn "  a[0] = 0x%X, b holds %d" (a.AsReadOnlySpan()[0]) (b.Read<int64> 0L)
        printfn "  anonymous shared mappings inside the block: %d" (anonymousMappings ())
    }
    |> Shm.run

    printfn "  after the block: %d" (anonymousMappings ())

let failingThird () =
    printfn "A failing third acquisition releases the first two"

    try
        shm {
            let! first = region 5096
            let! second = region 5096

            printfn
                "  mapped two regions at 0x%x and 0x%x: %d mappings"
                first.Address
                second.Address
                (anonymousMappings ())

            let! _ = region (1L <<< 50) // 1 PiB: the kernel refuses
            return ()
        }
        |> Shm.run
    with :? ShmException as error ->
        printfn "  third failed: %s" error.Message
        printfn "  mappings now: %d (both released, newest first)" (anonymousMappings ())

[<EntryPoint>]
let main _ =
    oneBlock ()
    printfn ""
    failingThird ()
    0
