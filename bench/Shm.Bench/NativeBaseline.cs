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
            string include = Path.Combine(AppContext.BaseDirectory, "native", "include");
            (int exit, string output) = Run("cc", $"-O2 -pthread -I {include} -o {program} {source}");
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

    /// <summary>Runs one mode and returns the number it prints; <paramref name="size"/> sets SHM_SIZE for the message modes.</summary>
    public double Measure(string mode, long n, long size = 0)
    {
        (int exit, string output) = Run(_program, $"{mode} {n}", size);
        return exit == 0
            ? double.Parse(output.Trim(), CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"{_program} {mode} failed ({exit}): {output}");
    }

    private static (int Exit, string Output) Run(string file, string arguments, long size = 0)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (size > 0)
        {
            start.Environment["SHM_SIZE"] = size.ToString(CultureInfo.InvariantCulture);
        }
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
