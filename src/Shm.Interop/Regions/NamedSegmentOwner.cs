using System.Runtime.ConstrainedExecution;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// The creator's claim on a named segment's name: released (the name unlinked) by the creator's
/// Dispose or, if the creator was forgotten, by its finalizer, so a lost creator does not leave the
/// name in /dev/shm for ever; and, while it lives, listed in <see cref="NamedSegmentCleanup"/>, which
/// unlinks it if the process ends by a signal or exits first.
/// </summary>
internal sealed class NamedSegmentOwner : CriticalFinalizerObject
{
    private readonly CreatedName _name;

    public NamedSegmentOwner(string posixName, (ulong Device, ulong Inode) id)
    {
        _name = new CreatedName(posixName, id);
        NamedSegmentCleanup.Add(_name);
    }

    ~NamedSegmentOwner() => Unlink();

    public void Release()
    {
        Unlink();
        System.GC.SuppressFinalize(this);
    }

    private void Unlink()
    {
        NamedSegmentCleanup.Remove(_name);
        _name.Unlink();
    }
}

/// <summary>
/// A name this process created, as the cleanup list holds it (not the owner, which must stay
/// collectable). Unlinked at most once, only by the process that created it (a forked child that
/// disposes its copy leaves the parent's name alone), and only if the name still refers to this
/// segment: after a foreign unlink, someone else may have created another under it.
/// </summary>
internal sealed class CreatedName(string posixName, (ulong Device, ulong Inode) id)
{
    private readonly int _creator = Libc.getpid();
    private int _unlinked;

    public void Unlink()
    {
        if (Interlocked.Exchange(ref _unlinked, 1) == 0 &&
            Libc.getpid() == _creator &&
            Libc.PathStatus(Libc.ShmDirectory + posixName[1..])?.Id == id)
        {
            Libc.shm_unlink(posixName);
        }
    }
}
