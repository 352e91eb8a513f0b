using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shm.Tool;

/// <summary><c>shm ls</c>: one line per segment and process that uses it, as lsof lists files.</summary>
internal static class Listing
{
    public static int Run(bool json, bool human)
    {
        List<Segment> segments = Segment.All(); // listed before the scan: a segment in use when listed is seen in use
        Usage usage = ProcessScan.Run(segments);
        IReadOnlyList<Shm.Interop.ServiceInfo> services = Shm.Interop.Service.List();
        if (json)
        {
            Console.WriteLine(Json.Serialize(segments.Select(segment => SegmentReport.Of(segment, usage) with { Service = ServiceListing.ReportFor(segment.Name, services) })));
        }
        else
        {
            Table(segments, usage, human).WriteTo(Console.Out);
            ServiceListing.WriteTo(Console.Out, Console.Error, services, human);
        }
        if (segments.Any(segment => usage.StateOf(segment.Status.Id) == SegmentState.Unknown) && usage.Reason() is string reason)
        {
            Console.Error.WriteLine($"shm: ls: {reason}; so a segment no readable process uses is 'unknown', not 'orphan': it may be in use. Run as root to know.");
        }
        return Exit.Done;
    }

    private static Columns Table(List<Segment> segments, Usage usage, bool human)
    {
        var table = new Columns(("SIZE", true), ("MODE", false), ("OWNER", false), ("AGE", true), ("STATE", false), ("PID", true), ("COMMAND", false), ("USER", false), ("USE", false), ("NAME", false));
        foreach (Segment segment in segments)
        {
            string[] about = [Sizes.Format(segment.Status.Size, human), segment.Mode, segment.Owner, Durations.Format(segment.Age), Words.Of(usage.StateOf(segment.Status.Id))];
            IReadOnlyList<SegmentUser> users = usage.UsersOf(segment.Status.Id);
            if (users.Count == 0)
            {
                table.Add([.. about, "-", "-", "-", "-", segment.Name]);
            }
            foreach (SegmentUser user in users)
            {
                table.Add([.. about, user.Pid.ToString(CultureInfo.InvariantCulture), user.Command, user.User, user.Use, segment.Name]);
            }
        }
        return table;
    }
}
