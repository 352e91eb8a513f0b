using System;
using System.CommandLine;
using System.Text;
using System.Threading;
using Shm.Interop;

namespace Shm.Tool;

/// <summary>
/// <c>shm sub NAME</c> prints the samples of a publish-subscribe service as they come (text, --hex or
/// --json, until Ctrl+C or --count N); <c>shm pub NAME MESSAGE</c> publishes one sample. The
/// subscriber drops its oldest samples rather than hold publishers back (a watching tool must not
/// slow the system it watches) and says how many it missed.
/// </summary>
internal static class ServiceCommands
{
    /// <summary>How long pub waits for room (a block subscriber whose queue is full holds it back).</summary>
    private static readonly TimeSpan PublishBound = TimeSpan.FromSeconds(5);

    public static void Add(Command root)
    {
        var subName = new Argument<string>("name") { Description = "The service's name (its segment is /dev/shm/shm-service.NAME)." };
        var hex = new Option<bool>("--hex") { Description = "Print each sample as hexdump -C does." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per sample (publisher, sequence, missed, length, base64, text when UTF-8)." };
        var count = new Option<long>("--count", "-n") { Description = "Stop after this many samples (default: until Ctrl+C).", DefaultValueFactory = _ => 0 };
        count.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long>() < 0)
            {
                result.AddError($"--count must be 0 (no limit) or more; got {result.GetValueOrDefault<long>()}.");
            }
        });
        var sub = new Command("sub", "Print the samples of a publish-subscribe service as they are published (it drops its oldest rather than hold publishers back, and says how many it missed).") { subName, hex, json, count };
        sub.SetAction(parsed => Subscribe(parsed.GetValue(subName)!, parsed.GetValue(hex), parsed.GetValue(json), parsed.GetValue(count)));

        var pubName = new Argument<string>("name") { Description = "The service's name." };
        var message = new Argument<string>("message") { Description = "The sample: this text, UTF-8." };
        var pub = new Command("pub", "Publish one sample (a text, UTF-8) to an existing publish-subscribe service.") { pubName, message };
        pub.SetAction(parsed => Publish(parsed.GetValue(pubName)!, parsed.GetValue(message)!));

        root.Subcommands.Add(sub);
        root.Subcommands.Add(pub);
    }

    private static int Subscribe(string name, bool hex, bool json, long count)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler stop = (_, e) =>
        {
            e.Cancel = true; // leave the slot properly, then end
            cancel.Cancel();
        };
        Console.CancelKeyPress += stop;
        try
        {
            using var service = PublishSubscribeService.Open(name);
            using Subscriber subscriber = service.CreateSubscriber(new SubscriberOptions { OverflowPolicy = OverflowPolicy.DropOldest, ReceiveHistory = true });
            for (long taken = 0; count == 0 || taken < count; taken++)
            {
                using Sample sample = subscriber.Receive(cancel.Token);
                Print(sample, hex, json);
            }
            return Exit.Done;
        }
        catch (OperationCanceledException)
        {
            return Exit.Done;
        }
        finally
        {
            Console.CancelKeyPress -= stop;
        }
    }

    private static void Print(Sample sample, bool hex, bool json)
    {
        byte[] bytes = sample.ToArray();
        string? text = TryUtf8(bytes);
        if (json)
        {
            Console.WriteLine(Json.Serialize(new SampleReport(sample.PublisherIndex, sample.Sequence, sample.Missed, sample.Length, Convert.ToBase64String(bytes), text)).ReplaceLineEndings(" "));
            return;
        }
        if (sample.Missed > 0)
        {
            Console.Error.WriteLine($"shm: sub: missed {sample.Missed} sample{(sample.Missed == 1 ? "" : "s")} of publisher {sample.PublisherIndex}");
        }
        if (hex)
        {
            foreach (string line in HexDump.Lines(bytes))
            {
                Console.WriteLine(line);
            }
            return;
        }
        Console.WriteLine(text is null ? $"({bytes.Length} bytes, not UTF-8: --hex shows them)" : Escaping.Escape(text));
    }

    private static string? TryUtf8(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static int Publish(string name, string message)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(message);
        using var service = PublishSubscribeService.Open(name);
        if (bytes.Length > service.Config.MaxPayload)
        {
            Console.Error.WriteLine($"shm: pub: the message is {bytes.Length} bytes; a sample of '{Escaping.Escape(name)}' holds at most {service.Config.MaxPayload}.");
            return Exit.Usage;
        }
        using Publisher publisher = service.CreatePublisher();
        if (!publisher.TryLoan(bytes.Length, out SampleLoan loan, PublishBound))
        {
            Console.Error.WriteLine($"shm: pub: no room within {PublishBound.TotalSeconds:0} s: a block subscriber of '{Escaping.Escape(name)}' is not taking its samples.");
            return Exit.Failed;
        }
        bytes.CopyTo(loan.Span);
        loan.Publish();
        return Exit.Done;
    }
}

/// <summary>A sample in sub --json.</summary>
internal sealed record SampleReport(int Publisher, long Sequence, long Missed, int Length, string Base64, string? Text);
