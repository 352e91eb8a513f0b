module Shm.Fun.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    // Sequenced: the region tests compare /proc/self/maps before and after, which a test mapping
    // regions on another thread at the same moment would disturb.
    Tests.runTestsInAssemblyWithCLIArgs [ Sequenced ] argv
