using System.IO.MemoryMappedFiles;
using BenchmarkDotNet.Attributes;
using Shm.Interop;

namespace Shm.Bench;

/// <summary>Acquire and release of anonymous 5096-byte regions, one and three at a time.</summary>
[MemoryDiagnoser]
public class RegionBenchmarks
{
    [Benchmark(Baseline = true)]
    [BenchmarkCategory("1")]
    public void Raw1()
    {
        nint a = Raw.Map();
        try
        {
        }
        finally
        {
            Raw.Unmap(a);
        }
    }

    [Benchmark]
    [BenchmarkCategory("1")]
    public void Using1()
    {
        using var a = SharedRegion.CreateAnonymous(Raw.Length);
    }

    [Benchmark]
    [BenchmarkCategory("1")]
    public void Shm1() => Shm.Bench.Fun.Workloads.one();

    [Benchmark]
    [BenchmarkCategory("1")]
    public void MemoryMappedFile1()
    {
        using var file = MemoryMappedFile.CreateNew(null, Raw.Length);
        using var view = file.CreateViewAccessor();
    }

    [Benchmark]
    [BenchmarkCategory("3")]
    public void Raw3()
    {
        nint a = Raw.Map();
        try
        {
            nint b = Raw.Map();
            try
            {
                nint c = Raw.Map();
                Raw.Unmap(c);
            }
            finally
            {
                Raw.Unmap(b);
            }
        }
        finally
        {
            Raw.Unmap(a);
        }
    }

    [Benchmark]
    [BenchmarkCategory("3")]
    public void Using3()
    {
        using var a = SharedRegion.CreateAnonymous(Raw.Length);
        using var b = SharedRegion.CreateAnonymous(Raw.Length);
        using var c = SharedRegion.CreateAnonymous(Raw.Length);
    }

    [Benchmark]
    [BenchmarkCategory("3")]
    public void Shm3() => Shm.Bench.Fun.Workloads.three();

    [Benchmark]
    [BenchmarkCategory("3")]
    public void MemoryMappedFile3()
    {
        using var a = MemoryMappedFile.CreateNew(null, Raw.Length);
        using var va = a.CreateViewAccessor();
        using var b = MemoryMappedFile.CreateNew(null, Raw.Length);
        using var vb = b.CreateViewAccessor();
        using var c = MemoryMappedFile.CreateNew(null, Raw.Length);
        using var vc = c.CreateViewAccessor();
    }
}
