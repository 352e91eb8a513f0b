namespace Shm.Fun

#nowarn "1204" // the builder is the caller the hidden plumbing exists for

open System

/// <summary>
/// The <c>shm { }</c> builder. Every binding form (<c>let!</c>, <c>use!</c>, <c>and!</c>,
/// <c>use</c>) gives its resource the lifetime of the enclosing scope, so release order is the
/// reverse of acquisition across the whole block. Loops run in constant stack depth.
/// </summary>
type ShmBuilder() =
    /// Completes with unit.
    member inline _.Zero() : Shm<unit> = fun _ -> ()

    /// Completes with a value.
    member inline _.Return(value: 'T) : Shm<'T> = fun _ -> value

    /// Completes with another computation's result.
    member inline _.ReturnFrom(m: Shm<'T>) : Shm<'T> = m

    /// Defers building the computation until it runs, so a block is cold.
    member inline _.Delay([<InlineIfLambda>] f: unit -> Shm<'T>) : Shm<'T> =
        (fun scope -> Shm.runIn scope (f ()))

    /// Acquires, then continues with the value.
    member inline _.Bind([<InlineIfLambda>] m: Shm<'T>, [<InlineIfLambda>] f: 'T -> Shm<'U>) : Shm<'U> =
        (fun scope -> Shm.runIn scope (f (Shm.runIn scope m)))

    /// Acquires, then returns a function of the value.
    member inline _.BindReturn([<InlineIfLambda>] m: Shm<'T>, [<InlineIfLambda>] f: 'T -> 'U) : Shm<'U> =
        (fun scope -> f (Shm.runIn scope m))

    /// <c>and!</c>: acquires left to right.
    member inline _.MergeSources
        ([<InlineIfLambda>] left: Shm<'T>, [<InlineIfLambda>] right: Shm<'U>)
        : Shm<'T * 'U> =
        (fun scope ->
            let l = Shm.runIn scope left
            let r = Shm.runIn scope right
            l, r)

    /// Runs one computation after another.
    member inline _.Combine
        ([<InlineIfLambda>] first: Shm<unit>, [<InlineIfLambda>] second: Shm<'T>)
        : Shm<'T> =
        (fun scope ->
            Shm.runIn scope first
            Shm.runIn scope second)

    /// Loops; what each iteration acquires stays until the scope closes (wrap the body in <c>Shm.scoped</c> to release per iteration).
    member inline _.While
        ([<InlineIfLambda>] guard: unit -> bool, [<InlineIfLambda>] body: Shm<unit>)
        : Shm<unit> =
        (fun scope ->
            while guard () do
                Shm.runIn scope body)

    /// Iterates a sequence, acquiring in order.
    member inline _.For(items: 'T seq, [<InlineIfLambda>] body: 'T -> Shm<unit>) : Shm<unit> =
        (fun scope ->
            for item in items do
                Shm.runIn scope (body item))

    /// What the failing body acquired is released (newest first) before the handler runs.
    member inline _.TryWith
        ([<InlineIfLambda>] body: Shm<'T>, [<InlineIfLambda>] handler: exn -> Shm<'T>)
        : Shm<'T> =
        (fun scope ->
            let mark = scope.Depth

            try
                Shm.runIn scope body
            with cause ->
                scope.ReleaseTo(mark, cause)
                Shm.runIn scope (handler cause))

    /// The compensation runs when the body ends. On failure, what the body acquired is released
    /// first, and a throwing compensation is attached to the original instead of replacing it.
    member inline _.TryFinally
        ([<InlineIfLambda>] body: Shm<'T>, [<InlineIfLambda>] compensation: unit -> unit)
        : Shm<'T> =
        (fun scope ->
            let mark = scope.Depth

            let result =
                try
                    Shm.runIn scope body
                with cause ->
                    scope.ReleaseTo(mark, cause)

                    try
                        compensation ()
                    with failure ->
                        Scope.AddSuppressed(cause, [ failure ])

                    reraise ()

            compensation ()
            result)

    /// <c>use</c> and <c>use!</c>: the resource lives until the scope closes; one already
    /// registered (by <c>let!</c>'s acquirer) is not registered again.
    member inline _.Using(resource: 'R :> IDisposable, [<InlineIfLambda>] body: 'R -> Shm<'T>) : Shm<'T> =
        (fun scope ->
            scope.Own resource
            Shm.runIn scope (body resource))

/// The <c>shm { }</c> builder instance.
[<AutoOpen>]
module Builder =
    /// Builds a scoped computation: <c>shm { let! a = region 5096 in ... }</c>, run with <c>Shm.run</c>.
    let shm = ShmBuilder()
