using System;
using System.Buffers.Text;
using System.Globalization;

namespace Shm.Interop;

/// <summary>
/// One reading of what a process's threads are doing, from <c>/proc/PID/syscall</c>,
/// <c>/proc/PID/status</c> and <c>/proc/PID/schedstat</c>. A forked child has one thread; if that
/// thread waits without a timeout on a private futex, nothing can ever wake it: a private futex is
/// woken only by threads of the same process, and there are none. That is how a runtime lock held
/// by another parent thread at the instant of the fork shows itself.
/// </summary>
internal readonly struct ThreadSample
{
    /// <summary>True if /proc still describes the process.</summary>
    public bool Exists { get; private init; }

    /// <summary>The number of threads.</summary>
    public int Threads { get; private init; }

    /// <summary>True if a thread sits in futex wait (or lock-PI) with FUTEX_PRIVATE_FLAG and no timeout.</summary>
    public bool InUntimedPrivateFutexWait { get; private init; }

    /// <summary>The futex word it waits on (0 if none).</summary>
    public ulong FutexAddress { get; private init; }

    /// <summary>The futex operation of that wait, flags included (0 if none).</summary>
    public int FutexOperation { get; private init; }

    /// <summary>Signals that have a handler (<c>SigCgt</c>): bit n-1 for signal n.</summary>
    public ulong CaughtSignals { get; private init; }

    /// <summary>Signals the thread blocks (<c>SigBlk</c>): bit n-1 for signal n.</summary>
    public ulong BlockedSignals { get; private init; }

    /// <summary>Voluntary plus involuntary context switches: unchanged between two readings means it never woke.</summary>
    public long ContextSwitches { get; private init; }

    /// <summary>Voluntary context switches alone: how often a thread blocked or slept.</summary>
    public long VoluntarySwitches { get; private init; }

    /// <summary>Time spent on a CPU, in nanoseconds.</summary>
    public long CpuNanoseconds { get; private init; }

    /// <summary>True if no thread can ever wake: the process has one thread, waiting for ever on a private futex.</summary>
    public bool CannotWake => Exists && Threads == 1 && InUntimedPrivateFutexWait;

    /// <summary>True if <paramref name="earlier"/> shows the same wait, with no wake-up in between.</summary>
    public bool SameWaitAs(ThreadSample earlier) =>
        CannotWake && earlier.CannotWake && FutexAddress == earlier.FutexAddress && ContextSwitches == earlier.ContextSwitches;

    /// <summary>
    /// Reads the record of the process behind <paramref name="paths"/>; <see cref="Exists"/> is false
    /// if it is gone or unreadable. Unless <paramref name="full"/>, a process not in an untimed private
    /// futex wait costs one small read (its status and CPU time are left at 0): waits sample often.
    /// </summary>
    public static ThreadSample Read(ProcPaths paths, bool full)
    {
        Span<byte> buffer = stackalloc byte[4096];
        int length = Libc.ReadSmallFile(paths.Syscall, buffer);
        if (length < 0)
        {
            return default;
        }
        (bool waiting, ulong address, int operation) = UntimedPrivateFutexWait(buffer[..length]);
        if (!waiting && !full)
        {
            return new ThreadSample { Exists = true };
        }

        length = Libc.ReadSmallFile(paths.Status, buffer);
        if (length <= 0)
        {
            return default;
        }
        ReadOnlySpan<byte> status = buffer[..length];
        int threads = (int)Field(status, "Threads:"u8);
        long voluntary = Field(status, "voluntary_ctxt_switches:"u8);
        long switches = voluntary + Field(status, "nonvoluntary_ctxt_switches:"u8);

        length = Libc.ReadSmallFile(paths.Schedstat, buffer);
        long cpu = length > 0 && Utf8Parser.TryParse(buffer[..length], out long nanoseconds, out _) ? nanoseconds : 0;
        return new ThreadSample
        {
            Exists = true,
            Threads = threads,
            ContextSwitches = switches,
            VoluntarySwitches = voluntary,
            CpuNanoseconds = cpu,
            InUntimedPrivateFutexWait = waiting,
            FutexAddress = address,
            FutexOperation = operation,
            CaughtSignals = HexField(status, "SigCgt:"u8),
            BlockedSignals = HexField(status, "SigBlk:"u8),
        };
    }

    /// <summary>The signals this process has handlers for (<c>SigCgt</c> of <c>/proc/self/status</c>), or null if unreadable.</summary>
    public static ulong? CaughtSignalsOfThisProcess()
    {
        Span<byte> buffer = stackalloc byte[4096];
        int length = Libc.ReadSmallFile("/proc/self/status", buffer);
        return length > 0 && buffer[..length].IndexOf("SigCgt:"u8) >= 0 ? HexField(buffer[..length], "SigCgt:"u8) : null;
    }

    // "202 0x55d0c8a1b2c0 0x80 0x2 0x0 0x0 0x0 0x7ffd... 0x7f...": the call number, its six arguments,
    // the stack and instruction pointers; "running" or "-1 ..." when not blocked in a call.
    private static (bool Waiting, ulong Address, int Operation) UntimedPrivateFutexWait(ReadOnlySpan<byte> line)
    {
        Span<ulong> fields = stackalloc ulong[5];
        int count = 0;
        foreach (Range range in line.TrimEnd((byte)'\n').Split((byte)' '))
        {
            ReadOnlySpan<byte> token = line[range];
            if (count == 0)
            {
                if (!Utf8Parser.TryParse(token, out long number, out _) || number != Libc.SYS_futex)
                {
                    return (false, 0, 0);
                }
            }
            else if (!token.StartsWith("0x"u8) || !Utf8Parser.TryParse(token[2..], out fields[count - 1], out _, 'x'))
            {
                return (false, 0, 0);
            }
            if (++count == fields.Length + 1)
            {
                break;
            }
        }
        if (count < fields.Length + 1)
        {
            return (false, 0, 0);
        }
        // futex(uaddr, op, val, timeout, uaddr2, val3): a wait whose timeout pointer is NULL.
        int op = (int)fields[1];
        int command = op & ~(Libc.FUTEX_PRIVATE_FLAG | Libc.FUTEX_CLOCK_REALTIME);
        bool isWait = command is Libc.FUTEX_WAIT or Libc.FUTEX_WAIT_BITSET or Libc.FUTEX_LOCK_PI or Libc.FUTEX_LOCK_PI2 or Libc.FUTEX_WAIT_REQUEUE_PI;
        bool waiting = isWait && (op & Libc.FUTEX_PRIVATE_FLAG) != 0 && fields[3] == 0;
        return waiting ? (true, fields[0], op) : (false, 0, 0);
    }

    private static long Field(ReadOnlySpan<byte> status, ReadOnlySpan<byte> name) =>
        Utf8Parser.TryParse(FieldText(status, name), out long value, out _) ? value : 0;

    // "SigCgt:\t00000003000004d8": 64 bits in hexadecimal.
    private static ulong HexField(ReadOnlySpan<byte> status, ReadOnlySpan<byte> name) =>
        Utf8Parser.TryParse(FieldText(status, name), out ulong value, out _, 'x') ? value : 0;

    private static ReadOnlySpan<byte> FieldText(ReadOnlySpan<byte> status, ReadOnlySpan<byte> name)
    {
        int at = status.IndexOf(name);
        if (at < 0 || (at > 0 && status[at - 1] != (byte)'\n'))
        {
            return default;
        }
        return status[(at + name.Length)..].TrimStart("\t "u8);
    }
}

/// <summary>The /proc files <see cref="ThreadSample"/> reads for one process, built once.</summary>
internal sealed class ProcPaths(int pid)
{
    public string Status { get; } = string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/status");

    public string Schedstat { get; } = string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/schedstat");

    public string Syscall { get; } = string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/syscall");
}
