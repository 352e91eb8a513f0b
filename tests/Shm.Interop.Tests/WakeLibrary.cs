using System;
using System.IO;
using System.Runtime.InteropServices;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// A small C library, built with the machine's cc and loaded in the parent (so forked children have
/// it mapped and its functions bound): signal handlers that do only async-signal-safe things.
/// </summary>
internal sealed unsafe class WakeLibrary
{
    private static readonly Lazy<WakeLibrary> Built = new(Build);

    private const string Source = """
        #include <errno.h>
        #include <pthread.h>
        #include <semaphore.h>
        #include <signal.h>
        #include <string.h>
        #include <unistd.h>

        static sem_t posted;

        static void post(int signal) { (void)signal; sem_post(&posted); }
        static void leave(int signal) { (void)signal; _exit(7); }

        static int install(int signal, void (*handler)(int)) {
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_handler = handler;
            sigemptyset(&action.sa_mask);
            return sigaction(signal, &action, NULL);
        }

        /* A private semaphore that SIGUSR1's handler posts: the async-signal-safe way to wake a waiter. */
        int wake_install_post(void) { return sem_init(&posted, 0, 0) == 0 ? install(SIGUSR1, post) : -1; }

        int wake_wait_posted(void) {
            while (sem_wait(&posted) != 0) {
                if (errno != EINTR) return -1;
            }
            return 0;
        }

        /* A graceful-shutdown handler: SIGTERM ends the process with status 7. */
        int wake_install_exit_on_term(void) { return install(SIGTERM, leave); }

        /* Blocks SIGUSR1 in the calling thread: its handler can then wake nothing. */
        int wake_block_usr1(void) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGUSR1);
            return pthread_sigmask(SIG_BLOCK, &set, NULL);
        }
        """;

    private readonly delegate* unmanaged<int> _installPost;
    private readonly delegate* unmanaged<int> _waitPosted;
    private readonly delegate* unmanaged<int> _installExitOnTerm;
    private readonly delegate* unmanaged<int> _blockUsr1;

    private WakeLibrary(nint library)
    {
        _installPost = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "wake_install_post");
        _waitPosted = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "wake_wait_posted");
        _installExitOnTerm = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "wake_install_exit_on_term");
        _blockUsr1 = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "wake_block_usr1");
    }

    /// <summary>Built once per test run, and loaded.</summary>
    public static WakeLibrary Instance => Built.Value;

    /// <summary>Makes a private semaphore and a SIGUSR1 handler that posts it; 0 on success.</summary>
    public int InstallPost() => _installPost();

    /// <summary>sem_wait on that semaphore, again after EINTR; 0 once posted.</summary>
    public int WaitPosted() => _waitPosted();

    /// <summary>Installs a SIGTERM handler that ends the process with _exit(7); 0 on success.</summary>
    public int InstallExitOnTerm() => _installExitOnTerm();

    /// <summary>Blocks SIGUSR1 in the calling thread; 0 on success.</summary>
    public int BlockUsr1() => _blockUsr1();

    private static WakeLibrary Build()
    {
        string directory = Directory.CreateTempSubdirectory("shm-wake-").FullName;
        try
        {
            string source = Path.Combine(directory, "wake.c");
            string library = Path.Combine(directory, "libwake.so");
            File.WriteAllText(source, Source);
            using (Child cc = Child.Spawn("cc", ["-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-pthread", "-o", library, source]))
            {
                Assert.True(cc.WaitOrFail().Succeeded, "cc failed: a C compiler is needed for this test");
            }
            return new WakeLibrary(NativeLibrary.Load(library)); // mapped from here on: the file may go
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
