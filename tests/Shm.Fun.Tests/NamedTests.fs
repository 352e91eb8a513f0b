/// Named, memfd and file regions as scoped resources: /dev/shm and /proc are the judges.
module Shm.Fun.Tests.NamedTests

open System.IO
open Expecto
open Shm.Fun
open Shm.Interop
open Shm.TestSupport

let private memfdMapped (name: string) =
    ProcMaps.Read() |> Seq.exists (fun m -> m.Path = $"/memfd:{name} (deleted)")

[<Tests>]
let tests =
    testList
        "named"
        [
            test "named and openNamed share bytes; the block's end unmaps both and unlinks the name once" {
                use devShm = new DevShm()
                let name = devShm.UniqueName()

                let seen =
                    shm {
                        let! creator = Region.named name 4096
                        let! opener = Region.openNamed name
                        creator.Write(0L, 31337)
                        return opener.Read<int> 0L, DevShm.Exists name
                    }
                    |> Shm.run

                Expect.equal seen (31337, true) "same bytes, name present inside"
                Expect.isFalse (DevShm.Exists name) "unlinked at the end"
            }

            test
                "createOrOpen twice: the first creates and owns the name, the second opens the same bytes; the block's end unlinks it" {
                use devShm = new DevShm()
                let name = devShm.UniqueName()

                let seen =
                    shm {
                        let! first = Region.createOrOpen name 4096
                        let! second = Region.createOrOpen name 4096
                        first.Write(8L, 4242)
                        return first.OwnsName, second.OwnsName, second.Read<int> 8L
                    }
                    |> Shm.run

                Expect.equal seen (true, false, 4242) "one creator, one opener, same bytes"
                Expect.isFalse (DevShm.Exists name) "unlinked at the end"
            }

            test "a segment acquired for a scope that already closed is released at once, not leaked" {
                use devShm = new DevShm()
                let name = devShm.UniqueName()
                let scope = new Scope()
                scope.Dispose()

                let caught =
                    try
                        Region.named name 4096 scope |> ignore
                        None
                    with e ->
                        Some e

                Expect.isTrue
                    (caught |> Option.exists (fun e -> e :? System.ObjectDisposedException))
                    "refused"

                Expect.isFalse (DevShm.Exists name) "the segment was unlinked, not left behind"
            }

            test "a failing acquisition after named unlinks the segment before the error leaves" {
                use devShm = new DevShm()
                let name = devShm.UniqueName()

                let caught =
                    try
                        shm {
                            let! _ = Region.named name 4096L
                            let! _ = Region.openNamed (devShm.UniqueName()) // missing: ENOENT
                            return ()
                        }
                        |> Shm.run

                        None
                    with :? ShmException as e ->
                        Some e.Errno

                Expect.equal caught (Some LinuxErrno.ENOENT) "the open's error"
                Expect.isFalse (DevShm.Exists name) "the created segment is gone"
            }

            test "memfd is visible in /proc/self/maps inside the block only" {
                let inside =
                    shm {
                        let! _ = Region.memfd "fun-memfd" 8192
                        return memfdMapped "fun-memfd"
                    }
                    |> Shm.run

                Expect.isTrue inside "mapped inside"
                Expect.isFalse (memfdMapped "fun-memfd") "unmapped after"
            }

            test "file regions persist after the block" {
                let path =
                    Path.Combine(Path.GetTempPath(), $"shm-fun-{System.Guid.NewGuid():N}.bin")

                try
                    shm {
                        let! data = Region.file path 4096
                        data.Write(16L, 0x5EEDL)
                        data.Flush()
                    }
                    |> Shm.run

                    let bytes = File.ReadAllBytes path
                    Expect.equal bytes.Length 4096 "sized"
                    Expect.equal (System.BitConverter.ToInt64(bytes, 16)) 0x5EEDL "durable"
                finally
                    File.Delete path
            }
        ]
