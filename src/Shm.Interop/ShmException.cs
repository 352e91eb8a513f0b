using System.IO;
using System.Runtime.InteropServices;

namespace Shm.Interop;

/// <summary>
/// A system call failed. Carries the call's name and the <c>errno</c> it set, so callers can
/// branch on <see cref="Errno"/> (compare with the constants in <see cref="LinuxErrno"/>)
/// and logs show what the kernel said.
/// </summary>
public class ShmException : IOException
{
    /// <summary>Creates an exception for <paramref name="syscall"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="syscall">The libc function that failed, e.g. <c>"mmap"</c>.</param>
    /// <param name="errno">The <c>errno</c> value it set.</param>
    /// <param name="detail">What was being attempted (a name, a length), or null.</param>
    public ShmException(string syscall, int errno, string? detail = null)
        : base(Format(syscall, errno, detail))
    {
        Syscall = syscall;
        Errno = errno;
        HResult = errno;
    }

    /// <summary>The libc function that failed, e.g. <c>"mmap"</c> or <c>"shm_open"</c>.</summary>
    public string Syscall { get; }

    /// <summary>The <c>errno</c> the call set (see <see cref="LinuxErrno"/>).</summary>
    public int Errno { get; }

    /// <summary>The symbolic name of <see cref="Errno"/>, e.g. <c>"ENOMEM"</c>.</summary>
    public string ErrnoName => LinuxErrno.NameOf(Errno);

    /// <summary>Throws for the errno the last P/Invoke left on this thread.</summary>
    internal static ShmException FromLastError(string syscall, string? detail = null) =>
        new(syscall, Marshal.GetLastPInvokeError(), detail);

    private static string Format(string syscall, int errno, string? detail)
    {
        string text = $"{syscall} failed: {LinuxErrno.NameOf(errno)} ({errno}): {Marshal.GetPInvokeErrorMessage(errno)}";
        return detail is null ? text : $"{text} [{detail}]";
    }
}
