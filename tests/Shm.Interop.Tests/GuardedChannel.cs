using System;
using System.Text;
using System.Threading;
using System.Threading.Channels;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A channel whose last ring ends where a PROT_NONE page begins, so that any read or write past it
/// is a SIGSEGV the test sees as its victim child's signal. The region's first page is what the
/// test and its victim share: two events, counters, and what the victim reported.
/// </summary>
internal sealed class GuardedChannel : IDisposable
{
    /// <summary>How a victim ended: it reported corruption (SharedMemoryCorruptedException).</summary>
    public const int Corrupted = 42;

    /// <summary>It ended with ChannelClosedException.</summary>
    public const int Closed = 43;

    /// <summary>A bounded wait of its own ran out (no message, no room).</summary>
    public const int TimedOut = 44;

    /// <summary>It did everything it was asked without any error.</summary>
    public const int Completed = 45;

    /// <summary>It was handed a message that was never sent, torn, or out of order.</summary>
    public const int InvalidDelivery = 46;

    /// <summary>It ended with another exception (named in the control page).</summary>
    public const int OtherException = 47;

    private const int PageSize = 4096;
    private const int ReportAt = 1024;
    private const int ReportLength = 512;
    private const int ReportSlots = 4;
    private const int DeliveredAt = 3072;
    private const int PauseAfterAt = 3080;

    private GuardedChannel(long capacity, int lanes, string? name)
    {
        long required = SharedChannel.RequiredLength(capacity, lanes);
        long channelEnd = (PageSize + required + PageSize - 1) / PageSize * PageSize;
        Region = name is null ? SharedRegion.CreateAnonymous(channelEnd + PageSize) : SharedRegion.CreateNamed(name, channelEnd + PageSize);
        ChannelOffset = channelEnd - required;
        nint guard = Region.DangerousGetAddress() + (nint)channelEnd;
        Assert.Equal(0, Native.Mprotect(guard, PageSize, Native.PROT_NONE));
        Ready = SharedEvent.Create(Region, 0, EventResetMode.AutoReset);
        Go = SharedEvent.Create(Region, 64, EventResetMode.AutoReset);
        Channel = SharedChannel.Create(Region, ChannelOffset, capacity, lanes);
        Bytes = new ChannelBytes(Region, ChannelOffset, capacity);
    }

    public SharedRegion Region { get; }

    public long ChannelOffset { get; }

    /// <summary>The channel, created by the test; a forked victim uses this object too.</summary>
    public SharedChannel Channel { get; }

    public ChannelBytes Bytes { get; }

    /// <summary>Set by the victim when it reached the point the test waits for.</summary>
    public SharedEvent Ready { get; }

    /// <summary>Set by the test when the victim may go on.</summary>
    public SharedEvent Go { get; }

    /// <summary>Messages the victim took intact (reader) or wrote (writer).</summary>
    public long Delivered
    {
        get => Volatile.Read(ref Region.As<long>(DeliveredAt));
        set => Volatile.Write(ref Region.As<long>(DeliveredAt), value);
    }

    /// <summary>Asks a reader victim to set <see cref="Ready"/> and wait for <see cref="Go"/> once it took <paramref name="messages"/> messages.</summary>
    public void PauseReaderAfter(long messages) => Volatile.Write(ref Region.As<long>(PauseAfterAt), messages + 1);

    /// <summary>In a reader victim: pauses if the test asked for it at this count (once).</summary>
    public void PauseIfAsked()
    {
        long mark = Volatile.Read(ref Region.As<long>(PauseAfterAt));
        if (mark != 0 && mark - 1 == Delivered)
        {
            Volatile.Write(ref Region.As<long>(PauseAfterAt), 0);
            Ready.Set();
            Go.TryWait(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>The exception the victim ended with: its type, then its structure for a corruption.</summary>
    public string Report => ReportOf(0);

    /// <summary>The exception the victim reporting in <paramref name="slot"/> (0 to 3) ended with.</summary>
    public string ReportOf(int slot)
    {
        ReadOnlySpan<byte> bytes = Region.AsReadOnlySpan(ReportAt + (slot * ReportLength), ReportLength);
        int end = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
    }

    /// <summary>A guarded channel in an anonymous region, or in a named one (for C victims, which map it by name and guard their own last page).</summary>
    public static GuardedChannel Create(long capacity = 4096, int lanes = 1, string? name = null) => new(capacity, lanes, name);

    /// <summary>Runs a victim's body and turns how it ended into an exit code, recording the exception in report <paramref name="slot"/> (0 to 3).</summary>
    public int Outcome(Func<GuardedChannel, int> body, int slot = 0)
    {
        try
        {
            return body(this);
        }
        catch (SharedMemoryCorruptedException corrupted)
        {
            Record(slot, $"{nameof(SharedMemoryCorruptedException)}: {corrupted.Structure}");
            return Corrupted;
        }
        catch (ChannelClosedException closed)
        {
            Record(slot, $"{nameof(ChannelClosedException)}: {closed.Message}");
            return Closed;
        }
        catch (Exception other)
        {
            Record(slot, $"{other.GetType().Name}: {other.Message}");
            return OtherException;
        }
    }

    public void Dispose()
    {
        Channel.Dispose();
        Ready.Dispose();
        Go.Dispose();
        Region.Dispose();
    }

    private void Record(int slot, string text)
    {
        Span<byte> report = Region.AsSpan(ReportAt + ((slot % ReportSlots) * ReportLength), ReportLength);
        report.Clear();
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        bytes.AsSpan(0, Math.Min(bytes.Length, ReportLength - 1)).CopyTo(report);
    }
}
