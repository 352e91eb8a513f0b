using System;
using System.Runtime.InteropServices;

namespace Shm.Interop;

// /proc: the kernel's own record of a process, read without allocating (the child watcher samples often).
internal static partial class Libc
{
    private const int _SC_CLK_TCK = 2;

    [LibraryImport(Name, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open_path(string path, int flags);

    [LibraryImport(Name, EntryPoint = "sysconf")]
    private static partial long sysconf(int name);

    /// <summary>The unit of the times /proc shows (USER_HZ, normally 100 a second).</summary>
    internal static long ClockTicksPerSecond() => sysconf(_SC_CLK_TCK) is > 0 and var ticks ? ticks : 100;

    /// <summary>Reads up to <paramref name="buffer"/>'s length of the file at <paramref name="path"/>; the bytes read, or -1.</summary>
    internal static unsafe int ReadSmallFile(string path, Span<byte> buffer)
    {
        int fd = open_path(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
        {
            return -1;
        }
        try
        {
            int total = 0;
            fixed (byte* bytes = buffer)
            {
                while (total < buffer.Length)
                {
                    nint n = read(fd, bytes + total, (nuint)(buffer.Length - total));
                    if (n <= 0)
                    {
                        break;
                    }
                    total += (int)n;
                }
            }
            return total;
        }
        finally
        {
            close(fd);
        }
    }
}
