namespace Shm.Interop;

internal static partial class Libc
{
    /// <summary>The runtime maps "libc" to the platform's C library (libc.so.6 on glibc).</summary>
    internal const string Name = "libc";
}
