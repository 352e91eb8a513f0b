open Shm.Fun
open Shm.Interop

[<Struct>]
type Counters =
    val mutable Hits: int64
    val mutable Misses: int64

let total =
    shm {
        let! a = region 5096 // int or int64: region (1L <<< 40)
        let! b = region 5096
        let! counters = typed<Counters> // a region sized for one unmanaged struct

        let! kids =
            Child.children 3 (fun i ->
                a.Write(int64 (8 * i), int64 i + 1L)
                0)

        kids.WaitAll() |> ignore // the block's end would wait for them anyway
        counters.Value.Hits <- a.Read<int64> 0L + a.Read<int64> 8L + a.Read<int64> 16L
        return counters.Value.Hits + int64 b.Length
    }
    |> Shm.run // reaps the children, then unmaps counters, b, a (in that order)

printfn "%d" total // 5102
