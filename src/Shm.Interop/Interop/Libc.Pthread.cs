using System.Runtime.InteropServices;

namespace Shm.Interop;

// <pthread.h>: process-shared robust mutexes. Bound through libpthread.so.0, which before glibc 2.34
// holds them and since then forwards to libc; the pthread functions return an error number.
internal static partial class Libc
{
    private const string Pthread = "libpthread.so.0";

    internal const int PTHREAD_PROCESS_SHARED = 1;
    internal const int PTHREAD_MUTEX_ROBUST = 1;
    internal const int PTHREAD_MUTEX_ERRORCHECK = 2;

    [LibraryImport(Pthread, EntryPoint = "pthread_mutexattr_init")]
    internal static unsafe partial int pthread_mutexattr_init(void* attributes);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutexattr_destroy")]
    internal static unsafe partial int pthread_mutexattr_destroy(void* attributes);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutexattr_setpshared")]
    internal static unsafe partial int pthread_mutexattr_setpshared(void* attributes, int shared);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutexattr_setrobust")]
    internal static unsafe partial int pthread_mutexattr_setrobust(void* attributes, int robust);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutexattr_settype")]
    internal static unsafe partial int pthread_mutexattr_settype(void* attributes, int type);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_init")]
    internal static unsafe partial int pthread_mutex_init(void* mutex, void* attributes);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_lock")]
    internal static unsafe partial int pthread_mutex_lock(void* mutex);

    // Never blocks, so it may skip the GC transition: the uncontended lock costs what it costs in C.
    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_trylock")]
    [SuppressGCTransition]
    internal static unsafe partial int pthread_mutex_trylock_fast(void* mutex);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_timedlock")]
    internal static unsafe partial int pthread_mutex_timedlock(void* mutex, TimeSpec* deadline);

    // Never blocks (at most a futex wake), so it may skip the GC transition.
    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_unlock")]
    [SuppressGCTransition]
    internal static unsafe partial int pthread_mutex_unlock(void* mutex);

    [LibraryImport(Pthread, EntryPoint = "pthread_mutex_consistent")]
    internal static unsafe partial int pthread_mutex_consistent(void* mutex);

    /// <summary>pthread_mutex_clocklock (glibc 2.30+, so found at run time), or null where it is missing.</summary>
    internal static readonly unsafe delegate* unmanaged<void*, int, TimeSpec*, int> pthread_mutex_clocklock = FindClocklock();

    private static unsafe delegate* unmanaged<void*, int, TimeSpec*, int> FindClocklock() =>
        NativeLibrary.TryLoad(Pthread, out nint library) && NativeLibrary.TryGetExport(library, "pthread_mutex_clocklock", out nint function)
            ? (delegate* unmanaged<void*, int, TimeSpec*, int>)function
            : null;
}
