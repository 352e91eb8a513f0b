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

static int timed(int (*body)(long), long n) {
    double start = now();
    int failed = body(n);
    printf("%.1f\n", (now() - start) / n);
    return failed;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s mmap|mmap3|fork|pingpong|ring|pipe|socketpair N\n", argv[0]);
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
    return 2;
}
