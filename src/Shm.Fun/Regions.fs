namespace Shm.Fun

open Shm.Interop

/// The words of a <c>shm { }</c> block that make regions: <c>let! a = region 5096</c>, <c>let! s = typed&lt;S&gt;</c>.
[<AutoOpen>]
module Regions =

    /// <summary>
    /// An anonymous shared region of <paramref name="length"/> bytes (an <c>int</c> or an
    /// <c>int64</c>: <c>region 5096</c>, <c>region (1L &lt;&lt;&lt; 40)</c>), unmapped when the scope closes.
    /// </summary>
    let inline region (length: ^N) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.CreateAnonymous(int64 length)) scope

    /// <summary>An anonymous shared region sized for one <typeparamref name="T"/>; its <c>Value</c> is the struct in place.</summary>
    let inline typed<'T when 'T: unmanaged and 'T: struct and 'T :> System.ValueType and 'T: (new: unit -> 'T)>
        : Shm<SharedRegion<'T>> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.CreateAnonymous<'T>()) scope

/// Regions backed by something other processes can find, as scoped resources (see <c>SharedRegion</c>'s
/// <c>Create…</c> and <c>Open…</c> methods, which these call).
[<RequireQualifiedAccess>]
module Region =

    /// <summary>
    /// Creates the named segment <paramref name="name"/> in <c>/dev/shm</c> (mode 0600); when the
    /// scope closes it is unmapped and its name removed (see <c>SharedRegion.CreateNamed</c>).
    /// </summary>
    let inline named (name: string) (length: ^N) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.CreateNamed(name, int64 length)) scope

    /// <summary>
    /// Creates the named segment <paramref name="name"/> (mode 0600) or, if another process did,
    /// opens it, waiting up to 5 s for its creator to size it; its size must be
    /// <paramref name="length"/>. <c>OwnsName</c> tells which happened: only the creator removes the
    /// name when its scope closes (see <c>SharedRegion.CreateOrOpen</c>).
    /// </summary>
    let inline createOrOpen (name: string) (length: ^N) : Shm<SharedRegion> =
        (fun scope ->
            let made = SharedRegion.CreateOrOpen(name, int64 length)
            scope.Add(made, made)
            made)

    /// <summary>Opens the existing named segment <paramref name="name"/> read/write; unmapped (never unlinked) when the scope closes.</summary>
    let openNamed (name: string) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.OpenNamed name) scope

    /// <summary>A memfd-backed region, passable to spawned processes; unmapped and closed when the scope closes.</summary>
    let inline memfd (name: string) (length: ^N) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.CreateMemfd(name, int64 length)) scope

    /// <summary>The first <paramref name="length"/> bytes of the file at <paramref name="path"/>, created (0600) or extended as needed; the file persists.</summary>
    let inline file (path: string) (length: ^N) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.CreateFromFile(path, int64 length)) scope

    /// <summary>Inherited region <paramref name="index"/> of a process started by <c>Child.spawn</c>; unmapped when the scope closes.</summary>
    let openInherited (index: int) : Shm<SharedRegion> =
        fun scope -> Shm.acquire (fun () -> SharedRegion.OpenInherited index) scope
