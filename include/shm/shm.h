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

#endif
