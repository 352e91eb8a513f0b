using System.Globalization;
using System.Text;

namespace Shm.Tool;

/// <summary>
/// Text from others (segment names, command names, user names, arguments) made safe to print: a
/// name cannot start a new line, move the cursor, recolour the terminal or reorder what follows.
/// C-style escapes, reversible: <c>\\</c>, <c>\n</c>, <c>\t</c>, <c>\r</c>; other C0 controls and
/// DEL as <c>\xHH</c> (ESC is <c>\x1b</c>); C1 controls, invisible format characters (bidi
/// overrides, zero-width) and line or paragraph separators as <c>\uHHHH</c>.
/// </summary>
internal static class Escaping
{
    /// <summary><paramref name="text"/> with every character that is not plainly visible escaped.</summary>
    public static string Escape(string text)
    {
        if (!NeedsEscape(text))
        {
            return text;
        }
        var escaped = new StringBuilder(text.Length + 8);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                escaped.Append(c).Append(text[++i]); // a pair: an ordinary character beyond the first plane
                continue;
            }
            escaped.Append(c switch
            {
                '\\' => @"\\",
                '\n' => @"\n",
                '\t' => @"\t",
                '\r' => @"\r",
                < ' ' or '\x7f' => $"\\x{(int)c:x2}",
                _ when Hidden(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return escaped.ToString();
    }

    private static bool NeedsEscape(string text)
    {
        foreach (char c in text)
        {
            if (c is '\\' or < ' ' or '\x7f' || Hidden(c))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>C1 controls, format characters, line and paragraph separators, and surrogates (a lone one here).</summary>
    private static bool Hidden(char c) => char.GetUnicodeCategory(c) is
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate;
}
