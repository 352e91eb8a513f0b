/// The Expecto run's equivalent of xunit's --blame-hang-timeout: a test that runs longer than the
/// limit is named on stderr and the run ends with exit code 124, instead of hanging CI.
module Shm.Fun.Tests.HangGuard

open System
open System.Diagnostics
open System.Runtime.InteropServices
open System.Threading
open Expecto

[<DllImport("libc", EntryPoint = "_exit")>]
extern void private exitNow(int status)

let mutable private current = ""
let private clock = Stopwatch()

/// A printer that records which test runs, around Expecto's default one.
let private printer (inner: Impl.TestPrinters) =
    { inner with
        beforeEach =
            fun name ->
                lock clock (fun () ->
                    current <- name
                    clock.Restart())

                inner.beforeEach name
    }

/// Starts the watchdog and returns the CLI argument that installs the recording printer.
let install (perTest: TimeSpan) : CLIArguments =
    let watchdog =
        Thread(
            (fun () ->
                while true do
                    Thread.Sleep 1000

                    let name, elapsed = lock clock (fun () -> current, clock.Elapsed)

                    if elapsed > perTest && name <> "" then
                        eprintfn
                            "HANG GUARD: test \"%s\" has run for %.0f s (limit %.0f s); ending the run."
                            name
                            elapsed.TotalSeconds
                            perTest.TotalSeconds

                        Console.Error.Flush()
                        exitNow 124),
            IsBackground = true,
            Name = "hang guard"
        )

    watchdog.Start()
    Printer(printer Tests.defaultConfig.printer)
