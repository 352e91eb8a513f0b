using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Shm.Tool;

/// <summary><c>shm stat NAME</c>: one segment in detail, with its first bytes as hexdump -C shows them.</summary>
internal static unsafe class Inspection
{
    public static int Run(string name, int count, bool json)
    {
        if (Segment.Find(name, out string? problem, out bool malformed) is not Segment segment)
        {
            Console.Error.WriteLine($"shm: stat: cannot stat '{Escaping.Escape(name)}': {problem}");
            return malformed ? Exit.Usage : Exit.Failed;
        }
        Usage usage = ProcessScan.Run([segment]);
        string? unreadable = TryReadStart(segment, count, out byte[] bytes);
        if (json)
        {
            SegmentReport report = SegmentReport.Of(segment, usage) with
            {
                FirstBytes = unreadable is null ? Convert.ToHexString(bytes) : null,
                FirstBytesError = unreadable,
            };
            Console.WriteLine(Json.Serialize(report));
            return 0;
        }
        SegmentState state = usage.StateOf(segment.Status.Id);
        Console.WriteLine($"name:     {Escaping.Escape(segment.Name)}");
        Console.WriteLine($"path:     {Escaping.Escape(segment.Path)}");
        Console.WriteLine($"size:     {segment.Status.Size} ({Sizes.Format(segment.Status.Size, human: true)})");
        Console.WriteLine($"mode:     {segment.Mode}");
        Console.WriteLine($"owner:    {Escaping.Escape(segment.Owner)}");
        Console.WriteLine($"created:  {segment.Status.Created:u} ({Durations.Format(segment.Age)} ago)");
        Console.WriteLine($"state:    {Words.Of(state)}{(state == SegmentState.Unknown ? $": {usage.Reason()}" : "")}");
        IReadOnlyList<SegmentUser> users = usage.UsersOf(segment.Status.Id);
        for (int i = 0; i < users.Count; i++)
        {
            SegmentUser user = users[i];
            Console.WriteLine($"{(i == 0 ? "used by:" : ""),-9} {user.Pid} {Escaping.Escape(user.Command)} ({Escaping.Escape(user.User)}) {user.Use}");
        }
        if (unreadable is not null)
        {
            Console.WriteLine($"bytes:    unreadable: {unreadable}");
            return 0;
        }
        Console.WriteLine($"bytes:    the first {bytes.Length} of {segment.Status.Size}");
        foreach (string line in HexDump.Lines(bytes))
        {
            Console.WriteLine(line);
        }
        return 0;
    }

    /// <summary>
    /// Reads up to <paramref name="count"/> bytes from the start of the segment with pread: no
    /// mapping (a segment truncated meanwhile cannot SIGBUS us), and an open that cannot block (a
    /// FIFO swapped in since the look is opened at once, then refused). Null, or why not.
    /// </summary>
    private static string? TryReadStart(Segment segment, int count, out byte[] bytes)
    {
        bytes = [];
        int fd = Libc.Open(segment.Path, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_NOFOLLOW | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            return Libc.Describe(Marshal.GetLastPInvokeError());
        }
        try
        {
            int error = FileStatus.TryOfDescriptor(fd, out FileStatus now);
            if (error != 0)
            {
                return Libc.Describe(error);
            }
            if (now.Kind != FileKind.Regular || now.Id != segment.Status.Id)
            {
                return "replaced by another file since it was looked at";
            }
            byte[] buffer = new byte[(int)Math.Min(count, now.Size)];
            int length = 0;
            while (length < buffer.Length)
            {
                nint got;
                fixed (byte* at = buffer)
                {
                    got = Libc.PRead(fd, at + length, (nuint)(buffer.Length - length), length);
                }
                if (got < 0 && Marshal.GetLastPInvokeError() is int errno && errno != Libc.EINTR)
                {
                    return Libc.Describe(errno);
                }
                if (got == 0)
                {
                    break; // truncated meanwhile
                }
                length += (int)Math.Max(0, got);
            }
            bytes = buffer.AsSpan(0, length).ToArray();
            return null;
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
