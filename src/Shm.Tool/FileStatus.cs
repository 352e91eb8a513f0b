using System;

namespace Shm.Tool;

/// <summary>The kinds of directory entry, as the kernel tells them apart (S_IFMT).</summary>
internal enum FileKind
{
    Regular,
    Directory,
    Fifo,
    Socket,
    CharacterDevice,
    BlockDevice,
    SymbolicLink,
    Unknown,
}

/// <summary>One file's attributes, from statx(2).</summary>
/// <param name="Id">Its device and inode.</param>
/// <param name="Kind">Regular file, FIFO, ...</param>
/// <param name="Permissions">Its permission bits (the low 12 bits of st_mode).</param>
/// <param name="Uid">The owner's uid.</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Created">Its birth time, or where the file system keeps none, the earlier of its change and modification times.</param>
internal readonly record struct FileStatus(FileId Id, FileKind Kind, int Permissions, uint Uid, long Size, DateTime Created)
{
    private const uint Wanted = 0x1 | 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x800; // TYPE MODE UID MTIME CTIME INO SIZE BTIME
    private const uint BirthTime = 0x800;

    /// <summary>The entry at <paramref name="path"/> itself (a symbolic link is not followed); or the errno.</summary>
    public static int TryOfEntry(string path, out FileStatus status) => TryOf(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW, out status);

    /// <summary>The file <paramref name="path"/> leads to (links followed: how /proc/PID/fd/N names its file); or the errno.</summary>
    public static int TryOfTarget(string path, out FileStatus status) => TryOf(Libc.AT_FDCWD, path, 0, out status);

    /// <summary>The file open on descriptor <paramref name="fd"/>; or the errno.</summary>
    public static int TryOfDescriptor(int fd, out FileStatus status) => TryOf(fd, "", Libc.AT_EMPTY_PATH, out status);

    private static int TryOf(int dirfd, string path, int flags, out FileStatus status)
    {
        if (Libc.Statx(dirfd, path, flags | Libc.AT_STATX_DONT_SYNC, Wanted, out Libc.StatxBuffer buffer) != 0)
        {
            status = default;
            return System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        }
        DateTime created = (buffer.Mask & BirthTime) != 0
            ? Time(buffer.Born)
            : Time(buffer.Changed) < Time(buffer.Modified) ? Time(buffer.Changed) : Time(buffer.Modified);
        status = new FileStatus(
            new FileId(buffer.DevMajor, buffer.DevMinor, buffer.Inode),
            KindOf(buffer.Mode),
            buffer.Mode & 0xFFF,
            buffer.Uid,
            (long)Math.Min(buffer.Size, long.MaxValue),
            created);
        return 0;
    }

    // Anyone may set a file's modification time to any second (utimensat): clamp, never throw.
    private static DateTime Time(Libc.StatxTimestamp time) =>
        time.Seconds < -62_135_596_800 ? DateTime.MinValue
        : time.Seconds > 253_402_300_799 ? DateTime.MaxValue
        : DateTime.UnixEpoch.AddTicks((time.Seconds * TimeSpan.TicksPerSecond) + (Math.Min(time.Nanoseconds, 999_999_999u) / 100));

    private static FileKind KindOf(ushort mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0x1000 => FileKind.Fifo,
        0xC000 => FileKind.Socket,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0xA000 => FileKind.SymbolicLink,
        _ => FileKind.Unknown,
    };
}
