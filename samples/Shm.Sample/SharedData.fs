namespace Shm.Sample

open System
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open Shm.Interop

/// Ten ints laid out like C's int[10].
[<Struct; InlineArray(10)>]
type Ints10 =
    [<DefaultValue(false)>]
    val mutable private element: int

/// Ten floats laid out like C's float[10].
[<Struct; InlineArray(10)>]
type Floats10 =
    [<DefaultValue(false)>]
    val mutable private element: float32

/// The shared struct, laid out as C's struct SharedData { int ints[10]; float floats[10]; }: 80 bytes.
[<Struct; StructLayout(LayoutKind.Sequential)>]
type SharedData =
    val mutable Ints: Ints10
    val mutable Floats: Floats10

/// Element access to a SharedData that lives in a region.
module SharedData =
    let ints (data: SharedRegion<SharedData>) : Span<int> =
        MemoryMarshal.CreateSpan(&Unsafe.As<Ints10, int>(&data.Value.Ints), 10)

    let floats (data: SharedRegion<SharedData>) : Span<float32> =
        MemoryMarshal.CreateSpan(&Unsafe.As<Floats10, float32>(&data.Value.Floats), 10)
