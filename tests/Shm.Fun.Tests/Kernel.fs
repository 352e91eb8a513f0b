/// The kernel's own record, as the F# tests compare it.
module Shm.Fun.Tests.Kernel

open Shm.TestSupport

/// This process's anonymous shared mappings (start, size), from /proc/self/maps, as a comparable set.
let anonymousShared () = ProcMaps.AnonymousShared() |> Set.ofSeq
