/// The blocks the benchmarks run: built once, so a run measures acquisition and release only.
module Shm.Bench.Fun.Workloads

open Shm.Fun

let private oneRegion =
    shm {
        let! _ = region 5096
        return ()
    }

let private threeRegions =
    shm {
        let! _ = region 5096
        let! _ = region 5096
        let! _ = region 5096
        return ()
    }

/// Maps one 5096-byte region and releases it.
let one () = Shm.run oneRegion

/// Maps three 5096-byte regions and releases them in reverse.
let three () = Shm.run threeRegions
