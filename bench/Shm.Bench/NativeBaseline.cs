using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;

namespace Shm.Bench;

/// <summary>The C program under bench/native, compiled with the machine's cc -O2 when there is one.</summary>
internal sealed class NativeBaseline
{
    private readonly string _program;

    private NativeBaseline(string program) => _program = program;

    /// <summary>Compiles the C baseline; null (with the reason on stdout) if there is no compiler.</summary>
    public static NativeBaseline? Build()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "native", "shmbench.c");
        string program = Path.Combine(Path.GetTempPath(), $"shmbench-{Environment.ProcessId}");
        try
        {
            (int exit, string output) = Run("cc", $"-O2 -o {program} {source}");
            if (exit != 0)
            {
                Console.WriteLine($"C baseline skipped: cc failed: {output}");
                return null;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.WriteLine("C baseline skipped: no C compiler (cc) on PATH.");
            return null;
        }
        return new NativeBaseline(program);
    }

    /// <summary>Runs one mode and returns the number it prints.</summary>
    public double Measure(string mode, long n)
    {
        (int exit, string output) = Run(_program, $"{mode} {n}");
        return exit == 0
            ? double.Parse(output.Trim(), CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"{_program} {mode} failed ({exit}): {output}");
    }

    private static (int Exit, string Output) Run(string file, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
