namespace Shm.Interop;

/// <summary>
/// Room for one primitive inside your own unmanaged struct: declare a field of this type, map the
/// struct (<see cref="SharedRegion.CreateAnonymous{T}"/>, or at an offset), and create or open the
/// primitive at the field's offset (<c>Marshal.OffsetOf</c>).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = SharedPrimitive.StorageSize)]
public struct SharedPrimitiveStorage
{
#pragma warning disable CS0169 // Never used: it only gives the struct its size and 8-byte alignment.
    private long _alignment;
#pragma warning restore CS0169
}
