namespace Shm.Fun

open Shm.Interop

/// Shared memory regions as scoped resources.
[<AutoOpen>]
module Regions =

    /// <summary>Registers <paramref name="region"/>'s release on <paramref name="scope"/> and returns it: how each function here makes a region scoped.</summary>
    let own (scope: Scope) (region: #SharedRegion) =
        scope.Add(region, region)
        region

    /// <summary>An anonymous shared region of <paramref name="length"/> bytes, unmapped when the scope closes.</summary>
    let inline anonymous (length: int64) : Shm<SharedRegion> =
        (fun scope -> own scope (SharedRegion.Anonymous length))

    /// <summary>
    /// An anonymous shared region of <paramref name="length"/> bytes (an <c>int</c> or an
    /// <c>int64</c>: <c>region 5096</c>, <c>region (1L &lt;&lt;&lt; 40)</c>), unmapped when the scope closes.
    /// </summary>
    let inline region (length: ^N) : Shm<SharedRegion> = anonymous (int64 length)

    /// <summary>An anonymous shared region sized for one <typeparamref name="T"/>; its <c>Value</c> is the struct in place.</summary>
    let inline typed<'T when 'T: unmanaged and 'T: struct and 'T :> System.ValueType and 'T: (new: unit -> 'T)>
        : Shm<SharedRegion<'T>> =
        (fun scope -> own scope (SharedRegion.Anonymous<'T>()))

    /// <summary>
    /// Creates the named segment <paramref name="name"/> in <c>/dev/shm</c> (mode 0600); when the
    /// scope closes it is unmapped and its name removed (see <c>SharedRegion.CreateNamed</c>).
    /// </summary>
    let inline named (name: string) (length: ^N) : Shm<SharedRegion> =
        (fun scope -> own scope (SharedRegion.CreateNamed(name, int64 length)))

    /// <summary>Opens the existing named segment <paramref name="name"/> read/write; unmapped (never unlinked) when the scope closes.</summary>
    let inline openNamed (name: string) : Shm<SharedRegion> =
        (fun scope -> own scope (SharedRegion.OpenNamed name))

    /// <summary>A memfd-backed region, passable to spawned processes; unmapped and closed when the scope closes.</summary>
    let inline memfd (name: string) (length: ^N) : Shm<SharedRegion> =
        (fun scope -> own scope (SharedRegion.CreateMemfd(name, int64 length)))

    /// <summary>The first <paramref name="length"/> bytes of the file at <paramref name="path"/>, created or extended as needed; the file persists.</summary>
    let inline file (path: string) (length: ^N) : Shm<SharedRegion> =
        (fun scope -> own scope (SharedRegion.MapFile(path, int64 length)))
