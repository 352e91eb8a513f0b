using System;
using System.IO;
using System.Linq;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The README's code must not rot: its quick starts are files the solution compiles, and these tests run them.</summary>
public class ReadmeTests
{
    private static readonly string Root = Repository.Root;

    [Theory]
    [InlineData("samples/QuickStart.FSharp/Program.fs", "fsharp")]
    [InlineData("samples/QuickStart.CSharp/Program.cs", "csharp")]
    [InlineData("tests/consumer/fsharp/QuickStart.fsproj", "xml")]
    [InlineData("tests/consumer/csharp/QuickStart.csproj", "xml")]
    public void The_README_quick_start_is_the_compiled_sample_line_for_line(string sample, string language)
    {
        string[] readme = File.ReadAllLines(Path.Combine(Root, "README.md"));
        int marker = Array.FindIndex(readme, line => line.StartsWith("<!--", StringComparison.Ordinal) && line.Contains(sample, StringComparison.Ordinal));
        Assert.True(marker >= 0, $"README.md names no quick start from {sample}");
        int open = Array.FindIndex(readme, marker, line => line == "```" + language);
        int close = Array.FindIndex(readme, open + 1, line => line == "```");

        string[] block = readme[(open + 1)..close];
        string[] file = File.ReadAllLines(Path.Combine(Root, sample));

        Assert.Equal(file, block);
    }

    [Theory]
    [InlineData("QuickStart.FSharp", "5102")]
    [InlineData("QuickStart.CSharp", "6 1 2")]
    public void The_quick_starts_run_and_print_what_the_README_says(string sample, string expected)
    {
        string dll = Directory.GetFiles(Path.Combine(Root, "samples", sample, "bin"), sample + ".dll", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc).First();
        string output = Path.GetTempFileName();
        try
        {
            using Child run = Child.Spawn("/bin/sh", ["-c", $"dotnet '{dll}' > '{output}' 2>&1"]);
            Assert.True(run.WaitOrFail().Succeeded, File.ReadAllText(output));
            Assert.Equal(expected, File.ReadAllText(output).Trim());
        }
        finally
        {
            File.Delete(output);
        }
    }
}
