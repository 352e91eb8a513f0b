using System.Runtime.InteropServices;

namespace Shm.Tool;

/// <summary>The one file attribute .NET does not report: its owner.</summary>
internal static unsafe partial class Stat
{
    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>The uid that owns <paramref name="path"/> (struct statx's stx_uid), or -1.</summary>
    public static int Owner(string path)
    {
        const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
        const uint STATX_UID = 0x8;
        byte* buffer = stackalloc byte[256];
        return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_UID, buffer) == 0 ? *(int*)(buffer + 20) : -1;
    }
}
