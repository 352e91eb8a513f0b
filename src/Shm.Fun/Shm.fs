namespace Shm.Fun

#nowarn "1204" // the builder is the caller the hidden plumbing exists for

open System

/// <summary>
/// A cold computation that, run against a <see cref="Scope"/>, acquires what it needs, registers
/// each release on the scope and returns a value. Build one with <c>shm { }</c>; run it with
/// <c>Shm.run</c>. It is a plain function, so that the builder's inlining can fuse a whole block
/// into one closure: running a prebuilt block allocates nothing per acquisition.
/// </summary>
type Shm<'T> = Scope -> 'T

/// Running and combining scoped computations.
[<RequireQualifiedAccess>]
[<CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Shm =

    /// <summary>Runs <paramref name="m"/> against <paramref name="scope"/>, leaving its resources registered there.</summary>
    [<CompilerMessage("Plumbing of the shm { } builder, not meant to be called directly.",
                      1204,
                      IsHidden = true)>]
    let inline runIn (scope: Scope) ([<InlineIfLambda>] m: Shm<'T>) : 'T = m scope

    /// Runs m in a fresh scope and returns it open; if m throws, the scope is closed (failures
    /// attached to the exception) before the exception leaves.
    let private start (m: Shm<'T>) : struct ('T * Scope) =
        let scope = new Scope()

        try
            struct (runIn scope m, scope)
        with cause ->
            scope.Abort cause
            reraise ()

    /// <summary>
    /// Runs the computation in a fresh scope and closes it: every resource acquired is released,
    /// newest first, exactly once, whether the computation returned or threw. The exception the
    /// caller sees is the original one; finalizer failures ride on it (<see cref="suppressed"/>).
    /// </summary>
    let run (m: Shm<'T>) : 'T =
        let struct (result, scope) = start m
        scope.Dispose()
        result

    /// <summary>
    /// Any acquire/release pair as a scoped resource: <paramref name="acquire"/> runs when the
    /// computation runs, <paramref name="release"/> when the scope closes.
    /// </summary>
    let make (acquire: unit -> 'T) (release: 'T -> unit) : Shm<'T> =
        (fun scope ->
            let value = acquire ()
            let owner: objnull = if typeof<'T>.IsValueType then null else box value
            scope.Add(owner, new Release<'T>(value, release))
            value)

    /// <summary>
    /// The resource <paramref name="make"/> returns, made when the computation runs and disposed when the
    /// scope closes: how every region, primitive, channel end and participant of this library becomes a
    /// scoped resource. Inline with an inlined <paramref name="make"/>, so it adds no allocation to what
    /// <paramref name="make"/> allocates (the builder fuses a whole block into one closure). A module
    /// function that returns it writes <c>fun scope -> Shm.acquire (fun () -> ...) scope</c>: so it
    /// compiles to one method that takes the scope, and a call allocates no closure.
    /// </summary>
    let inline acquire<'R when 'R :> IDisposable> ([<InlineIfLambda>] make: unit -> 'R) : Shm<'R> =
        (fun scope ->
            let made = make ()
            scope.Add(made, made)
            made)

    /// <summary>Puts an existing disposable under the scope (once, however often it is registered).</summary>
    let ofDisposable (resource: 'R :> IDisposable) : Shm<'R> =
        (fun scope ->
            scope.Own resource
            resource)

    /// <summary>Registers <paramref name="finalizer"/> to run when the scope closes.</summary>
    let defer (finalizer: unit -> unit) : Shm<unit> =
        (fun scope -> scope.Add(null, new Release<unit>((), finalizer)))

    /// <summary>
    /// Runs <paramref name="m"/> in a nested scope that closes when it ends: use it for
    /// per-iteration release in loops.
    /// </summary>
    let scoped (m: Shm<'T>) : Shm<'T> = (fun _ -> run m)

    /// <summary>
    /// Escapes on purpose: runs <paramref name="m"/> in its own scope and hands the caller the
    /// value with one <see cref="IDisposable"/> that releases everything it acquired (once).
    /// If <paramref name="m"/> fails, what it acquired is released before the exception leaves.
    /// </summary>
    let allocate (m: Shm<'T>) : struct ('T * IDisposable) =
        let struct (value, scope) = start m
        struct (value, scope :> IDisposable)

    /// <summary>Transforms the result.</summary>
    let map (f: 'T -> 'U) (m: Shm<'T>) : Shm<'U> = (fun scope -> f (runIn scope m))

    /// <summary>Sequences two computations in the same scope.</summary>
    let bind (f: 'T -> Shm<'U>) (m: Shm<'T>) : Shm<'U> =
        (fun scope -> runIn scope (f (runIn scope m)))

    /// <summary>The finalizer failures attached to <paramref name="original"/> while it propagated, in release order.</summary>
    let suppressed (original: exn) : exn list = Scope.Suppressed original
