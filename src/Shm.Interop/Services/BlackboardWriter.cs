using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Shm.Interop;

/// <summary>
/// The one writer of a <see cref="BlackboardService"/> (it holds the service's writer slot): writes an
/// entry's value without ever waiting for readers. Not thread-safe: one thread writes at a time. A
/// forked child's copy is its parent's writer: write from one of the two only (its dispose in the
/// child leaves the slot to the parent).
/// </summary>
public sealed unsafe class BlackboardWriter : IDisposable
{
    private readonly BlackboardService _service;
    private readonly ulong _owner;

    // The sequence of each entry as this writer left it: written, never read back from shared memory.
    private readonly uint[] _sequences;
    private int _disposed;

    internal BlackboardWriter(BlackboardService service)
    {
        _service = service;
        service.Attach();
        try
        {
            (int pid, uint start) = ServiceInterop.Self();
            _owner = OwnerWord.Of(OwnerWord.Attached, pid, start);
            ulong attaching = OwnerWord.WithState(_owner, OwnerWord.Attaching);
            int predecessor = TakeSlot(attaching);
            try
            {
                _sequences = Repair(predecessor);
            }
            catch
            {
                Interlocked.CompareExchange(ref *service.WriterSlot, 0, attaching);
                throw;
            }
            if (Interlocked.CompareExchange(ref *service.WriterSlot, _owner, attaching) != attaching)
            {
                throw new InvalidOperationException($"The blackboard '{service.Name}': its writer slot was changed by another process while this one attached.");
            }
        }
        catch
        {
            service.Detach();
            throw;
        }
    }

    /// <summary>The service this writer writes.</summary>
    public BlackboardService Service => _service;

    /// <summary>
    /// Writes <paramref name="value"/> as entry <paramref name="key"/>'s latest value. Never waits:
    /// readers copy the value between two reads of the entry's sequence and retry if this write was in flight.
    /// </summary>
    /// <typeparam name="T">An unmanaged type of exactly <see cref="BlackboardConfig.ValueSize"/> bytes.</typeparam>
    /// <param name="key">0 to <see cref="BlackboardConfig.Keys"/> - 1.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="key"/> is not a key of this table.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not <see cref="BlackboardConfig.ValueSize"/> bytes.</exception>
    /// <exception cref="ObjectDisposedException">The writer or its service object was disposed.</exception>
    public void Write<T>(int key, in T value)
        where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        byte* entry = _service.EntryOf<T>(key);
        uint* sequence = (uint*)(entry + BlackboardLayout.Sequence);
        uint s = _sequences[key];
        Interlocked.Exchange(ref *sequence, s + 1); // full fence: odd before any byte of the value changes
        *(uint*)(entry + BlackboardLayout.TornBy) = 0;
        Unsafe.WriteUnaligned(entry + BlackboardLayout.Value, value);
        Interlocked.Exchange(ref *sequence, s + 2); // full fence: the value before even, and even before waiters is read
        _sequences[key] = s + 2;
        if (Volatile.Read(ref *(int*)(entry + BlackboardLayout.Waiters)) != 0)
        {
            ServiceInterop.FutexWakeAll((int*)sequence);
        }
    }

    /// <summary>Gives the writer slot back (another writer may attach) and releases this writer's hold on the service.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (OwnerWord.IsThisProcess(_owner))
        {
            Interlocked.CompareExchange(ref *_service.WriterSlot, 0, _owner); // not a forked child's copy: the slot is its parent's
        }
        _service.Detach();
    }

    /// <summary>Takes the writer slot, free or held by a dead process; the dead writer's pid, or 0.</summary>
    private int TakeSlot(ulong attaching)
    {
        ulong* slot = _service.WriterSlot;
        while (true)
        {
            ulong seen = Volatile.Read(ref *slot);
            if (!OwnerWord.IsValid(seen) || (seen != 0 && OwnerWord.StateOf(seen) is not (OwnerWord.Attaching or OwnerWord.Attached)))
            {
                throw _service.Segment.Corrupt("blackboard writer slot owner", BlackboardLayout.WriterSlot, (long)seen, "0 (free), or an attaching or attached owner word with a pid from 1 to 4194303");
            }
            if (seen != 0 && ServiceInterop.IsAlive(OwnerWord.PidOf(seen), OwnerWord.StartOf(seen)))
            {
                throw new InvalidOperationException($"The blackboard '{_service.Name}' has a writer already: process {OwnerWord.PidOf(seen)} (one writer at a time).");
            }
            if (Interlocked.CompareExchange(ref *slot, attaching, seen) == seen)
            {
                return seen == 0 ? 0 : OwnerWord.PidOf(seen);
            }
        }
    }

    /// <summary>
    /// Reads every entry's sequence once; an odd one was left by a writer that died writing it: its pid
    /// goes into the entry's torn-by word and the sequence becomes even, so readers report it instead
    /// of waiting for a write that will never end.
    /// </summary>
    private uint[] Repair(int predecessor)
    {
        var sequences = new uint[_service.Layout.Keys];
        for (int key = 0; key < sequences.Length; key++)
        {
            byte* entry = _service.Entries + (key * _service.Layout.Stride);
            uint* sequence = (uint*)(entry + BlackboardLayout.Sequence);
            uint s = Volatile.Read(ref *sequence);
            if ((s & 1) != 0)
            {
                Volatile.Write(ref *(uint*)(entry + BlackboardLayout.TornBy), (uint)predecessor);
                s++;
                Interlocked.Exchange(ref *sequence, s);
                ServiceInterop.FutexWakeAll((int*)sequence);
            }
            sequences[key] = s;
        }
        return sequences;
    }
}
