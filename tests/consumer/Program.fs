/// What a stranger's program does with the packages: regions in shm { }, a named segment, and
/// fork, which works only if the package's ShmEnableFork switch configured this app.
module Consumer.Program

open System
open System.IO
open Shm.Fun
open Shm.Interop

let check (what: string) (ok: bool) =
    printfn "%s %s" (if ok then "ok  " else "FAIL") what
    ok

[<EntryPoint>]
let main argv =
    let forkExpected = argv = [| "--fork-enabled" |]

    let regionsWork =
        shm {
            let! a = region 5096
            let! b = region 5096
            a.Write(0L, 41)
            b.Write(0L, 1)
            return a.Read<int> 0L + b.Read<int> 0L
        }
        |> Shm.run
        |> (=) 42

    let name = $"shm-consumer-{Guid.NewGuid():N}"

    let namedWorks =
        shm {
            let! creator = Region.named name 4096
            let! opener = Region.openNamed name
            creator.Write(0L, 7)
            return opener.Read<int> 0L = 7 && File.Exists $"/dev/shm/{name}"
        }
        |> Shm.run
        && not (File.Exists $"/dev/shm/{name}")

    let forkBehaves =
        if forkExpected then
            shm {
                let! data = region 64

                let! kids =
                    Child.children 3 (fun i ->
                        data.Write(int64 (4 * i), i + 1)
                        0)

                return kids
            }
            |> Shm.run
            |> Seq.forall (fun kid ->
                match kid.Exit with
                | null -> false
                | exit -> exit.Succeeded)
        else
            try
                Shm.Interop.Child.Fork(fun () -> 0).Dispose()
                false
            with :? NotSupportedException as refused ->
                refused.Message.Contains "<ShmEnableFork>true</ShmEnableFork>"

    let results =
        [
            check "shm { } maps and releases regions" regionsWork
            check "named segments are created, opened and unlinked" namedWorks
            check
                (if forkExpected then
                     "ShmEnableFork from the package configures fork: children ran"
                 else
                     "without ShmEnableFork, Child.Fork refuses and names the fix")
                forkBehaves
        ]

    if List.forall id results then 0 else 1
