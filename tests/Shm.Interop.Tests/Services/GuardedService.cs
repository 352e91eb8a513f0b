using System;
using System.Text;
using System.Threading;

namespace Shm.Interop.Tests;

/// <summary>What a victim of <see cref="GuardedService"/> does with the service.</summary>
internal enum ServiceVictim
{
    /// <summary>Opens the service (its header and configuration).</summary>
    Opener,

    /// <summary>Attaches a subscriber, then (at Go) receives up to four samples, each intact.</summary>
    Subscriber,

    /// <summary>Attaches a publisher, then (at Go) publishes 40 samples.</summary>
    Publisher,
}

/// <summary>
/// A service the test made, and a forked victim that opens it anew with a PROT_NONE page mapped right
/// after the segment (the AppContext switch <c>Shm.Interop.Services.GuardPage</c>), so any access past
/// the segment, where the last pool ends, is a SIGSEGV the test sees as the victim's signal. A control
/// region holds two events (Ready, Go) and what the victim reported.
/// </summary>
internal sealed class GuardedService : IDisposable
{
    public const int Corrupted = 42;
    public const int Refused = 43;
    public const int TimedOut = 44;
    public const int Completed = 45;
    public const int InvalidDelivery = 46;
    public const int OtherException = 47;

    private const string GuardPage = "Shm.Interop.Services.GuardPage";
    private const int ReportAt = 1024;
    private const int ReportLength = 1024;
    private static readonly TimeSpan Each = TimeSpan.FromSeconds(2);

    public GuardedService(string name, PublishSubscribeConfig config)
    {
        Name = name;
        Service = PublishSubscribeService.Create(name, config);
        Bytes = new ServiceBytes(name);
        Control = SharedRegion.CreateAnonymous(4096);
        Ready = SharedEvent.Create(Control, 0, EventResetMode.AutoReset);
        Go = SharedEvent.Create(Control, 64, EventResetMode.AutoReset);
    }

    public string Name { get; }

    /// <summary>This process's own use of the service (the peer's side).</summary>
    public PublishSubscribeService Service { get; }

    public ServiceBytes Bytes { get; }

    public SharedRegion Control { get; }

    public SharedEvent Ready { get; }

    public SharedEvent Go { get; }

    /// <summary>What the victim ended with: the exception's type, then the corrupt structure.</summary>
    public string Report
    {
        get
        {
            ReadOnlySpan<byte> bytes = Control.AsReadOnlySpan(ReportAt, ReportLength);
            int end = bytes.IndexOf((byte)0);
            return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
        }
    }

    /// <summary>The victim's body: opens the service with a guard page and does what <paramref name="victim"/> says; its outcome as an exit code.</summary>
    public int Run(ServiceVictim victim)
    {
        try
        {
            AppContext.SetSwitch(GuardPage, true);
            using var service = PublishSubscribeService.Open(Name);
            return victim switch
            {
                ServiceVictim.Opener => Completed,
                ServiceVictim.Subscriber => Subscribe(service),
                _ => Publish(service),
            };
        }
        catch (SharedMemoryCorruptedException corrupted)
        {
            Record($"{nameof(SharedMemoryCorruptedException)}: {corrupted.Structure}");
            return Corrupted;
        }
        catch (InvalidOperationException refused)
        {
            Record($"{nameof(InvalidOperationException)}: {refused.Message}");
            return Refused;
        }
        catch (Exception other)
        {
            Record($"{other.GetType().Name}: {other.Message}");
            return OtherException;
        }
    }

    private int Subscribe(PublishSubscribeService service)
    {
        using Subscriber subscriber = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.DropOldest });
        Ready.Set();
        Go.TryWait(Waits.Bound);
        for (int i = 0; i < 4; i++)
        {
            if (!subscriber.TryReceive(out Sample sample, Each))
            {
                return TimedOut;
            }
            using (sample)
            {
                if (!Payloads.IsIntact(sample.Span, BitConverter.ToInt32(sample.Span), BitConverter.ToInt64(sample.Span[8..])))
                {
                    return InvalidDelivery;
                }
            }
        }
        return Completed;
    }

    private int Publish(PublishSubscribeService service)
    {
        using Publisher publisher = service.CreatePublisher();
        using (SampleLoan first = publisher.Loan(100)) // one sample before the pause, for corruptions of what it left
        {
            Payloads.Fill(first.Span, 9, 0);
            first.Publish();
        }
        Ready.Set();
        Go.TryWait(Waits.Bound);
        for (int i = 1; i < 40; i++)
        {
            if (!publisher.TryLoan(100, out SampleLoan loan, Each))
            {
                return TimedOut;
            }
            Payloads.Fill(loan.Span, 9, i);
            loan.Publish();
        }
        return Completed;
    }

    private void Record(string text)
    {
        Span<byte> report = Control.AsSpan(ReportAt, ReportLength);
        report.Clear();
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        bytes.AsSpan(0, Math.Min(bytes.Length, ReportLength - 1)).CopyTo(report);
    }

    public void Dispose()
    {
        Ready.Dispose();
        Go.Dispose();
        Control.Dispose();
        Bytes.Dispose();
        Service.Dispose();
    }
}
