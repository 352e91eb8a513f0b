using System;
using System.IO;
using System.Linq;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The main job's command line: help on request, and every bad argument named with what it accepts.</summary>
public class SampleTests
{
    private static (int Status, string Output) Run(string arguments)
    {
        string dll = Directory.GetFiles(Path.Combine(Repository.Root, "samples", "Shm.Sample", "bin"), "Shm.Sample.dll", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc).First();
        string output = Path.GetTempFileName();
        try
        {
            using Child run = Child.Spawn("/bin/sh", ["-c", $"dotnet '{dll}' {arguments} > '{output}' 2>&1"]);
            ChildExit exit = run.WaitOrFail();
            return (exit.ExitCode ?? -1, File.ReadAllText(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void Help_exits_0_and_describes_each_option()
    {
        (int status, string output) = Run("--help");

        Assert.Equal(0, status);
        Assert.Contains("--children", output, StringComparison.Ordinal);
        Assert.Contains("1 to 10", output, StringComparison.Ordinal);
        Assert.Contains("--fail-at", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--children 0", "--children", "1 to 10")]
    [InlineData("--children 11", "--children", "1 to 10")]
    [InlineData("--children abc", "--children", "abc")]
    [InlineData("--bogus", "--bogus", "Unrecognized")]
    [InlineData("--fail-at 99", "--fail-at", "0 to 2")]
    [InlineData("--children 1 --fail-at 1", "--fail-at", "0 to 0")]
    public void A_bad_argument_exits_2_naming_it_and_what_it_accepts(string arguments, string named, string accepted)
    {
        (int status, string output) = Run(arguments);

        Assert.Equal(2, status);
        Assert.Contains(named, output, StringComparison.Ordinal);
        Assert.Contains(accepted, output, StringComparison.Ordinal);
    }

    [Fact]
    public void One_child_is_one_child_and_a_failing_acquisition_exits_1_with_every_child_reaped()
    {
        (int one, string single) = Run("--children 1");
        (int failed, string failure) = Run("--children 3 --fail-at 2");

        Assert.Equal(0, one);
        Assert.Contains("1 child\n", single, StringComparison.Ordinal);
        Assert.Equal(1, failed);
        Assert.Equal(2, failure.Split('\n').Count(line => line.Contains("gone from /proc", StringComparison.Ordinal)));
    }
}
