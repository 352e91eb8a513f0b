module Shm.Fun.Tests.Main

open System
open Expecto
open Shm.Interop

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--spawned-worker"; value |] ->
        // This program spawned by itself (Child.SpawnSelf): attach the region it was handed.
        use region = SharedRegion.OpenInherited()
        region.Write(0L, int value)
        0
    | _ ->
        // Sequenced: the region tests compare /proc/self/maps before and after, which a test mapping
        // regions on another thread at the same moment would disturb.
        let guard = HangGuard.install (TimeSpan.FromMinutes 5.0)
        Tests.runTestsInAssemblyWithCLIArgs [ Sequenced; guard ] argv
