using System.Runtime.InteropServices;

namespace Shm.Tool;

/// <summary>
/// The libc calls the tool makes itself: it needs errno exactly (ENOENT means gone, EACCES means
/// alive but not ours to read), file identities, and never a blocking open.
/// </summary>
internal static unsafe partial class Libc
{
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EACCES = 13;
    public const int EPERM = 1;
    public const int ERANGE = 34;

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_EMPTY_PATH = 0x1000;

    /// <summary>Take the attributes the kernel has cached: never wait for a network file system's server.</summary>
    public const int AT_STATX_DONT_SYNC = 0x4000;

    public const int O_RDONLY = 0;
    public const int O_NONBLOCK = 0x800;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Statx(int dirfd, string path, int flags, uint mask, out StatxBuffer buffer);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "pread", SetLastError = true)]
    public static partial nint PRead(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "close")]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Unlink(string path);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getpwuid_r")]
    public static partial int GetPwUidR(uint uid, Passwd* entry, byte* buffer, nuint length, Passwd** result);

    /// <summary>errno's text, without the process's locale getting in the way.</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} ({Errno(errno)})";

    private static string Errno(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EACCES => "EACCES",
        20 => "ENOTDIR",
        21 => "EISDIR",
        40 => "ELOOP",
        _ => $"errno {errno}",
    };

    /// <summary>struct passwd (glibc, 64-bit): only the name is read.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint Uid;
        public uint Gid;
        public byte* Gecos;
        public byte* Home;
        public byte* Shell;
    }

    /// <summary>struct statx_timestamp.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatxTimestamp
    {
        public long Seconds;
        public uint Nanoseconds;
        private readonly int _reserved;
    }

    /// <summary>struct statx (include/uapi/linux/stat.h), 256 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    public struct StatxBuffer
    {
        public uint Mask;
        public uint BlockSize;
        public ulong Attributes;
        public uint Links;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        private readonly ushort _spare;
        public ulong Inode;
        public ulong Size;
        public ulong Blocks;
        public ulong AttributesMask;
        public StatxTimestamp Accessed;
        public StatxTimestamp Born;
        public StatxTimestamp Changed;
        public StatxTimestamp Modified;
        public uint RdevMajor;
        public uint RdevMinor;
        public uint DevMajor;
        public uint DevMinor;
    }
}
