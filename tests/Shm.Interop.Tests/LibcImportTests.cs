using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>What the library imports from libc: every function in glibc 2.28.</summary>
public class LibcImportTests
{
    [Fact]
    public void Every_libc_function_the_library_imports_exists_in_glibc_2_28()
    {
        string[] entryPoints = [.. typeof(SharedRegion).Assembly.GetType("Shm.Interop.Libc")!
            .GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Select(method => method.GetCustomAttribute<DllImportAttribute>()?.EntryPoint)
            .OfType<string>()
            .Distinct()];
        string symbols = RunToString("objdump", "-T", LibcPath());

        Assert.Contains("statx", entryPoints);
        foreach (string entryPoint in entryPoints)
        {
            var versions = Regex.Matches(symbols, $@"\(?GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)?\s+{Regex.Escape(entryPoint)}$", RegexOptions.Multiline)
                .Select(match => new Version(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture)))
                .ToList();
            Assert.True(versions.Count > 0, $"{entryPoint} is not exported by {LibcPath()}");
            Assert.True(versions.Min() <= new Version(2, 28), $"{entryPoint} exists only since glibc {versions.Min()}");
        }
    }

    private static string LibcPath() =>
        ProcMaps.Read().Select(mapping => mapping.Path).First(path => Path.GetFileName(path).StartsWith("libc.so", StringComparison.Ordinal));

    private static string RunToString(string program, params string[] arguments)
    {
        string output = Path.GetTempFileName();
        try
        {
            string command = string.Join(' ', new[] { program }.Concat(arguments).Select(a => $"'{a}'"));
            using Child run = Child.Spawn("/bin/sh", ["-c", $"{command} > '{output}'"]);
            Assert.True(run.WaitOrFail().Succeeded, $"{program} failed");
            return File.ReadAllText(output);
        }
        finally
        {
            File.Delete(output);
        }
    }
}
