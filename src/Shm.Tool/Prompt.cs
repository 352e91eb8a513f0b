using System;

namespace Shm.Tool;

/// <summary>A y/N question on the terminal, as rm -i asks it: on stderr, answered on stdin, no by default.</summary>
internal static class Prompt
{
    public static bool Confirm(string question)
    {
        Console.Error.Write($"shm: {question} [y/N] ");
        Console.Error.Flush();
        string? answer = Console.In.ReadLine()?.Trim();
        return answer is not null && (answer.Equals("y", StringComparison.OrdinalIgnoreCase) || answer.Equals("yes", StringComparison.OrdinalIgnoreCase));
    }
}
