namespace Shm.Interop;

/// <summary>A shared region that holds exactly one <typeparamref name="T"/>.</summary>
/// <typeparam name="T">An unmanaged struct whose single value lives in the mapping.</typeparam>
public sealed class SharedRegion<T> : SharedRegion
    where T : unmanaged
{
    internal SharedRegion(SafeMappingHandle mapping, long length, Protection protection)
        : base(mapping, length, protection) { }

    /// <summary>The value, in place in shared memory: writes are seen by every process that maps it.</summary>
    /// <exception cref="System.ObjectDisposedException">The region was disposed.</exception>
    /// <exception cref="System.NotSupportedException">The region is not writable.</exception>
    public ref T Value => ref As<T>();

    private protected override string Describe() => $"anonymous region of {typeof(T).Name}";
}
