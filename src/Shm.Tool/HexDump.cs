using System;
using System.Collections.Generic;
using System.Text;

namespace Shm.Tool;

/// <summary>Bytes as <c>hexdump -C</c> prints them, line for line: offset, 16 bytes in two groups of 8, the ASCII column; a run of repeated lines as one *.</summary>
internal static class HexDump
{
    public static IEnumerable<string> Lines(byte[] bytes)
    {
        if (bytes.Length == 0)
        {
            yield break;
        }
        bool starred = false;
        for (int offset = 0; offset < bytes.Length; offset += 16)
        {
            int count = Math.Min(16, bytes.Length - offset);
            if (offset > 0 && count == 16 && bytes.AsSpan(offset, 16).SequenceEqual(bytes.AsSpan(offset - 16, 16)))
            {
                if (!starred)
                {
                    starred = true;
                    yield return "*";
                }
                continue;
            }
            starred = false;
            var line = new StringBuilder(80).Append($"{offset:x8}  ");
            for (int i = 0; i < 16; i++)
            {
                line.Append(i < count ? $"{bytes[offset + i]:x2} " : "   ");
                if (i == 7)
                {
                    line.Append(' ');
                }
            }
            line.Append(" |");
            for (int i = 0; i < count; i++)
            {
                byte b = bytes[offset + i];
                line.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
            }
            yield return line.Append('|').ToString();
        }
        yield return $"{bytes.Length:x8}";
    }
}
