/// Real regions: the kernel's /proc/self/maps is the judge of what was mapped and unmapped.
module Shm.Fun.Tests.RegionTests

open System
open System.Runtime.InteropServices
open Expecto
open FsCheck
open Shm.Fun
open Shm.Interop
open Shm.TestSupport
open Shm.Fun.Tests.Instrumented
open Shm.Fun.Tests.Kernel

[<Struct; StructLayout(LayoutKind.Sequential)>]
type Counters =
    val mutable Hits: int64
    val mutable Misses: int64

let private page = int64 Environment.SystemPageSize

let private mapped (region: SharedRegion) =
    match ProcMaps.At(region.DangerousGetAddress()) with
    | null -> false
    | mapping -> mapping.IsAnonymousShared && mapping.Size >= region.Length

[<Tests>]
let tests =
    testList
        "regions"
        [
            test "regions map in order and are all unmapped when the block ends" {
                let before = anonymousShared ()

                let seen =
                    shm {
                        let! a = region 5096
                        let! b = region (3L * page)
                        let! c = typed<Counters>
                        c.Value.Hits <- 41L
                        c.Value.Hits <- c.Value.Hits + 1L
                        a.AsSpan()[0] <- 1uy
                        return [ mapped a; mapped b; mapped c ], c.Value.Hits
                    }
                    |> Shm.run

                Expect.equal seen ([ true; true; true ], 42L) "mapped inside, values in place"
                Expect.equal (anonymousShared ()) before "all unmapped after"
            }

            test "region accepts int and int64 lengths" {
                shm {
                    let! small = region 5096
                    let! large = region (1L <<< 33)
                    return small.Length, large.Length
                }
                |> Shm.run
                |> fun lengths -> Expect.equal lengths (5096L, 1L <<< 33) "lengths"
            }

            test "a prebuilt block allocates its scope and its regions, nothing per acquisition" {
                // Only an optimised build inlines the builder and Shm.acquire (CONFIGURATION=Debug does not).
                let optimised =
                    match
                        Attribute.GetCustomAttribute(
                            typeof<Counters>.Assembly,
                            typeof<Diagnostics.DebuggableAttribute>
                        )
                    with
                    | :? Diagnostics.DebuggableAttribute as debuggable ->
                        not debuggable.IsJITOptimizerDisabled
                    | _ -> true

                if optimised then
                    // Not a constant: an acquisition that captures a value is a closure unless it is inlined.
                    let length = Random.Shared.Next(4096, 8192)

                    let one =
                        shm {
                            let! _ = region length
                            return ()
                        }

                    let three =
                        shm {
                            let! _ = region length
                            let! _ = region length
                            let! _ = region length
                            return ()
                        }

                    // The least of ten runs after a first: a run may meet a one-off cost (a cache filled, a
                    // table grown) that belongs to no acquisition.
                    let allocated (f: unit -> unit) =
                        f ()

                        Seq.init 10 (fun _ ->
                            let before = GC.GetAllocatedBytesForCurrentThread()
                            f ()
                            GC.GetAllocatedBytesForCurrentThread() - before)
                        |> Seq.min

                    let oneRegion =
                        allocated (fun () -> (SharedRegion.CreateAnonymous(int64 length)).Dispose())

                    let scopeOfOne = allocated (fun () -> Shm.run one) - oneRegion
                    let scopeOfThree = allocated (fun () -> Shm.run three) - 3L * oneRegion

                    Expect.equal
                        scopeOfThree
                        scopeOfOne
                        "two more acquisitions cost nothing beyond their regions"
            }

            test "a failing third acquisition unmaps the first two, and the kernel's error reaches the caller" {
                let before = anonymousShared ()
                let mutable inside = []

                let caught =
                    try
                        shm {
                            let! a = region 5096
                            let! b = region 5096
                            inside <- [ mapped a; mapped b ]
                            let! _ = region (1L <<< 50)
                            return ()
                        }
                        |> Shm.run

                        None
                    with :? ShmException as e ->
                        Some e

                Expect.equal inside [ true; true ] "the first two were mapped"

                Expect.equal
                    (caught |> Option.map (fun e -> e.Syscall, e.Errno))
                    (Some("mmap", LinuxErrno.ENOMEM))
                    "ENOMEM"

                Expect.equal (anonymousShared ()) before "both unmapped"
            }

            testProperty "after any failure point, /proc/self/maps is back to where it started"
            <| fun (sizes: PositiveInt list) (failAt: NonNegativeInt) (bodyFails: bool) ->
                let sizes =
                    sizes |> List.truncate 8 |> List.map (fun n -> int64 (n.Get % 70_000 + 1))

                let failAt = failAt.Get % (sizes.Length + 1)
                let before = anonymousShared ()
                let mutable inside = 0

                let program =
                    shm {
                        for i, size in List.indexed sizes do
                            let! r = region (if i = failAt then 1L <<< 50 else size)
                            inside <- inside + (if mapped r then 1 else 0)

                        if bodyFails then
                            failwith "body"
                    }

                let failed = (catching (fun () -> Shm.run program)).IsSome

                Expect.equal inside (min failAt sizes.Length) "each acquired region was mapped"
                Expect.equal failed (bodyFails || failAt < sizes.Length) "fails exactly when told"
                Expect.equal (anonymousShared ()) before "nothing left mapped"

            test "100,000 regions in a for loop, released per iteration, keep constant stack depth" {
                let before = anonymousShared ()
                let mutable live = 0

                shm {
                    for _ in 1..100_000 do
                        do!
                            Shm.scoped (
                                shm {
                                    let! r = region 64
                                    r.AsSpan()[0] <- 1uy
                                    live <- live + 1
                                }
                            )
                }
                |> Shm.run

                Expect.equal live 100_000 "every iteration mapped"
                Expect.equal (anonymousShared ()) before "nothing left"
            }

            test "60,000 regions live at once in a for loop are unmapped at the end" {
                // vm.max_map_count (65530 by default) bounds how many mappings a process may hold.
                let before = anonymousShared ()
                let mutable peak = 0

                shm {
                    for _ in 1..60_000 do
                        let! _ = region 64
                        ()

                    peak <- ProcMaps.AnonymousSharedCount()
                }
                |> Shm.run

                Expect.isGreaterThanOrEqual peak (before.Count + 60_000) "all mapped at once"
                Expect.equal (anonymousShared ()) before "all unmapped"
            }
        ]
