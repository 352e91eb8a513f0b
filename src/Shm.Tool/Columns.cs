using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Shm.Tool;

/// <summary>
/// Plain columns as ps and ipcs print them: a header, values padded to the widest, numbers
/// right-aligned, one space apart, the last column unpadded (it may hold spaces: it goes last).
/// Every cell is escaped before it is measured.
/// </summary>
internal sealed class Columns(params (string Header, bool RightAligned)[] columns)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells)
    {
        if (cells.Length != columns.Length)
        {
            throw new ArgumentException($"{cells.Length} cells for {columns.Length} columns", nameof(cells));
        }
        _rows.Add([.. cells.Select(Escaping.Escape)]);
    }

    public void WriteTo(TextWriter output)
    {
        int[] widths = [.. columns.Select((column, i) => _rows.Select(row => row[i].Length).Append(column.Header.Length).Max())];
        foreach (string[] row in _rows.Prepend([.. columns.Select(column => column.Header)]))
        {
            var line = new StringBuilder();
            for (int i = 0; i < row.Length; i++)
            {
                bool last = i == row.Length - 1;
                line.Append(last ? row[i] : columns[i].RightAligned ? row[i].PadLeft(widths[i]) : row[i].PadRight(widths[i]));
                if (!last)
                {
                    line.Append(' ');
                }
            }
            output.WriteLine(line.ToString());
        }
    }
}
