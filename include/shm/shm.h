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

enum shm_kind { SHM_MUTEX = 1, SHM_SEMAPHORE = 2, SHM_EVENT = 3, SHM_CONDITION = 4, SHM_CHANNEL = 5 };

struct shm_header {
    uint32_t state;
    uint32_t kind_version;
};

/* A pthread mutex made PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST and PTHREAD_MUTEX_ERRORCHECK. */
struct shm_mutex {
    struct shm_header header;
    pthread_mutex_t mutex;
};

struct shm_semaphore {
    struct shm_header header;
    uint32_t count;   /* futex: waiters sleep while it is 0 */
    uint32_t waiters; /* incremented around a sleep: post wakes only if > 0 */
    uint32_t maximum;
};

struct shm_event {
    struct shm_header header;
    uint32_t signalled; /* futex: waiters sleep while it is 0 */
    uint32_t waiters;
    uint32_t manual_reset; /* 0: each set lets one waiter pass; 1: all, until reset */
};

struct shm_condition {
    struct shm_header header;
    uint32_t sequence; /* futex: bumped by signal and broadcast */
    uint32_t waiters;
};

_Static_assert(sizeof(struct shm_mutex) <= SHM_PRIMITIVE_SIZE, "a primitive fits in 64 bytes");

static inline int shm_is_ready(const struct shm_header *h, enum shm_kind kind)
{
    return __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == SHM_READY &&
           h->kind_version == (((uint32_t)kind << 16) | SHM_LAYOUT_VERSION);
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

static inline void shm_semaphore_post(struct shm_semaphore *s)
{
    __atomic_add_fetch(&s->count, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) > 0) {
        shm_futex(&s->count, FUTEX_WAKE, 1);
    }
}

static inline void shm_semaphore_wait(struct shm_semaphore *s)
{
    for (;;) {
        uint32_t count = __atomic_load_n(&s->count, __ATOMIC_SEQ_CST);
        if (count > 0 && __atomic_compare_exchange_n(&s->count, &count, count - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            return;
        }
        if (count == 0) {
            __atomic_add_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&s->count, __ATOMIC_SEQ_CST) == 0) {
                shm_futex(&s->count, FUTEX_WAIT, 0);
            }
            __atomic_sub_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
        }
    }
}

static inline void shm_event_set(struct shm_event *e)
{
    if (__atomic_exchange_n(&e->signalled, 1, __ATOMIC_SEQ_CST) == 0 && __atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST) > 0) {
        shm_futex(&e->signalled, FUTEX_WAKE, e->manual_reset ? INT_MAX : 1);
    }
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
