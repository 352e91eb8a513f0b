using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Shm.Tool;

/// <summary>
/// User names as the system's name service gives them (getpwuid_r: files, LDAP, SSSD, systemd
/// userdb, ...), not as /etc/passwd alone lists them; the uid itself where no name is known.
/// </summary>
internal static unsafe class UserNames
{
    private const int MaxBuffer = 1 << 20;
    private static readonly Dictionary<uint, string> Known = [];

    /// <summary>The name of <paramref name="uid"/>, or the uid in decimal.</summary>
    public static string Of(uint uid)
    {
        if (!Known.TryGetValue(uid, out string? name))
        {
            Known[uid] = name = Lookup(uid) ?? uid.ToString(CultureInfo.InvariantCulture);
        }
        return name;
    }

    private static string? Lookup(uint uid)
    {
        for (int size = 1024; size <= MaxBuffer; size *= 4)
        {
            byte[] buffer = new byte[size];
            Libc.Passwd entry;
            Libc.Passwd* result = null;
            int error;
            fixed (byte* strings = buffer)
            {
                error = Libc.GetPwUidR(uid, &entry, strings, (nuint)size, &result);
                if (error == 0)
                {
                    return result is null || result->Name is null ? null : Marshal.PtrToStringUTF8((nint)result->Name);
                }
            }
            if (error != Libc.ERANGE)
            {
                return null; // no such user, or the name service failed: show the number
            }
        }
        return null;
    }
}
