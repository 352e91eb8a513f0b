using System;
using System.IO;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

public class NativeAotTests
{
    [Fact]
    [Trait("Category", "NativeAot")]
    public void The_NativeAOT_sample_publishes_and_forks_beside_four_busy_threads_without_a_failure()
    {
        string root = Repository.Root;
        string output = Directory.CreateTempSubdirectory("shm-aot-").FullName;
        try
        {
            string log = Path.Combine(output, "log.txt");
            string publish = $"dotnet publish '{Path.Combine(root, "samples", "Shm.NativeAot")}' -c Release -r linux-x64 -o '{output}' --nologo > '{log}' 2>&1";
            using (Child build = Child.Spawn("/bin/sh", ["-c", publish]))
            {
                ChildExit built = build.WaitOrFail(TimeSpan.FromMinutes(10));
                Assert.True(built.Succeeded, $"dotnet publish {built}: {File.ReadAllText(log)}");
            }

            string report = Path.Combine(output, "report.txt");
            using Child sample = Child.Spawn("/bin/sh", ["-c", $"'{Path.Combine(output, "Shm.NativeAot")}' --forks 300 --busy > '{report}' 2>&1"]);
            ChildExit ran = sample.WaitOrFail(TimeSpan.FromMinutes(5));

            string text = File.ReadAllText(report);
            Assert.True(ran.Succeeded, text);
            Assert.Contains("NativeAOT: True; fork supported: True", text, StringComparison.Ordinal);
            Assert.Contains("300 forks beside 4 busy threads: 300 finished, 0 failed", text, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

}
