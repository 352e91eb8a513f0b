using System;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>
/// What forked children do with a service, as exit codes (a forked child reports by its status and
/// through a shared results region). Each test runs these once in its own process before forking, so
/// that nothing compiles in a child (see the README on fork).
/// </summary>
internal static class PubSubBodies
{
    public const int Ok = 0;
    public const int TimedOut = 10;
    public const int Torn = 11;
    public const int OutOfOrder = 12;
    public const int Corrupted = 13;
    public const int Failed = 14;

    /// <summary>
    /// Attaches a subscriber, says so on <paramref name="ready"/>, receives samples 0..<paramref name="count"/>-1
    /// of publisher <paramref name="publisher"/> (each intact, in order) and writes their checksum at
    /// <paramref name="results"/> offset 8 * <paramref name="slot"/>.
    /// </summary>
    public static int ReceiveAll(PublishSubscribeService service, SharedSemaphore ready, long count, int publisher, SharedRegion results, int slot)
    {
        try
        {
            using Subscriber subscriber = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.Block });
            ready.Release();
            ulong checksum = Checksum.Start;
            for (long i = 0; i < count; i++)
            {
                if (!subscriber.TryReceive(out Sample sample, Waits.Bound))
                {
                    return TimedOut;
                }
                using (sample)
                {
                    if (!Payloads.IsIntact(sample.Span, publisher, i))
                    {
                        return BitConverter.ToInt64(sample.Span[8..]) != i ? OutOfOrder : Torn;
                    }
                    checksum = Checksum.Add(checksum, sample.Span);
                }
            }
            results.Write(8 * slot, checksum);
            return Ok;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
    }

    /// <summary>
    /// Attaches <paramref name="subscribers"/> subscribers, says so once on <paramref name="ready"/>, and
    /// receives samples 0..<paramref name="count"/>-1 on each of them in turn (each intact, in order).
    /// </summary>
    public static int ReceiveAllOnMany(PublishSubscribeService service, SharedSemaphore ready, int subscribers, long count)
    {
        var attached = new Subscriber[subscribers];
        try
        {
            for (int k = 0; k < subscribers; k++)
            {
                attached[k] = service.CreateSubscriber();
            }
            ready.Release();
            for (long i = 0; i < count; i++)
            {
                foreach (Subscriber subscriber in attached)
                {
                    if (!subscriber.TryReceive(out Sample sample, Waits.Bound))
                    {
                        return TimedOut;
                    }
                    using (sample)
                    {
                        if (!Payloads.IsIntact(sample.Span, 0, i))
                        {
                            return Torn;
                        }
                    }
                }
            }
            return Ok;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
        finally
        {
            foreach (Subscriber? subscriber in attached)
            {
                subscriber?.Dispose();
            }
        }
    }

    /// <summary>
    /// A slow drop-oldest subscriber: receives until sample <paramref name="last"/> of publisher 0, pausing
    /// <paramref name="pauseEvery"/> samples; writes what it received, its total missed count and the sum of
    /// the samples' own missed counts at <paramref name="results"/> offsets 0, 8 and 16.
    /// </summary>
    public static int ReceiveSlowly(PublishSubscribeService service, SharedSemaphore ready, long last, int pauseEvery, SharedRegion results)
    {
        try
        {
            using Subscriber subscriber = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.DropOldest });
            ready.Release();
            long received = 0, missedPerSample = 0, previous = -1;
            while (true)
            {
                if (!subscriber.TryReceive(out Sample sample, Waits.Bound))
                {
                    return TimedOut;
                }
                using (sample)
                {
                    long index = BitConverter.ToInt64(sample.Span[8..]);
                    if (!Payloads.IsIntact(sample.Span, 0, index))
                    {
                        return Torn;
                    }
                    if (index <= previous || index - previous - 1 != sample.Missed)
                    {
                        return OutOfOrder; // each sample says exactly how many were lost just before it
                    }
                    previous = index;
                    received++;
                    missedPerSample += sample.Missed;
                    if (index == last)
                    {
                        break;
                    }
                }
                if (received % pauseEvery == 0)
                {
                    Thread.Sleep(1); // slow on purpose: the publisher outruns this subscriber
                }
            }
            results.Write(0, received);
            results.Write(8, subscriber.Missed);
            results.Write(16, missedPerSample);
            return Ok;
        }
        catch (SharedMemoryCorruptedException)
        {
            return Corrupted;
        }
    }
}

/// <summary>FNV-1a over the bytes of every sample, in order.</summary>
internal static class Checksum
{
    public const ulong Start = 0xCBF2_9CE4_8422_2325;

    public static ulong Add(ulong hash, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            hash = (hash ^ b) * 0x0000_0100_0000_01B3;
        }
        return hash;
    }
}
