using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// The one way a failing libc call becomes an exception: the call's name, its errno and what was
// being attempted, in a ShmException.
internal static partial class Libc
{
    /// <summary>Returns <paramref name="result"/>, or throws the errno of <paramref name="call"/> if it is negative.</summary>
    internal static int CheckIo(int result, string call, string? detail = null) =>
        result >= 0 ? result : throw ShmException.FromLastError(call, detail);

    /// <summary>Returns <paramref name="fd"/>, just opened by <paramref name="call"/>, or disposes it and throws the call's errno.</summary>
    internal static SafeFileHandle CheckIo(SafeFileHandle fd, string call, string? detail = null)
    {
        if (!fd.IsInvalid)
        {
            return fd;
        }
        var failure = ShmException.FromLastError(call, detail);
        fd.Dispose();
        throw failure;
    }

    /// <summary>For calls that return an error number instead of setting errno (posix_spawn*, posix_fallocate, pthread_*).</summary>
    internal static void CheckError(int error, string call, string? detail = null)
    {
        if (error != 0)
        {
            throw new ShmException(call, error, detail);
        }
    }
}
