using System.Runtime.ConstrainedExecution;

namespace Shm.Interop;

/// <summary>
/// The creator's claim on a named segment's name: released (the name unlinked) by the creator's
/// Dispose or, if the creator was forgotten, by its finalizer, so a lost creator does not leave the
/// name in /dev/shm for ever. Only the process that created the segment releases it (a forked child
/// that disposes its copy of the creator leaves the parent's name alone), and only if the name still
/// refers to this segment: after a foreign unlink, someone else may have created another under it.
/// </summary>
internal sealed class NamedSegmentOwner(string posixName, (ulong Device, ulong Inode) id) : CriticalFinalizerObject
{
    private readonly int _creator = Libc.getpid();
    private int _released;

    ~NamedSegmentOwner() => Unlink();

    public void Release()
    {
        Unlink();
        System.GC.SuppressFinalize(this);
    }

    private void Unlink()
    {
        if (System.Threading.Interlocked.Exchange(ref _released, 1) == 0 &&
            Libc.getpid() == _creator &&
            Libc.PathStatus(Libc.ShmDirectory + posixName[1..])?.Id == id)
        {
            Libc.shm_unlink(posixName);
        }
    }
}
