/// Publish-subscribe services as scoped resources, with a real forked subscriber.
module Shm.Fun.Tests.ServicesTests

open System
open System.IO
open System.Threading
open Expecto
open Shm.Fun
open Shm.Interop

let private uniqueName () = $"svc-fun-{Guid.NewGuid():N}"

let private exists name =
    File.Exists("/dev/shm/" + Service.SegmentPrefix + name)

[<Tests>]
let tests =
    testList
        "services"
        [
            test "a forked subscriber receives what the block publishes, and the scope removes the service" {
                let name = uniqueName ()

                let received =
                    shm {
                        let! service = PubSub.service name (PublishSubscribeConfig(MaxSubscribers = 2))
                        let! publisher = PubSub.publisher service
                        let! control = region 4096
                        let! attached = Sync.createSemaphore control 0L 0

                        // The child's path once here, so that nothing compiles in the child.
                        shm {
                            let! warm = PubSub.subscriber service
                            PubSub.publish publisher (ReadOnlyMemory "warm"B)
                            return PubSub.receive warm
                        }
                        |> Shm.run
                        |> ignore

                        let! child =
                            Child.fork (fun () ->
                                shm {
                                    let! sub = PubSub.subscriber service
                                    attached.Release() |> ignore
                                    let bytes = PubSub.receive sub
                                    control.Write(64L, bytes.Length)
                                    return 0
                                }
                                |> Shm.run)

                        Expect.isTrue (attached.TryWait(TimeSpan.FromSeconds 30.0)) "the child attached"
                        PubSub.publish publisher (ReadOnlyMemory "hello from F#"B)
                        let exit = Kernel.waitOrFail child
                        Expect.equal exit.ExitCode (Nullable 0) "the child received it"
                        Expect.isTrue (exists name) "the service is there while the scope holds it"
                        return control.Read<int> 64L
                    }
                    |> Shm.run

                Expect.equal received 13 "the child received the 13 bytes"
                Expect.isFalse (exists name) "the scope closed: the last participant removed the service"
            }

            test "a subscriber released with its scope frees its slot for the next one" {
                let name = uniqueName ()

                shm {
                    let! service = PubSub.service name (PublishSubscribeConfig(MaxSubscribers = 1))
                    let! publisher = PubSub.publisher service

                    for i in 1..3 do
                        shm {
                            let! sub =
                                PubSub.subscriberWith
                                    (SubscriberOptions(OverflowPolicy = OverflowPolicy.DropOldest))
                                    service

                            PubSub.publish publisher (ReadOnlyMemory(Array.create i 7uy))
                            return PubSub.receive sub
                        }
                        |> Shm.run
                        |> fun bytes -> Expect.equal bytes.Length i "one sample of i bytes"
                }
                |> Shm.run

                Expect.isFalse (exists name) "gone with the scope"
            }

            test "a forked reader reads what the blackboard's writer wrote, and the scope removes the service" {
                let name = uniqueName ()

                let read =
                    shm {
                        let! board = Blackboard.service name (BlackboardConfig(Keys = 4, ValueSize = 16))
                        let! writer = Blackboard.writer board
                        Blackboard.write<struct (int64 * int64)> writer 2 (struct (7L, 35L))
                        // The child's path once here, so that nothing compiles in the child.
                        let struct (a, b) = Blackboard.read<struct (int64 * int64)> board 2
                        Expect.equal (a, b) (7L, 35L) "read back here"

                        let! child =
                            Child.fork (fun () ->
                                let struct (a, b) = Blackboard.read<struct (int64 * int64)> board 2
                                if a * 5L = b then int a else 100)

                        let exit = Kernel.waitOrFail child
                        Expect.isTrue (exists name) "the service is there while the scope holds it"
                        return exit.ExitCode
                    }
                    |> Shm.run

                Expect.equal read (Nullable 7) "the child read the whole value"
                Expect.isFalse (exists name) "the scope closed: the last participant removed the service"
            }

            test "a forked server answers the client's request, and the scope removes the service" {
                let name = uniqueName ()

                let answer =
                    shm {
                        let! service =
                            RequestResponse.service
                                name
                                (RequestResponseConfig(MaxClients = 2, MaxServers = 2))

                        let! client = RequestResponse.client service
                        // The child's path once here (a server on this process), so that nothing compiles in the child.
                        let! warm = RequestResponse.server service
                        let pending = client.Send(ReadOnlySpan "warm"B)
                        RequestResponse.serveOne warm Array.rev
                        Expect.equal (pending.Receive().Span.ToArray()) "mraw"B "answered here"
                        pending.Dispose()
                        warm.Dispose()

                        let! child =
                            Child.fork (fun () ->
                                use server = service.CreateServer()
                                RequestResponse.serveOne server Array.rev
                                0)

                        let answer = RequestResponse.request client (ReadOnlyMemory "ping"B)
                        let exit = Kernel.waitOrFail child
                        Expect.equal exit.ExitCode (Nullable 0) "the server ended normally"
                        Expect.isTrue (exists name) "the service is there while the scope holds it"
                        return answer
                    }
                    |> Shm.run

                Expect.equal answer "gnip"B "the forked server's answer"
                Expect.isFalse (exists name) "the scope closed: the last participant removed the service"
            }
        ]
