/*
 * shm.h: the memory layouts Shm (https://github.com/shm-dotnet/shm) uses in shared regions, so that
 * C programs can use the same primitives as .NET processes. Header only; link with -lpthread on
 * glibc before 2.34.
 *
 * Include it first, before any system header (or define _GNU_SOURCE yourself): it needs syscall(),
 * pthread_mutex_consistent() and kill(), which strict C (-std=c11) declares only then. It compiles
 * as C11 (-std=c11 or gnu11) and as C++ (C++11 or later), with -Wall -Wextra -Werror.
 *
 * Every primitive occupies SHM_PRIMITIVE_SIZE (64) bytes at an 8-byte aligned offset:
 *
 *   offset 0  uint32 state         0 = uninitialised, SHM_INITIALISING, SHM_READY
 *   offset 4  uint32 kind_version  (kind << 16) | shm_layout_version(kind)
 *   offset 8  the primitive's own words (below)
 *
 * Only the process that moves state from 0 to SHM_INITIALISING initialises; it stores
 * kind_version, then SHM_READY, then wakes futex waiters on state. Use a primitive only when state
 * is SHM_READY and kind_version is the one you expect. All futexes are shared (no FUTEX_PRIVATE_FLAG).
 */
#ifndef SHM_SHM_H
#define SHM_SHM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHM_PRIMITIVE_SIZE 64
#define SHM_INITIALISING 0x54494E49u /* "INIT" */
#define SHM_READY 0x59444552u        /* "REDY" */
#define SHM_LAYOUT_VERSION 1u         /* of the mutex, semaphore, event and condition */
#define SHM_CHANNEL_LAYOUT_VERSION 2u /* of the channel (2: lane generation and final head, record check word) */

#ifdef __cplusplus
#define SHM_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define SHM_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

enum shm_kind { SHM_MUTEX = 1, SHM_SEMAPHORE = 2, SHM_EVENT = 3, SHM_CONDITION = 4, SHM_CHANNEL = 5, SHM_FUTEX_MUTEX = 6 };

struct shm_header {
    uint32_t state;
    uint32_t kind_version;
};

/*
 * A pthread mutex made PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST and PTHREAD_MUTEX_ERRORCHECK.
 * For processes that trust each other: glibc keeps the owner's robust-list pointers inside the shared
 * pthread_mutex_t, so a peer that rewrites them makes the unlocking process write where the peer
 * chooses. Between processes that do not trust each other, use struct shm_futex_mutex.
 */
struct shm_mutex {
    struct shm_header header;
    pthread_mutex_t mutex;
};

/*
 * Every function below reads each shared word once and checks it: a value no process following the
 * protocol writes (a count past the maximum, a signal other than 0 or 1, ...) makes it return EINVAL
 * and write nothing, never loop or block on it.
 */
struct shm_semaphore {
    struct shm_header header;
    uint32_t count;   /* futex: waiters sleep while it is 0; never above maximum */
    uint32_t waiters; /* incremented around a sleep: post wakes only if > 0 */
    uint32_t maximum; /* 1 to INT_MAX */
};

struct shm_event {
    struct shm_header header;
    uint32_t signalled; /* futex: waiters sleep while it is 0; 0 or 1 */
    uint32_t waiters;
    uint32_t manual_reset; /* 0: each set lets one waiter pass; 1: all, until reset */
};

struct shm_condition {
    struct shm_header header;
    uint32_t sequence; /* futex: bumped by signal and broadcast */
    uint32_t waiters;
};

/*
 * A mutex for processes that do not trust each other: no pointer in shared memory. The lock word
 * holds the owner's tid (bits 0-21, 0 when free), a generation bumped by every acquisition (bits
 * 22-30) and a sleepers bit (31). After taking the word, the owner stores its pid, then `owner`: the
 * word it took (without bit 31) and the low 32 bits of its thread's start time (field 22 of
 * /proc/PID/task/TID/stat, less the boot-time offset of the reader's own time namespace from
 * /proc/self/timens_offsets, so peers in different time namespaces see the same value). A waiter
 * that has seen the same acquisition for 10 ms (then every 100 ms, and before a timed lock gives up)
 * asks whether the owner thread lives: tgkill(pid, tid, 0) answering ESRCH, a zombie, or another
 * start time (more than one tick apart) mean dead (EPERM or an unreadable /proc mean alive); `owner`
 * counts only when its low half equals the word. The first to see it dead takes the exact word over
 * with a compare-and-swap and owns the mutex (EOWNERDEAD). Peers must share a pid namespace.
 */
struct shm_futex_mutex {
    struct shm_header header;
    uint32_t word;     /* futex */
    int32_t owner_pid; /* the owner's process (tgid) */
    uint64_t owner;    /* low 32 bits: the word its owner took, without bit 31; high 32: its start time (initial time namespace) */
};

#define SHM_FM_SLEEPERS 0x80000000u
#define SHM_FM_GENERATION 0x7FC00000u
#define SHM_FM_GENERATION_UNIT 0x00400000u
#define SHM_FM_TID 0x003FFFFFu
#define SHM_PID_MAX_LIMIT 4194304

SHM_STATIC_ASSERT(sizeof(struct shm_mutex) <= SHM_PRIMITIVE_SIZE, "a primitive fits in 64 bytes");
SHM_STATIC_ASSERT(sizeof(struct shm_futex_mutex) == 24, "the .NET layout");

#ifdef __cplusplus
#define SHM_THREAD_LOCAL thread_local
#else
#define SHM_THREAD_LOCAL _Thread_local
#endif

static inline uint32_t shm_layout_version(enum shm_kind kind)
{
    return kind == SHM_CHANNEL ? SHM_CHANNEL_LAYOUT_VERSION : SHM_LAYOUT_VERSION;
}

static inline int shm_is_ready(const struct shm_header *h, enum shm_kind kind)
{
    return __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == SHM_READY &&
           __atomic_load_n(&h->kind_version, __ATOMIC_ACQUIRE) == (((uint32_t)kind << 16) | shm_layout_version(kind));
}

static inline long shm_futex(uint32_t *word, int op, uint32_t value)
{
    return syscall(SYS_futex, word, op, value, NULL, NULL, 0);
}

/* Locks; if the previous owner died holding it, makes it consistent and returns EOWNERDEAD (you own it). */
static inline int shm_mutex_lock(struct shm_mutex *m)
{
    int error = pthread_mutex_lock(&m->mutex);
    if (error == EOWNERDEAD) {
        pthread_mutex_consistent(&m->mutex);
    }
    return error;
}

static inline int shm_mutex_unlock(struct shm_mutex *m) { return pthread_mutex_unlock(&m->mutex); }

/* Reads the maximum and checks it and `count` against it: 0, or EINVAL for impossible values. */
static inline int shm_semaphore_check_(uint32_t count, uint32_t maximum)
{
    return maximum == 0 || maximum > INT_MAX || count > maximum ? EINVAL : 0;
}

/* Adds one and wakes a waiter: 0, EOVERFLOW if the count is at its maximum (nothing is added), or EINVAL. */
static inline int shm_semaphore_post(struct shm_semaphore *s)
{
    uint32_t maximum = __atomic_load_n(&s->maximum, __ATOMIC_ACQUIRE);
    uint32_t count = __atomic_load_n(&s->count, __ATOMIC_ACQUIRE);
    do {
        if (shm_semaphore_check_(count, maximum)) return EINVAL;
        if (count == maximum) return EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&s->count, &count, count + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) != 0) {
        shm_futex(&s->count, FUTEX_WAKE, 1);
    }
    return 0;
}

/* Takes one, sleeping while the count is 0: 0, or EINVAL (the shared words are impossible). */
static inline int shm_semaphore_wait(struct shm_semaphore *s)
{
    for (;;) {
        uint32_t maximum = __atomic_load_n(&s->maximum, __ATOMIC_ACQUIRE);
        uint32_t count = __atomic_load_n(&s->count, __ATOMIC_SEQ_CST);
        if (shm_semaphore_check_(count, maximum)) return EINVAL;
        if (count > 0) {
            if (__atomic_compare_exchange_n(&s->count, &count, count - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
            continue;
        }
        __atomic_add_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->count, __ATOMIC_SEQ_CST) == 0) {
            shm_futex(&s->count, FUTEX_WAIT, 0);
        }
        __atomic_sub_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

/* Signals: 0, or EINVAL (the signal or the mode is impossible; nothing is written). */
static inline int shm_event_set(struct shm_event *e)
{
    uint32_t manual = __atomic_load_n(&e->manual_reset, __ATOMIC_ACQUIRE);
    uint32_t signalled = __atomic_load_n(&e->signalled, __ATOMIC_SEQ_CST);
    if (manual > 1) return EINVAL;
    do {
        if (signalled > 1) return EINVAL;
        if (signalled == 1) return 0;
    } while (!__atomic_compare_exchange_n(&e->signalled, &signalled, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    if (__atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST) != 0) {
        shm_futex(&e->signalled, FUTEX_WAKE, manual ? INT_MAX : 1);
    }
    return 0;
}

/* A spin-wait hint: the futex mutex and the channel spin briefly before they sleep. */
#ifndef SHM_PAUSE
#if defined(__x86_64__) || defined(__i386__)
#define SHM_PAUSE() __builtin_ia32_pause()
#else
#define SHM_PAUSE() __asm__ volatile("yield")
#endif
#endif

/*
 * This thread as a futex mutex names it: tid, pid, start time; read again after a fork. /proc shows
 * start times shifted by the reader's time namespace's boot-time offset (unshare --time, CRIU), so
 * `start` is kept as the initial namespace counts it (`offset`, this process's offset in clock ticks,
 * taken off), and a start time read from /proc is brought back the same way before it is compared.
 */
struct shm_thread_identity {
    int32_t tid;
    int32_t pid;
    uint32_t start;
    unsigned forks;
    int valid;
    int64_t offset;
};

static inline unsigned *shm_forks_(void)
{
    static unsigned forks;
    return &forks;
}

static inline void shm_count_fork_(void) { __atomic_add_fetch(shm_forks_(), 1, __ATOMIC_RELAXED); }

static inline void shm_watch_forks_(void) { pthread_atfork(NULL, NULL, shm_count_fork_); }

#ifdef O_CLOEXEC
#define SHM_O_CLOEXEC_ O_CLOEXEC
#else
#define SHM_O_CLOEXEC_ 0 /* strict ISO C hides it: the descriptor is closed at once anyway */
#endif

/* Reads the state (field 3) and start time (field 22) of a /proc stat file: 1, or 0 if it cannot. */
static inline int shm_read_stat_(const char *path, char *state, uint64_t *start)
{
    char buffer[1024];
    int fd = open(path, O_RDONLY | SHM_O_CLOEXEC_);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return 0;
    buffer[n] = 0;
    char *at = strrchr(buffer, ')');
    if (!at || at[1] != ' ' || !at[2]) return 0;
    *state = at[2];
    for (int field = 2; at && field < 22; field++) at = strchr(at + 1, ' ');
    if (!at) return 0;
    *start = strtoull(at + 1, NULL, 10);
    return 1;
}

/* This process's boot-time offset in clock ticks, rounded down: the "boottime" line of /proc/self/timens_offsets, or 0. */
static inline int64_t shm_boottime_offset_(void)
{
    char buffer[128];
    int fd = open("/proc/self/timens_offsets", O_RDONLY | SHM_O_CLOEXEC_);
    ssize_t n = fd < 0 ? -1 : read(fd, buffer, sizeof buffer - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return 0;
    buffer[n] = 0;
    char *at = strstr(buffer, "boottime");
    if (!at) return 0;
    char *end;
    long long seconds = strtoll(at + 8, &end, 10);
    long long nanoseconds = strtoll(end, NULL, 10);
    long hz = sysconf(_SC_CLK_TCK);
    int64_t tick = 1000000000 / (hz > 0 ? hz : 100);
    int64_t offset = (int64_t)seconds * 1000000000 + nanoseconds;
    return offset >= 0 ? offset / tick : -((tick - 1 - offset) / tick);
}

static inline const struct shm_thread_identity *shm_thread_identity(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static SHM_THREAD_LOCAL struct shm_thread_identity self;
    if (!self.valid || self.forks != __atomic_load_n(shm_forks_(), __ATOMIC_RELAXED)) {
        pthread_once(&once, shm_watch_forks_); /* before the first read: a fork after it is counted */
        char state;
        uint64_t start = 0;
        self.forks = __atomic_load_n(shm_forks_(), __ATOMIC_RELAXED);
        self.tid = (int32_t)syscall(SYS_gettid);
        self.pid = (int32_t)getpid();
        self.offset = shm_boottime_offset_();
        self.start = shm_read_stat_("/proc/thread-self/stat", &state, &start) ? (uint32_t)((int64_t)start - self.offset) : 0;
        self.valid = 1;
    }
    return &self;
}

/* The kernel's pid_max (tids are below it), read again when asked to refresh. */
static inline int32_t shm_pid_max_(int refresh)
{
    static int32_t cached;
    int32_t pid_max = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (pid_max == 0 || refresh) {
        char buffer[32];
        int fd = open("/proc/sys/kernel/pid_max", O_RDONLY | SHM_O_CLOEXEC_);
        ssize_t n = fd < 0 ? -1 : read(fd, buffer, sizeof buffer - 1);
        if (fd >= 0) close(fd);
        long value = n > 0 ? (buffer[n] = 0, strtol(buffer, NULL, 10)) : 0;
        pid_max = value > 0 && value <= SHM_PID_MAX_LIMIT ? (int32_t)value : SHM_PID_MAX_LIMIT;
        __atomic_store_n(&cached, pid_max, __ATOMIC_RELAXED);
    }
    return pid_max;
}

/*
 * 0 only when the kernel says the thread is gone: no such thread (ESRCH), a zombie, another start
 * time (read here, less `offset`, the reader's boot-time offset; one tick apart counts as the same).
 */
static inline int shm_thread_alive_(int32_t pid, int32_t tid, int has_start, uint32_t start, int64_t offset)
{
    long probe = pid > 0 ? syscall(SYS_tgkill, pid, tid, 0) : syscall(SYS_kill, tid, 0);
    if (probe != 0) return errno != ESRCH; /* EPERM: another user's, alive */
    char path[64], state = 0;
    uint64_t started = 0;
    if (pid > 0) snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    else snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
    if (!shm_read_stat_(path, &state, &started)) return 1; /* hidden: no proof of death */
    if (state == 'Z' || state == 'X') return 0;
    return !has_start || start == 0 || (uint32_t)((uint32_t)((int64_t)started - offset) - start + 1) <= 2;
}

static inline uint32_t shm_fm_next_(uint32_t word) { return ((word & SHM_FM_GENERATION) + SHM_FM_GENERATION_UNIT) & SHM_FM_GENERATION; }

static inline void shm_fm_own_(struct shm_futex_mutex *m, const struct shm_thread_identity *self, uint32_t taken)
{
    __atomic_store_n(&m->owner_pid, self->pid, __ATOMIC_RELAXED);
    __atomic_store_n(&m->owner, (uint64_t)taken | ((uint64_t)self->start << 32), __ATOMIC_RELEASE);
}

/* 1 if the owner named by `word` is dead, 0 if it lives, or -EDEADLK (this thread holds it), -EINVAL. */
static inline int shm_fm_owner_dead_(struct shm_futex_mutex *m, const struct shm_thread_identity *self, uint32_t word)
{
    uint32_t held = word & ~SHM_FM_SLEEPERS, tid = word & SHM_FM_TID;
    uint64_t owner = __atomic_load_n(&m->owner, __ATOMIC_ACQUIRE);
    int described = (uint32_t)owner == held;
    uint32_t start = (uint32_t)(owner >> 32);
    if (tid == (uint32_t)self->tid) {
        if (!described) return -EINVAL;
        return start == self->start ? -EDEADLK : 1; /* else a thread that had this tid before */
    }
    if (!described) return !shm_thread_alive_(0, (int32_t)tid, 0, 0, 0);
    int32_t pid = __atomic_load_n(&m->owner_pid, __ATOMIC_RELAXED);
    if (pid <= 0 || (pid >= shm_pid_max_(0) && pid >= shm_pid_max_(1))) return -EINVAL;
    return !shm_thread_alive_(pid, (int32_t)tid, 1, start, self->offset);
}

static inline int64_t shm_monotonic_ns_(void)
{
    struct timespec now;
#ifdef CLOCK_MONOTONIC
    clock_gettime(CLOCK_MONOTONIC, &now);
#else
    syscall(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, &now);
#endif
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* Locks, waiting until `limit` (CLOCK_MONOTONIC ns; INT64_MAX: for ever). Returns what the public functions do. */
static inline int shm_fm_lock_until_(struct shm_futex_mutex *m, int64_t limit, int busy)
{
    const struct shm_thread_identity *self = shm_thread_identity();
    uint32_t word = __atomic_load_n(&m->word, __ATOMIC_ACQUIRE);
    if ((word & (SHM_FM_TID | SHM_FM_SLEEPERS)) == 0) {
        uint32_t taken = shm_fm_next_(word) | (uint32_t)self->tid;
        if (__atomic_compare_exchange_n(&m->word, &word, taken, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            shm_fm_own_(m, self, taken);
            return 0;
        }
    }
    int slept = 0, spins = 0;
    uint32_t watched = 0;
    int64_t next_check = 0;
    for (;;) {
        word = __atomic_load_n(&m->word, __ATOMIC_ACQUIRE);
        uint32_t tid = word & SHM_FM_TID;
        if (tid == 0) {
            if (word & SHM_FM_SLEEPERS) return EINVAL; /* free, yet sleepers: impossible */
            uint32_t taken = shm_fm_next_(word) | (uint32_t)self->tid | (slept ? SHM_FM_SLEEPERS : 0);
            if (__atomic_compare_exchange_n(&m->word, &word, taken, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                shm_fm_own_(m, self, taken & ~SHM_FM_SLEEPERS);
                return 0;
            }
            continue;
        }
        if ((int32_t)tid >= shm_pid_max_(0) && (int32_t)tid >= shm_pid_max_(1)) return EINVAL;
        int64_t now = shm_monotonic_ns_();
        uint32_t held = word & ~SHM_FM_SLEEPERS;
        if (held != watched) {
            watched = held;
            next_check = now + 10000000; /* 10 ms */
        }
        if (tid == (uint32_t)self->tid || now >= next_check || now >= limit) {
            int dead = shm_fm_owner_dead_(m, self, word);
            if (dead == -EDEADLK && busy) return EBUSY; /* as pthread_mutex_trylock on an error-checking mutex */
            if (dead < 0) return -dead;
            if (dead) {
                uint32_t taken = shm_fm_next_(word) | (uint32_t)self->tid | SHM_FM_SLEEPERS;
                if (__atomic_compare_exchange_n(&m->word, &word, taken, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                    shm_fm_own_(m, self, taken & ~SHM_FM_SLEEPERS);
                    return EOWNERDEAD;
                }
                continue;
            }
            if (now >= limit) return busy ? EBUSY : ETIMEDOUT;
            next_check = now + 100000000; /* 100 ms */
        }
        if (spins < 100) {
            spins++;
            SHM_PAUSE();
            continue;
        }
        if (!(word & SHM_FM_SLEEPERS)) {
            uint32_t seen = word;
            if (!__atomic_compare_exchange_n(&m->word, &seen, word | SHM_FM_SLEEPERS, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        }
        slept = 1;
        int64_t until = limit < next_check ? limit : next_check;
        struct timespec at = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
        syscall(SYS_futex, &m->word, FUTEX_WAIT_BITSET, word | SHM_FM_SLEEPERS, &at, NULL, FUTEX_BITSET_MATCH_ANY);
    }
}

/*
 * Locks: 0; EOWNERDEAD if the previous owner died holding it (this thread owns it now: repair the
 * data, then unlock); EDEADLK if this thread holds it; EINVAL if a shared word is impossible.
 */
static inline int shm_futex_mutex_lock(struct shm_futex_mutex *m) { return shm_fm_lock_until_(m, INT64_MAX, 0); }

/* As shm_futex_mutex_lock, but EBUSY at once if a live owner (this thread included) holds it; finding it held costs a look at the owner. */
static inline int shm_futex_mutex_trylock(struct shm_futex_mutex *m) { return shm_fm_lock_until_(m, 0, 1); }

/* As shm_futex_mutex_lock, but ETIMEDOUT after `timeout_ns` nanoseconds. */
static inline int shm_futex_mutex_timedlock(struct shm_futex_mutex *m, int64_t timeout_ns)
{
    return shm_fm_lock_until_(m, shm_monotonic_ns_() + (timeout_ns < 0 ? 0 : timeout_ns), 0);
}

/* Unlocks: 0; EPERM if this thread does not own it; EINVAL if the word or record changed under it (nothing is written). */
static inline int shm_futex_mutex_unlock(struct shm_futex_mutex *m)
{
    const struct shm_thread_identity *self = shm_thread_identity();
    uint32_t word = __atomic_load_n(&m->word, __ATOMIC_ACQUIRE);
    if ((word & SHM_FM_TID) != (uint32_t)self->tid) return EPERM;
    uint32_t held = word & ~SHM_FM_SLEEPERS;
    uint64_t owner = __atomic_load_n(&m->owner, __ATOMIC_ACQUIRE);
    if ((uint32_t)owner != held) return EINVAL;
    if ((uint32_t)(owner >> 32) != self->start) return EPERM;
    while (!__atomic_compare_exchange_n(&m->word, &word, word & SHM_FM_GENERATION, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if ((word & ~SHM_FM_SLEEPERS) != held) return EINVAL;
    }
    if (word & SHM_FM_SLEEPERS) shm_futex(&m->word, FUTEX_WAKE, 1);
    return 0;
}

/*
 * A channel: a 256-byte header, then one lane per writer, each lane a 256-byte lane header and a
 * ring of lane_capacity bytes (a power of two from 4 KiB to 1 GiB). Offsets in bytes:
 *
 *   header  0 state, 4 kind_version, 8 u32 lanes (1 to 64), 12 u32 closed (0, or 1 once the reader
 *           saw the end), 16 u64 lane_capacity, 24 i32 reader_pid, 28 u32 ever_written (0 or 1),
 *           32 i64 reader_start (field 22 of /proc/PID/stat), 64 u32 reader_sequence (futex),
 *           68 u32 reader_sleeping
 *   lane i at 256 + i * (256 + lane_capacity):
 *           0 u64 head (bytes the writer committed), 8 i32 writer_pid (0: free), 12 u32 state
 *           (0 free, 1 attached, 2 completed), 16 i64 writer_start, 24 u32 generation (bumped by
 *           each writer that attaches, which keeps the value), 32 u64 final_head (the head when the
 *           writer completed), 64 u64 tail (bytes the reader released), 128 u32 space_sequence
 *           (futex), 132 u32 writer_sleeping, 256 the ring
 *   record  u32 length, u32 check (shm_record_check: a hash of the record's stream position, its
 *           length and its padding bit; bit 0 is the padding bit), then length bytes; the next
 *           record starts at the next multiple of 8. A record never wraps: a padding record (from
 *           a non-zero offset exactly to the end of the ring) fills the end of the ring first.
 *
 * head and tail count bytes since the lane was created: multiples of 8 below 2^63, with
 * 0 <= head - tail <= lane_capacity. The writer owns head and the reader owns tail: each reads its
 * own once, when it attaches, keeps a private copy, and publishes it with a compare-and-swap that
 * expects the value it published last (another value means another process wrote it: corruption).
 *
 * A writer writes the record's bytes, then its header (one 8-byte store), then publishes head
 * (full fence) and, if reader_sleeping is set, bumps reader_sequence and wakes it. A record that
 * would cross the end of the ring: the padding is published on its own as soon as it fits, and the
 * record waits for room at offset 0, so any message up to lane_capacity - 8 bytes fits an empty
 * lane. Before every write and when it completes, a writer checks that its lane still names it
 * (writer_pid and generation). It completes by storing final_head, then state 2.
 * The reader releases a record by publishing tail (full fence) and, if the lane's writer_sleeping is
 * set, bumps space_sequence and wakes it. A sleeper sets its flag, reads the sequence, checks once
 * more, then futex-waits on the sequence, at most 100 ms at a time (a peer that dies wakes nobody).
 *
 * Everything read from the channel is checked before use (the lane count and capacity once, at
 * shm_channel_open): a value that cannot be is reported as SHM_CH_ECORRUPT, and the reader or
 * writer that met it refuses further use. A peer is dead only if the kernel says so (a zombie or
 * another start time in /proc/PID/stat, or no stat and kill(pid, 0) == ESRCH). Start times (the
 * reader's and writers' *_start words) are kept as the initial time namespace counts them: each
 * process takes its own boot-time offset off what it reads in /proc, so peers in different time
 * namespaces agree (one tick apart counts as the same).
 *
 * Return codes (negative errno values):
 *   SHM_CH_EAGAIN     nothing now: try_read found no message, try_write no room
 *   SHM_CH_ECLOSED    read: the stream ended (every writer completed or died, all was read);
 *                     write: the reader saw the end or died, or this writer completed
 *   SHM_CH_ECORRUPT   a value in the channel's memory is impossible; the reader/writer is unusable
 *   SHM_CH_ESTALE     write: the lane no longer names this writer (given to another): nothing written
 *   SHM_CH_EMSGSIZE   a message longer than lane_capacity - 8, or than the reader's buffer (it stays unread)
 *   SHM_CH_EBUSY      attach: every lane has a writer, or another live process is the reader
 *   SHM_CH_EINVAL     open: not a ready channel of this layout version, or it does not fit
 *   SHM_CH_ETIMEDOUT  a blocking read or write ran out of time
 */
#define SHM_CH_EAGAIN (-EAGAIN)
#define SHM_CH_ECLOSED (-EPIPE)
#define SHM_CH_ECORRUPT (-EBADMSG)
#define SHM_CH_ESTALE (-ESTALE)
#define SHM_CH_EMSGSIZE (-EMSGSIZE)
#define SHM_CH_EBUSY (-EBUSY)
#define SHM_CH_EINVAL (-EINVAL)
#define SHM_CH_ETIMEDOUT (-ETIMEDOUT)

#define SHM_CH_HEADER_SIZE 256
#define SHM_CH_LANE_HEADER_SIZE 256
#define SHM_CH_MAX_LANES 64
#define SHM_CH_MIN_CAPACITY 4096ull
#define SHM_CH_MAX_CAPACITY (1ull << 30)
#define SHM_CH_LANES 8
#define SHM_CH_CLOSED 12
#define SHM_CH_CAPACITY 16
#define SHM_CH_READER_PID 24
#define SHM_CH_EVER_WRITTEN 28
#define SHM_CH_READER_START 32
#define SHM_CH_READER_SEQUENCE 64
#define SHM_CH_READER_SLEEPING 68
#define SHM_LANE_HEAD 0
#define SHM_LANE_WRITER_PID 8
#define SHM_LANE_STATE 12
#define SHM_LANE_WRITER_START 16
#define SHM_LANE_GENERATION 24
#define SHM_LANE_FINAL_HEAD 32
#define SHM_LANE_TAIL 64
#define SHM_LANE_SPACE_SEQUENCE 128
#define SHM_LANE_WRITER_SLEEPING 132
#define SHM_LANE_FREE 0u
#define SHM_LANE_ATTACHED 1u
#define SHM_LANE_COMPLETED 2u
#define SHM_RECORD_PADDING 1u
#define SHM_POSITION_MUST_BE_CLEAR 0x8000000000000007ull /* a head or tail: a multiple of 8 below 2^63 */

#define SHM_AT(base, offset, type) ((type *)(void *)((char *)(base) + (offset)))

/* What shm_channel_open read once from the header and checked; the reader and writer use only this. */
struct shm_channel {
    char *base;
    uint32_t lanes;
    uint64_t capacity;
};

struct shm_channel_writer {
    struct shm_channel channel;
    char *lane;
    uint32_t index;
    int32_t pid;
    uint32_t generation;
    uint64_t head;      /* the writer's own: read once at attach */
    uint64_t tail_seen; /* the last tail read (checked) */
    int completed;
    int failed;         /* 0, or SHM_CH_ECORRUPT once met */
};

struct shm_channel_reader {
    struct shm_channel channel;
    uint64_t tails[SHM_CH_MAX_LANES]; /* the reader's own: read once at attach */
    uint32_t next_lane;
    int32_t pid;
    int ended;
    int failed;
    uint32_t dead_writers;    /* writers whose lanes ended because they died */
    int32_t last_dead_writer;
};

/* A record's check word; the same in every language that reads the channel. */
static inline uint32_t shm_record_check(uint64_t position, uint32_t length, uint32_t padding)
{
    uint64_t z = (position ^ ((uint64_t)length * 0x9E3779B97F4A7C15ull) ^ padding) * 0xD6E8FEB86659FD93ull;
    return ((uint32_t)(z >> 32) & ~SHM_RECORD_PADDING) | padding;
}

/* A record header as one 8-byte word: length in the low half, check in the high half. */
static inline uint64_t shm_record_header(uint64_t position, uint32_t length, uint32_t padding)
{
    return (uint64_t)length | ((uint64_t)shm_record_check(position, length, padding) << 32);
}

static inline char *shm_channel_lane(const struct shm_channel *ch, uint32_t index)
{
    return ch->base + SHM_CH_HEADER_SIZE + (size_t)index * (SHM_CH_LANE_HEADER_SIZE + ch->capacity);
}

static inline uint64_t shm_channel_required_length(uint64_t capacity, uint32_t lanes)
{
    return SHM_CH_HEADER_SIZE + (uint64_t)lanes * (SHM_CH_LANE_HEADER_SIZE + capacity);
}

/*
 * What /proc/PID/stat says: 1 running (its start time, field 22, as the initial time namespace
 * counts it, in *start), 0 a zombie or dead, -1 unreadable (gone, hidden by hidepid, or not ours to
 * read: kill(2) tells which).
 */
static inline int shm_proc_stat(int32_t pid, int64_t *start)
{
    char path[64], state = 0;
    uint64_t started = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int readable = shm_read_stat_(path, &state, &started);
    if (state == 'Z' || state == 'X') return 0;
    if (!readable) return -1;
    *start = (int64_t)started - shm_boottime_offset_();
    return 1;
}

/* This process's start time, as the initial time namespace counts it: how a peer tells it from a later one with the same pid. */
static inline int64_t shm_self_start_time(void)
{
    int64_t start = 0;
    return shm_proc_stat((int32_t)getpid(), &start) == 1 ? start : 0;
}

/* 0 only if the kernel says pid is gone, a zombie, or not the process that started at start (0: any; one tick apart: the same). */
static inline int shm_process_alive(int32_t pid, int64_t start)
{
    int64_t started = 0;
    if (pid <= 0) return 0; /* never kill(0) or kill(-n): those reach process groups */
    switch (shm_proc_stat(pid, &started)) {
    case 1: return start == 0 || (started - start >= -1 && started - start <= 1);
    case 0: return 0;
    default: return kill(pid, 0) == 0 || errno != ESRCH;
    }
}

static inline void shm_wake_if_sleeping(uint32_t *sequence, uint32_t *sleeping)
{
    if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(sequence, 1, __ATOMIC_SEQ_CST);
        shm_futex(sequence, FUTEX_WAKE, INT_MAX);
    }
}

/* Milliseconds on the monotonic clock. */
static inline int64_t shm_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*
 * Sleeps on *sequence while it holds `seen`, for at most `ms` milliseconds; the caller set *sleeping
 * to 1 before it read `seen` and checked its condition, and clears it after.
 */
static inline void shm_sleep_on(uint32_t *sequence, uint32_t seen, int64_t ms)
{
    struct timespec slice;
    slice.tv_sec = (time_t)(ms / 1000);
    slice.tv_nsec = (long)(ms % 1000) * 1000000;
    syscall(SYS_futex, sequence, FUTEX_WAIT, seen, &slice, NULL, 0);
}

/*
 * Initialises a channel of `lanes` lanes of `capacity` bytes at `base` (zeroed memory, 8-byte
 * aligned, `available` bytes long); 0, or SHM_CH_EINVAL for a bad size or memory already in use.
 */
static inline int shm_channel_init(void *base, size_t available, uint32_t lanes, uint64_t capacity)
{
    struct shm_header *h = (struct shm_header *)base;
    uint32_t uninitialised = 0;
    if (lanes < 1 || lanes > SHM_CH_MAX_LANES || capacity < SHM_CH_MIN_CAPACITY || capacity > SHM_CH_MAX_CAPACITY ||
        (capacity & (capacity - 1)) != 0 || shm_channel_required_length(capacity, lanes) > available || ((uintptr_t)base & 7) != 0) {
        return SHM_CH_EINVAL;
    }
    if (!__atomic_compare_exchange_n(&h->state, &uninitialised, SHM_INITIALISING, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return SHM_CH_EINVAL;
    }
    *SHM_AT(base, SHM_CH_LANES, uint32_t) = lanes;
    *SHM_AT(base, SHM_CH_CAPACITY, uint64_t) = capacity;
    h->kind_version = ((uint32_t)SHM_CHANNEL << 16) | SHM_CHANNEL_LAYOUT_VERSION;
    __atomic_store_n(&h->state, SHM_READY, __ATOMIC_SEQ_CST);
    shm_futex(&h->state, FUTEX_WAKE, INT_MAX);
    return 0;
}

/*
 * Opens the channel at `base`, of which `available` bytes are mapped: reads the lane count and
 * capacity once and checks them. 0, SHM_CH_EINVAL (not a ready channel of this layout version, or
 * it does not fit), or SHM_CH_ECORRUPT (an impossible lane count or capacity).
 */
static inline int shm_channel_open(struct shm_channel *ch, void *base, size_t available)
{
    memset(ch, 0, sizeof *ch);
    if (((uintptr_t)base & 7) != 0 || available < SHM_CH_HEADER_SIZE || !shm_is_ready((const struct shm_header *)base, SHM_CHANNEL)) {
        return SHM_CH_EINVAL;
    }
    uint32_t lanes = __atomic_load_n(SHM_AT(base, SHM_CH_LANES, uint32_t), __ATOMIC_ACQUIRE);
    uint64_t capacity = __atomic_load_n(SHM_AT(base, SHM_CH_CAPACITY, uint64_t), __ATOMIC_ACQUIRE);
    if (lanes < 1 || lanes > SHM_CH_MAX_LANES || capacity < SHM_CH_MIN_CAPACITY || capacity > SHM_CH_MAX_CAPACITY || (capacity & (capacity - 1)) != 0) {
        return SHM_CH_ECORRUPT;
    }
    if (shm_channel_required_length(capacity, lanes) > available) return SHM_CH_EINVAL;
    ch->base = (char *)base;
    ch->lanes = lanes;
    ch->capacity = capacity;
    return 0;
}

static inline int shm_writer_fail(struct shm_channel_writer *w)
{
    return w->failed = SHM_CH_ECORRUPT;
}

static inline int shm_writer_owns_lane(const struct shm_channel_writer *w)
{
    return __atomic_load_n(SHM_AT(w->lane, SHM_LANE_WRITER_PID, int32_t), __ATOMIC_ACQUIRE) == w->pid &&
           __atomic_load_n(SHM_AT(w->lane, SHM_LANE_GENERATION, uint32_t), __ATOMIC_ACQUIRE) == w->generation;
}

/* 0 if the reader has not closed the stream; SHM_CH_ECLOSED or SHM_CH_ECORRUPT otherwise. */
static inline int shm_writer_closed(struct shm_channel_writer *w)
{
    uint32_t closed = __atomic_load_n(SHM_AT(w->channel.base, SHM_CH_CLOSED, uint32_t), __ATOMIC_ACQUIRE);
    return closed == 0 ? 0 : closed == 1 ? SHM_CH_ECLOSED : shm_writer_fail(w);
}

/*
 * Claims a free lane for this process; its index (>= 0), SHM_CH_EBUSY if every lane has a writer,
 * SHM_CH_ECLOSED if the reader already saw the end, or SHM_CH_ECORRUPT for an impossible head or tail.
 */
static inline int shm_channel_writer_attach(struct shm_channel_writer *w, const struct shm_channel *ch)
{
    memset(w, 0, sizeof *w);
    w->channel = *ch;
    w->pid = (int32_t)getpid();
    int64_t started = shm_self_start_time();
    for (uint32_t i = 0; i < ch->lanes; i++) {
        char *lane = shm_channel_lane(ch, i);
        int32_t none = 0;
        if (!__atomic_compare_exchange_n(SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t), &none, w->pid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            continue;
        }
        w->lane = lane;
        w->index = i;
        w->generation = __atomic_add_fetch(SHM_AT(lane, SHM_LANE_GENERATION, uint32_t), 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(SHM_AT(lane, SHM_LANE_WRITER_START, int64_t), started, __ATOMIC_SEQ_CST);
        __atomic_store_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), SHM_LANE_ATTACHED, __ATOMIC_SEQ_CST);
        uint64_t head = __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE);
        uint64_t tail = __atomic_load_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), __ATOMIC_ACQUIRE);
        w->head = head;
        w->tail_seen = tail;
        int error = (head & SHM_POSITION_MUST_BE_CLEAR) || (tail & SHM_POSITION_MUST_BE_CLEAR) || head - tail > ch->capacity
                        ? shm_writer_fail(w)
                        : shm_writer_closed(w);
        if (error) {
            __atomic_store_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), SHM_LANE_FREE, __ATOMIC_SEQ_CST);
            __atomic_store_n(SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t), 0, __ATOMIC_SEQ_CST);
            return error;
        }
        __atomic_store_n(SHM_AT(ch->base, SHM_CH_EVER_WRITTEN, uint32_t), 1, __ATOMIC_SEQ_CST);
        return (int)i;
    }
    return SHM_CH_EBUSY;
}

/* 1 if `bytes` more fit behind the head, 0 if not, SHM_CH_ECORRUPT for an impossible tail. */
static inline int shm_writer_room(struct shm_channel_writer *w, uint64_t bytes)
{
    if (w->head + bytes - w->tail_seen <= w->channel.capacity) return 1;
    uint64_t tail = __atomic_load_n(SHM_AT(w->lane, SHM_LANE_TAIL, uint64_t), __ATOMIC_ACQUIRE);
    if ((tail & SHM_POSITION_MUST_BE_CLEAR) || w->head - tail > w->channel.capacity) return shm_writer_fail(w);
    w->tail_seen = tail;
    return w->head + bytes - tail <= w->channel.capacity;
}

/* Publishes the head, expecting the one this writer published last; wakes the reader if it sleeps. */
static inline int shm_writer_publish(struct shm_channel_writer *w, uint64_t head)
{
    uint64_t expected = w->head;
    if (!__atomic_compare_exchange_n(SHM_AT(w->lane, SHM_LANE_HEAD, uint64_t), &expected, head, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return shm_writer_fail(w);
    }
    w->head = head;
    shm_wake_if_sleeping(SHM_AT(w->channel.base, SHM_CH_READER_SEQUENCE, uint32_t), SHM_AT(w->channel.base, SHM_CH_READER_SLEEPING, uint32_t));
    return 0;
}

/* The bytes the next step of writing a `length`-byte message needs: its padding first, if it would cross the end of the ring. */
static inline uint64_t shm_writer_next_step(const struct shm_channel_writer *w, uint32_t length)
{
    uint64_t record = (8 + (uint64_t)length + 7) & ~(uint64_t)7, offset = w->head & (w->channel.capacity - 1);
    return offset + record > w->channel.capacity ? w->channel.capacity - offset : record;
}

/* Writes one message if there is room now: 0, SHM_CH_EAGAIN if the lane is full, or an error (see above). */
static inline int shm_channel_try_write(struct shm_channel_writer *w, const void *data, uint32_t length)
{
    uint64_t capacity = w->channel.capacity, mask = capacity - 1;
    uint64_t record = (8 + (uint64_t)length + 7) & ~(uint64_t)7, offset = w->head & mask;
    char *ring = w->lane + SHM_CH_LANE_HEADER_SIZE;
    int room, error;
    if (w->failed) return w->failed;
    if (w->completed) return SHM_CH_ECLOSED;
    if (record > capacity) return SHM_CH_EMSGSIZE;
    if ((error = shm_writer_closed(w)) != 0) return error;
    if (!shm_writer_owns_lane(w)) return SHM_CH_ESTALE;
    if (offset + record > capacity) {
        /* The padding goes out on its own as soon as it fits; the record then waits for room at 0. */
        uint64_t padding = capacity - offset;
        if ((room = shm_writer_room(w, padding)) <= 0) return room == 0 ? SHM_CH_EAGAIN : room;
        *SHM_AT(ring, offset, uint64_t) = shm_record_header(w->head, (uint32_t)(padding - 8), SHM_RECORD_PADDING);
        if ((error = shm_writer_publish(w, w->head + padding)) != 0) return error;
        offset = 0;
    }
    if ((room = shm_writer_room(w, record)) <= 0) return room == 0 ? SHM_CH_EAGAIN : room;
    memcpy(ring + offset + 8, data, length);
    *SHM_AT(ring, offset, uint64_t) = shm_record_header(w->head, length, 0);
    return shm_writer_publish(w, w->head + record);
}

/* SHM_CH_ECLOSED if the reader died, SHM_CH_ECORRUPT for an impossible reader pid, else 0. */
static inline int shm_writer_reader_gone(struct shm_channel_writer *w)
{
    int32_t reader = __atomic_load_n(SHM_AT(w->channel.base, SHM_CH_READER_PID, int32_t), __ATOMIC_ACQUIRE);
    if (reader < 0) return shm_writer_fail(w);
    int64_t started = __atomic_load_n(SHM_AT(w->channel.base, SHM_CH_READER_START, int64_t), __ATOMIC_ACQUIRE);
    return reader != 0 && !shm_process_alive(reader, started) ? SHM_CH_ECLOSED : 0;
}

/*
 * Writes one message, waiting for room up to timeout_ms milliseconds (-1: for ever): spins briefly,
 * then parks on the lane's futex, looking every 100 ms whether the reader died. 0 or an error.
 */
static inline int shm_channel_write(struct shm_channel_writer *w, const void *data, uint32_t length, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : shm_now_ms() + timeout_ms;
    uint32_t *sequence = SHM_AT(w->lane, SHM_LANE_SPACE_SEQUENCE, uint32_t);
    uint32_t *sleeping = SHM_AT(w->lane, SHM_LANE_WRITER_SLEEPING, uint32_t);
    for (int spin = 0;; spin++) {
        int result = shm_channel_try_write(w, data, length), gone;
        if (result != SHM_CH_EAGAIN) return result;
        if (spin < 200) {
            SHM_PAUSE();
            continue;
        }
        if ((gone = shm_writer_reader_gone(w)) != 0) return gone;
        /* Only the writer writes its head: another value would stall the reader silently. */
        if (__atomic_load_n(SHM_AT(w->lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE) != w->head) return shm_writer_fail(w);
        int64_t left = deadline - shm_now_ms();
        if (left <= 0) return SHM_CH_ETIMEDOUT;
        uint32_t seen = __atomic_load_n(sequence, __ATOMIC_SEQ_CST);
        __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
        if (shm_writer_room(w, shm_writer_next_step(w, length)) == 0) shm_sleep_on(sequence, seen, left < 100 ? left : 100);
        __atomic_store_n(sleeping, 0, __ATOMIC_SEQ_CST);
    }
}

/*
 * Says this writer is done (final: writes after it return SHM_CH_ECLOSED): if its lane still names
 * it, stores the final head, then the completed state. 0, or SHM_CH_ESTALE if the lane was given
 * to another writer (it is left alone). Calling it again does nothing.
 */
static inline int shm_channel_complete(struct shm_channel_writer *w)
{
    if (w->completed) return 0;
    w->completed = 1;
    if (!shm_writer_owns_lane(w)) return SHM_CH_ESTALE;
    __atomic_store_n(SHM_AT(w->lane, SHM_LANE_FINAL_HEAD, uint64_t), w->head, __ATOMIC_SEQ_CST);
    __atomic_store_n(SHM_AT(w->lane, SHM_LANE_STATE, uint32_t), SHM_LANE_COMPLETED, __ATOMIC_SEQ_CST);
    shm_wake_if_sleeping(SHM_AT(w->channel.base, SHM_CH_READER_SEQUENCE, uint32_t), SHM_AT(w->channel.base, SHM_CH_READER_SLEEPING, uint32_t));
    return 0;
}

static inline int shm_reader_fail(struct shm_channel_reader *r)
{
    return r->failed = SHM_CH_ECORRUPT;
}

/* A head is a multiple of 8 below 2^63, at most a ring ahead of the tail. */
static inline int shm_reader_head_ok(const struct shm_channel_reader *r, uint64_t head, uint64_t tail)
{
    return !(head & SHM_POSITION_MUST_BE_CLEAR) && head - tail <= r->channel.capacity;
}

/*
 * Becomes the channel's reader (taking a dead reader's place) and reads each lane's tail once,
 * checked. 0, SHM_CH_EBUSY if another live process is the reader, or SHM_CH_ECORRUPT.
 */
static inline int shm_channel_reader_attach(struct shm_channel_reader *r, const struct shm_channel *ch)
{
    int32_t *reader = SHM_AT(ch->base, SHM_CH_READER_PID, int32_t);
    int64_t *reader_start = SHM_AT(ch->base, SHM_CH_READER_START, int64_t);
    memset(r, 0, sizeof *r);
    r->channel = *ch;
    r->pid = (int32_t)getpid();
    int64_t started = shm_self_start_time();
    for (;;) {
        int32_t current = __atomic_load_n(reader, __ATOMIC_ACQUIRE);
        if (current < 0) return shm_reader_fail(r);
        if (current != 0 && shm_process_alive(current, __atomic_load_n(reader_start, __ATOMIC_ACQUIRE))) return SHM_CH_EBUSY;
        if (current != 0) __atomic_store_n(reader_start, 0, __ATOMIC_SEQ_CST); /* no start time until ours is written */
        if (__atomic_compare_exchange_n(reader, &current, r->pid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) break;
    }
    __atomic_store_n(reader_start, started, __ATOMIC_SEQ_CST);
    for (uint32_t i = 0; i < ch->lanes; i++) {
        char *lane = shm_channel_lane(ch, i);
        uint64_t tail = __atomic_load_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), __ATOMIC_ACQUIRE);
        uint64_t head = __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE);
        if ((tail & SHM_POSITION_MUST_BE_CLEAR) || !shm_reader_head_ok(r, head, tail)) {
            int32_t self = r->pid;
            __atomic_compare_exchange_n(reader, &self, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            return shm_reader_fail(r);
        }
        r->tails[i] = tail;
    }
    return 0;
}

/* Gives up the reader's place. */
static inline void shm_channel_reader_detach(struct shm_channel_reader *r)
{
    int32_t self = r->pid;
    __atomic_compare_exchange_n(SHM_AT(r->channel.base, SHM_CH_READER_PID, int32_t), &self, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* Publishes a lane's tail, expecting the one this reader published last; wakes the writer if it sleeps. */
static inline int shm_reader_publish(struct shm_channel_reader *r, uint32_t index, char *lane, uint64_t tail)
{
    uint64_t expected = r->tails[index];
    if (!__atomic_compare_exchange_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), &expected, tail, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return shm_reader_fail(r);
    }
    r->tails[index] = tail;
    shm_wake_if_sleeping(SHM_AT(lane, SHM_LANE_SPACE_SEQUENCE, uint32_t), SHM_AT(lane, SHM_LANE_WRITER_SLEEPING, uint32_t));
    return 0;
}

/* Takes the next message of lane `index` into buffer: its length, SHM_CH_EAGAIN, SHM_CH_EMSGSIZE or SHM_CH_ECORRUPT. */
static inline long shm_reader_take(struct shm_channel_reader *r, uint32_t index, void *buffer, uint32_t size)
{
    uint64_t capacity = r->channel.capacity, tail = r->tails[index];
    char *lane = shm_channel_lane(&r->channel, index), *ring = lane + SHM_CH_LANE_HEADER_SIZE;
    uint64_t head = __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE); /* once per visit */
    int error;
    if (head == tail) return SHM_CH_EAGAIN;
    if (!shm_reader_head_ok(r, head, tail)) return shm_reader_fail(r);
    uint64_t offset = tail & (capacity - 1);
    uint64_t header = __atomic_load_n(SHM_AT(ring, offset, uint64_t), __ATOMIC_ACQUIRE);
    if ((header >> 32) & SHM_RECORD_PADDING) {
        /* Padding: from a non-zero offset exactly to the end of the ring; the next record is at 0. */
        if (offset == 0 || (uint32_t)header != capacity - offset - 8 || head - tail < capacity - offset ||
            header != shm_record_header(tail, (uint32_t)header, SHM_RECORD_PADDING)) {
            return shm_reader_fail(r);
        }
        tail += capacity - offset;
        if ((error = shm_reader_publish(r, index, lane, tail)) != 0) return error;
        if (head == tail) return SHM_CH_EAGAIN;
        offset = 0;
        header = __atomic_load_n(SHM_AT(ring, 0, uint64_t), __ATOMIC_ACQUIRE);
        if ((header >> 32) & SHM_RECORD_PADDING) return shm_reader_fail(r); /* at most one padding per record */
    }
    uint32_t length = (uint32_t)header;
    uint64_t record = 8 + (((uint64_t)length + 7) & ~(uint64_t)7);
    if (offset + record > capacity || record > head - tail || header != shm_record_header(tail, length, 0)) return shm_reader_fail(r);
    if (length > size) return SHM_CH_EMSGSIZE;
    memcpy(buffer, ring + offset + 8, length);
    /* A tail another process wrote meanwhile may have let the writer overwrite the copy: then it is not returned. */
    if ((error = shm_reader_publish(r, index, lane, tail + record)) != 0) return error;
    return (long)length;
}

/*
 * Copies the next message (from the lanes in turn) into buffer: its length (>= 0), SHM_CH_EAGAIN if
 * none is there now, SHM_CH_ECLOSED once the stream ended, SHM_CH_EMSGSIZE if the next message is
 * longer than size (it stays unread), or SHM_CH_ECORRUPT.
 */
static inline long shm_channel_try_read(struct shm_channel_reader *r, void *buffer, uint32_t size)
{
    if (r->failed) return r->failed;
    if (r->ended) return SHM_CH_ECLOSED;
    for (uint32_t visited = 0, index = r->next_lane; visited < r->channel.lanes; visited++) {
        long result = shm_reader_take(r, index, buffer, size);
        if (result != SHM_CH_EAGAIN) {
            if (result >= 0) r->next_lane = index + 1 == r->channel.lanes ? 0 : index + 1;
            return result;
        }
        index = index + 1 == r->channel.lanes ? 0 : index + 1;
    }
    return SHM_CH_EAGAIN;
}

static inline int shm_reader_has_message(const struct shm_channel_reader *r)
{
    for (uint32_t i = 0; i < r->channel.lanes; i++) {
        if (__atomic_load_n(SHM_AT(shm_channel_lane(&r->channel, i), SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE) != r->tails[i]) return 1;
    }
    return 0;
}

/*
 * Frees the drained lanes of writers that completed or died (reading /proc for the ones that did
 * not complete), and decides whether the stream ended: some writer attached once, none is attached
 * now, nothing is left. 1 if it ended, 0 if not, or SHM_CH_ECORRUPT.
 */
static inline int shm_channel_reader_ended(struct shm_channel_reader *r)
{
    int attached = 0;
    if (r->failed) return r->failed;
    if (r->ended) return 1;
    for (uint32_t i = 0; i < r->channel.lanes; i++) {
        char *lane = shm_channel_lane(&r->channel, i);
        /* Only the reader writes a tail: another value would stall the writer silently. */
        if (__atomic_load_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), __ATOMIC_ACQUIRE) != r->tails[i]) return shm_reader_fail(r);
        int32_t writer = __atomic_load_n(SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t), __ATOMIC_ACQUIRE);
        if (writer == 0) continue;
        uint32_t state = __atomic_load_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), __ATOMIC_ACQUIRE);
        if (writer < 0 || state > SHM_LANE_COMPLETED) return shm_reader_fail(r);
        if (__atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE) != r->tails[i] ||
            (state != SHM_LANE_COMPLETED && shm_process_alive(writer, __atomic_load_n(SHM_AT(lane, SHM_LANE_WRITER_START, int64_t), __ATOMIC_ACQUIRE)))) {
            attached = 1;
            continue;
        }
        /* Gone: read the head again, so that what it committed before is delivered first. */
        uint64_t head = __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE);
        if (head != r->tails[i]) {
            attached = 1;
            continue;
        }
        if (state == SHM_LANE_COMPLETED) {
            if (__atomic_load_n(SHM_AT(lane, SHM_LANE_FINAL_HEAD, uint64_t), __ATOMIC_ACQUIRE) != head) return shm_reader_fail(r);
        } else {
            r->dead_writers++;
            r->last_dead_writer = writer;
        }
        __atomic_store_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), SHM_LANE_FREE, __ATOMIC_SEQ_CST);
        __atomic_store_n(SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t), 0, __ATOMIC_SEQ_CST);
    }
    uint32_t ever = __atomic_load_n(SHM_AT(r->channel.base, SHM_CH_EVER_WRITTEN, uint32_t), __ATOMIC_ACQUIRE);
    if (ever > 1) return shm_reader_fail(r);
    if (attached || !ever || shm_reader_has_message(r)) return 0;
    __atomic_store_n(SHM_AT(r->channel.base, SHM_CH_CLOSED, uint32_t), 1, __ATOMIC_SEQ_CST);
    r->ended = 1;
    return 1;
}

/*
 * Copies the next message into buffer, waiting up to timeout_ms milliseconds (-1: for ever): spins
 * briefly, then parks on the channel's futex, looking every 100 ms whether the writers live. Its
 * length, SHM_CH_ECLOSED once every writer that attached completed or died and everything was read
 * (dead_writers counts those that died), SHM_CH_ETIMEDOUT, SHM_CH_EMSGSIZE or SHM_CH_ECORRUPT.
 */
static inline long shm_channel_read(struct shm_channel_reader *r, void *buffer, uint32_t size, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : shm_now_ms() + timeout_ms;
    uint32_t *sequence = SHM_AT(r->channel.base, SHM_CH_READER_SEQUENCE, uint32_t);
    uint32_t *sleeping = SHM_AT(r->channel.base, SHM_CH_READER_SLEEPING, uint32_t);
    for (int spin = 0;; spin++) {
        long result = shm_channel_try_read(r, buffer, size);
        int ended;
        if (result != SHM_CH_EAGAIN) return result;
        if (spin < 200) {
            SHM_PAUSE();
            continue;
        }
        if ((ended = shm_channel_reader_ended(r)) != 0) return ended == 1 ? SHM_CH_ECLOSED : ended;
        int64_t left = deadline - shm_now_ms();
        if (left <= 0) return SHM_CH_ETIMEDOUT;
        uint32_t seen = __atomic_load_n(sequence, __ATOMIC_SEQ_CST);
        __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
        if (!shm_reader_has_message(r)) shm_sleep_on(sequence, seen, left < 100 ? left : 100);
        __atomic_store_n(sleeping, 0, __ATOMIC_SEQ_CST);
    }
}

/* ================================================================================================
 * SERVICES: publish-subscribe (service layout version 1)
 *
 * A service is the named segment /dev/shm/shm-service.NAME (created by .NET's
 * PublishSubscribeService; mode 0600, or 0660). C opens it by name, then attaches a publisher
 * (loan, publish) or a subscriber (receive, release). This section stands alone (its own includes and
 * helpers); it needs _GNU_SOURCE for syscall() and kill() in strict C, as the top of this header says.
 * The same layout is documented, with the reasons for it, at the top of
 * src/Shm.Interop/Services/ServiceLayout.cs. All integers little-endian, offsets in bytes.
 *
 *   [0, 4096)            header and configuration
 *   [4096, 8192)         handle table: 256 x 16 bytes (u64 owner word: who has the service open)
 *   8192                 publisher slots: max_publishers x 256
 *   subscriber slots     max_subscribers x 128
 *   history rings        max_publishers x align64(history_depth x 16)
 *   queues               max_publishers x max_subscribers x align64(128 + 16 x queue_capacity), (p, s) at p * max_subscribers + s
 *   pools (page aligned) max_publishers x pool_bytes
 *
 * header    0 u32 state (SHM_READY when usable), 4 u32 magic "SHMS", 8 u32 version 1, 12 u32 kind (1 pub-sub),
 *           16 u64 segment size, 24 u64 creator owner word, 32 u32 retired, 40 u64 cleanup lock,
 *           64 u32 max publishers (1-64), 68 u32 max subscribers (1-64), 72 u64 max payload (1 to 2^30),
 *           80 u64 pool bytes (multiple of 4096, >= (history + 2) records of max payload, <= 2^31),
 *           88 u32 queue capacity (power of two 1-65536), 92 u32 history depth (0-65536),
 *           96 u32 default overflow policy (0 block, 1 drop oldest), 128 u32 membership (bumped on every slot change)
 * owner word  bits 56-63 state (0 free: the whole word 0; 1 attaching, 2 attached, 3 dead, 4 departed,
 *           5 leaving: a subscriber clearing its own references, which publishers neither deliver to nor sweep),
 *           bits 32-55 pid, bits 0-31 low 32 bits of the process start time (field 22 of /proc/PID/stat,
 *           clock ticks, less the reader's boot-time offset from /proc/self/timens_offsets)
 * publisher slot  0 owner, 8 u32 generation, 16 u64 pool head, 24 u64 pool tail, 32 u64 published (last
 *           sequence), 40 u32 publishing (odd while a publish is in flight), 64 u32 space sequence (futex),
 *           68 u32 sleeping, 128 u64 history pins
 * subscriber slot  0 owner, 8 u32 generation, 12 u32 overflow policy, 64 u32 wake sequence (futex), 68 u32 sleeping
 * queue (p, s)  0 u64 head, 8 u64 missed, 16 u32 cleaned (generation of s cleared by p), 24 u64 first (sequence of
 *           the first sample p delivered to this generation of s), 64 u64 tail, 128 entries of 16 bytes:
 *           u32 offset of the record in pool p, u32 length, u32 sequence (low 32 bits), u32 generation of s
 * history ring  history_depth x (u32 offset, u32 length, u64 sequence); sequence q at index (q - 1) % depth
 * record (64-byte aligned, never wrapping: padding fills the pool's end)  0 u64 mask (bit s: subscriber s
 *           references it), 8 u64 sequence, 16 u32 length, 20 u32 flags (1 padding), 24 u32 publisher generation,
 *           28 u32 check = shm_svc_check(offset in pool, length, sequence, generation, flags),
 *           32 i64 publish time (CLOCK_MONOTONIC ns), 64 the payload
 *
 * The protocol, in short (the .NET file has it whole): a publisher alone writes its pool, its queues'
 * heads, missed counts and `first`, and its history; it keeps private copies. Publish: increment
 * `publishing` (full fence), re-read the subscriber slots if `membership` moved (clearing bit s from its
 * pool and writing `cleaned` for each dead or departed subscriber s), set the record's mask to the
 * attached subscribers (a full drop-oldest queue gives its oldest entry back first: compare-and-swap of
 * its tail, that record's bit cleared, missed + 1), push one entry per queue, write the history entry
 * (sequence 0 first, then a full fence, then the entry, then its sequence), `published`, `publishing`,
 * a full fence, and wake each subscriber whose `sleeping` is set. A loan waits until the pool has room
 * (records at the tail are reclaimed once their mask is 0, out of the history window, with no pins)
 * and every block subscriber's queue has room, so publishing never waits. A subscriber pops its queue's
 * tail by compare-and-swap, checks the entry and the record (check word, sequence, its bit), and
 * releases a sample by clearing its bit (waking the publisher if it sleeps and the mask became 0).
 *
 * Every function reads each shared value once and checks it: an impossible value returns -EBADMSG
 * (and the publisher or subscriber refuses further use) instead of being followed. Bad arguments are
 * -EINVAL; other failures a negative errno. The C subscriber does not take history; a C publisher takes
 * only a free publisher slot (.NET ones also clean slots of dead publishers).
 * ================================================================================================ */
#ifndef SHM_SERVICES_SECTION_
#define SHM_SERVICES_SECTION_

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHM_SVC_PREFIX "shm-service."
#define SHM_SVC_MAGIC 0x534D4853u
#define SHM_SVC_VERSION 1u
#define SHM_SVC_READY 0x59444552u
#define SHM_SVC_PUBSUB 1u

#define SHM_SVC_STATE 0
#define SHM_SVC_MAGIC_AT 4
#define SHM_SVC_VERSION_AT 8
#define SHM_SVC_KIND 12
#define SHM_SVC_SEGMENT 16
#define SHM_SVC_RETIRED 32
#define SHM_SVC_MAX_PUBLISHERS 64
#define SHM_SVC_MAX_SUBSCRIBERS 68
#define SHM_SVC_MAX_PAYLOAD 72
#define SHM_SVC_POOL_BYTES 80
#define SHM_SVC_QUEUE_CAPACITY 88
#define SHM_SVC_HISTORY_DEPTH 92
#define SHM_SVC_POLICY 96
#define SHM_SVC_MEMBERSHIP 128
#define SHM_SVC_HANDLES 4096
#define SHM_SVC_HANDLE_SLOTS 256

#define SHM_SVC_OWNER 0
#define SHM_SVC_GENERATION 8
#define SHM_SVC_POOL_HEAD 16
#define SHM_SVC_POOL_TAIL 24
#define SHM_SVC_PUBLISHED 32
#define SHM_SVC_PUBLISHING 40
#define SHM_SVC_SPACE_SEQUENCE 64
#define SHM_SVC_PUBLISHER_SLEEPING 68
#define SHM_SVC_HISTORY_PINS 128
#define SHM_SVC_SUB_POLICY 12
#define SHM_SVC_WAKE_SEQUENCE 64
#define SHM_SVC_SUBSCRIBER_SLEEPING 68

#define SHM_SVC_HEAD 0
#define SHM_SVC_MISSED 8
#define SHM_SVC_CLEANED 16
#define SHM_SVC_FIRST 24
#define SHM_SVC_TAIL 64
#define SHM_SVC_ENTRIES 128

#define SHM_SVC_MASK 0
#define SHM_SVC_SEQUENCE 8
#define SHM_SVC_LENGTH 16
#define SHM_SVC_FLAGS 20
#define SHM_SVC_RECORD_GENERATION 24
#define SHM_SVC_CHECK 28
#define SHM_SVC_TIMESTAMP 32
#define SHM_SVC_RECORD_HEADER 64

#define SHM_SVC_FREE 0
#define SHM_SVC_ATTACHING 1
#define SHM_SVC_ATTACHED 2
#define SHM_SVC_DEAD 3
#define SHM_SVC_DEPARTED 4
#define SHM_SVC_LEAVING 5

#define SHM_SVC_BLOCK 0
#define SHM_SVC_DROP_OLDEST 1

#define SHM_SVC_WORD(base, offset, type) ((type *)((char *)(base) + (offset)))

#if defined(__x86_64__) || defined(__i386__)
#define SHM_SVC_PAUSE_() __builtin_ia32_pause()
#else
#define SHM_SVC_PAUSE_() __asm__ volatile("yield")
#endif

/* A service as shm_service_open read it: its configuration read once, checked, and its layout computed. */
struct shm_service {
    char *base;
    size_t size;
    uint32_t max_publishers, max_subscribers, queue_capacity, history_depth, policy;
    uint64_t max_payload, pool_bytes, subscriber_bits;
    uint64_t subscriber_slots, history, history_stride, queues, queue_stride, pools;
    int handle;
    uint64_t handle_word;
    dev_t device;
    ino_t inode;
    char name[256];
};

static inline uint64_t shm_svc_align64_(uint64_t value) { return (value + 63) & ~(uint64_t)63; }

static inline uint64_t shm_svc_record_bytes_(uint64_t length) { return SHM_SVC_RECORD_HEADER + shm_svc_align64_(length); }

/* A record's check word: a hash of its offset in the pool, length, sequence, publisher generation and flags. */
static inline uint32_t shm_svc_check(uint64_t offset, uint32_t length, uint64_t sequence, uint32_t generation, uint32_t flags)
{
    uint64_t z = (offset ^ ((uint64_t)length * 0x9E3779B97F4A7C15ull) ^ (sequence * 0xC2B2AE3D27D4EB4Full) ^ ((uint64_t)generation << 40) ^ flags) * 0xD6E8FEB86659FD93ull;
    return (uint32_t)(z >> 32) ^ (uint32_t)z;
}

static inline int64_t shm_svc_now_ns_(void)
{
    struct timespec now;
    syscall(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static inline void shm_svc_futex_wait_(uint32_t *word, uint32_t expected, int64_t until_ns)
{
    int64_t left = until_ns - shm_svc_now_ns_();
    if (left <= 0) return;
    if (left > 100000000) left = 100000000; /* a peer that died wakes nobody: look again every 100 ms */
    struct timespec slice = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
    syscall(SYS_futex, word, FUTEX_WAIT, expected, &slice, NULL, 0);
}

static inline void shm_svc_wake_(char *slot, int sequence, int sleeping)
{
    if (__atomic_load_n(SHM_SVC_WORD(slot, sleeping, uint32_t), __ATOMIC_SEQ_CST) != 0) {
        __atomic_add_fetch(SHM_SVC_WORD(slot, sequence, uint32_t), 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, SHM_SVC_WORD(slot, sequence, uint32_t), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
}

/* Reads a small /proc file into buffer (NUL-terminated); its length, or -1. */
static inline long shm_svc_read_file_(const char *path, char *buffer, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buffer, size - 1);
    close(fd);
    if (n < 0) return -1;
    buffer[n] = 0;
    return (long)n;
}

/* This process's boot-time offset in clock ticks (a time namespace shifts the start times /proc shows). */
static inline int64_t shm_svc_boottime_offset_(void)
{
    char buffer[128];
    if (shm_svc_read_file_("/proc/self/timens_offsets", buffer, sizeof buffer) <= 0) return 0;
    char *at = strstr(buffer, "boottime");
    if (!at) return 0;
    char *end;
    long long seconds = strtoll(at + 8, &end, 10);
    long long nanoseconds = strtoll(end, NULL, 10);
    long hz = sysconf(_SC_CLK_TCK);
    int64_t tick = 1000000000 / (hz > 0 ? hz : 100);
    int64_t offset = (int64_t)seconds * 1000000000 + nanoseconds;
    return offset >= 0 ? offset / tick : -((tick - 1 - offset) / tick);
}

/* The state (field 3) and start time (field 22) of /proc/PID/stat: 1, or 0 if it cannot be read. */
static inline int shm_svc_stat_(int32_t pid, char *state, int64_t *start)
{
    char path[64], buffer[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (shm_svc_read_file_(path, buffer, sizeof buffer) <= 0) return 0;
    char *at = strrchr(buffer, ')');
    if (!at || at[1] != ' ' || !at[2]) return 0;
    *state = at[2];
    for (int field = 2; at && field < 22; field++) at = strchr(at + 1, ' ');
    if (!at) return 0;
    *start = strtoll(at + 1, NULL, 10);
    return 1;
}

/* This process's owner word in state `state`: pid and the low 32 bits of its start time. */
static inline uint64_t shm_svc_self_(int state)
{
    char st;
    int64_t start = 0;
    int32_t pid = (int32_t)getpid();
    uint32_t low = shm_svc_stat_(pid, &st, &start) ? (uint32_t)(start - shm_svc_boottime_offset_()) : 0;
    return ((uint64_t)(uint32_t)state << 56) | ((uint64_t)(uint32_t)pid << 32) | low;
}

static inline int shm_svc_state_of_(uint64_t word) { return (int)(word >> 56); }
static inline int32_t shm_svc_pid_of_(uint64_t word) { return (int32_t)((word >> 32) & 0xFFFFFF); }
static inline uint64_t shm_svc_with_state_(uint64_t word, int state) { return (word & 0x00FFFFFFFFFFFFFFull) | ((uint64_t)(uint32_t)state << 56); }

/* A word a process following the protocol could have written: free is 0, any other names a state and a pid. */
static inline int shm_svc_valid_owner_(uint64_t word)
{
    int state = shm_svc_state_of_(word);
    int32_t pid = shm_svc_pid_of_(word);
    return word == 0 || (state >= SHM_SVC_ATTACHING && state <= SHM_SVC_LEAVING && pid > 0 && pid < 4194304);
}

/* 0 only when the kernel says the owner is gone: no such process, a zombie, or another start time (one tick apart counts as the same). */
static inline int shm_svc_alive_(uint64_t word)
{
    int32_t pid = shm_svc_pid_of_(word);
    uint32_t start = (uint32_t)word;
    if (pid <= 0) return 0; /* never kill(0) or kill(-n): those reach process groups */
    if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
    char state;
    int64_t started;
    if (!shm_svc_stat_(pid, &state, &started)) return 1; /* hidden or not ours to read: no proof of death */
    if (state == 'Z' || state == 'X') return 0;
    return start == 0 || (uint32_t)((uint32_t)(started - shm_svc_boottime_offset_()) - start + 1) <= 2;
}

static inline char *shm_svc_publisher_slot_(const struct shm_service *s, uint32_t p) { return s->base + 8192 + (size_t)p * 256; }
static inline char *shm_svc_subscriber_slot_(const struct shm_service *s, uint32_t i) { return s->base + s->subscriber_slots + (size_t)i * 128; }
static inline char *shm_svc_history_ring_(const struct shm_service *s, uint32_t p) { return s->base + s->history + p * s->history_stride; }
static inline char *shm_svc_queue_(const struct shm_service *s, uint32_t p, uint32_t i) { return s->base + s->queues + ((uint64_t)p * s->max_subscribers + i) * s->queue_stride; }
static inline char *shm_svc_pool_(const struct shm_service *s, uint32_t p) { return s->base + s->pools + p * s->pool_bytes; }
static inline uint64_t *shm_svc_handle_(const struct shm_service *s, int i) { return SHM_SVC_WORD(s->base, SHM_SVC_HANDLES + (size_t)i * 16, uint64_t); }

/* The owner word at `slot`, read once and checked: 1, or 0 if impossible. */
static inline int shm_svc_owner_(const char *slot, uint64_t *word)
{
    *word = __atomic_load_n(SHM_SVC_WORD(slot, SHM_SVC_OWNER, const uint64_t), __ATOMIC_ACQUIRE);
    return shm_svc_valid_owner_(*word);
}

/* Takes a participant slot that is free, or whose owner died attaching (it referenced nothing yet, and nothing was delivered to it): 1 if taken. */
static inline int shm_svc_take_slot_(char *slot, uint64_t seen, uint64_t attaching)
{
    if (seen != 0 && (shm_svc_state_of_(seen) != SHM_SVC_ATTACHING || shm_svc_alive_(seen))) return 0;
    return __atomic_compare_exchange_n(SHM_SVC_WORD(slot, SHM_SVC_OWNER, uint64_t), &seen, attaching, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* True if a live process holds a handle or an attaching or attached participant slot. */
static inline int shm_svc_anyone_live_(const struct shm_service *s)
{
    for (int i = 0; i < SHM_SVC_HANDLE_SLOTS; i++) {
        uint64_t word = __atomic_load_n(shm_svc_handle_(s, i), __ATOMIC_ACQUIRE);
        if (word != 0 && shm_svc_valid_owner_(word) && shm_svc_alive_(word)) return 1;
    }
    for (uint32_t p = 0; p < s->max_publishers + s->max_subscribers; p++) {
        char *slot = p < s->max_publishers ? shm_svc_publisher_slot_(s, p) : shm_svc_subscriber_slot_(s, p - s->max_publishers);
        uint64_t word;
        if (shm_svc_owner_(slot, &word) && (shm_svc_state_of_(word) == SHM_SVC_ATTACHING || shm_svc_state_of_(word) == SHM_SVC_ATTACHED) && shm_svc_alive_(word)) return 1;
    }
    return 0;
}

/*
 * Opens the service `name` (without the prefix) that .NET created: maps it, reads and checks its header
 * and configuration once, and takes a handle slot (so its name stays while this process uses it).
 * 0; -ENOENT (no such service), -EACCES, -EAGAIN (not ready, or being removed: try again),
 * -EBADMSG (not a service of this layout, or its configuration is impossible), -EBUSY (256 handles).
 */
static inline int shm_service_open(struct shm_service *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->handle = -1;
    if (!name || !*name || strchr(name, '/') || strlen(name) + sizeof SHM_SVC_PREFIX > sizeof s->name) return -EINVAL;
    snprintf(s->name, sizeof s->name, "%s%s", SHM_SVC_PREFIX, name);
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", s->name);
    int fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return -EBADMSG; }
    if (st.st_size == 0) { close(fd); return -EAGAIN; }
    if (st.st_size < 4096) { close(fd); return -EBADMSG; }
    void *mapped = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mapped == MAP_FAILED) return -errno;
    s->base = (char *)mapped;
    s->size = (size_t)st.st_size;
    s->device = st.st_dev;
    s->inode = st.st_ino;
    int error = -EBADMSG;
    uint32_t state = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_STATE, uint32_t), __ATOMIC_ACQUIRE);
    if (state != SHM_SVC_READY) { error = state == 0 || state == 0x54494E49u ? -EAGAIN : -EBADMSG; goto fail; }
    if (__atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MAGIC_AT, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_MAGIC
        || __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_VERSION_AT, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_VERSION
        || __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_KIND, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_PUBSUB
        || __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_SEGMENT, uint64_t), __ATOMIC_ACQUIRE) != (uint64_t)s->size) goto fail;
    s->max_publishers = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MAX_PUBLISHERS, uint32_t), __ATOMIC_ACQUIRE);
    s->max_subscribers = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MAX_SUBSCRIBERS, uint32_t), __ATOMIC_ACQUIRE);
    s->max_payload = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MAX_PAYLOAD, uint64_t), __ATOMIC_ACQUIRE);
    s->pool_bytes = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_POOL_BYTES, uint64_t), __ATOMIC_ACQUIRE);
    s->queue_capacity = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_QUEUE_CAPACITY, uint32_t), __ATOMIC_ACQUIRE);
    s->history_depth = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_HISTORY_DEPTH, uint32_t), __ATOMIC_ACQUIRE);
    s->policy = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_POLICY, uint32_t), __ATOMIC_ACQUIRE);
    if (s->max_publishers < 1 || s->max_publishers > 64 || s->max_subscribers < 1 || s->max_subscribers > 64
        || s->max_payload < 1 || s->max_payload > (1ull << 30) || s->queue_capacity < 1 || s->queue_capacity > 65536
        || (s->queue_capacity & (s->queue_capacity - 1)) != 0 || s->history_depth > 65536 || s->policy > 1
        || s->pool_bytes % 4096 != 0 || s->pool_bytes > (1ull << 31) || s->pool_bytes < (s->history_depth + 2) * shm_svc_record_bytes_(s->max_payload)) goto fail;
    s->subscriber_bits = s->max_subscribers == 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->max_subscribers) - 1);
    s->subscriber_slots = 8192 + (uint64_t)s->max_publishers * 256;
    s->history = s->subscriber_slots + (uint64_t)s->max_subscribers * 128;
    s->history_stride = shm_svc_align64_((uint64_t)s->history_depth * 16);
    s->queues = s->history + s->max_publishers * s->history_stride;
    s->queue_stride = shm_svc_align64_(128 + (uint64_t)s->queue_capacity * 16);
    s->pools = (s->queues + (uint64_t)s->max_publishers * s->max_subscribers * s->queue_stride + 4095) & ~(uint64_t)4095;
    if (s->pools + s->max_publishers * s->pool_bytes != (uint64_t)s->size) goto fail;
    s->handle_word = shm_svc_self_(SHM_SVC_ATTACHED);
    for (int pass = 0; pass < 2 && s->handle < 0; pass++) {
        for (int i = 0; i < SHM_SVC_HANDLE_SLOTS && s->handle < 0; i++) {
            uint64_t seen = __atomic_load_n(shm_svc_handle_(s, i), __ATOMIC_ACQUIRE);
            if (!shm_svc_valid_owner_(seen) || (seen != 0 && shm_svc_state_of_(seen) != SHM_SVC_ATTACHED)) goto fail;
            if ((seen == 0 || (pass == 1 && !shm_svc_alive_(seen)))
                && __atomic_compare_exchange_n(shm_svc_handle_(s, i), &seen, s->handle_word, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) s->handle = i;
        }
    }
    if (s->handle < 0) { error = -EBUSY; goto fail; }
    {
        uint32_t retired = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_RETIRED, uint32_t), __ATOMIC_SEQ_CST);
        if (retired != 0) {
            uint64_t mine = s->handle_word;
            __atomic_compare_exchange_n(shm_svc_handle_(s, s->handle), &mine, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            s->handle = -1;
            error = retired == 1 ? -EAGAIN : -EBADMSG;
            goto fail;
        }
    }
    return 0;
fail:
    munmap(s->base, s->size);
    s->base = NULL;
    return error;
}

/* Leaves the service: gives the handle back and, if no live process uses it any more, removes its name (if it still names this segment). */
static inline void shm_service_close(struct shm_service *s)
{
    if (!s->base) return;
    if (s->handle >= 0) {
        uint64_t mine = s->handle_word;
        __atomic_compare_exchange_n(shm_svc_handle_(s, s->handle), &mine, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    uint32_t *retired = SHM_SVC_WORD(s->base, SHM_SVC_RETIRED, uint32_t);
    uint32_t seen = __atomic_load_n(retired, __ATOMIC_SEQ_CST);
    if (!shm_svc_anyone_live_(s) && seen != 1 && __atomic_compare_exchange_n(retired, &seen, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        if (shm_svc_anyone_live_(s)) {
            __atomic_store_n(retired, 0, __ATOMIC_SEQ_CST); /* someone joined meanwhile */
        } else {
            char path[300];
            struct stat st;
            snprintf(path, sizeof path, "/dev/shm/%s", s->name);
            if (lstat(path, &st) == 0 && st.st_dev == s->device && st.st_ino == s->inode) unlink(path);
        }
    }
    munmap(s->base, s->size);
    s->base = NULL;
}

/* ---------------------------------------------------------------- publisher */

struct shm_svc_target_ {
    int attached, drop_oldest;
    uint32_t generation;
    uint64_t head, tail_seen, missed;
};

struct shm_svc_record_ {
    uint64_t position, size, sequence; /* sequence 0: padding */
};

struct shm_publisher {
    struct shm_service *service;
    char *slot, *pool, *history;
    uint32_t index, generation, membership, attached_count;
    uint64_t owner, pool_head, pool_tail, published;
    int64_t loan_position; /* -1: no loan open */
    uint32_t loan_size;
    int corrupt;
    int64_t liveness_checked;
    struct shm_svc_target_ targets[64];
    uint32_t attached[64];
    struct shm_svc_record_ *records; /* private, oldest first: where each record starts, never read back from shared memory */
    size_t records_capacity, records_oldest, records_count;
};

static inline struct shm_svc_record_ *shm_svc_rec_(struct shm_publisher *p, size_t i) { return &p->records[(p->records_oldest + i) % p->records_capacity]; }

static inline int shm_svc_rec_add_(struct shm_publisher *p, uint64_t position, uint64_t size, uint64_t sequence)
{
    if (p->records_count == p->records_capacity) {
        size_t capacity = p->records_capacity ? p->records_capacity * 2 : 64;
        struct shm_svc_record_ *grown = (struct shm_svc_record_ *)malloc(capacity * sizeof *grown);
        if (!grown) return -ENOMEM;
        for (size_t i = 0; i < p->records_count; i++) grown[i] = *shm_svc_rec_(p, i);
        free(p->records);
        p->records = grown;
        p->records_capacity = capacity;
        p->records_oldest = 0;
    }
    struct shm_svc_record_ *r = &p->records[(p->records_oldest + p->records_count) % p->records_capacity];
    r->position = position;
    r->size = size;
    r->sequence = sequence;
    p->records_count++;
    return 0;
}

static inline int shm_svc_corrupt_(struct shm_publisher *p) { p->corrupt = 1; return -EBADMSG; }

static inline int shm_svc_mask_ok_(const struct shm_service *s, uint64_t mask) { return (mask & ~s->subscriber_bits) == 0; }

/* The tail of subscriber `i`'s queue, read once: not behind what was seen, not ahead of the head. */
static inline int shm_svc_read_tail_(struct shm_publisher *p, uint32_t i, uint64_t *tail)
{
    struct shm_svc_target_ *t = &p->targets[i];
    *tail = __atomic_load_n(SHM_SVC_WORD(shm_svc_queue_(p->service, p->index, i), SHM_SVC_TAIL, uint64_t), __ATOMIC_ACQUIRE);
    if (*tail < t->tail_seen || *tail > t->head) return shm_svc_corrupt_(p);
    t->tail_seen = *tail;
    return 0;
}

/* Re-reads every subscriber slot: attached ones are targets; for each dead or departed one not yet cleaned here, its bit is cleared in every record of this pool and the pins. */
static inline int shm_svc_rescan_(struct shm_publisher *p)
{
    struct shm_service *s = p->service;
    uint32_t membership = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), __ATOMIC_SEQ_CST);
    p->attached_count = 0;
    for (uint32_t i = 0; i < s->max_subscribers; i++) {
        char *slot = shm_svc_subscriber_slot_(s, i);
        uint64_t owner;
        if (!shm_svc_owner_(slot, &owner)) return shm_svc_corrupt_(p);
        struct shm_svc_target_ *t = &p->targets[i];
        int state = shm_svc_state_of_(owner);
        uint32_t generation = __atomic_load_n(SHM_SVC_WORD(slot, SHM_SVC_GENERATION, uint32_t), __ATOMIC_ACQUIRE);
        if (state == SHM_SVC_ATTACHED) {
            if (!t->attached || t->generation != generation) {
                char *queue = shm_svc_queue_(s, p->index, i);
                uint32_t policy = __atomic_load_n(SHM_SVC_WORD(slot, SHM_SVC_SUB_POLICY, uint32_t), __ATOMIC_ACQUIRE);
                uint64_t head = __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_HEAD, uint64_t), __ATOMIC_ACQUIRE);
                uint64_t tail = __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), __ATOMIC_ACQUIRE);
                int64_t missed = __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_MISSED, int64_t), __ATOMIC_ACQUIRE);
                if (policy > 1 || (int64_t)head < 0 || head - tail > s->queue_capacity || missed < 0) return shm_svc_corrupt_(p);
                __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_FIRST, uint64_t), p->published + 1, __ATOMIC_RELEASE);
                t->attached = 1;
                t->drop_oldest = policy == 1;
                t->generation = generation;
                t->head = head;
                t->tail_seen = tail;
                t->missed = (uint64_t)missed;
            }
            p->attached[p->attached_count++] = i;
            continue;
        }
        t->attached = 0;
        if (state == SHM_SVC_LEAVING && !shm_svc_alive_(owner)
            && __atomic_compare_exchange_n(SHM_SVC_WORD(slot, SHM_SVC_OWNER, uint64_t), &owner, shm_svc_with_state_(owner, SHM_SVC_DEAD), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            state = SHM_SVC_DEAD; /* it died clearing its own references: they are this publisher's to clear */
            __atomic_add_fetch(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
        }
        uint32_t *cleaned = SHM_SVC_WORD(shm_svc_queue_(s, p->index, i), SHM_SVC_CLEANED, uint32_t);
        if ((state == SHM_SVC_DEAD || state == SHM_SVC_DEPARTED) && __atomic_load_n(cleaned, __ATOMIC_ACQUIRE) != generation) {
            uint64_t bit = (uint64_t)1 << i;
            for (size_t k = 0; k < p->records_count; k++) {
                struct shm_svc_record_ *r = shm_svc_rec_(p, k);
                if (r->sequence == 0 || (int64_t)r->position == p->loan_position) continue;
                uint64_t was = __atomic_fetch_and(SHM_SVC_WORD(p->pool + r->position % s->pool_bytes, SHM_SVC_MASK, uint64_t), ~bit, __ATOMIC_SEQ_CST);
                if (!shm_svc_mask_ok_(s, was)) return shm_svc_corrupt_(p);
            }
            /* its pin too, before `cleaned`: a new subscriber in the slot pins only after it */
            if (s->history_depth > 0) __atomic_fetch_and(SHM_SVC_WORD(p->slot, SHM_SVC_HISTORY_PINS, uint64_t), ~bit, __ATOMIC_SEQ_CST);
            __atomic_store_n(cleaned, generation, __ATOMIC_RELEASE);
        }
    }
    p->membership = membership;
    return 0;
}

/* Takes subscriber `i`'s oldest entry back (it may pop it first), clears its bit in that record and counts it missed: 1 taken, 0 not, or -EBADMSG. */
static inline int shm_svc_take_back_(struct shm_publisher *p, uint32_t i)
{
    struct shm_service *s = p->service;
    struct shm_svc_target_ *t = &p->targets[i];
    char *queue = shm_svc_queue_(s, p->index, i);
    uint64_t tail;
    if (shm_svc_read_tail_(p, i, &tail) != 0) return -EBADMSG;
    if (tail == t->head) return 0;
    char *entry = queue + SHM_SVC_ENTRIES + (tail & (s->queue_capacity - 1)) * 16;
    uint64_t descriptor = __atomic_load_n(SHM_SVC_WORD(entry, 0, uint64_t), __ATOMIC_ACQUIRE);
    uint64_t names = __atomic_load_n(SHM_SVC_WORD(entry, 8, uint64_t), __ATOMIC_ACQUIRE);
    uint64_t expected = tail;
    if (!__atomic_compare_exchange_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), &expected, tail + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return shm_svc_read_tail_(p, i, &tail) != 0 ? -EBADMSG : 0;
    }
    t->tail_seen = tail + 1;
    uint32_t offset = (uint32_t)descriptor, length = (uint32_t)(descriptor >> 32);
    if ((uint32_t)(names >> 32) != t->generation || (offset & 63) != 0 || length > s->max_payload || offset + shm_svc_record_bytes_(length) > s->pool_bytes) return shm_svc_corrupt_(p);
    char *record = p->pool + offset;
    uint64_t sequence = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_SEQUENCE, uint64_t), __ATOMIC_ACQUIRE);
    if ((uint32_t)sequence != (uint32_t)names || __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_LENGTH, uint32_t), __ATOMIC_ACQUIRE) != length
        || __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_CHECK, uint32_t), __ATOMIC_ACQUIRE) != shm_svc_check(offset, length, sequence, p->generation, 0)) return shm_svc_corrupt_(p);
    uint64_t was = __atomic_fetch_and(SHM_SVC_WORD(record, SHM_SVC_MASK, uint64_t), ~((uint64_t)1 << i), __ATOMIC_SEQ_CST);
    if (!shm_svc_mask_ok_(s, was) || !(was & ((uint64_t)1 << i))) return shm_svc_corrupt_(p);
    __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_MISSED, uint64_t), ++t->missed, __ATOMIC_RELEASE);
    return 1;
}

/* Frees records at the pool's tail whose mask is 0, out of the history window, while no subscriber pins it. */
static inline int shm_svc_reclaim_(struct shm_publisher *p)
{
    struct shm_service *s = p->service;
    int pins_read = 0;
    uint64_t pins = 0;
    while (p->records_count > 0) {
        struct shm_svc_record_ *r = shm_svc_rec_(p, 0);
        if ((int64_t)r->position == p->loan_position) break;
        if (r->sequence != 0) {
            if (s->history_depth > 0) {
                if (r->sequence + s->history_depth > p->published) break;
                if (!pins_read) {
                    pins = __atomic_load_n(SHM_SVC_WORD(p->slot, SHM_SVC_HISTORY_PINS, uint64_t), __ATOMIC_SEQ_CST);
                    if (!shm_svc_mask_ok_(s, pins)) return shm_svc_corrupt_(p);
                    pins_read = 1;
                }
                if (pins != 0) break;
            }
            uint64_t mask = __atomic_load_n(SHM_SVC_WORD(p->pool + r->position % s->pool_bytes, SHM_SVC_MASK, uint64_t), __ATOMIC_ACQUIRE);
            if (!shm_svc_mask_ok_(s, mask)) return shm_svc_corrupt_(p);
            if (mask != 0) break;
        }
        p->pool_tail += r->size;
        p->records_oldest = (p->records_oldest + 1) % p->records_capacity;
        p->records_count--;
    }
    __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_POOL_TAIL, uint64_t), p->pool_tail, __ATOMIC_RELEASE);
    return 0;
}

/* 1 if a record of `size` bytes can be loaned now (every block queue has room, and the pool after reclaiming), 0 if not, or -EBADMSG; `padding`: the bytes to skip to the pool's end first. */
static inline int shm_svc_has_room_(struct shm_publisher *p, uint32_t size, uint64_t *padding)
{
    struct shm_service *s = p->service;
    if (__atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), __ATOMIC_SEQ_CST) != p->membership && shm_svc_rescan_(p) != 0) return -EBADMSG;
    for (uint32_t k = 0; k < p->attached_count; k++) {
        struct shm_svc_target_ *t = &p->targets[p->attached[k]];
        uint64_t tail;
        if (!t->drop_oldest && t->head - t->tail_seen >= s->queue_capacity) {
            if (shm_svc_read_tail_(p, p->attached[k], &tail) != 0) return -EBADMSG;
            if (t->head - tail >= s->queue_capacity) return 0;
        }
    }
    if (shm_svc_reclaim_(p) != 0) return -EBADMSG;
    uint64_t record = shm_svc_record_bytes_(size);
    for (;;) {
        uint64_t offset = p->pool_head % s->pool_bytes;
        *padding = offset + record > s->pool_bytes ? s->pool_bytes - offset : 0;
        if (*padding + record <= s->pool_bytes - (p->pool_head - p->pool_tail)) return 1;
        /* The oldest sample holds the pool: take it back from drop-oldest queues where it is the oldest entry. */
        size_t k = 0;
        while (k < p->records_count && shm_svc_rec_(p, k)->sequence == 0) k++;
        if (k == p->records_count) return 0;
        struct shm_svc_record_ *oldest = shm_svc_rec_(p, k);
        if ((int64_t)oldest->position == p->loan_position || (s->history_depth > 0 && oldest->sequence + s->history_depth > p->published)) return 0;
        uint64_t mask = __atomic_load_n(SHM_SVC_WORD(p->pool + oldest->position % s->pool_bytes, SHM_SVC_MASK, uint64_t), __ATOMIC_ACQUIRE);
        if (!shm_svc_mask_ok_(s, mask)) return shm_svc_corrupt_(p);
        if (mask == 0) return 0;
        for (uint64_t bits = mask; bits; bits &= bits - 1) {
            uint32_t i = (uint32_t)__builtin_ctzll(bits);
            struct shm_svc_target_ *t = &p->targets[i];
            if (!t->attached || !t->drop_oldest || t->head == t->tail_seen) return 0;
            char *entry = shm_svc_queue_(s, p->index, i) + SHM_SVC_ENTRIES + (t->tail_seen & (s->queue_capacity - 1)) * 16;
            if ((uint32_t)__atomic_load_n(SHM_SVC_WORD(entry, 0, uint64_t), __ATOMIC_ACQUIRE) != (uint32_t)(oldest->position % s->pool_bytes)) return 0;
            int taken = shm_svc_take_back_(p, i);
            if (taken < 0) return taken;
        }
        if (shm_svc_reclaim_(p) != 0) return -EBADMSG;
    }
}

/* Marks attached subscribers whose process died as dead (checked at most every 50 ms of waiting). */
static inline void shm_svc_check_subscribers_(struct shm_publisher *p)
{
    int64_t now = shm_svc_now_ns_();
    if (now - p->liveness_checked < 50000000) return;
    p->liveness_checked = now;
    for (uint32_t k = 0; k < p->attached_count; k++) {
        char *slot = shm_svc_subscriber_slot_(p->service, p->attached[k]);
        uint64_t owner;
        if (shm_svc_owner_(slot, &owner) && shm_svc_state_of_(owner) == SHM_SVC_ATTACHED && !shm_svc_alive_(owner)
            && __atomic_compare_exchange_n(SHM_SVC_WORD(slot, SHM_SVC_OWNER, uint64_t), &owner, shm_svc_with_state_(owner, SHM_SVC_DEAD), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_add_fetch(SHM_SVC_WORD(p->service->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
        }
    }
}

/* Attaches a publisher to a free publisher slot: 0, -EBUSY (none free), -EAGAIN (the service is being removed), -EBADMSG. */
static inline int shm_publisher_attach(struct shm_publisher *p, struct shm_service *s)
{
    memset(p, 0, sizeof *p);
    p->service = s;
    p->loan_position = -1;
    uint64_t attaching = shm_svc_self_(SHM_SVC_ATTACHING);
    p->owner = shm_svc_with_state_(attaching, SHM_SVC_ATTACHED);
    uint32_t index = UINT32_MAX;
    for (uint32_t i = 0; i < s->max_publishers && index == UINT32_MAX; i++) {
        uint64_t seen;
        if (!shm_svc_owner_(shm_svc_publisher_slot_(s, i), &seen)) return shm_svc_corrupt_(p);
        if (shm_svc_take_slot_(shm_svc_publisher_slot_(s, i), seen, attaching)) index = i;
    }
    if (index == UINT32_MAX) return -EBUSY;
    p->index = index;
    p->slot = shm_svc_publisher_slot_(s, index);
    p->pool = shm_svc_pool_(s, index);
    p->history = shm_svc_history_ring_(s, index);
    p->generation = __atomic_load_n(SHM_SVC_WORD(p->slot, SHM_SVC_GENERATION, uint32_t), __ATOMIC_ACQUIRE) + 1;
    __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_GENERATION, uint32_t), p->generation, __ATOMIC_RELEASE);
    __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_POOL_HEAD, uint64_t), 0, __ATOMIC_RELEASE);
    __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_POOL_TAIL, uint64_t), 0, __ATOMIC_RELEASE);
    __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_PUBLISHED, uint64_t), 0, __ATOMIC_RELEASE);
    uint64_t expected = attaching;
    if (!__atomic_compare_exchange_n(SHM_SVC_WORD(p->slot, SHM_SVC_OWNER, uint64_t), &expected, p->owner, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return shm_svc_corrupt_(p);
    uint32_t retired = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_RETIRED, uint32_t), __ATOMIC_SEQ_CST);
    p->membership = __atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), __ATOMIC_SEQ_CST) - 1;
    if (retired != 0 || shm_svc_rescan_(p) != 0) {
        expected = p->owner;
        __atomic_compare_exchange_n(SHM_SVC_WORD(p->slot, SHM_SVC_OWNER, uint64_t), &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        return retired == 1 ? -EAGAIN : shm_svc_corrupt_(p);
    }
    return 0;
}

/*
 * Lends `size` bytes of the pool (one loan at a time), waiting up to `timeout_ns` (negative: for ever)
 * for room: 0 with *payload set (64-byte aligned, in place); -ETIMEDOUT; -EINVAL (size past the max
 * payload, or a loan already open); -EBADMSG; -ENOMEM.
 */
static inline int shm_publisher_loan(struct shm_publisher *p, uint32_t size, int64_t timeout_ns, void **payload)
{
    struct shm_service *s = p->service;
    if (p->corrupt) return -EBADMSG;
    if (size > s->max_payload || p->loan_position >= 0) return -EINVAL;
    int64_t until = timeout_ns < 0 ? INT64_MAX : shm_svc_now_ns_() + timeout_ns;
    uint64_t padding = 0;
    for (int spin = 0;; spin++) {
        uint32_t seen = __atomic_load_n(SHM_SVC_WORD(p->slot, SHM_SVC_SPACE_SEQUENCE, uint32_t), __ATOMIC_SEQ_CST);
        int room = shm_svc_has_room_(p, size, &padding);
        if (room < 0) return room;
        if (room) break;
        if (shm_svc_now_ns_() >= until) return -ETIMEDOUT;
        shm_svc_check_subscribers_(p);
        if (spin < 200) { SHM_SVC_PAUSE_(); continue; }
        __atomic_add_fetch(SHM_SVC_WORD(p->slot, SHM_SVC_PUBLISHER_SLEEPING, uint32_t), 1, __ATOMIC_SEQ_CST);
        room = shm_svc_has_room_(p, size, &padding);
        if (room == 0) shm_svc_futex_wait_(SHM_SVC_WORD(p->slot, SHM_SVC_SPACE_SEQUENCE, uint32_t), seen, until);
        __atomic_sub_fetch(SHM_SVC_WORD(p->slot, SHM_SVC_PUBLISHER_SLEEPING, uint32_t), 1, __ATOMIC_SEQ_CST);
        if (room < 0) return room;
    }
    if (padding > 0) {
        uint64_t offset = p->pool_head % s->pool_bytes;
        char *pad = p->pool + offset;
        uint32_t length = (uint32_t)(padding - SHM_SVC_RECORD_HEADER);
        *SHM_SVC_WORD(pad, SHM_SVC_MASK, uint64_t) = 0;
        *SHM_SVC_WORD(pad, SHM_SVC_SEQUENCE, uint64_t) = 0;
        *SHM_SVC_WORD(pad, SHM_SVC_LENGTH, uint32_t) = length;
        *SHM_SVC_WORD(pad, SHM_SVC_FLAGS, uint32_t) = 1;
        *SHM_SVC_WORD(pad, SHM_SVC_RECORD_GENERATION, uint32_t) = p->generation;
        *SHM_SVC_WORD(pad, SHM_SVC_CHECK, uint32_t) = shm_svc_check(offset, length, 0, p->generation, 1);
        if (shm_svc_rec_add_(p, p->pool_head, padding, 0) != 0) return -ENOMEM;
        p->pool_head += padding;
    }
    char *record = p->pool + p->pool_head % s->pool_bytes;
    *SHM_SVC_WORD(record, SHM_SVC_MASK, uint64_t) = 0;
    *SHM_SVC_WORD(record, SHM_SVC_CHECK, uint32_t) = 0; /* not a sample until published */
    if (shm_svc_rec_add_(p, p->pool_head, shm_svc_record_bytes_(size), p->published + 1) != 0) return -ENOMEM;
    p->loan_position = (int64_t)p->pool_head;
    p->loan_size = size;
    p->pool_head += shm_svc_record_bytes_(size);
    *payload = record + SHM_SVC_RECORD_HEADER;
    return 0;
}

/* Publishes the first `length` bytes of the open loan to every attached subscriber: 0, -EINVAL (no loan, or longer than it), -EBADMSG. */
static inline int shm_publisher_publish(struct shm_publisher *p, uint32_t length)
{
    struct shm_service *s = p->service;
    if (p->corrupt) return -EBADMSG;
    if (p->loan_position < 0 || length > p->loan_size) return -EINVAL;
    uint32_t *publishing = SHM_SVC_WORD(p->slot, SHM_SVC_PUBLISHING, uint32_t);
    uint32_t started = __atomic_add_fetch(publishing, 1, __ATOMIC_SEQ_CST); /* odd, and a full fence before membership is read */
    int error = 0;
    if (__atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), __ATOMIC_SEQ_CST) != p->membership) error = shm_svc_rescan_(p);
    uint64_t position = (uint64_t)p->loan_position, offset = position % s->pool_bytes;
    char *record = p->pool + offset;
    uint64_t sequence = p->published + 1, mask = 0;
    for (uint32_t k = 0; k < p->attached_count && error == 0; k++) {
        uint32_t i = p->attached[k];
        struct shm_svc_target_ *t = &p->targets[i];
        uint64_t tail;
        while (error == 0 && t->head - t->tail_seen >= s->queue_capacity) {
            if (shm_svc_read_tail_(p, i, &tail) != 0) error = -EBADMSG;
            else if (t->head - tail < s->queue_capacity) break;
            else if (!t->drop_oldest) error = shm_svc_corrupt_(p); /* the loan waited for room in block queues */
            else if (shm_svc_take_back_(p, i) < 0) error = -EBADMSG;
        }
        mask |= (uint64_t)1 << i;
    }
    if (error == 0) {
        shm_svc_rec_(p, p->records_count - 1)->size = shm_svc_record_bytes_(length); /* a shorter sample gives the rest back */
        p->pool_head = position + shm_svc_record_bytes_(length);
        *SHM_SVC_WORD(record, SHM_SVC_SEQUENCE, uint64_t) = sequence;
        *SHM_SVC_WORD(record, SHM_SVC_LENGTH, uint32_t) = length;
        *SHM_SVC_WORD(record, SHM_SVC_FLAGS, uint32_t) = 0;
        *SHM_SVC_WORD(record, SHM_SVC_RECORD_GENERATION, uint32_t) = p->generation;
        *SHM_SVC_WORD(record, SHM_SVC_TIMESTAMP, int64_t) = shm_svc_now_ns_();
        *SHM_SVC_WORD(record, SHM_SVC_CHECK, uint32_t) = shm_svc_check(offset, length, sequence, p->generation, 0);
        __atomic_store_n(SHM_SVC_WORD(record, SHM_SVC_MASK, uint64_t), mask, __ATOMIC_RELEASE);
        /* the pool's head before any descriptor: a walker after this process died here sees the record queues may name */
        __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_POOL_HEAD, uint64_t), p->pool_head, __ATOMIC_RELEASE);
        uint64_t descriptor = (uint32_t)offset | ((uint64_t)length << 32);
        for (uint32_t k = 0; k < p->attached_count; k++) {
            struct shm_svc_target_ *t = &p->targets[p->attached[k]];
            char *queue = shm_svc_queue_(s, p->index, p->attached[k]);
            char *entry = queue + SHM_SVC_ENTRIES + (t->head & (s->queue_capacity - 1)) * 16;
            *SHM_SVC_WORD(entry, 0, uint64_t) = descriptor;
            *SHM_SVC_WORD(entry, 8, uint64_t) = (uint32_t)sequence | ((uint64_t)t->generation << 32);
            __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_HEAD, uint64_t), ++t->head, __ATOMIC_RELEASE);
        }
        if (s->history_depth > 0) {
            char *entry = p->history + ((sequence - 1) % s->history_depth) * 16;
            __atomic_store_n(SHM_SVC_WORD(entry, 8, uint64_t), 0, __ATOMIC_SEQ_CST);
            __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the sequence is 0 before the descriptor changes */
            *SHM_SVC_WORD(entry, 0, uint64_t) = descriptor;
            __atomic_store_n(SHM_SVC_WORD(entry, 8, uint64_t), sequence, __ATOMIC_RELEASE);
        }
        p->published = sequence;
        __atomic_store_n(SHM_SVC_WORD(p->slot, SHM_SVC_PUBLISHED, uint64_t), sequence, __ATOMIC_RELEASE);
        p->loan_position = -1;
    }
    __atomic_store_n(publishing, started + 1, __ATOMIC_SEQ_CST); /* and the heads before the sleep flags */
    if (error == 0) {
        for (uint32_t k = 0; k < p->attached_count; k++) shm_svc_wake_(shm_svc_subscriber_slot_(s, p->attached[k]), SHM_SVC_WAKE_SEQUENCE, SHM_SVC_SUBSCRIBER_SLEEPING);
    }
    return error;
}

/* Leaves the slot: published samples stay deliverable (the slot is freed once they were all released); an open loan is dropped. */
static inline void shm_publisher_detach(struct shm_publisher *p)
{
    if (p->slot) {
        uint64_t expected = p->owner;
        if (__atomic_compare_exchange_n(SHM_SVC_WORD(p->slot, SHM_SVC_OWNER, uint64_t), &expected, shm_svc_with_state_(p->owner, SHM_SVC_DEPARTED), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_add_fetch(SHM_SVC_WORD(p->service->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
        }
    }
    free(p->records);
    p->records = NULL;
    p->slot = NULL;
}

/* ---------------------------------------------------------------- subscriber */

struct shm_subscriber {
    struct shm_service *service;
    char *slot;
    uint32_t index, generation;
    uint64_t bit, owner;
    int drop_oldest, corrupt;
    uint32_t next;
    uint64_t tails[64], last_sequences[64];
    uint32_t publisher_generations[64];
};

/* A received sample: its bytes in place until released. */
struct shm_sample {
    const void *data;
    uint32_t length;
    uint32_t publisher;
    uint64_t sequence;
    uint64_t missed;  /* samples of that publisher lost just before this one (drop oldest) */
    int64_t timestamp; /* CLOCK_MONOTONIC ns at publish */
    char *record_;
};

static inline int shm_svc_sub_corrupt_(struct shm_subscriber *sub) { sub->corrupt = 1; return -EBADMSG; }

/* Pops the oldest entry of publisher p's queue and checks it and its record: 1 popped, 0 empty, or -EBADMSG. */
static inline int shm_svc_pop_(struct shm_subscriber *sub, uint32_t p, char **record_out, uint32_t *length_out, uint64_t *sequence_out, uint32_t *generation_out)
{
    struct shm_service *s = sub->service;
    char *queue = shm_svc_queue_(s, p, sub->index);
    for (uint32_t attempt = 0; attempt <= s->queue_capacity + 1; attempt++) {
        /* The tail first: the publisher moves it (drop oldest) before the head, so it is never ahead of a head read after it. */
        uint64_t tail = sub->drop_oldest ? __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), __ATOMIC_SEQ_CST) : sub->tails[p];
        uint64_t head = __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_HEAD, uint64_t), __ATOMIC_SEQ_CST);
        if (tail < sub->tails[p]) return shm_svc_sub_corrupt_(sub);
        if (head == tail) return 0;
        if (head - tail > s->queue_capacity) {
            if (sub->drop_oldest && __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), __ATOMIC_SEQ_CST) != tail) continue; /* moving */
            return shm_svc_sub_corrupt_(sub);
        }
        char *entry = queue + SHM_SVC_ENTRIES + (tail & (s->queue_capacity - 1)) * 16;
        uint64_t descriptor = __atomic_load_n(SHM_SVC_WORD(entry, 0, uint64_t), __ATOMIC_ACQUIRE);
        uint64_t names = __atomic_load_n(SHM_SVC_WORD(entry, 8, uint64_t), __ATOMIC_ACQUIRE);
        uint64_t expected = tail;
        if (!__atomic_compare_exchange_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), &expected, tail + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            if (!sub->drop_oldest) return shm_svc_sub_corrupt_(sub); /* only this subscriber moves a block queue's tail */
            continue; /* the publisher took it back: try the next */
        }
        sub->tails[p] = tail + 1;
        shm_svc_wake_(shm_svc_publisher_slot_(s, p), SHM_SVC_SPACE_SEQUENCE, SHM_SVC_PUBLISHER_SLEEPING);
        uint32_t offset = (uint32_t)descriptor, length = (uint32_t)(descriptor >> 32);
        if ((uint32_t)(names >> 32) != sub->generation || (offset & 63) != 0 || length > s->max_payload || offset + shm_svc_record_bytes_(length) > s->pool_bytes) return shm_svc_sub_corrupt_(sub);
        char *record = shm_svc_pool_(s, p) + offset;
        uint64_t sequence = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_SEQUENCE, uint64_t), __ATOMIC_ACQUIRE);
        uint32_t stored = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_LENGTH, uint32_t), __ATOMIC_ACQUIRE);
        uint32_t flags = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_FLAGS, uint32_t), __ATOMIC_ACQUIRE);
        uint32_t generation = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_RECORD_GENERATION, uint32_t), __ATOMIC_ACQUIRE);
        uint32_t check = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_CHECK, uint32_t), __ATOMIC_ACQUIRE);
        uint64_t mask = __atomic_load_n(SHM_SVC_WORD(record, SHM_SVC_MASK, uint64_t), __ATOMIC_ACQUIRE);
        if ((uint32_t)sequence != (uint32_t)names || stored != length || flags != 0 || check != shm_svc_check(offset, length, sequence, generation, 0)
            || !shm_svc_mask_ok_(s, mask) || !(mask & sub->bit)) return shm_svc_sub_corrupt_(sub);
        *record_out = record;
        *length_out = length; /* the checked copy: the header's length is never read again (a peer may rewrite it) */
        *sequence_out = sequence;
        *generation_out = generation;
        return 1;
    }
    return 0;
}

/* Clears this subscriber's bit in a record it references (the publisher is woken if that freed it): 0, or -EBADMSG if the bit was not there. */
static inline int shm_svc_unreference_(struct shm_subscriber *sub, uint32_t p, char *record)
{
    uint64_t was = __atomic_fetch_and(SHM_SVC_WORD(record, SHM_SVC_MASK, uint64_t), ~sub->bit, __ATOMIC_SEQ_CST);
    if (!shm_svc_mask_ok_(sub->service, was) || !(was & sub->bit)) return shm_svc_sub_corrupt_(sub);
    if (was == sub->bit) shm_svc_wake_(shm_svc_publisher_slot_(sub->service, p), SHM_SVC_SPACE_SEQUENCE, SHM_SVC_PUBLISHER_SLEEPING);
    return 0;
}

/* Attaches a subscriber (SHM_SVC_BLOCK or SHM_SVC_DROP_OLDEST) to a free subscriber slot: 0, -EBUSY, -EAGAIN (being removed), -EBADMSG, -EINVAL. */
static inline int shm_subscriber_attach(struct shm_subscriber *sub, struct shm_service *s, int policy)
{
    memset(sub, 0, sizeof *sub);
    if (policy != SHM_SVC_BLOCK && policy != SHM_SVC_DROP_OLDEST) return -EINVAL;
    sub->service = s;
    sub->drop_oldest = policy == SHM_SVC_DROP_OLDEST;
    uint64_t attaching = shm_svc_self_(SHM_SVC_ATTACHING);
    sub->owner = shm_svc_with_state_(attaching, SHM_SVC_ATTACHED);
    uint32_t index = UINT32_MAX;
    for (uint32_t i = 0; i < s->max_subscribers && index == UINT32_MAX; i++) {
        uint64_t seen;
        if (!shm_svc_owner_(shm_svc_subscriber_slot_(s, i), &seen)) return shm_svc_sub_corrupt_(sub);
        if (shm_svc_take_slot_(shm_svc_subscriber_slot_(s, i), seen, attaching)) index = i;
    }
    if (index == UINT32_MAX) return -EBUSY;
    sub->index = index;
    sub->bit = (uint64_t)1 << index;
    sub->slot = shm_svc_subscriber_slot_(s, index);
    sub->generation = __atomic_load_n(SHM_SVC_WORD(sub->slot, SHM_SVC_GENERATION, uint32_t), __ATOMIC_ACQUIRE) + 1;
    __atomic_store_n(SHM_SVC_WORD(sub->slot, SHM_SVC_GENERATION, uint32_t), sub->generation, __ATOMIC_RELEASE);
    __atomic_store_n(SHM_SVC_WORD(sub->slot, SHM_SVC_SUB_POLICY, uint32_t), (uint32_t)policy, __ATOMIC_RELEASE);
    for (uint32_t p = 0; p < s->max_publishers; p++) {
        char *queue = shm_svc_queue_(s, p, index);
        uint64_t head = __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_HEAD, uint64_t), __ATOMIC_ACQUIRE);
        __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), head, __ATOMIC_RELEASE);
        __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_MISSED, uint64_t), 0, __ATOMIC_RELEASE);
        __atomic_store_n(SHM_SVC_WORD(queue, SHM_SVC_FIRST, uint64_t), 0, __ATOMIC_RELEASE);
        sub->tails[p] = head;
    }
    uint64_t expected = attaching;
    if (!__atomic_compare_exchange_n(SHM_SVC_WORD(sub->slot, SHM_SVC_OWNER, uint64_t), &expected, sub->owner, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return shm_svc_sub_corrupt_(sub);
    __atomic_add_fetch(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(SHM_SVC_WORD(s->base, SHM_SVC_RETIRED, uint32_t), __ATOMIC_SEQ_CST) != 0) {
        expected = sub->owner;
        __atomic_compare_exchange_n(SHM_SVC_WORD(sub->slot, SHM_SVC_OWNER, uint64_t), &expected, shm_svc_with_state_(sub->owner, SHM_SVC_DEPARTED), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        return -EAGAIN;
    }
    return 0;
}

static inline int shm_svc_has_data_(struct shm_subscriber *sub)
{
    for (uint32_t p = 0; p < sub->service->max_publishers; p++) {
        char *queue = shm_svc_queue_(sub->service, p, sub->index);
        uint64_t tail = sub->drop_oldest ? __atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_TAIL, uint64_t), __ATOMIC_ACQUIRE) : sub->tails[p];
        if (__atomic_load_n(SHM_SVC_WORD(queue, SHM_SVC_HEAD, uint64_t), __ATOMIC_ACQUIRE) != tail) return 1;
    }
    return 0;
}

/*
 * Takes the next sample (publishers in turn, each one's in order), waiting up to `timeout_ns` (negative:
 * for ever): 0 with *sample filled (release it with shm_subscriber_release); -ETIMEDOUT; -EBADMSG.
 */
static inline int shm_subscriber_receive(struct shm_subscriber *sub, int64_t timeout_ns, struct shm_sample *sample)
{
    struct shm_service *s = sub->service;
    memset(sample, 0, sizeof *sample); /* releasing a sample no receive filled is -EINVAL */
    if (sub->corrupt) return -EBADMSG;
    int64_t until = timeout_ns < 0 ? INT64_MAX : shm_svc_now_ns_() + timeout_ns;
    for (int spin = 0;; spin++) {
        for (uint32_t k = 0; k < s->max_publishers; k++) {
            uint32_t p = (sub->next + k) % s->max_publishers;
            char *record;
            uint64_t sequence;
            uint32_t length, generation;
            int popped = shm_svc_pop_(sub, p, &record, &length, &sequence, &generation);
            if (popped < 0) return popped;
            if (!popped) continue;
            uint64_t previous;
            if (sub->publisher_generations[p] == generation && sub->last_sequences[p] > 0) {
                previous = sub->last_sequences[p];
            } else {
                uint64_t first = __atomic_load_n(SHM_SVC_WORD(shm_svc_queue_(s, p, sub->index), SHM_SVC_FIRST, uint64_t), __ATOMIC_ACQUIRE);
                if (first < 1) return shm_svc_sub_corrupt_(sub);
                previous = first - 1;
            }
            if (sequence <= previous || (!sub->drop_oldest && sequence != previous + 1)) return shm_svc_sub_corrupt_(sub);
            sub->publisher_generations[p] = generation;
            sub->last_sequences[p] = sequence;
            sub->next = (p + 1) % s->max_publishers;
            sample->data = record + SHM_SVC_RECORD_HEADER;
            sample->length = length;
            sample->publisher = p;
            sample->sequence = sequence;
            sample->missed = sequence - previous - 1;
            sample->timestamp = *SHM_SVC_WORD(record, SHM_SVC_TIMESTAMP, int64_t);
            sample->record_ = record;
            return 0;
        }
        if (shm_svc_now_ns_() >= until) return -ETIMEDOUT;
        if (spin < 200) { SHM_SVC_PAUSE_(); continue; }
        uint32_t *sequence = SHM_SVC_WORD(sub->slot, SHM_SVC_WAKE_SEQUENCE, uint32_t);
        uint32_t seen = __atomic_load_n(sequence, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(SHM_SVC_WORD(sub->slot, SHM_SVC_SUBSCRIBER_SLEEPING, uint32_t), 1, __ATOMIC_SEQ_CST);
        if (!shm_svc_has_data_(sub)) shm_svc_futex_wait_(sequence, seen, until);
        __atomic_sub_fetch(SHM_SVC_WORD(sub->slot, SHM_SVC_SUBSCRIBER_SLEEPING, uint32_t), 1, __ATOMIC_SEQ_CST);
    }
}

/* Releases a received sample: 0, -EINVAL (not a sample, or released already), -EBADMSG (another process cleared this subscriber's reference). */
static inline int shm_subscriber_release(struct shm_subscriber *sub, struct shm_sample *sample)
{
    if (!sample->record_) return -EINVAL;
    char *record = sample->record_;
    sample->record_ = NULL;
    return shm_svc_unreference_(sub, sample->publisher, record);
}

/*
 * Leaves the slot: releases what is queued (release held samples first), marks the slot leaving, then
 * for each attached publisher waits (up to 1 s) for a publish in flight, drains again and marks this
 * generation cleaned there, then marks the slot departed: it is free at once.
 */
static inline void shm_subscriber_detach(struct shm_subscriber *sub)
{
    struct shm_service *s = sub->service;
    if (!sub->slot) return;
    char *record;
    uint64_t sequence;
    uint32_t length, generation;
    for (uint32_t p = 0; p < s->max_publishers && !sub->corrupt; p++) {
        while (shm_svc_pop_(sub, p, &record, &length, &sequence, &generation) == 1 && shm_svc_unreference_(sub, p, record) == 0) {}
    }
    uint64_t expected = sub->owner, leaving = shm_svc_with_state_(sub->owner, SHM_SVC_LEAVING);
    if (__atomic_compare_exchange_n(SHM_SVC_WORD(sub->slot, SHM_SVC_OWNER, uint64_t), &expected, leaving, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
        int64_t until = shm_svc_now_ns_() + 1000000000;
        for (uint32_t p = 0; p < s->max_publishers && !sub->corrupt; p++) {
            char *slot = shm_svc_publisher_slot_(s, p);
            uint64_t owner;
            if (!shm_svc_owner_(slot, &owner) || shm_svc_state_of_(owner) != SHM_SVC_ATTACHED) continue;
            uint32_t *publishing = SHM_SVC_WORD(slot, SHM_SVC_PUBLISHING, uint32_t);
            uint32_t seen = __atomic_load_n(publishing, __ATOMIC_SEQ_CST);
            int waited = 1;
            while ((seen & 1) && __atomic_load_n(publishing, __ATOMIC_SEQ_CST) == seen) {
                if (shm_svc_now_ns_() >= until || !shm_svc_alive_(owner)) { waited = 0; break; }
                struct timespec millisecond = {0, 1000000};
                nanosleep(&millisecond, NULL);
            }
            if (!waited) continue; /* that publisher cleans this slot when it next looks */
            while (shm_svc_pop_(sub, p, &record, &length, &sequence, &generation) == 1 && shm_svc_unreference_(sub, p, record) == 0) {}
            if (!sub->corrupt && __atomic_load_n(SHM_SVC_WORD(slot, SHM_SVC_OWNER, uint64_t), __ATOMIC_SEQ_CST) == owner) {
                __atomic_store_n(SHM_SVC_WORD(shm_svc_queue_(s, p, sub->index), SHM_SVC_CLEANED, uint32_t), sub->generation, __ATOMIC_RELEASE);
            }
        }
        expected = leaving;
        __atomic_compare_exchange_n(SHM_SVC_WORD(sub->slot, SHM_SVC_OWNER, uint64_t), &expected, shm_svc_with_state_(sub->owner, SHM_SVC_DEPARTED), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(SHM_SVC_WORD(s->base, SHM_SVC_MEMBERSHIP, uint32_t), 1, __ATOMIC_SEQ_CST);
    }
    for (uint32_t p = 0; p < s->max_publishers; p++) shm_svc_wake_(shm_svc_publisher_slot_(s, p), SHM_SVC_SPACE_SEQUENCE, SHM_SVC_PUBLISHER_SLEEPING);
    sub->slot = NULL;
}

#endif /* SHM_SERVICES_SECTION_ */

/* ================================================================================================
 * BLACKBOARD (service kind 3, service layout version 1)
 *
 * A table of `keys` entries fixed at creation (.NET's BlackboardService), each holding the latest value
 * of `value_size` bytes; one writer at a time; a seqlock per entry, so a writer never waits for readers
 * and a reader never returns a value torn between two writes. Same segment naming, header and handle
 * table as the services above; the layout is documented with its reasons in
 * src/Shm.Interop/Services/BlackboardLayout.cs. Uses the services section's helpers (owner words,
 * liveness, futex); needs _GNU_SOURCE in strict C, as that section does.
 *
 *   header    as above, with kind 3; configuration at 64: u32 keys (1..2^20), 68 u32 value size
 *             (1..2^20), keys x stride at most 2^30
 *   8192      writer slot: u64 owner word (0 free; 1 attaching, 2 attached)
 *   8256      entries, stride align64(16 + value size), entry k at 8256 + k x stride
 *   size      the end of the last entry rounded up to 4096 (and equal to the header's segment size)
 *   entry     0 u32 sequence (even: stable, odd: a write in flight, 0: never written, the value is zeros),
 *             4 u32 waiters (readers asleep on the sequence), 8 u32 torn by (pid of a writer that died
 *             writing this value, or 0), 16 the value
 *
 * Write: sequence = s + 1, release fence, torn by = 0, the value, sequence = s + 2 (release), full fence,
 * futex wake if waiters != 0. Read: s1 = sequence (acquire); odd: retry; copy value and torn by; acquire
 * fence; sequence != s1: retry. A reader that keeps meeting an odd sequence looks at the writer slot:
 * a dead owner (or none) with the sequence still odd is reported, never waited for. A writer taking the
 * slot of a dead one writes that pid to `torn by` of each entry it left odd and makes the sequence even.
 *
 * shm_blackboard_open maps the segment without taking a handle slot: the name stays while a .NET
 * participant or a writer (C or .NET) holds it; the mapping stays valid regardless.
 * ================================================================================================ */
#ifndef SHM_BLACKBOARD_SECTION_
#define SHM_BLACKBOARD_SECTION_

#include <sched.h>

#define SHM_SVC_BLACKBOARD 3u
#define SHM_BB_KEYS 64
#define SHM_BB_VALUE_SIZE 68
#define SHM_BB_WRITER 8192
#define SHM_BB_ENTRIES 8256
#define SHM_BB_SEQUENCE 0
#define SHM_BB_WAITERS 4
#define SHM_BB_TORN_BY 8
#define SHM_BB_VALUE 16

struct shm_blackboard {
    char *base;
    size_t size;
    uint32_t keys, value_size;
    uint64_t stride;
    uint64_t writer;      /* this process's owner word while it holds the writer slot, else 0 */
    uint32_t *sequences;  /* the writer's private copy of each entry's sequence */
    int32_t dead_writer;  /* after -EOWNERDEAD: the pid of the writer that died mid-write */
};

static inline char *shm_bb_entry_(const struct shm_blackboard *b, uint32_t key) { return b->base + SHM_BB_ENTRIES + (size_t)key * b->stride; }

/*
 * Opens the blackboard `name` (without the prefix): maps it and checks its header and configuration once.
 * 0; -ENOENT, -EACCES, -EAGAIN (not ready yet), -EBADMSG (not a blackboard of this layout), -EINVAL.
 */
static inline int shm_blackboard_open(struct shm_blackboard *b, const char *name)
{
    memset(b, 0, sizeof *b);
    if (!name || !*name || strchr(name, '/') || strlen(name) + sizeof SHM_SVC_PREFIX > 256) return -EINVAL;
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s%s", SHM_SVC_PREFIX, name);
    int fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return -EBADMSG; }
    if (st.st_size == 0) { close(fd); return -EAGAIN; }
    if (st.st_size < SHM_BB_ENTRIES) { close(fd); return -EBADMSG; }
    void *mapped = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mapped == MAP_FAILED) return -errno;
    char *base = (char *)mapped;
    int error = -EBADMSG;
    uint32_t state = __atomic_load_n(SHM_SVC_WORD(base, SHM_SVC_STATE, uint32_t), __ATOMIC_ACQUIRE);
    uint32_t keys = __atomic_load_n(SHM_SVC_WORD(base, SHM_BB_KEYS, uint32_t), __ATOMIC_ACQUIRE);
    uint32_t value_size = __atomic_load_n(SHM_SVC_WORD(base, SHM_BB_VALUE_SIZE, uint32_t), __ATOMIC_ACQUIRE);
    uint64_t stride = shm_svc_align64_(16 + (uint64_t)value_size);
    if (state != SHM_SVC_READY) { error = state == 0 || state == 0x54494E49u ? -EAGAIN : -EBADMSG; goto fail; }
    if (__atomic_load_n(SHM_SVC_WORD(base, SHM_SVC_MAGIC_AT, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_MAGIC
        || __atomic_load_n(SHM_SVC_WORD(base, SHM_SVC_VERSION_AT, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_VERSION
        || __atomic_load_n(SHM_SVC_WORD(base, SHM_SVC_KIND, uint32_t), __ATOMIC_ACQUIRE) != SHM_SVC_BLACKBOARD
        || __atomic_load_n(SHM_SVC_WORD(base, SHM_SVC_SEGMENT, uint64_t), __ATOMIC_ACQUIRE) != (uint64_t)st.st_size
        || keys < 1 || keys > (1u << 20) || value_size < 1 || value_size > (1u << 20) || keys * stride > (1ull << 30)
        || ((SHM_BB_ENTRIES + keys * stride + 4095) & ~(uint64_t)4095) != (uint64_t)st.st_size) goto fail;
    b->base = base;
    b->size = (size_t)st.st_size;
    b->keys = keys;
    b->value_size = value_size;
    b->stride = stride;
    return 0;
fail:
    munmap(base, (size_t)st.st_size);
    return error;
}

/* Checks the writer slot while `key`'s sequence is odd (`seen`): 0 if a live writer holds it (or the sequence moved); -EOWNERDEAD (b->dead_writer set) or -EBADMSG otherwise. */
static inline int shm_bb_check_writer_(struct shm_blackboard *b, uint32_t key, uint32_t seen)
{
    uint64_t owner = __atomic_load_n(SHM_SVC_WORD(b->base, SHM_BB_WRITER, uint64_t), __ATOMIC_ACQUIRE);
    if (!shm_svc_valid_owner_(owner) || (owner != 0 && shm_svc_state_of_(owner) != SHM_SVC_ATTACHING && shm_svc_state_of_(owner) != SHM_SVC_ATTACHED)) return -EBADMSG;
    if (owner != 0 && shm_svc_alive_(owner)) return 0;
    if (__atomic_load_n(SHM_SVC_WORD(shm_bb_entry_(b, key), SHM_BB_SEQUENCE, uint32_t), __ATOMIC_ACQUIRE) != seen) return 0;
    if (owner == 0) return -EBADMSG; /* odd with no writer: no write can be in flight */
    b->dead_writer = shm_svc_pid_of_(owner);
    return -EOWNERDEAD;
}

/*
 * Copies entry `key`'s latest whole value into `value` (`size` must be the value size), waiting up to
 * `timeout_ns` for a write in flight (0: never sleeps; negative: for ever). 0; -ETIMEDOUT; -EOWNERDEAD
 * (the writer died writing this entry: b->dead_writer names it); -EBADMSG; -EINVAL.
 */
static inline int shm_blackboard_read(struct shm_blackboard *b, uint32_t key, void *value, size_t size, int64_t timeout_ns)
{
    if (!b->base || key >= b->keys || size != b->value_size || !value) return -EINVAL;
    char *entry = shm_bb_entry_(b, key);
    uint32_t *sequence = SHM_SVC_WORD(entry, SHM_BB_SEQUENCE, uint32_t);
    int64_t until = -1; /* read the clock only once the read has to wait: the fast path makes no call */
    for (int attempt = 0;; attempt++) {
        uint32_t seen = __atomic_load_n(sequence, __ATOMIC_ACQUIRE);
        if (!(seen & 1)) {
            memcpy(value, entry + SHM_BB_VALUE, size);
            uint32_t torn = __atomic_load_n(SHM_SVC_WORD(entry, SHM_BB_TORN_BY, uint32_t), __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(sequence, __ATOMIC_RELAXED) == seen) {
                if (torn == 0) return 0;
                if (torn >= 4194304) return -EBADMSG;
                b->dead_writer = (int32_t)torn;
                return -EOWNERDEAD;
            }
        }
        if (attempt < 64) { SHM_SVC_PAUSE_(); continue; }
        if (seen & 1) {
            int error = shm_bb_check_writer_(b, key, seen);
            if (error != 0) return error;
        }
        int64_t now = shm_svc_now_ns_();
        if (until < 0) until = timeout_ns < 0 ? INT64_MAX : (timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns);
        if (now >= until) return -ETIMEDOUT;
        if (seen & 1) {
            uint32_t *waiters = SHM_SVC_WORD(entry, SHM_BB_WAITERS, uint32_t);
            __atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
            shm_svc_futex_wait_(sequence, seen, until - now > 10000000 ? now + 10000000 : until);
            __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
        } else {
            sched_yield();
        }
    }
}

/*
 * Takes the writer slot (free, or held by a dead process, whose half-written entries are then marked
 * with its pid and made even). 0; -EBUSY (a live writer holds it); -EBADMSG; -ENOMEM.
 */
static inline int shm_blackboard_writer_attach(struct shm_blackboard *b)
{
    if (!b->base || b->writer) return -EINVAL;
    uint64_t *slot = SHM_SVC_WORD(b->base, SHM_BB_WRITER, uint64_t);
    uint64_t me = shm_svc_self_(SHM_SVC_ATTACHED), attaching = shm_svc_with_state_(me, SHM_SVC_ATTACHING);
    b->sequences = (uint32_t *)malloc((size_t)b->keys * sizeof *b->sequences);
    if (!b->sequences) return -ENOMEM;
    uint64_t seen;
    do {
        seen = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        int error = !shm_svc_valid_owner_(seen) || (seen != 0 && shm_svc_state_of_(seen) != SHM_SVC_ATTACHING && shm_svc_state_of_(seen) != SHM_SVC_ATTACHED) ? -EBADMSG
            : seen != 0 && shm_svc_alive_(seen) ? -EBUSY : 0;
        if (error != 0) { free(b->sequences); b->sequences = NULL; return error; }
    } while (!__atomic_compare_exchange_n(slot, &seen, attaching, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    for (uint32_t key = 0; key < b->keys; key++) {
        char *entry = shm_bb_entry_(b, key);
        uint32_t *sequence = SHM_SVC_WORD(entry, SHM_BB_SEQUENCE, uint32_t);
        uint32_t s = __atomic_load_n(sequence, __ATOMIC_ACQUIRE);
        if (s & 1) {
            __atomic_store_n(SHM_SVC_WORD(entry, SHM_BB_TORN_BY, uint32_t), seen == 0 ? 0u : (uint32_t)shm_svc_pid_of_(seen), __ATOMIC_RELEASE);
            __atomic_store_n(sequence, ++s, __ATOMIC_SEQ_CST);
            syscall(SYS_futex, sequence, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        }
        b->sequences[key] = s;
    }
    __atomic_compare_exchange_n(slot, &attaching, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    b->writer = me;
    return 0;
}

/* Writes `value` (`size` must be the value size) as entry `key`'s latest value; never waits. 0; -EINVAL (no writer slot held, bad key or size). */
static inline int shm_blackboard_write(struct shm_blackboard *b, uint32_t key, const void *value, size_t size)
{
    if (!b->writer || key >= b->keys || size != b->value_size || !value) return -EINVAL;
    char *entry = shm_bb_entry_(b, key);
    uint32_t *sequence = SHM_SVC_WORD(entry, SHM_BB_SEQUENCE, uint32_t);
    uint32_t s = b->sequences[key];
    __atomic_store_n(sequence, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* odd before any byte of the value changes */
    __atomic_store_n(SHM_SVC_WORD(entry, SHM_BB_TORN_BY, uint32_t), 0u, __ATOMIC_RELAXED);
    memcpy(entry + SHM_BB_VALUE, value, size);
    __atomic_store_n(sequence, s + 2, __ATOMIC_RELEASE);
    b->sequences[key] = s + 2;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* even before waiters is read: a reader counted after sees it */
    if (__atomic_load_n(SHM_SVC_WORD(entry, SHM_BB_WAITERS, uint32_t), __ATOMIC_RELAXED) != 0) syscall(SYS_futex, sequence, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return 0;
}

/* Gives the writer slot back, if this process holds it. */
static inline void shm_blackboard_writer_detach(struct shm_blackboard *b)
{
    if (!b->writer) return;
    uint64_t mine = b->writer;
    __atomic_compare_exchange_n(SHM_SVC_WORD(b->base, SHM_BB_WRITER, uint64_t), &mine, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    b->writer = 0;
    free(b->sequences);
    b->sequences = NULL;
}

/* Gives the writer slot back and unmaps. */
static inline void shm_blackboard_close(struct shm_blackboard *b)
{
    if (!b->base) return;
    shm_blackboard_writer_detach(b);
    munmap(b->base, b->size);
    b->base = NULL;
}

#endif /* SHM_BLACKBOARD_SECTION_ */

#endif
