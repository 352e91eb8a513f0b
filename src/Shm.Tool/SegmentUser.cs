namespace Shm.Tool;

/// <summary>A process that maps a segment or holds it open, as lsof shows it.</summary>
/// <param name="Pid">Its process id.</param>
/// <param name="Command">Its command name (/proc/PID/comm, at most 15 bytes, set by the process itself).</param>
/// <param name="Uid">Its effective uid, or null if it ended before it could be read.</param>
/// <param name="Mapped">It maps the segment (a line of /proc/PID/maps).</param>
/// <param name="Held">It holds the segment open (an entry of /proc/PID/fd).</param>
internal sealed record SegmentUser(int Pid, string Command, uint? Uid, bool Mapped, bool Held)
{
    /// <summary>The user's name, its uid if the system knows no name for it, or ? if unknown.</summary>
    public string User => Uid is uint uid ? UserNames.Of(uid) : "?";

    /// <summary>How it uses the segment, as ls prints it: map, fd or map,fd.</summary>
    public string Use => Mapped && Held ? "map,fd" : Mapped ? "map" : "fd";
}
