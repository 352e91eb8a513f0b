namespace Shm.Fun

open Shm.Interop

/// Shared memory regions as scoped resources.
[<AutoOpen>]
module Regions =

    let private own (scope: Scope) (region: #SharedRegion) =
        scope.Add(region, region)
        region

    /// <summary>An anonymous shared region of <paramref name="length"/> bytes, unmapped when the scope closes.</summary>
    let anonymous (length: int64) : Shm<SharedRegion> =
        Shm(fun scope -> own scope (SharedRegion.Anonymous length))

    /// <summary>
    /// An anonymous shared region of <paramref name="length"/> bytes (an <c>int</c> or an
    /// <c>int64</c>: <c>region 5096</c>, <c>region (1L &lt;&lt;&lt; 40)</c>), unmapped when the scope closes.
    /// </summary>
    let inline region (length: ^N) : Shm<SharedRegion> = anonymous (int64 length)

    /// <summary>An anonymous shared region sized for one <typeparamref name="T"/>; its <c>Value</c> is the struct in place.</summary>
    let typed<'T when 'T: unmanaged and 'T: struct and 'T :> System.ValueType and 'T: (new: unit -> 'T)>
        : Shm<SharedRegion<'T>> =
        Shm(fun scope -> own scope (SharedRegion.Anonymous<'T>()))
