using System;
using System.Runtime.Versioning;
using Shm.Interop;

[assembly: SupportedOSPlatform("linux")] // Shm is Linux-only: this tells the platform analyzer (CA1416)

using var a = SharedRegion.CreateAnonymous(5096);
using var counters = SharedRegion.CreateAnonymous<Counters>();

using (Children kids = Children.Fork(3, i => { a.Write(8 * i, i + 1L); return 0; }))
{
    kids.WaitAll();
}
counters.Value.Hits = a.Read<long>(0) + a.Read<long>(8) + a.Read<long>(16);
ref Counters first = ref a.As<Counters>(offset: 0); // a's first 16 bytes in place; size and alignment checked
Console.WriteLine($"{counters.Value.Hits} {first.Hits} {first.Misses}"); // 6 1 2

internal struct Counters
{
    public long Hits;
    public long Misses;
}
