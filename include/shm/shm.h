/*
 * shm.h: the memory layouts Shm (https://github.com/shm-dotnet/shm) uses in shared regions, so that
 * C programs can use the same primitives as .NET processes. Header only; link with -lpthread on
 * glibc before 2.34.
 *
 * Every primitive occupies SHM_PRIMITIVE_SIZE (64) bytes at an 8-byte aligned offset:
 *
 *   offset 0  uint32 state         0 = uninitialised, SHM_INITIALISING, SHM_READY
 *   offset 4  uint32 kind_version  (kind << 16) | SHM_LAYOUT_VERSION
 *   offset 8  the primitive's own words (below)
 *
 * Only the process that moves state from 0 to SHM_INITIALISING initialises; it stores
 * kind_version, then SHM_READY, then wakes futex waiters on state. Use a primitive only when state
 * is SHM_READY and kind_version is the one you expect. All futexes are shared (no FUTEX_PRIVATE_FLAG).
 */
#ifndef SHM_SHM_H
#define SHM_SHM_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
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
#define SHM_LAYOUT_VERSION 1u

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

#ifdef __cplusplus
static_assert(sizeof(struct shm_mutex) <= SHM_PRIMITIVE_SIZE, "a primitive fits in 64 bytes");
static_assert(sizeof(struct shm_futex_mutex) == 24, "the .NET layout");
#define SHM_THREAD_LOCAL thread_local
#else
_Static_assert(sizeof(struct shm_mutex) <= SHM_PRIMITIVE_SIZE, "a primitive fits in 64 bytes");
_Static_assert(sizeof(struct shm_futex_mutex) == 24, "the .NET layout");
#define SHM_THREAD_LOCAL _Thread_local
#endif

static inline int shm_is_ready(const struct shm_header *h, enum shm_kind kind)
{
    return __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == SHM_READY &&
           __atomic_load_n(&h->kind_version, __ATOMIC_ACQUIRE) == (((uint32_t)kind << 16) | SHM_LAYOUT_VERSION);
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

#include <fcntl.h>

/* The futex mutex spins briefly before it sleeps (the channel below defines the same). */
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
 * ring of lane_capacity bytes (a power of two). Offsets in bytes:
 *
 *   header  0 state, 4 kind_version, 8 u32 lanes, 12 u32 closed, 16 u64 lane_capacity,
 *           24 i32 reader_pid, 28 u32 ever_written, 32 i64 reader_start (field 22 of /proc/PID/stat),
 *           64 u32 reader_sequence (futex), 68 u32 reader_sleeping
 *   lane i at 256 + i * (256 + lane_capacity):
 *           0 u64 head (bytes the writer committed), 8 i32 writer_pid (0: free), 12 u32 state
 *           (0 free, 1 attached, 2 completed), 16 i64 writer_start, 64 u64 tail (bytes the reader
 *           released), 128 u32 space_sequence (futex), 132 u32 writer_sleeping, 256 the ring
 *   record  u32 length, u32 flags (1: padding to the end of the ring), then length bytes; the next
 *           record starts at the next multiple of 8. A record never wraps: a padding record fills
 *           the end of the ring first.
 *
 * A writer writes the record, then publishes head (with a full fence) and, if reader_sleeping is
 * set, bumps reader_sequence and wakes it. The reader releases a record by publishing tail (full
 * fence) and, if the lane's writer_sleeping is set, bumps space_sequence and wakes it. A sleeper sets
 * its flag, reads the sequence, checks once more, then futex-waits on the sequence.
 */
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
#define SHM_LANE_TAIL 64
#define SHM_LANE_SPACE_SEQUENCE 128
#define SHM_LANE_WRITER_SLEEPING 132

#if defined(__x86_64__) || defined(__i386__)
#define SHM_PAUSE() __builtin_ia32_pause()
#else
#define SHM_PAUSE() __asm__ volatile("yield")
#endif

#define SHM_AT(base, offset, type) ((type *)((char *)(base) + (offset)))

static inline char *shm_channel_lane(char *channel, int index)
{
    return channel + 256 + (size_t)index * (256 + *SHM_AT(channel, SHM_CH_CAPACITY, uint64_t));
}

/* Field 22 of /proc/self/stat: how a peer tells this process from a later one with the same pid. */
static inline int64_t shm_self_start_time(void)
{
    char buffer[1024];
    FILE *stat = fopen("/proc/self/stat", "r");
    if (!stat) return 0;
    size_t n = fread(buffer, 1, sizeof buffer - 1, stat);
    fclose(stat);
    buffer[n] = 0;
    char *at = strrchr(buffer, ')');
    for (int field = 2; at && field < 22; field++) at = strchr(at + 1, ' ');
    return at ? strtoll(at + 1, NULL, 10) : 0;
}

static inline void shm_wake_if_sleeping(uint32_t *sequence, uint32_t *sleeping)
{
    if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(sequence, 1, __ATOMIC_SEQ_CST);
        shm_futex(sequence, FUTEX_WAKE, INT_MAX);
    }
}

static inline void shm_park(uint32_t *sequence, uint32_t *sleeping, int (*ready)(void *), void *state)
{
    uint32_t seen = __atomic_load_n(sequence, __ATOMIC_SEQ_CST);
    __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
    if (!ready(state)) {
        struct timespec slice = {0, 100000000}; /* a peer that died wakes nobody: look again every 100 ms */
        syscall(SYS_futex, sequence, FUTEX_WAIT, seen, &slice, NULL, 0);
    }
    __atomic_store_n(sleeping, 0, __ATOMIC_SEQ_CST);
}

/* Claims a free lane for this process; its index, or -1 if every lane has a writer. */
static inline int shm_channel_attach_writer(char *channel)
{
    int pid = getpid();
    for (uint32_t i = 0; i < *SHM_AT(channel, SHM_CH_LANES, uint32_t); i++) {
        char *lane = shm_channel_lane(channel, i);
        int free_ = 0;
        if (__atomic_compare_exchange_n(SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t), &free_, pid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            *SHM_AT(lane, SHM_LANE_WRITER_START, int64_t) = shm_self_start_time();
            __atomic_store_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), 1, __ATOMIC_SEQ_CST);
            __atomic_store_n(SHM_AT(channel, SHM_CH_EVER_WRITTEN, uint32_t), 1, __ATOMIC_SEQ_CST);
            return (int)i;
        }
    }
    return -1;
}

struct shm_room { char *lane; uint64_t need; uint64_t capacity; };

static inline int shm_has_room(void *state)
{
    struct shm_room *r = state;
    uint64_t head = *SHM_AT(r->lane, SHM_LANE_HEAD, uint64_t);
    uint64_t tail = __atomic_load_n(SHM_AT(r->lane, SHM_LANE_TAIL, uint64_t), __ATOMIC_ACQUIRE);
    return head + r->need - tail <= r->capacity;
}

/* Writes one message to lane `index`, waiting for room; 0, or -1 if it can never fit. */
static inline int shm_channel_write(char *channel, int index, const void *data, uint32_t length)
{
    char *lane = shm_channel_lane(channel, index), *ring = lane + 256;
    uint64_t capacity = *SHM_AT(channel, SHM_CH_CAPACITY, uint64_t), mask = capacity - 1;
    uint64_t record = (8 + (uint64_t)length + 7) & ~(uint64_t)7;
    if (record > capacity) return -1;
    uint64_t head = *SHM_AT(lane, SHM_LANE_HEAD, uint64_t);
    uint64_t offset = head & mask, padding = offset + record > capacity ? capacity - offset : 0;
    struct shm_room room = {lane, padding + record, capacity};
    for (int spin = 0; !shm_has_room(&room); spin++) {
        if (spin < 200) { SHM_PAUSE(); continue; }
        shm_park(SHM_AT(lane, SHM_LANE_SPACE_SEQUENCE, uint32_t), SHM_AT(lane, SHM_LANE_WRITER_SLEEPING, uint32_t), shm_has_room, &room);
    }
    if (padding) {
        *(uint32_t *)(ring + offset) = (uint32_t)(padding - 8);
        *(uint32_t *)(ring + offset + 4) = 1;
        head += padding;
    }
    char *at = ring + (head & mask);
    *(uint32_t *)at = length;
    *(uint32_t *)(at + 4) = 0;
    memcpy(at + 8, data, length);
    __atomic_exchange_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), head + record, __ATOMIC_SEQ_CST);
    shm_wake_if_sleeping(SHM_AT(channel, SHM_CH_READER_SEQUENCE, uint32_t), SHM_AT(channel, SHM_CH_READER_SLEEPING, uint32_t));
    return 0;
}

static inline void shm_channel_complete(char *channel, int index)
{
    __atomic_store_n(SHM_AT(shm_channel_lane(channel, index), SHM_LANE_STATE, uint32_t), 2, __ATOMIC_SEQ_CST);
    shm_wake_if_sleeping(SHM_AT(channel, SHM_CH_READER_SEQUENCE, uint32_t), SHM_AT(channel, SHM_CH_READER_SLEEPING, uint32_t));
}

/* Becomes the channel's reader; 0, or -1 if another process is. */
static inline int shm_channel_attach_reader(char *channel)
{
    int none = 0;
    if (!__atomic_compare_exchange_n(SHM_AT(channel, SHM_CH_READER_PID, int32_t), &none, getpid(), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return -1;
    *SHM_AT(channel, SHM_CH_READER_START, int64_t) = shm_self_start_time();
    return 0;
}

static inline int shm_channel_has_message(void *state)
{
    char *channel = state;
    for (uint32_t i = 0; i < *SHM_AT(channel, SHM_CH_LANES, uint32_t); i++) {
        char *lane = shm_channel_lane(channel, i);
        if (*SHM_AT(lane, SHM_LANE_TAIL, uint64_t) < __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE)) return 1;
    }
    return 0;
}

/*
 * Copies the next message (from the lanes in turn) into `buffer`, waiting for one; returns its
 * length, or -1 once every writer that attached has completed and everything was read (this simple
 * reader does not watch for writers that die: the .NET reader does).
 */
static inline long shm_channel_read(char *channel, void *buffer, uint32_t size)
{
    uint32_t lanes = *SHM_AT(channel, SHM_CH_LANES, uint32_t);
    uint64_t mask = *SHM_AT(channel, SHM_CH_CAPACITY, uint64_t) - 1;
    for (int spin = 0;; spin++) {
        int attached = 0;
        for (uint32_t i = 0; i < lanes; i++) {
            char *lane = shm_channel_lane(channel, i), *ring = lane + 256;
            uint64_t tail = *SHM_AT(lane, SHM_LANE_TAIL, uint64_t);
            uint32_t state = __atomic_load_n(SHM_AT(lane, SHM_LANE_STATE, uint32_t), __ATOMIC_ACQUIRE);
            uint64_t head = __atomic_load_n(SHM_AT(lane, SHM_LANE_HEAD, uint64_t), __ATOMIC_ACQUIRE);
            while (tail < head) {
                char *at = ring + (tail & mask);
                uint32_t length = *(uint32_t *)at;
                uint64_t next = tail + ((8 + (uint64_t)length + 7) & ~(uint64_t)7);
                if (*(uint32_t *)(at + 4) & 1) { tail = next; continue; }
                if (length > size) return -2;
                memcpy(buffer, at + 8, length);
                __atomic_exchange_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), next, __ATOMIC_SEQ_CST);
                shm_wake_if_sleeping(SHM_AT(lane, SHM_LANE_SPACE_SEQUENCE, uint32_t), SHM_AT(lane, SHM_LANE_WRITER_SLEEPING, uint32_t));
                return length;
            }
            __atomic_exchange_n(SHM_AT(lane, SHM_LANE_TAIL, uint64_t), tail, __ATOMIC_SEQ_CST);
            if (*SHM_AT(lane, SHM_LANE_WRITER_PID, int32_t) != 0 && state != 2) attached = 1;
        }
        if (!attached && __atomic_load_n(SHM_AT(channel, SHM_CH_EVER_WRITTEN, uint32_t), __ATOMIC_ACQUIRE) && !shm_channel_has_message(channel)) return -1;
        if (spin < 200) { SHM_PAUSE(); continue; }
        shm_park(SHM_AT(channel, SHM_CH_READER_SEQUENCE, uint32_t), SHM_AT(channel, SHM_CH_READER_SLEEPING, uint32_t), shm_channel_has_message, channel);
    }
}

#endif
