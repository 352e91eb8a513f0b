using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Shm.Bench;

/// <summary>
/// Runs the benchmarks in a different order on each pass (rotated, and reversed on odd passes):
/// syscall costs drift on a VM, and a fixed order would charge the drift to whichever ran later.
/// </summary>
internal sealed class RotatingOrderer(int pass) : IOrderer
{
    public bool SeparateLogicalGroups => false;

    public IEnumerable<BenchmarkCase> GetExecutionOrder(ImmutableArray<BenchmarkCase> benchmarksCase, IEnumerable<BenchmarkLogicalGroupRule>? order = null)
    {
        int shift = pass % benchmarksCase.Length;
        var rotated = benchmarksCase.Skip(shift).Concat(benchmarksCase.Take(shift));
        return pass % 2 == 0 ? rotated : rotated.Reverse();
    }

    public IEnumerable<BenchmarkCase> GetSummaryOrder(ImmutableArray<BenchmarkCase> benchmarksCases, Summary summary) => benchmarksCases;

    public string? GetHighlightGroupKey(BenchmarkCase benchmarkCase) => null;

    public string? GetLogicalGroupKey(ImmutableArray<BenchmarkCase> allBenchmarksCases, BenchmarkCase benchmarkCase) => null;

    public IEnumerable<IGrouping<string, BenchmarkCase>> GetLogicalGroupOrder(IEnumerable<IGrouping<string, BenchmarkCase>> logicalGroups, IEnumerable<BenchmarkLogicalGroupRule>? order = null) => logicalGroups;
}
