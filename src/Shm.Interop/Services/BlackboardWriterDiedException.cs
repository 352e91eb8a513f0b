using System.IO;

namespace Shm.Interop;

/// <summary>
/// A blackboard entry was left half written: its writer's process died in the middle of writing it.
/// The entry holds no whole value until a writer writes it again.
/// </summary>
public sealed class BlackboardWriterDiedException : IOException
{
    internal BlackboardWriterDiedException(string service, int key, int pid)
        : base($"The blackboard '{service}': its writer, process {pid}, died while writing entry {key}; the entry holds no whole value until a writer writes it again.")
    {
        Service = service;
        Key = key;
        WriterPid = pid;
    }

    /// <summary>The blackboard service's name.</summary>
    public string Service { get; }

    /// <summary>The entry left half written.</summary>
    public int Key { get; }

    /// <summary>The writer's process, which died.</summary>
    public int WriterPid { get; }
}
