using System;
using System.Runtime.InteropServices;

namespace Shm.Tool;

/// <summary>Reads a /proc file whole, reporting errno exactly (.NET's exceptions blur ESRCH, EACCES and EPERM).</summary>
internal static unsafe class ProcFile
{
    /// <summary>0 and the contents, or the errno of the open or read that failed.</summary>
    public static int TryRead(string path, out byte[] contents)
    {
        contents = [];
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW);
        if (fd < 0)
        {
            return Marshal.GetLastPInvokeError();
        }
        try
        {
            byte[] buffer = new byte[16384];
            int length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }
                nint got;
                fixed (byte* at = &buffer[length])
                {
                    got = Libc.Read(fd, at, (nuint)(buffer.Length - length));
                }
                if (got < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EINTR)
                    {
                        continue;
                    }
                    return errno;
                }
                if (got == 0)
                {
                    contents = buffer.AsSpan(0, length).ToArray();
                    return 0;
                }
                length += (int)got;
            }
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
