/// Each syntactic form of the builder, with the instrumented acquirer.
module Shm.Fun.Tests.BuilderTests

open System
open Expecto
open Shm.Fun
open Shm.Fun.Tests.Instrumented

let private fresh () =
    let log = Log()
    log, Acquirer(log, None, Set.empty)

[<Tests>]
let tests =
    testList
        "builder"
        [
            test "let!, use!, use and do! share one LIFO lifetime" {
                let log, acquirer = fresh ()
                let plain = new Token(100, log, false)

                shm {
                    let! _ = acquirer.Acquire()
                    use! _ = acquirer.Acquire()
                    use _ = plain
                    do! acquirer.Acquire() |> Shm.map ignore
                    return ()
                }
                |> Shm.run

                Expect.equal log.Released [ 2; 100; 1; 0 ] "newest first, each once"
            }

            test "use! on a resource the acquirer registered does not register it twice" {
                let log, acquirer = fresh ()

                shm {
                    use! a = acquirer.Acquire()
                    use! b = Shm.ofDisposable a
                    use _ = b
                    return ()
                }
                |> Shm.run

                Expect.equal log.Released [ 0 ] "released once"
            }

            test "and! acquires left to right" {
                let log, acquirer = fresh ()

                let ids =
                    shm {
                        let! a = acquirer.Acquire()
                        and! b = acquirer.Acquire()
                        and! c = acquirer.Acquire()
                        return [ a.Id; b.Id; c.Id ]
                    }
                    |> Shm.run

                Expect.equal ids [ 0; 1; 2 ] "in order"
                Expect.equal log.Released [ 2; 1; 0 ] "reverse"
            }

            test "if, match, while and for acquire conditionally and in loops" {
                let log, acquirer = fresh ()
                let mutable n = 0

                shm {
                    if true then
                        let! _ = acquirer.Acquire()
                        ()

                    match Some 2 with
                    | Some count ->
                        for _ in 1..count do
                            let! _ = acquirer.Acquire()
                            ()
                    | None -> ()

                    while n < 2 do
                        n <- n + 1
                        let! _ = acquirer.Acquire()
                        ()
                }
                |> Shm.run

                Expect.equal log.Released [ 4; 3; 2; 1; 0 ] "all five, reversed"
            }

            test "return! continues in the same scope" {
                let log, acquirer = fresh ()

                let inner =
                    shm {
                        let! t = acquirer.Acquire()
                        return t.Id
                    }

                let id =
                    shm {
                        let! _ = acquirer.Acquire()
                        return! inner
                    }
                    |> Shm.run

                Expect.equal id 1 "inner result"
                Expect.equal log.Released [ 1; 0 ] "one scope"
            }

            test "a failing try releases what it acquired before the handler runs" {
                let log, acquirer = fresh ()
                let mutable releasedBeforeHandler = []

                shm {
                    let! _ = acquirer.Acquire()

                    try
                        let! _ = acquirer.Acquire()
                        let! _ = acquirer.Acquire()
                        failwith "inside"
                    with _ ->
                        releasedBeforeHandler <- log.Released

                    let! _ = acquirer.Acquire()
                    ()
                }
                |> Shm.run

                Expect.equal releasedBeforeHandler [ 2; 1 ] "inner resources, reversed, before the handler"
                Expect.equal log.Released [ 2; 1; 3; 0 ] "the rest at scope end"
            }

            test "try/finally runs the compensation; a throwing one rides on the original" {
                let log, acquirer = fresh ()
                let original = InvalidOperationException "body"
                let mutable ran = false

                let caught =
                    catching (fun () ->
                        shm {
                            try
                                let! _ = acquirer.Acquire()
                                raise original
                            finally
                                ran <- true
                                failwith "compensation"
                        }
                        |> Shm.run)

                Expect.isTrue ran "compensation ran"
                Expect.isTrue (obj.ReferenceEquals(caught.Value, original)) "original exception"
                Expect.equal (Shm.suppressed original |> List.map _.Message) [ "compensation" ] "attached"
                Expect.equal log.Released [ 0 ] "released"
            }

            test "Shm.defer and Shm.make run at scope end, newest first" {
                let order = ResizeArray()

                shm {
                    do! Shm.defer (fun () -> order.Add "first")
                    let! _ = Shm.make (fun () -> 7) (fun v -> order.Add $"make {v}")
                    do! Shm.defer (fun () -> order.Add "last")
                }
                |> Shm.run

                Expect.equal (List.ofSeq order) [ "last"; "make 7"; "first" ] "LIFO"
            }

            test "Shm.acquire makes its resource when the block runs, and the scope disposes it once" {
                let log = Log()
                let made = ref 0

                let block =
                    shm {
                        let! token =
                            Shm.acquire (fun () ->
                                made.Value <- made.Value + 1
                                new Token(5, log, false))

                        return token.Id
                    }

                Expect.equal made.Value 0 "nothing made before the block runs"
                Expect.equal (Shm.run block) 5 "the resource's value"
                Expect.equal made.Value 1 "made once"
                Expect.equal log.Released [ 5 ] "disposed once, at the scope's end"
            }

            test "Shm.scoped releases at its own end" {
                let log, acquirer = fresh ()

                shm {
                    let! _ = acquirer.Acquire()

                    for _ in 1..2 do
                        do!
                            Shm.scoped (
                                shm {
                                    let! _ = acquirer.Acquire()
                                    ()
                                }
                            )
                }
                |> Shm.run

                Expect.equal log.Released [ 1; 2; 0 ] "per iteration, then the outer"
            }

            test "Shm.allocate hands the release to the caller, once" {
                let log, acquirer = fresh ()

                let struct (ids, release) =
                    shm {
                        let! a = acquirer.Acquire()
                        let! b = acquirer.Acquire()
                        return a.Id, b.Id
                    }
                    |> Shm.allocate

                Expect.equal ids (0, 1) "value"
                Expect.equal log.Released [] "nothing released yet"
                release.Dispose()
                release.Dispose()
                Expect.equal log.Released [ 1; 0 ] "released once, reversed"
            }

            test "Shm.allocate that fails releases what it acquired and rethrows" {
                let log = Log()
                let acquirer = Acquirer(log, Some 2, Set.empty)

                let caught =
                    catching (fun () ->
                        shm {
                            let! _ = acquirer.Acquire()
                            let! _ = acquirer.Acquire()
                            let! _ = acquirer.Acquire()
                            return ()
                        }
                        |> Shm.allocate
                        |> ignore)

                Expect.equal caught acquirer.Thrown "original"
                Expect.equal log.Released [ 1; 0 ] "released"
            }

            test "map and bind compose in one scope" {
                let log, acquirer = fresh ()

                let id =
                    acquirer.Acquire()
                    |> Shm.bind (fun a -> acquirer.Acquire() |> Shm.map (fun b -> a.Id + b.Id))
                    |> Shm.run

                Expect.equal id 1 "0 + 1"
                Expect.equal log.Released [ 1; 0 ] "reverse"
            }

            test "a computation is cold: nothing is acquired until it runs, and it can run twice" {
                let log, acquirer = fresh ()

                let block =
                    shm {
                        let! t = acquirer.Acquire()
                        return t.Id
                    }

                Expect.equal log.Events [] "cold"
                Expect.equal (Shm.run block, Shm.run block) (0, 1) "runs twice"
                Expect.equal log.Released [ 0; 1 ] "each run releases its own"
            }

            test "a for loop acquiring 100,000 resources keeps constant stack depth" {
                let mutable acquired = 0
                let mutable released = 0
                let mutable lastReleased = -1
                let mutable inOrder = true

                let acquire i =
                    Shm.make
                        (fun () ->
                            acquired <- acquired + 1
                            i)
                        (fun i ->
                            if lastReleased >= 0 && i <> lastReleased - 1 then
                                inOrder <- false

                            lastReleased <- i
                            released <- released + 1)

                shm {
                    for i in 0..99_999 do
                        let! _ = acquire i
                        ()
                }
                |> Shm.run

                Expect.equal (acquired, released) (100_000, 100_000) "all acquired and released"
                Expect.isTrue inOrder "reverse order"
            }

            test "without an original, one finalizer failure is rethrown as is, several aggregate" {
                let one = InvalidOperationException "one"
                let two = InvalidOperationException "two"

                let single =
                    catching (fun () -> shm { do! Shm.defer (fun () -> raise one) } |> Shm.run)

                let several =
                    catching (fun () ->
                        shm {
                            do! Shm.defer (fun () -> raise one)
                            do! Shm.defer (fun () -> raise two)
                        }
                        |> Shm.run)

                Expect.isTrue (obj.ReferenceEquals(single.Value, one)) "as is"

                match several with
                | Some(:? AggregateException as all) ->
                    Expect.sequenceEqual all.InnerExceptions [ two :> exn; one ] "release order"
                | other -> failtestf "expected AggregateException, got %A" other
            }
        ]
