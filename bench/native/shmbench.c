/*
 * C baselines for bench/Shm.Bench: the same work as the .NET measurements, with nothing in between.
 * Built by the benchmark (cc -O2) when a compiler is present. Each mode prints one number.
 *
 *   mmap N         ns per mmap+munmap of one 5096-byte anonymous shared region
 *   mmap3 N        ns per three regions mapped, then unmapped in reverse (the goto ladder)
 *   fork N         ns per fork + child _exit(0) + waitpid
 *   pingpong N     ns per round trip: parent and child spin on atomic counters in a shared page
 *   ring MB        bytes/s moving MB MiB through a ring of 1 MiB slots (producer child, consumer parent)
 *   pipe MB        bytes/s through a pipe, 1 MiB writes and reads
 *   socketpair MB  bytes/s through a Unix stream socketpair
 *   mutex N        ns per uncontended lock+unlock of a robust, process-shared, error-checking mutex
 *   handoff N      ns per lock+unlock while two processes (pinned apart) contend for that mutex
 *   futexmutex N   ns per uncontended lock+unlock of shm.h's futex mutex (no pointers in shared memory)
 *   futexhandoff N ns per lock+unlock while two processes (pinned apart) contend for that futex mutex
 *   semaphore N    ns per one-way post-to-wake-up: two processes ping-pong on two futex semaphores
 *                  (include/shm/shm.h, the layout Shm's SharedSemaphore uses), so each wait parks
 *   wake N         median ns from a post to the wake-up of a waiter that had parked (2 ms between posts)
 *   socketmsg N    messages/s of SIZE bytes (SHM_SIZE, default 64) through a Unix socketpair, child to parent
 *   pipemsg N      the same through a pipe
 *   memcpy N       bytes/s copying N blocks of SIZE bytes into a 16 MiB shared ring in turn (memory
 *                  bandwidth: the ceiling for bulk messages, whose writer copies each once)
 *   blackboard N   ns per uncontended read of a 64-byte blackboard entry: shm.h's shm_blackboard_read
 *                  (the seqlock read) on a one-entry table laid out as BlackboardService lays it out
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <shm/shm.h>

#define LEN 5096
#define CHUNK (1 << 20)
#define SLOTS 8

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void *map(size_t length) {
    return mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static int bench_mmap(long n) {
    for (long i = 0; i < n; i++) {
        void *a = map(LEN);
        if (a == MAP_FAILED) return 1;
        munmap(a, LEN);
    }
    return 0;
}

static int bench_mmap3(long n) {
    for (long i = 0; i < n; i++) {
        void *a = map(LEN);
        if (a == MAP_FAILED) goto fail_a;
        void *b = map(LEN);
        if (b == MAP_FAILED) goto fail_b;
        void *c = map(LEN);
        if (c == MAP_FAILED) goto fail_c;
        munmap(c, LEN);
        munmap(b, LEN);
        munmap(a, LEN);
        continue;
    fail_c:
        munmap(b, LEN);
    fail_b:
        munmap(a, LEN);
    fail_a:
        return 1;
    }
    return 0;
}

static int bench_fork(long n) {
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        int status;
        waitpid(pid, &status, 0);
    }
    return 0;
}

/* Two counters on separate cache lines. */
struct pingpong { _Alignas(64) atomic_long ping; _Alignas(64) atomic_long pong; _Alignas(64) atomic_long ready; };

static int bench_pingpong(long n) {
    struct pingpong *p = map(sizeof *p);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        atomic_store(&p->ready, 1);
        for (long i = 1; i <= n; i++) {
            while (atomic_load_explicit(&p->ping, memory_order_acquire) != i) {}
            atomic_store_explicit(&p->pong, i, memory_order_release);
        }
        _exit(0);
    }
    pin(0);
    while (!atomic_load(&p->ready)) {}
    double start = now();
    for (long i = 1; i <= n; i++) {
        atomic_store_explicit(&p->ping, i, memory_order_release);
        while (atomic_load_explicit(&p->pong, memory_order_acquire) != i) {}
    }
    double elapsed = now() - start;
    waitpid(pid, NULL, 0);
    printf("%.1f\n", elapsed / n);
    return 0;
}

struct ring { _Alignas(64) atomic_long head; _Alignas(64) atomic_long tail; _Alignas(64) atomic_long ready; _Alignas(64) char slots[SLOTS][CHUNK]; };

static int bench_ring(long chunks) {
    struct ring *r = map(sizeof *r);
    char *source = malloc(CHUNK), *sink = malloc(CHUNK);
    memset(source, 7, CHUNK);
    memset(sink, 0, CHUNK);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        atomic_store(&r->ready, 1);
        for (long i = 0; i < chunks; i++) {
            while (i - atomic_load_explicit(&r->tail, memory_order_acquire) >= SLOTS) {}
            memcpy(r->slots[i % SLOTS], source, CHUNK);
            atomic_store_explicit(&r->head, i + 1, memory_order_release);
        }
        _exit(0);
    }
    pin(0);
    while (!atomic_load(&r->ready)) {}
    double start = now();
    for (long i = 0; i < chunks; i++) {
        while (atomic_load_explicit(&r->head, memory_order_acquire) <= i) {}
        memcpy(sink, r->slots[i % SLOTS], CHUNK);
        atomic_store_explicit(&r->tail, i + 1, memory_order_release);
    }
    double elapsed = now() - start;
    waitpid(pid, NULL, 0);
    printf("%.0f\n", chunks * (double)CHUNK / (elapsed / 1e9));
    return sink[CHUNK - 1] == 7 ? 0 : 1;
}

static int bench_stream(long chunks, int use_socket) {
    int fds[2];
    if (use_socket ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds)) return 1;
    char *buffer = malloc(CHUNK);
    memset(buffer, 7, CHUNK);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        close(fds[0]);
        for (long i = 0; i < chunks; i++)
            for (size_t done = 0; done < CHUNK;) {
                ssize_t w = write(fds[1], buffer + done, CHUNK - done);
                if (w <= 0) _exit(1);
                done += w;
            }
        _exit(0);
    }
    pin(0);
    close(fds[1]);
    double start = now();
    for (long total = 0; total < chunks * (long)CHUNK;) {
        ssize_t r = read(fds[0], buffer, CHUNK);
        if (r <= 0) return 1;
        total += r;
    }
    double elapsed = now() - start;
    waitpid(pid, NULL, 0);
    printf("%.0f\n", chunks * (double)CHUNK / (elapsed / 1e9));
    return 0;
}

static void init_mutex(struct shm_mutex *m) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&m->mutex, &a);
}

static int bench_mutex(long n) {
    struct shm_mutex *m = map(SHM_PRIMITIVE_SIZE);
    init_mutex(m);
    for (long i = 0; i < n; i++) {
        shm_mutex_lock(m);
        shm_mutex_unlock(m);
    }
    return 0;
}

static int bench_handoff(long n) {
    char *base = map(4096);
    struct shm_mutex *m = (struct shm_mutex *)base;
    atomic_long *go = (atomic_long *)(base + 128);
    long *counter = (long *)(base + 192);
    init_mutex(m);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        while (!atomic_load(go)) {}
        for (long i = 0; i < n; i++) { shm_mutex_lock(m); ++*counter; shm_mutex_unlock(m); }
        _exit(0);
    }
    pin(0);
    double start = now();
    atomic_store(go, 1);
    for (long i = 0; i < n; i++) { shm_mutex_lock(m); ++*counter; shm_mutex_unlock(m); }
    waitpid(pid, NULL, 0);
    double elapsed = now() - start;
    printf("%.1f\n", elapsed / (2.0 * n));
    return *counter == 2 * n ? 0 : 1;
}

static int bench_futexmutex(long n) {
    struct shm_futex_mutex *m = map(SHM_PRIMITIVE_SIZE);
    for (long i = 0; i < n; i++) {
        if (shm_futex_mutex_lock(m) || shm_futex_mutex_unlock(m)) return 1;
    }
    return 0;
}

static int bench_futexhandoff(long n) {
    char *base = map(4096);
    struct shm_futex_mutex *m = (struct shm_futex_mutex *)base;
    atomic_long *go = (atomic_long *)(base + 128);
    long *counter = (long *)(base + 192);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        while (!atomic_load(go)) {}
        for (long i = 0; i < n; i++) { shm_futex_mutex_lock(m); ++*counter; shm_futex_mutex_unlock(m); }
        _exit(0);
    }
    pin(0);
    double start = now();
    atomic_store(go, 1);
    for (long i = 0; i < n; i++) { shm_futex_mutex_lock(m); ++*counter; shm_futex_mutex_unlock(m); }
    waitpid(pid, NULL, 0);
    double elapsed = now() - start;
    printf("%.1f\n", elapsed / (2.0 * n));
    return *counter == 2 * n ? 0 : 1;
}

static int bench_semaphore(long n) {
    char *base = map(4096);
    struct shm_semaphore *ping = (struct shm_semaphore *)base, *pong = (struct shm_semaphore *)(base + 64);
    ping->maximum = pong->maximum = INT_MAX; /* as SharedSemaphore.Create's default: a maximum of 0 is refused */
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        for (long i = 0; i < n; i++) { shm_semaphore_wait(ping); shm_semaphore_post(pong); }
        _exit(0);
    }
    pin(0);
    double start = now();
    for (long i = 0; i < n; i++) { shm_semaphore_post(ping); shm_semaphore_wait(pong); }
    double elapsed = now() - start;
    waitpid(pid, NULL, 0);
    printf("%.1f\n", elapsed / (2.0 * n));
    return 0;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_wake(long n) {
    char *base = map(4096 + n * sizeof(double));
    struct shm_semaphore *s = (struct shm_semaphore *)base;
    s->maximum = INT_MAX;
    double *sent = (double *)(base + 64), *latency = (double *)(base + 4096);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        for (long i = 0; i < n; i++) { shm_semaphore_wait(s); latency[i] = now() - *(volatile double *)sent; }
        _exit(0);
    }
    pin(0);
    struct timespec pause = {0, 2000000};
    for (long i = 0; i < n; i++) { nanosleep(&pause, NULL); *(volatile double *)sent = now(); shm_semaphore_post(s); }
    waitpid(pid, NULL, 0);
    qsort(latency, n, sizeof(double), compare_doubles);
    printf("%.1f\n", latency[n / 2]);
    return 0;
}

static long message_size(void) {
    const char *size = getenv("SHM_SIZE");
    return size ? atol(size) : 64;
}

static int bench_messages(long n, int use_socket) {
    long size = message_size();
    int fds[2];
    if (use_socket ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds)) return 1;
    char *buffer = malloc(size);
    memset(buffer, 7, size);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        close(fds[0]);
        for (long i = 0; i < n; i++)
            for (long done = 0; done < size;) {
                ssize_t w = write(fds[1], buffer + done, size - done);
                if (w <= 0) _exit(1);
                done += w;
            }
        _exit(0);
    }
    pin(0);
    close(fds[1]);
    double start = now();
    for (long i = 0; i < n; i++)
        for (long done = 0; done < size;) {
            ssize_t r = read(fds[0], buffer + done, size - done);
            if (r <= 0) return 1;
            done += r;
        }
    double elapsed = now() - start;
    waitpid(pid, NULL, 0);
    printf("%.0f\n", n / (elapsed / 1e9));
    return 0;
}

static int bench_memcpy(long n) {
    long size = message_size(), ring = 16L << 20;
    if (size > ring) ring = size;
    char *from = malloc(size), *to = map(ring);
    memset(from, 7, size);
    memset(to, 0, ring);
    long slots = ring / size;
    double start = now();
    for (long i = 0; i < n; i++) { from[0] = (char)i; memcpy(to + (i % slots) * size, from, size); __asm__ volatile("" : : "r"(to) : "memory"); }
    printf("%.0f\n", n * (double)size / ((now() - start) / 1e9));
    return 0;
}

static int bench_blackboard(long n) {
    struct shm_blackboard board;
    int64_t value[8] = {1, 0, 0, 0, 0, 0, 0, 8}, sink = 0;
    memset(&board, 0, sizeof board);
    board.size = 12288;
    board.base = map(board.size);
    board.keys = 1;
    board.value_size = 64;
    board.stride = 128;
    memcpy(board.base + SHM_BB_ENTRIES + SHM_BB_VALUE, value, sizeof value);
    __atomic_store_n((uint32_t *)(board.base + SHM_BB_ENTRIES + SHM_BB_SEQUENCE), 2u, __ATOMIC_RELEASE);
    for (long i = 0; i < 1000; i++) shm_blackboard_read(&board, 0, value, sizeof value, 0);
    double start = now();
    for (long i = 0; i < n; i++) {
        if (shm_blackboard_read(&board, 0, value, sizeof value, 0) != 0) return 1;
        sink += value[0] + value[7];
    }
    double elapsed = now() - start;
    if (sink != 9 * n) return 1;
    printf("%.2f\n", elapsed / n);
    return 0;
}

static int timed(int (*body)(long), long n) {
    double start = now();
    int failed = body(n);
    printf("%.1f\n", (now() - start) / n);
    return failed;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s mmap|mmap3|fork|pingpong|ring|pipe|socketpair|mutex|handoff|futexmutex|futexhandoff|semaphore|wake|socketmsg|pipemsg|memcpy|blackboard N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "mmap")) return timed(bench_mmap, n);
    if (!strcmp(argv[1], "mmap3")) return timed(bench_mmap3, n);
    if (!strcmp(argv[1], "fork")) return timed(bench_fork, n);
    if (!strcmp(argv[1], "pingpong")) return bench_pingpong(n);
    if (!strcmp(argv[1], "ring")) return bench_ring(n);
    if (!strcmp(argv[1], "pipe")) return bench_stream(n, 0);
    if (!strcmp(argv[1], "socketpair")) return bench_stream(n, 1);
    if (!strcmp(argv[1], "mutex")) return timed(bench_mutex, n);
    if (!strcmp(argv[1], "handoff")) return bench_handoff(n);
    if (!strcmp(argv[1], "futexmutex")) return timed(bench_futexmutex, n);
    if (!strcmp(argv[1], "futexhandoff")) return bench_futexhandoff(n);
    if (!strcmp(argv[1], "semaphore")) return bench_semaphore(n);
    if (!strcmp(argv[1], "wake")) return bench_wake(n);
    if (!strcmp(argv[1], "socketmsg")) return bench_messages(n, 1);
    if (!strcmp(argv[1], "pipemsg")) return bench_messages(n, 0);
    if (!strcmp(argv[1], "memcpy")) return bench_memcpy(n);
    if (!strcmp(argv[1], "blackboard")) return bench_blackboard(n);
    return 2;
}
