/// The kernel's own record, as the F# tests compare it.
module Shm.Fun.Tests.Kernel

open Shm.TestSupport

/// This process's anonymous shared mappings (start, size), from /proc/self/maps, as a comparable set.
let anonymousShared () = ProcMaps.AnonymousShared() |> Set.ofSeq

/// Waits for a child for at most a minute; fails with what the kernel says it is doing, and kills it.
let waitOrFail (child: Shm.Interop.Child) =
    let mutable exit: Shm.Interop.ChildExit | null = null

    match child.TryWait(&exit, System.TimeSpan.FromMinutes 1.0) with
    | true -> nonNull exit
    | false ->
        let state = Native.Describe child.Pid
        child.Dispose()
        failwithf "child %d did not end within a minute; %s" child.Pid state
