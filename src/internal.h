/*
 * Internal declarations of ndshm: the shared-memory layout, the platform interface and the
 * helpers shared between modules. Nothing here is API. The layout is described in
 * docs/protocol.md and the protocol at the top of src/ring.c.
 */
#ifndef NDSHM_INTERNAL_H
#define NDSHM_INTERNAL_H

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ndshm/ndshm.h"

#define NDSHM_INTERNAL __attribute__((visibility("hidden")))

/* Atomics in shared memory must be lock-free: a lock-based fallback would live in one
 * process's memory and protect nothing across processes. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
static_assert(sizeof(_Atomic uint64_t) == 8, "atomic u64 must be 8 bytes");

/* A broken internal invariant aborts with file and line; bad input never does. */
#define NDSHM__INVARIANT(cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "ndshm: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NDSHM__CACHE_LINE 64
#define NDSHM__PAGE       4096u

/* ---------------------------------------------------------------------------------------------
 * Shared-memory layout, version 1. Fixed-width, naturally aligned fields only.
 * ------------------------------------------------------------------------------------------- */
#define NDSHM__CTL_MAGIC  UINT64_C(0x314c54434d48534e) /* "NSHMCTL1" little-endian */
#define NDSHM__DATA_MAGIC UINT64_C(0x3141544144485352) /* "RSHDATA1" */
#define NDSHM__LAYOUT     1u
#define NDSHM__READY      UINT32_C(0x52454459) /* "YDER": control segment fully initialised */
#define NDSHM__UNSEALED   UINT64_MAX

/* Control segment "/ndshm.<name>": one page, stable for the channel's life. Each line is
 * written by one side only. */
struct ndshm__ctl {
    /* line 0: identity, immutable once ready */
    uint64_t magic;
    uint32_t layout;
    uint32_t ctl_size;
    _Atomic uint32_t ready; /* NDSHM__READY, stored last with release */
    uint32_t mode;
    uint64_t created_ns; /* CLOCK_REALTIME */
    /* line 1: writer identity (written by a writer taking over, rarely) */
    /* the writer's identity in one word, claimed with a CAS: (start time mod 2^32) << 32 | pid,
     * start time in clock ticks since boot (/proc/<pid>/stat field 22); 0 = no writer */
    alignas(64) _Atomic uint64_t writer;
    _Atomic uint64_t takeovers;
    _Atomic uint64_t reallocs;
    /* line 2: publication state, written by the writer once per publish */
    alignas(64) _Atomic uint64_t head; /* last fully published version, 0 = none */
    _Atomic uint64_t gen;              /* generation of the current data segment */
    /* line 3: futex word, bumped by the writer on every publish */
    alignas(64) _Atomic uint32_t notify;
    /* line 4: sleeping readers, written by readers */
    alignas(64) _Atomic uint32_t waiters;
    /* line 5..: the channel name, to recognise foreign or renamed segments */
    alignas(64) char name[NDSHM_NAME_MAX + 1];
};
static_assert(sizeof(struct ndshm__ctl) <= NDSHM__PAGE, "control segment fits a page");
static_assert(offsetof(struct ndshm__ctl, head) % 64 == 0, "head on its own line");
static_assert(offsetof(struct ndshm__ctl, notify) % 64 == 0, "notify on its own line");
static_assert(offsetof(struct ndshm__ctl, waiters) % 64 == 0, "waiters on its own line");
#define NDSHM__CTL_SIZE NDSHM__PAGE

/* Data segment "/ndshm.<name>@<generation>": header, then slot_count slots of slot_stride. */
struct ndshm__data {
    uint64_t magic;
    uint32_t layout;
    uint32_t hdr_size;
    uint64_t generation;
    uint64_t first_version; /* first version published into this segment */
    uint64_t seg_size;
    uint64_t slots_offset; /* from the segment start */
    uint64_t slot_stride;
    uint64_t slot_capacity; /* payload bytes per slot */
    uint32_t slot_count;
    uint32_t payload_offset; /* from the slot start */
    /* last version published here once the writer moved on; NDSHM__UNSEALED while current */
    alignas(64) _Atomic uint64_t sealed;
};
static_assert(offsetof(struct ndshm__data, sealed) % 64 == 0, "sealed on its own line");
static_assert(sizeof(struct ndshm__data) % 64 == 0, "slots start on a line");

/* Slot header; the payload follows at payload_offset. Every field but seq is written by the
 * writer while seq is odd and copied by readers between two reads of seq. Only shape[0..ndim)
 * is written and read: entries past ndim hold stale values of older versions. The hot part
 * (seq ... ndim and shape[0..2]) is the slot's first cache line, so a header of up to three
 * dimensions costs a reader one line. Everything after seq has the layout of struct
 * ndshm__meta, which ndshm__slot_read() copies it into. */
#define NDSHM__SLOT_LINE_DIMS 3 /* shape entries in the slot's first cache line */
struct ndshm__slot {
    _Atomic uint64_t seq; /* even: stable; odd: being written */
    uint64_t version;     /* 0 = invalid (repaired or cancelled) */
    uint64_t publish_ns;
    uint64_t nbytes;
    int32_t dtype;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
};
static_assert(sizeof(struct ndshm__slot) == 296, "slot header layout");
static_assert(offsetof(struct ndshm__slot, shape) + NDSHM__SLOT_LINE_DIMS * sizeof(uint64_t) ==
                  NDSHM__CACHE_LINE,
              "seq..ndim and shape[0..2] fill the slot's first cache line");
#define NDSHM__SLOT_HDR 320u /* header rounded to whole cache lines */
static_assert(sizeof(struct ndshm__slot) <= NDSHM__SLOT_HDR, "payload after the header");

/* ---------------------------------------------------------------------------------------------
 * Platform interface: every OS call goes through this table so tests can inject faults.
 * Functions return 0 (or a non-negative value) on success and -errno on failure.
 * ------------------------------------------------------------------------------------------- */
/* What fstat() tells about an open segment. */
struct ndshm__fstat {
    uint64_t size;
    uint64_t dev;
    uint64_t ino;
    int64_t ctime_ns; /* status change time (CLOCK_REALTIME) */
    uint32_t type;    /* NDSHM__FT_REG for a regular file, NDSHM__FT_OTHER for anything else */
    uint32_t mode;    /* permission bits (07777) */
    uint32_t uid;
    uint32_t gid;
};
#define NDSHM__FT_REG   1u
#define NDSHM__FT_OTHER 2u

/* Kernel byte-range locks on open file descriptions (Linux OFD locks): held by an open file,
 * released by the kernel when the last descriptor of it closes, whatever kills the process,
 * and comparable across pid namespaces. */
enum ndshm__lock {
    NDSHM__UNLOCK = 0,
    NDSHM__RDLOCK = 1,
    NDSHM__WRLOCK = 2,
};

struct ndshm__os {
    /* fd or -errno; always O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, so a planted symlink is
     * refused and a planted FIFO cannot block the caller */
    int (*open)(const char *seg, int create, int writable, uint32_t mode);
    int (*unlink)(const char *seg);
    int (*close)(int fd);
    int (*fstat)(int fd, struct ndshm__fstat *st);
    /* lstat() of a segment by name (no open: never blocks) */
    int (*stat)(const char *seg, struct ndshm__fstat *st);
    int (*ftruncate)(int fd, uint64_t size);
    int (*fallocate)(int fd, uint64_t size);
    int (*fchmod)(int fd, uint32_t mode);
    void *(*mmap)(int fd, uint64_t size, int writable, int *err);
    int (*munmap)(void *addr, uint64_t size);
    int (*futex_wait)(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);
    int (*futex_wake)(_Atomic uint32_t *word);
    uint64_t (*proc_start)(int64_t pid); /* 0 = no such process / unknown */
    int (*pid_exists)(int64_t pid);      /* 1 / 0 */
    /* calls fn for each entry of the shm directory; stops when fn returns non-zero */
    int (*list)(int (*fn)(const char *entry, void *arg), void *arg);
    /* Take (or with NDSHM__UNLOCK drop) a one-byte OFD lock at `off`, never waiting:
     * 0, -EAGAIN if another open file holds a conflicting lock, or -errno. */
    int (*lock)(int fd, uint64_t off, enum ndshm__lock type);
    /* 1 if another open file holds a lock at `off` that conflicts with `type`, 0 if not, or
     * -errno. */
    int (*lock_held)(int fd, uint64_t off, enum ndshm__lock type);
    /* Number of OFD locks covering byte `off` of the file (dev, ino), from /proc/locks:
     * best-effort, -errno if unknown. */
    int (*lock_count)(uint64_t dev, uint64_t ino, uint64_t off);
};
/* Atomic: a test may swap the table while liburcu's call_rcu thread unmaps a mapping. */
NDSHM_INTERNAL extern const struct ndshm__os *_Atomic ndshm__os;
NDSHM_INTERNAL extern const struct ndshm__os ndshm__os_linux;
/* For tests: replace the platform (NULL restores the default). */
NDSHM_API void ndshm__os_set(const struct ndshm__os *os);

NDSHM_INTERNAL int ndshm__errno_status(int neg_errno);
/* NDSHM_E_DIR if $NDSHM_DIR is set but unusable, else NDSHM_OK. Every entry point that
 * touches the namespace checks it first. */
NDSHM_INTERNAL int ndshm__dir_status(void);
NDSHM_INTERNAL int64_t ndshm__self_pid(void);

/* ---------------------------------------------------------------------------------------------
 * Segments (segment.c)
 * ------------------------------------------------------------------------------------------- */
#define NDSHM__SEG_MAX (NDSHM_NAME_MAX + 32)
/* ndshm_name_check(name), then ndshm__dir_status(). */
NDSHM_INTERNAL int ndshm__name_dir_check(const char *name);
NDSHM_INTERNAL void ndshm__ctl_name(char *out, const char *name);
NDSHM_INTERNAL void ndshm__data_name(char *out, const char *name, uint64_t gen);

struct ndshm__map {
    void *base;
    uint64_t size;
};
NDSHM_INTERNAL int ndshm__map_ctl(const char *name, int writable, struct ndshm__map *out,
                                  uint32_t *mode);
/* As ndshm__map_ctl, but waits up to ndshm__ready_wait_ns (250 ms) for a channel being
 * created. The fuzzer sets the bound to 0 so that not-ready inputs stay fast. */
NDSHM_INTERNAL extern uint64_t ndshm__ready_wait_ns;
NDSHM_INTERNAL int ndshm__map_ctl_wait(const char *name, int writable, struct ndshm__map *out,
                                       uint32_t *mode);
NDSHM_INTERNAL int ndshm__create_ctl(const char *name, uint32_t mode, struct ndshm__map *out);

/* Validated, private copy of a data segment's geometry (never re-read from shared memory). */
struct ndshm__geom {
    uint64_t generation;
    uint64_t first_version;
    uint64_t seg_size;
    uint64_t slots_offset;
    uint64_t slot_stride;
    uint64_t slot_capacity;
    uint32_t slot_count;
    uint32_t payload_offset;
};
NDSHM_INTERNAL int ndshm__geom_plan(uint32_t slots, uint64_t capacity, struct ndshm__geom *g);
NDSHM_INTERNAL int ndshm__create_data(const char *name, const struct ndshm__geom *g, uint32_t mode,
                                      struct ndshm__map *out);
NDSHM_INTERNAL int ndshm__map_data(const char *name, uint64_t gen, int writable,
                                   struct ndshm__map *out, struct ndshm__geom *g);
NDSHM_INTERNAL int ndshm__validate_data(const void *base, uint64_t size, uint64_t gen,
                                        struct ndshm__geom *g);
NDSHM_INTERNAL int ndshm__validate_ctl(const void *base, uint64_t size, const char *name);
NDSHM_INTERNAL void ndshm__unmap(struct ndshm__map *m);
NDSHM_INTERNAL uint64_t ndshm__self_identity(void);
NDSHM_INTERNAL int ndshm__identity_alive(uint64_t identity);
NDSHM_INTERNAL int ndshm__writer_alive(const struct ndshm__ctl *ctl);
NDSHM_INTERNAL int ndshm__ctl_creator_dead(const char *name);

static inline struct ndshm__slot *ndshm__slot_at(void *base, const struct ndshm__geom *g,
                                                 uint64_t version)
{
    /* Through void *: slots_offset and slot_stride are validated multiples of 64, so the
     * result is aligned (clang's -Wcast-align cannot know that). */
    return (struct ndshm__slot *)(void *)((char *)base + g->slots_offset +
                                          (version % g->slot_count) * g->slot_stride);
}

/* ---------------------------------------------------------------------------------------------
 * The slot protocol (ring.c)
 * ------------------------------------------------------------------------------------------- */
NDSHM_INTERNAL void ndshm__slot_begin(struct ndshm__slot *s);
NDSHM_INTERNAL void ndshm__slot_fill(struct ndshm__slot *s, uint64_t version, int dtype,
                                     uint32_t ndim, const uint64_t *shape, uint64_t nbytes);
NDSHM_INTERNAL void ndshm__slot_end(struct ndshm__slot *s, uint64_t publish_ns);
NDSHM_INTERNAL void ndshm__slot_invalidate(struct ndshm__slot *s);
NDSHM_INTERNAL void ndshm__store_payload(void *dst, const void *src, uint64_t n);

/* Result of one optimistic attempt at a slot. */
enum ndshm__try {
    NDSHM__GOT = 0, /* consistent copy of the wanted version */
    NDSHM__BUSY,    /* being written or changed under us: try again */
    NDSHM__NEWER,   /* the slot holds a newer version (the wanted one is gone) */
    NDSHM__OLDER,   /* the slot holds an older version (the wanted one is not here) */
    NDSHM__BAD,     /* header values fail validation against the geometry */
};
struct ndshm__meta {
    uint64_t version;
    uint64_t publish_ns;
    uint64_t nbytes;
    int32_t dtype;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
};
/* ndshm__slot_read() copies the slot header after seq straight into a meta. */
static_assert(sizeof(struct ndshm__meta) == sizeof(struct ndshm__slot) - sizeof(uint64_t),
              "meta mirrors the slot header after seq");
static_assert(offsetof(struct ndshm__meta, version) + 8 == offsetof(struct ndshm__slot, version) &&
                  offsetof(struct ndshm__meta, publish_ns) + 8 ==
                      offsetof(struct ndshm__slot, publish_ns) &&
                  offsetof(struct ndshm__meta, nbytes) + 8 ==
                      offsetof(struct ndshm__slot, nbytes) &&
                  offsetof(struct ndshm__meta, dtype) + 8 == offsetof(struct ndshm__slot, dtype) &&
                  offsetof(struct ndshm__meta, ndim) + 8 == offsetof(struct ndshm__slot, ndim) &&
                  offsetof(struct ndshm__meta, shape) + 8 == offsetof(struct ndshm__slot, shape),
              "meta field offsets = slot field offsets - 8");
/* Copy slot header (and payload into dst if dst != NULL and it fits dst_size) consistently.
 * *seq_out receives the even sequence value the copy is valid for. */
NDSHM_INTERNAL enum ndshm__try ndshm__slot_read(const struct ndshm__slot *s,
                                                const struct ndshm__geom *g, uint64_t want,
                                                void *dst, uint64_t dst_size,
                                                struct ndshm__meta *meta, uint64_t *seq_out);
NDSHM_INTERNAL int ndshm__slot_still(const struct ndshm__slot *s, uint64_t seq);
NDSHM_INTERNAL int ndshm__meta_check(const struct ndshm__meta *m, uint64_t capacity);

/* options (writer.c), channel segments (channel.c) */
NDSHM_INTERNAL int ndshm__options_read(const ndshm_options *opts, ndshm_options *out);
/* Unlink every data segment of channel `name` but generation `keep` (0 = all). */
NDSHM_INTERNAL int ndshm__unlink_data_except(const char *name, uint64_t keep);

/* reader internals used by wait.c */
NDSHM_INTERNAL struct ndshm__ctl *ndshm__reader_ctl(ndshm_reader *r);
NDSHM_INTERNAL uint64_t ndshm__reader_pos(ndshm_reader *r);
NDSHM_INTERNAL uint32_t ndshm__reader_spin_ns(ndshm_reader *r);
NDSHM_INTERNAL int ndshm__reader_gone(ndshm_reader *r);

/* wait.c */
NDSHM_INTERNAL void ndshm__notify(struct ndshm__ctl *ctl);

/* misc */
NDSHM_INTERNAL int ndshm__proc_start_parse(const char *stat, size_t len, uint64_t *start);

#endif /* NDSHM_INTERNAL_H */
