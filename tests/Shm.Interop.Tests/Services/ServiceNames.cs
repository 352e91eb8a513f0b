using System;
using System.IO;
using System.Linq;

namespace Shm.Interop.Tests;

/// <summary>
/// Unique service names for one test, and the kernel's view of /dev/shm: dispose it at the end of the
/// test to check that none of its services' segments is left behind.
/// </summary>
internal sealed class ServiceNames : IDisposable
{
    private readonly string _prefix = $"svc-test-{Guid.NewGuid():N}";
    private int _next;

    /// <summary>A fresh service name no other test uses.</summary>
    public string Unique() => $"{_prefix}-{_next++}";

    /// <summary>The segment file of service <paramref name="name"/>.</summary>
    public static string PathOf(string name) => "/dev/shm/" + Service.SegmentPrefix + name;

    /// <summary>True if /dev/shm holds service <paramref name="name"/>'s segment.</summary>
    public static bool Exists(string name) => File.Exists(PathOf(name));

    public string[] Leftovers() =>
        Directory.GetFiles("/dev/shm", Service.SegmentPrefix + _prefix + "*").Select(Path.GetFileName).OfType<string>().ToArray();

    /// <summary>Fails if the test left any of its services in /dev/shm (and removes them).</summary>
    public void Dispose()
    {
        string[] left = Leftovers();
        foreach (string name in left)
        {
            File.Delete("/dev/shm/" + name);
        }
        if (left.Length > 0)
        {
            throw new InvalidOperationException($"The test left {string.Join(", ", left)} in /dev/shm.");
        }
    }
}

/// <summary>Samples that prove their own integrity: the publisher, the index and the length are in the bytes, and every other byte derives from them.</summary>
internal static class Payloads
{
    /// <summary>A length from 16 to <paramref name="max"/> derived from the pair.</summary>
    public static int LengthOf(int publisher, long index, int max) => 16 + (int)((((index * 37) + (publisher * 11)) & 0x7FFF_FFFF) % (max - 15));

    public static void Fill(Span<byte> bytes, int publisher, long index)
    {
        BitConverter.TryWriteBytes(bytes, publisher);
        BitConverter.TryWriteBytes(bytes[4..], bytes.Length);
        BitConverter.TryWriteBytes(bytes[8..], index);
        for (int i = 16; i < bytes.Length; i++)
        {
            bytes[i] = (byte)((index * 31) + (i * 7) + publisher);
        }
    }

    /// <summary>The (publisher, index) a sample carries, or an assertion failure if any byte is not what they say.</summary>
    public static (int Publisher, long Index) Check(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 16)
        {
            throw new Xunit.Sdk.XunitException($"a {bytes.Length}-byte sample is too short to be one of ours");
        }
        int publisher = BitConverter.ToInt32(bytes), length = BitConverter.ToInt32(bytes[4..]);
        long index = BitConverter.ToInt64(bytes[8..]);
        if (length != bytes.Length)
        {
            throw new Xunit.Sdk.XunitException($"sample {index} of publisher {publisher} says {length} bytes, is {bytes.Length}");
        }
        for (int i = 16; i < bytes.Length; i++)
        {
            if (bytes[i] != (byte)((index * 31) + (i * 7) + publisher))
            {
                throw new Xunit.Sdk.XunitException($"sample {index} of publisher {publisher} is corrupt at byte {i}");
            }
        }
        return (publisher, index);
    }

    /// <summary>True if <paramref name="bytes"/> is intact (for forked children, which report by exit code).</summary>
    public static bool IsIntact(ReadOnlySpan<byte> bytes, int publisher, long index)
    {
        if (bytes.Length < 16 || BitConverter.ToInt32(bytes) != publisher || BitConverter.ToInt32(bytes[4..]) != bytes.Length || BitConverter.ToInt64(bytes[8..]) != index)
        {
            return false;
        }
        for (int i = 16; i < bytes.Length; i++)
        {
            if (bytes[i] != (byte)((index * 31) + (i * 7) + publisher))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Loans, fills and publishes sample <paramref name="index"/> of <paramref name="length"/> bytes.</summary>
    public static void Publish(Publisher publisher, int id, long index, int length)
    {
        using SampleLoan loan = publisher.Loan(length);
        Fill(loan.Span, id, index);
        loan.Publish();
    }
}
