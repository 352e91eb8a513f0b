namespace Shm.Interop;

/// <summary>
/// The Linux <c>errno</c> values this library's callers branch on (compare with <see cref="ShmException.Errno"/>),
/// and <see cref="NameOf"/>, which names every errno the library can meet. Errno values are Linux's
/// ABI and never change, so they are constants (usable in <c>case</c> labels).
/// </summary>
/// <remarks>The one errno table of the library: its own code uses these constants, and the internal ones below.</remarks>
public static class LinuxErrno
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such file or directory (e.g. opening a segment that does not exist).</summary>
    public const int ENOENT = 2;
    /// <summary>No such process.</summary>
    public const int ESRCH = 3;
    /// <summary>Interrupted system call.</summary>
    public const int EINTR = 4;
    /// <summary>Bad file descriptor.</summary>
    public const int EBADF = 9;
    /// <summary>No child processes.</summary>
    public const int ECHILD = 10;
    /// <summary>Resource temporarily unavailable (e.g. fork over RLIMIT_NPROC).</summary>
    public const int EAGAIN = 11;
    /// <summary>Out of memory, or a length the address space cannot hold.</summary>
    public const int ENOMEM = 12;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>File exists (e.g. creating a segment whose name is taken).</summary>
    public const int EEXIST = 17;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>Too many open files.</summary>
    public const int EMFILE = 24;
    /// <summary>File too large.</summary>
    public const int EFBIG = 27;
    /// <summary>No space left on device (e.g. a segment larger than /dev/shm can hold).</summary>
    public const int ENOSPC = 28;
    /// <summary>File name too long.</summary>
    public const int ENAMETOOLONG = 36;
    /// <summary>Too many levels of symbolic links (e.g. a file region's path ends in a symbolic link).</summary>
    public const int ELOOP = 40;

    // What the library's own code meets and handles; callers never see these in a ShmException.
    internal const int EFAULT = 14;
    internal const int EBUSY = 16;
    internal const int EDEADLK = 35;
    internal const int ENOSYS = 38;
    internal const int ETIMEDOUT = 110;
    internal const int EOWNERDEAD = 130;
    internal const int ENOTRECOVERABLE = 131;

    /// <summary>The symbolic name of <paramref name="errno"/>, or <c>"errno N"</c> for one the library never meets.</summary>
    /// <param name="errno">An errno value.</param>
    public static string NameOf(int errno) => errno switch
    {
        EPERM => nameof(EPERM),
        ENOENT => nameof(ENOENT),
        ESRCH => nameof(ESRCH),
        EINTR => nameof(EINTR),
        EBADF => nameof(EBADF),
        ECHILD => nameof(ECHILD),
        EAGAIN => nameof(EAGAIN),
        ENOMEM => nameof(ENOMEM),
        EACCES => nameof(EACCES),
        EFAULT => nameof(EFAULT),
        EBUSY => nameof(EBUSY),
        EEXIST => nameof(EEXIST),
        EINVAL => nameof(EINVAL),
        EMFILE => nameof(EMFILE),
        EFBIG => nameof(EFBIG),
        ENOSPC => nameof(ENOSPC),
        EDEADLK => nameof(EDEADLK),
        ENAMETOOLONG => nameof(ENAMETOOLONG),
        ENOSYS => nameof(ENOSYS),
        ELOOP => nameof(ELOOP),
        ETIMEDOUT => nameof(ETIMEDOUT),
        EOWNERDEAD => nameof(EOWNERDEAD),
        ENOTRECOVERABLE => nameof(ENOTRECOVERABLE),
        _ => $"errno {errno}",
    };
}
