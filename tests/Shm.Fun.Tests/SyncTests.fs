/// Cross-process primitives as scoped resources, with real forked children.
module Shm.Fun.Tests.SyncTests

open System
open System.Threading
open Expecto
open Shm.Fun
open Shm.Interop
open Shm.TestSupport

[<Tests>]
let tests =
    testList
        "sync"
        [
            test "children counting with Sync.locked under a shared mutex lose no increment" {
                let total =
                    shm {
                        let! data = region 4096
                        let! mutex = Sync.createMutex data 0L

                        let! kids =
                            Child.children 3 (fun _ ->
                                for _ in 1..20_000 do
                                    Sync.locked mutex (fun () -> data.Write(64L, data.Read<int64> 64L + 1L))

                                0)

                        kids |> Seq.iter (Kernel.waitOrFail >> ignore)
                        return data.Read<int64> 64L
                    }
                    |> Shm.run

                Expect.equal total 60_000L "3 x 20,000"
            }

            test "Sync.locked reports a dead owner and leaves the mutex usable" {
                let outcome =
                    shm {
                        let! data = region 4096
                        let! mutex = Sync.createMutex data 0L

                        let! holder =
                            Child.fork (fun () ->
                                mutex.Lock() |> ignore
                                data.Write(64L, 1)

                                while true do
                                    Thread.SpinWait 1000

                                0)

                        Expect.isTrue
                            (SpinWait.SpinUntil((fun () -> data.Read<int> 64L = 1), TimeSpan.FromSeconds 30.0))
                            "the child held the mutex"

                        holder.Signal Native.SIGKILL
                        Kernel.waitOrFail holder |> ignore

                        let first =
                            try
                                Sync.locked mutex (fun () -> "ran")
                            with :? AbandonedMutexException ->
                                "abandoned"

                        let second = Sync.locked mutex (fun () -> "ran")
                        return first, second
                    }
                    |> Shm.run

                Expect.equal outcome ("abandoned", "ran") "told once, then normal"
            }

            test "children counting with Sync.lockedFutex under a futex mutex lose no increment" {
                let total =
                    shm {
                        let! data = region 4096
                        let! mutex = Sync.createFutexMutex data 0L

                        let! kids =
                            Child.children 3 (fun _ ->
                                for _ in 1..20_000 do
                                    Sync.lockedFutex mutex (fun () ->
                                        data.Write(64L, data.Read<int64> 64L + 1L))

                                0)

                        kids |> Seq.iter (Kernel.waitOrFail >> ignore)
                        return data.Read<int64> 64L
                    }
                    |> Shm.run

                Expect.equal total 60_000L "3 x 20,000"
            }

            test "Sync.lockedFutex reports a dead owner once and leaves the futex mutex usable" {
                let outcome =
                    shm {
                        let! data = region 4096
                        let! mutex = Sync.createFutexMutex data 0L
                        let! opened = Sync.openFutexMutex data 0L

                        let! holder =
                            Child.fork (fun () ->
                                mutex.Lock() |> ignore
                                data.Write(64L, 1)

                                while true do
                                    Thread.SpinWait 1000

                                0)

                        Expect.isTrue
                            (SpinWait.SpinUntil((fun () -> data.Read<int> 64L = 1), TimeSpan.FromSeconds 30.0))
                            "the child held the mutex"

                        holder.Signal Native.SIGKILL
                        Kernel.waitOrFail holder |> ignore

                        let first =
                            try
                                Sync.lockedFutex opened (fun () -> "ran")
                            with :? AbandonedMutexException ->
                                "abandoned"

                        let second = Sync.lockedFutex mutex (fun () -> "ran")
                        return first, second
                    }
                    |> Shm.run

                Expect.equal outcome ("abandoned", "ran") "told once, then normal"
            }

            test "a primitive released by its scope no longer holds the region's mapping" {
                let mutable mappedInside = false
                let mutable at = 0n

                shm {
                    let data = SharedRegion.CreateAnonymous 4096
                    at <- data.DangerousGetAddress()
                    let! _ = Sync.createEvent data 0L EventResetMode.ManualReset
                    data.Dispose()
                    mappedInside <- not (isNull (ProcMaps.At at))
                }
                |> Shm.run

                Expect.isTrue mappedInside "held while the block ran"
                Expect.isNull (ProcMaps.At at) "released when it closed"
            }
        ]

[<Tests>]
let channelTests =
    testList
        "channel"
        [
            test
                "a forked child writes through a scoped channel and the reader sees every message, then the end" {
                let received =
                    shm {
                        let! data = region (SharedChannel.RequiredLength(8192L, 1))
                        let! channel = Sync.createChannel data 0L 8192L 1
                        let! reader = Sync.reader channel

                        let! writer =
                            Child.fork (fun () ->
                                shm {
                                    let! w = Sync.writer channel

                                    for i in 0..999 do
                                        w.Write(ReadOnlySpan(BitConverter.GetBytes i))
                                }
                                |> Shm.run

                                0)

                        let values = ResizeArray<int>()

                        try
                            while true do
                                let mutable message = Unchecked.defaultof<ReceivedMessage>

                                if
                                    not (
                                        reader.TryRead(
                                            &message,
                                            TimeSpan.FromSeconds 30.0,
                                            CancellationToken.None
                                        )
                                    )
                                then
                                    failwith "no message and no end within 30 s"

                                values.Add(BitConverter.ToInt32 message.Span)
                                message.Dispose()
                        with :? System.Threading.Channels.ChannelClosedException ->
                            ()

                        Kernel.waitOrFail writer |> ignore
                        return List.ofSeq values
                    }
                    |> Shm.run

                Expect.equal received [ 0..999 ] "all, in order"
            }
        ]
