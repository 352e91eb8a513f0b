using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shm.Interop;

// <sys/stat.h>: what an object is (device, inode, type), how large, and who may open it. statx
// (glibc 2.28+) has one layout on every architecture; fstat and stat are exported only since glibc 2.33.
internal static partial class Libc
{
    private const int AT_FDCWD = -100;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_BASIC_STATS = 0x7ff;
    private const int S_IFMT = 0xF000;

    /// <summary>The file-type bits of a regular file in st_mode.</summary>
    internal const int S_IFREG = 0x8000;

    /// <summary>The fields of struct statx (256 bytes) this library reads.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct Statx
    {
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Inode;
        [FieldOffset(40)] public long Size;
        [FieldOffset(136)] public uint DeviceMajor;
        [FieldOffset(140)] public uint DeviceMinor;
    }

    /// <summary>What <see cref="FileStatus"/> and <see cref="PathStatus"/> report.</summary>
    internal readonly record struct FileId(ulong Device, ulong Inode, long Size, int Type)
    {
        public bool IsRegularFile => Type == S_IFREG;

        /// <summary>What kind of object it is, for messages: "a FIFO", "a directory"...</summary>
        public string TypeName => Type switch
        {
            S_IFREG => "a regular file",
            0x1000 => "a FIFO",
            0x2000 => "a character device",
            0x4000 => "a directory",
            0x6000 => "a block device",
            0xA000 => "a symbolic link",
            0xC000 => "a socket",
            _ => $"an object of type 0{System.Convert.ToString(Type, 8)}",
        };

        public (ulong Device, ulong Inode) Id => (Device, Inode);
    }

    [LibraryImport(Name, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, Statx* buffer);

    [LibraryImport(Name, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int statx(SafeFileHandle dirfd, string path, int flags, uint mask, Statx* buffer);

    [LibraryImport(Name, EntryPoint = "fchmod", SetLastError = true)]
    internal static partial int fchmod(SafeFileHandle fd, uint mode);

    /// <summary>The object behind <paramref name="fd"/>.</summary>
    /// <exception cref="ShmException">statx failed.</exception>
    internal static unsafe FileId FileStatus(SafeFileHandle fd)
    {
        Statx buffer;
        CheckIo(statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &buffer), "statx");
        return Describe(buffer);
    }

    /// <summary>The object at <paramref name="path"/> (not following a final symlink), or null if nothing is there.</summary>
    internal static unsafe FileId? PathStatus(string path)
    {
        const int AT_SYMLINK_NOFOLLOW = 0x100;
        Statx buffer;
        return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &buffer) == 0 ? Describe(buffer) : null;
    }

    private static FileId Describe(Statx buffer) =>
        new(((ulong)buffer.DeviceMajor << 32) | buffer.DeviceMinor, buffer.Inode, buffer.Size, buffer.Mode & S_IFMT);
}
