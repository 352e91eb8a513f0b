using System;
using System.Buffers.Binary;
using System.Text;

namespace Shm.NetMQ;

/// <summary>The kinds of frame the remote transport sends: the first byte of every header frame.</summary>
internal enum FrameKind : byte
{
    /// <summary>I am alive; the rest is my description (host, pid) for the other side's messages.</summary>
    Heartbeat = 1,

    /// <summary>Reader to writer: you may send up to sequence number N of this stream (and who I am).</summary>
    Credit = 2,

    /// <summary>Writer to reader: message N of the stream; the payload is the next frame.</summary>
    Data = 3,

    /// <summary>Writer to reader: the stream ended normally after message N.</summary>
    End = 4,

    /// <summary>Either way: the request for this stream is refused; the reason is the next frame.</summary>
    Refused = 5,
}

/// <summary>
/// A stream frame's header: kind, the reader's and the writer's session numbers, a sequence number
/// (or credit limit), the credit window, then the stream's name (1 to 255 UTF-8 bytes). Read from the
/// network, so every field is checked before use (<see cref="TryParse"/>).
/// </summary>
internal readonly record struct StreamHeader(FrameKind Kind, long ReaderEpoch, long WriterEpoch, long Number, int Window, string Name)
{
    private const int Fixed = 1 + 8 + 8 + 8 + 4 + 1;

    /// <summary>The longest stream name in bytes.</summary>
    public const int MaxNameBytes = 255;

    public byte[] Encode()
    {
        int nameBytes = Encoding.UTF8.GetByteCount(Name);
        var bytes = new byte[Fixed + nameBytes];
        bytes[0] = (byte)Kind;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(1), ReaderEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(9), WriterEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(17), Number);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(25), Window);
        bytes[29] = (byte)nameBytes;
        Encoding.UTF8.GetBytes(Name, bytes.AsSpan(Fixed));
        return bytes;
    }

    /// <summary>Parses a header frame; false for anything malformed (short, a bad kind, a name of the wrong length, negative numbers).</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out StreamHeader header)
    {
        header = default;
        if (frame.Length < Fixed || frame[0] is < (byte)FrameKind.Credit or > (byte)FrameKind.Refused)
        {
            return false;
        }
        int nameBytes = frame[29];
        long number = BinaryPrimitives.ReadInt64LittleEndian(frame[17..]);
        int window = BinaryPrimitives.ReadInt32LittleEndian(frame[25..]);
        if (nameBytes == 0 || frame.Length != Fixed + nameBytes || number < 0 || window < 0)
        {
            return false;
        }
        string name;
        try
        {
            name = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(frame.Slice(Fixed, nameBytes));
        }
        catch (ArgumentException)
        {
            return false;
        }
        header = new((FrameKind)frame[0], BinaryPrimitives.ReadInt64LittleEndian(frame[1..]), BinaryPrimitives.ReadInt64LittleEndian(frame[9..]), number, window, name);
        return true;
    }

    /// <summary>Checks a stream name as the wire carries it.</summary>
    public static string ValidateName(string name, string argument)
    {
        ArgumentException.ThrowIfNullOrEmpty(name, argument);
        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            throw new ArgumentException($"A stream name is at most {MaxNameBytes} UTF-8 bytes; '{name}' is longer.", argument);
        }
        return name;
    }
}
