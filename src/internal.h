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

/* A broken internal invariant aborts with file and line; bad input never does, and neither
 * does anything read from shared memory (another process may have written it). */
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
 * Shared-memory layout, version 2. Fixed-width, naturally aligned fields only. The protocol
 * that uses it is specified at the top of ring.c (slots), writer.c (ownership), wait.c
 * (sleeping) and segment.c (files and trust).
 * ------------------------------------------------------------------------------------------- */
#define NDSHM__CTL_MAGIC    UINT64_C(0x324c54434d48534e) /* "NSHMCTL2" little-endian */
#define NDSHM__DATA_MAGIC   UINT64_C(0x325441444d48534e) /* "NSHMDAT2" */
#define NDSHM__WAIT_MAGIC   UINT64_C(0x325449414d48534e) /* "NSHMWAI2" */
#define NDSHM__ARRAY_PREFIX UINT64_C(0x005252414d48534e) /* "NSHMARR": a shared array's file */
#define NDSHM__LAYOUT       2u
#define NDSHM__READY        UINT32_C(0x52454459) /* "YDER": control segment fully initialised */
#define NDSHM__UNSEALED     UINT64_MAX

/* Byte offsets of the kernel (OFD) locks on the control file. */
#define NDSHM__LOCK_WRITER  0 /* write lock: held by the channel's one writer for its life */
#define NDSHM__LOCK_READERS 1 /* read locks: one per reader handle (counted, best-effort) */

/* ctl.flags */
#define NDSHM__CTL_PERSISTENT 1u /* created with NDSHM_PERSISTENT: gc keeps the channel */

/* Control segment "<dir>/ndshm.<name>": one page, stable for the channel's life, written
 * only by the channel's writer (readers map it read-only). Each line is written by one
 * side only. */
struct ndshm__ctl {
    /* line 0: identity, immutable once the file is visible under its name */
    uint64_t magic;
    uint32_t layout;
    uint32_t ctl_size;
    _Atomic uint32_t ready; /* NDSHM__READY, stored last with release */
    uint32_t mode;          /* permission bits the channel was created with */
    uint64_t created_ns;    /* CLOCK_REALTIME */
    uint64_t nonce;         /* random instance number: every data segment carries it too */
    _Atomic uint32_t flags; /* NDSHM__CTL_* */
    /* line 1: the writer, written at create and takeover. Liveness is the kernel lock at
     * NDSHM__LOCK_WRITER, never these fields: they are for display and for telling readers
     * that the owner changed. */
    alignas(64) _Atomic uint64_t owner; /* ownership number, new at every takeover; 0 after a
                                           clean close (no writer) */
    _Atomic int64_t writer_pid;         /* in the writer's own pid namespace */
    _Atomic uint64_t writer_pidns;      /* inode of the writer's pid namespace, 0 = unknown */
    _Atomic int32_t wait_id;            /* SysV id of the wait page, -1 = none */
    uint32_t pad1_;
    _Atomic uint64_t takeovers;
    _Atomic uint64_t reallocs;
    /* line 2: publication state, written by the writer once per publish */
    alignas(64) _Atomic uint64_t head; /* last fully published version, 0 = none */
    _Atomic uint64_t gen;              /* generation of the current data segment */
    _Atomic uint64_t token[2];         /* random part of the data segment names: generation g's
                                          is token[g % 2], stored before gen moves to g */
    /* line 3: futex word, bumped by the writer on every publish */
    alignas(64) _Atomic uint32_t notify;
    /* line 4..: the channel name, to recognise foreign or renamed segments */
    alignas(64) char name[NDSHM_NAME_MAX + 1];
};
static_assert(sizeof(struct ndshm__ctl) <= NDSHM__PAGE, "control segment fits a page");
static_assert(offsetof(struct ndshm__ctl, owner) % 64 == 0, "writer line");
static_assert(offsetof(struct ndshm__ctl, head) % 64 == 0, "head on its own line");
static_assert(offsetof(struct ndshm__ctl, notify) % 64 == 0, "notify on its own line");
#define NDSHM__CTL_SIZE NDSHM__PAGE

/* The wait page: a System V shared-memory page the writer creates (IPC_PRIVATE, removed at
 * once with IPC_RMID, so the kernel frees it when the last process detaches: nothing can
 * leak) and names in ctl.wait_id. It is the only memory readers write: sleeping readers
 * announce themselves in `sleepers`. A System V segment has a fixed size, so a reader with
 * write access cannot shrink it and fault the writer (a tmpfs file could be truncated). See
 * wait.c. */
#define NDSHM__BELLS 256 /* waitset registrations per wait page */
struct ndshm__waitpg {
    uint64_t magic;
    uint64_t nonce; /* the channel's instance */
    uint32_t layout;
    uint32_t size;
    /* line 1: written by sleeping readers, cleared by the writer: 0, or
     * NDSHM__SLEEPER | the notify value the sleeper waits to change */
    alignas(64) _Atomic uint64_t sleepers;
    /* Registered waitsets (waitset.c): how many entries of `bells` are in use (a hint the
     * writer reads in the line it already loads for `sleepers`: 0 = nothing more to do). */
    _Atomic uint32_t nbells;
    uint32_t pad_;
    /* line 2..: one entry per registered waitset member: 0 = free, else
     * NDSHM__BELL_ENTRY(doorbell id, bit). Written by waitsets (readers), read by the writer. */
    alignas(64) _Atomic uint64_t bells[NDSHM__BELLS];
};
#define NDSHM__SLEEPER (UINT64_C(1) << 63)
static_assert(sizeof(struct ndshm__waitpg) <= NDSHM__PAGE, "wait page fits a page");
static_assert(offsetof(struct ndshm__waitpg, nbells) / 64 ==
                  offsetof(struct ndshm__waitpg, sleepers) / 64,
              "nbells shares the writer's line with sleepers");
#define NDSHM__BELL_ENTRY(id, bit) ((uint64_t)(uint32_t)(id) << 32 | (uint64_t)(bit) << 1 | 1u)
#define NDSHM__BELL_ID(e)          ((int)(uint32_t)((e) >> 32))
#define NDSHM__BELL_BIT(e)         ((uint32_t)((e) >> 1) & 0x7fffffffu)

/* The doorbell of a waitset (waitset.c): a System V segment its owner creates (IPC_PRIVATE,
 * mode 0666 so that writers of any user can ring it, IPC_RMID at once). A writer that finds
 * (id, bit) in its wait page sets the bit and, if the owner sleeps, bumps `futex` and wakes
 * it. Writers write only into a segment of exactly NDSHM__BELL_SIZE bytes that carries the
 * doorbell magic, so a forged registration can never make a writer write into anything
 * else. */
#define NDSHM__BELL_MAGIC UINT64_C(0x324c4c424d48534e) /* "NSHMBLL2" */
#define NDSHM__BELL_BITS  16384u                       /* members per waitset */
struct ndshm__bell {
    uint64_t magic;
    uint32_t layout;
    uint32_t size;  /* NDSHM__BELL_SIZE */
    uint32_t nbits; /* NDSHM__BELL_BITS */
    uint32_t pad_;
    /* line 1: written by writers (futex) and the owner (sleeping) */
    alignas(64) _Atomic uint32_t futex; /* bumped by a writer that rings while the owner sleeps */
    _Atomic uint32_t sleeping;          /* owner threads asleep on futex */
    /* line 2..: one bit per member, set by writers, taken (exchanged with 0) by the owner */
    alignas(64) _Atomic uint64_t bits[NDSHM__BELL_BITS / 64];
};
#define NDSHM__BELL_SIZE NDSHM__PAGE
static_assert(sizeof(struct ndshm__bell) <= NDSHM__BELL_SIZE, "doorbell fits its segment");

/* Data segment "<dir>/ndshm.<name>@<generation>.<token>": header, then slot_count slots of
 * slot_stride. Written only by the writer; mode = the control segment's. */
struct ndshm__data {
    uint64_t magic;
    uint32_t layout;
    uint32_t hdr_size;
    uint64_t generation;
    uint64_t first_version; /* first version published into this segment */
    uint64_t seg_size;
    uint64_t slots_offset; /* from the segment start */
    uint64_t slot_stride;
    /* line 1 */
    uint64_t slot_capacity; /* payload bytes per slot */
    uint64_t nonce;         /* = ctl.nonce */
    uint64_t token;         /* = the name's token */
    uint32_t slot_count;
    uint32_t payload_offset; /* from the slot start */
    uint32_t meta_capacity;  /* bytes of per-version metadata per slot, at NDSHM__SLOT_HDR */
    uint32_t pad_;
    /* last version published here once the writer moved on; NDSHM__UNSEALED while current */
    alignas(64) _Atomic uint64_t sealed;
};
static_assert(offsetof(struct ndshm__data, sealed) % 64 == 0, "sealed on its own line");
static_assert(sizeof(struct ndshm__data) % 64 == 0, "slots start on a line");

/* Slot header; metadata bytes follow at NDSHM__SLOT_HDR, the payload at payload_offset.
 * Every field but seq is written by the writer while seq is odd and copied by readers
 * between two reads of seq, with relaxed atomic 64-bit loads (never a plain memcpy whose
 * fetches the optimiser may split or repeat). Only shape[0..ndim) is written and read:
 * entries past ndim hold stale values of older versions. The hot part (seq ... ndim and
 * shape[0..2]) is the slot's first cache line, so a header of up to three dimensions costs
 * a reader one line; the extras line is read only when xflags says it holds something. */
#define NDSHM__SLOT_LINE_DIMS 3  /* shape entries in the slot's first cache line */
#define NDSHM__X_EXTRA        1u /* xflags: user_ns ... origin_ns are set */
struct ndshm__slot {
    _Atomic uint64_t seq; /* even: stable; odd: being written */
    uint64_t version;     /* 0 = invalid (repaired or cancelled) */
    uint64_t publish_ns;
    uint32_t xflags;   /* NDSHM__X_* */
    uint32_t meta_len; /* bytes of metadata at NDSHM__SLOT_HDR */
    int32_t dtype;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t pad_[3];
    /* line 5: the extras */
    uint64_t user_ns;
    uint64_t user_tag;
    uint64_t origin_version;
    uint64_t origin_ns;
};
static_assert(offsetof(struct ndshm__slot, shape) + NDSHM__SLOT_LINE_DIMS * sizeof(uint64_t) ==
                  NDSHM__CACHE_LINE,
              "seq..ndim and shape[0..2] fill the slot's first cache line");
static_assert(offsetof(struct ndshm__slot, user_ns) == 320, "extras on line 5");
#define NDSHM__SLOT_HDR 384u /* header rounded to whole cache lines */
static_assert(sizeof(struct ndshm__slot) <= NDSHM__SLOT_HDR, "metadata after the header");

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
    /* An unnamed file in the shm directory (O_TMPFILE), read-write: fd or -errno
     * (-EOPNOTSUPP where the file system cannot). */
    int (*open_tmp)(uint32_t mode);
    /* Give an unnamed file its name; fails with -EEXIST if the name is taken. */
    int (*link_tmp)(int fd, const char *seg);
    int (*fchown)(int fd, uint32_t uid, uint32_t gid);
    /* n random bytes (getrandom) */
    int (*random)(void *buf, size_t n);
    /* System V shared memory for the wait page: a new private page (id), attach, owner and
     * size of an id, mark for removal, detach. */
    int (*shm_create)(uint32_t mode);
    void *(*shm_attach)(int id, int writable, int *err);
    int (*shm_stat)(int id, uint32_t *uid, uint64_t *size);
    /* how many processes have the segment attached (>= 0), or -errno */
    int (*shm_nattch)(int id);
    int (*shm_remove)(int id);
    int (*shm_detach)(void *addr);
    /* inode number of this process's pid namespace; 0 = unknown */
    uint64_t (*pidns)(void);
    /* effective uid */
    uint32_t (*euid)(void);
    /* bytes of the largest CPU cache (the last level); 0 = unknown */
    uint64_t (*llc_bytes)(void);
};
/* Atomic: a test may swap the table while liburcu's call_rcu thread unmaps a mapping. For
 * tests only (tests link the static library); not exported from the shared library. */
NDSHM_INTERNAL extern const struct ndshm__os *_Atomic ndshm__os;
NDSHM_INTERNAL extern const struct ndshm__os ndshm__os_linux;
/* For tests: replace the platform (NULL restores the default). */
NDSHM_INTERNAL void ndshm__os_set(const struct ndshm__os *os);

NDSHM_INTERNAL int ndshm__errno_status(int neg_errno);
/* NDSHM_E_DIR if $NDSHM_DIR is set but unusable, else NDSHM_OK. Every entry point that
 * touches the namespace checks it first. */
NDSHM_INTERNAL int ndshm__dir_status(void);
NDSHM_INTERNAL int64_t ndshm__self_pid(void);
NDSHM_INTERNAL uint64_t ndshm__realtime_ns(void);
/* Incremented in the child at every fork() (pthread_atfork): a handle that recorded another
 * value was inherited over fork. */
NDSHM_INTERNAL uint64_t ndshm__fork_gen(void);

/* ---------------------------------------------------------------------------------------------
 * Segments (segment.c)
 * ------------------------------------------------------------------------------------------- */
#define NDSHM__SEG_MAX (NDSHM_NAME_MAX + 48)
/* ndshm_name_check(name), then ndshm__dir_status(). */
NDSHM_INTERNAL int ndshm__name_dir_check(const char *name);
NDSHM_INTERNAL void ndshm__ctl_name(char *out, const char *name);
NDSHM_INTERNAL void ndshm__data_name(char *out, const char *name, uint64_t gen, uint64_t token);

struct ndshm__map {
    void *base;
    uint64_t size;
};
NDSHM_INTERNAL void ndshm__unmap(struct ndshm__map *m);

/* An open, mapped and validated control segment. The fd stays open: the kernel locks live on
 * it. st is the file's fstat at open. */
struct ndshm__ctlh {
    int fd;
    struct ndshm__map map;
    struct ndshm__fstat st;
};
#define NDSHM__CTLH_INIT                                                                           \
    {                                                                                              \
        -1, {NULL, 0},                                                                             \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }
NDSHM_INTERNAL struct ndshm__ctl *ndshm__ctlh_ctl(const struct ndshm__ctlh *h);
/* Open channel `name`'s control segment (read-only or read-write), check it is a regular
 * file no one but its owner can write, map and validate it. Waits up to
 * ndshm__ready_wait_ns for a channel still being created when `wait` is set. */
NDSHM_INTERNAL extern uint64_t ndshm__ready_wait_ns;
NDSHM_INTERNAL int ndshm__ctl_open(const char *name, int writable, int wait,
                                   struct ndshm__ctlh *out);
NDSHM_INTERNAL void ndshm__ctl_close(struct ndshm__ctlh *h);
/* Writer side of creation: a control segment with its header written, the writer lock held
 * and `ready` still 0, not yet under its name unless *named (the O_EXCL fallback) ... */
NDSHM_INTERNAL int ndshm__ctl_prepare(const char *name, uint32_t mode, uint32_t flags,
                                      struct ndshm__ctlh *out, int *named);
/* ... and, once the first data segment exists and `ready` is stored, its name (-EEXIST ->
 * NDSHM_E_EXISTS if another channel took it meanwhile). */
NDSHM_INTERNAL int ndshm__ctl_link(struct ndshm__ctlh *h, int named, const char *name);
/* 1 if `name` still refers to the file h has open, 0 if it was removed or replaced. */
NDSHM_INTERNAL int ndshm__ctl_same_file(const struct ndshm__ctlh *h, const char *name);
/* 1 if a writer holds the writer lock, 0 if not, or a negative status. */
NDSHM_INTERNAL int ndshm__ctl_writer_locked(const struct ndshm__ctlh *h);
NDSHM_INTERNAL int ndshm__validate_ctl(const void *base, uint64_t size, const char *name);
/* Mode of the files of a channel created with `mode`: nobody but the owner may write. */
static inline uint32_t ndshm__seg_mode(uint32_t mode)
{
    return (mode & 07777) & ~022u;
}

/* Validated, private copy of a data segment's geometry (never re-read from shared memory). */
struct ndshm__geom {
    uint64_t generation;
    uint64_t first_version;
    uint64_t seg_size;
    uint64_t slots_offset;
    uint64_t slot_stride;
    uint64_t slot_capacity;
    uint64_t nonce;
    uint64_t token;
    uint32_t slot_count;
    uint32_t payload_offset;
    uint32_t meta_capacity;
};
NDSHM_INTERNAL int ndshm__geom_plan(uint32_t slots, uint64_t capacity, uint32_t meta_capacity,
                                    struct ndshm__geom *g);
/* Create the data segment of geometry g (g->token is chosen here), owned like the control
 * segment (uid/gid), with mode `mode`, appearing under its name only once complete. */
NDSHM_INTERNAL int ndshm__create_data(const char *name, struct ndshm__geom *g, uint32_t mode,
                                      uint32_t uid, uint32_t gid, struct ndshm__map *out);
/* Map a data segment, checking it belongs to the channel: regular file, owner and mode of the
 * control segment, nonce, generation and token. */
NDSHM_INTERNAL int ndshm__map_data(const char *name, uint64_t gen, uint64_t token,
                                   const struct ndshm__ctlh *ctl, int writable,
                                   struct ndshm__map *out, struct ndshm__geom *g);
NDSHM_INTERNAL int ndshm__validate_data(const void *base, uint64_t size, uint64_t gen,
                                        uint64_t nonce, uint64_t token, struct ndshm__geom *g);

static inline struct ndshm__slot *ndshm__slot_at(void *base, const struct ndshm__geom *g,
                                                 uint64_t version)
{
    /* Through void *: slots_offset and slot_stride are validated multiples of 64, so the
     * result is aligned (clang's -Wcast-align cannot know that). */
    /* A power-of-two slot count (the default, 4) takes a mask instead of a 64-bit division,
     * which costs tens of cycles on every publish and every read. */
    uint64_t n = g->slot_count;
    uint64_t i = (n & (n - 1)) == 0 ? version & (n - 1) : version % n;
    return (struct ndshm__slot *)(void *)((char *)base + g->slots_offset + i * g->slot_stride);
}

/* ---------------------------------------------------------------------------------------------
 * The slot protocol (ring.c)
 * ------------------------------------------------------------------------------------------- */
/* Everything a version carries besides its payload. */
struct ndshm__meta {
    uint64_t version;
    uint64_t publish_ns;
    uint64_t nbytes; /* derived from dtype and shape, never read from shared memory */
    uint32_t xflags;
    uint32_t meta_len;
    int32_t dtype;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t user_ns;
    uint64_t user_tag;
    uint64_t origin_version;
    uint64_t origin_ns;
};
/* ndshm_array_nbytes() for the hot paths, inlined (same results: 1 and *nbytes set, or 0 for
 * an unknown dtype, too many dimensions or an overflow). */
static inline int ndshm__nbytes(int dtype, uint32_t ndim, const uint64_t *shape, uint64_t *nbytes)
{
    /* item sizes of the dtype codes 1..14 (ndshm_dtype), 0 = unknown */
    static const uint8_t isz[NDSHM_DTYPE_COUNT + 1] = {0, 1, 1, 2, 4, 8, 1, 2,
                                                       4, 8, 2, 4, 8, 8, 16};
    static_assert(NDSHM_DTYPE_COUNT == 14 && NDSHM_COMPLEX128 == 14, "dtype codes");
    if ((uint32_t)dtype > NDSHM_DTYPE_COUNT || isz[dtype] == 0 || ndim > NDSHM_MAX_DIMS)
        return 0;
    uint64_t n = isz[dtype];
    int zero = 0;
    for (uint32_t i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            zero = 1;
        else if (__builtin_mul_overflow(n, shape[i], &n))
            return 0;
    }
    if (n > NDSHM_MAX_CAPACITY && !zero)
        return 0;
    *nbytes = zero ? 0 : n;
    return 1;
}

/* W1: make the slot odd. NDSHM_E_SUPERSEDED (and nothing written) if it already is: only
 * another writer can have done that. */
NDSHM_INTERNAL int ndshm__slot_begin(struct ndshm__slot *s);
/* W2 (header). m->version ... m->shape; extras; m->meta_len metadata bytes from meta_bytes
 * (NULL: already in the slot). */
NDSHM_INTERNAL void ndshm__slot_fill(struct ndshm__slot *s, const struct ndshm__meta *m,
                                     const void *meta_bytes);
/* W3: publish_ns, then make the slot even again. NDSHM_E_SUPERSEDED if it is not odd. */
NDSHM_INTERNAL int ndshm__slot_end(struct ndshm__slot *s, uint64_t publish_ns);
NDSHM_INTERNAL void ndshm__slot_invalidate(struct ndshm__slot *s);
/* A slot of a segment no reader can see yet (re-allocation carry): publish_ns and an even
 * seq, after ndshm__slot_fill(). */
NDSHM_INTERNAL void ndshm__slot_seed(struct ndshm__slot *s, uint64_t publish_ns);
NDSHM_INTERNAL void ndshm__store_payload(void *dst, const void *src, uint64_t n);
/* The same with non-temporal stores (x86-64; elsewhere and under TSan: the plain copy),
 * fenced so that W3 orders after them. */
NDSHM_INTERNAL void ndshm__store_payload_nt(void *dst, const void *src, uint64_t n);

/* Result of one optimistic attempt at a slot. */
enum ndshm__try {
    NDSHM__GOT = 0, /* consistent copy of the wanted version */
    NDSHM__BUSY,    /* being written or changed under us: try again */
    NDSHM__NEWER,   /* the slot holds a newer version (the wanted one is gone) */
    NDSHM__OLDER,   /* the slot holds an older version (the wanted one is not here) */
    NDSHM__BAD,     /* header values fail validation against the geometry */
};
/* Where one attempt copies to. dst/meta may be NULL (header only); a payload or metadata
 * that does not fit is not copied (the caller compares meta->nbytes / meta_len). */
struct ndshm__dest {
    void *dst;
    uint64_t dst_size;
    void *meta;
    uint64_t meta_size;
};
/* Copy slot header (and payload and metadata where asked and they fit) consistently.
 * *seq_out receives the even sequence value the copy is valid for. */
NDSHM_INTERNAL enum ndshm__try ndshm__slot_read(const struct ndshm__slot *s,
                                                const struct ndshm__geom *g, uint64_t want,
                                                const struct ndshm__dest *d,
                                                struct ndshm__meta *meta, uint64_t *seq_out);
NDSHM_INTERNAL int ndshm__slot_still(const struct ndshm__slot *s, uint64_t seq);
/* dtype, ndim, shape valid and fitting `capacity`; sets m->nbytes. */
NDSHM_INTERNAL int ndshm__meta_check(struct ndshm__meta *m, uint64_t capacity,
                                     uint32_t meta_capacity);

/* options (writer.c), channel segments (channel.c) */
NDSHM_INTERNAL int ndshm__options_read(const ndshm_options *opts, ndshm_options *out);
/* The arguments of a writer/reader open: options into *o, out non-NULL, name and NDSHM_DIR. */
NDSHM_INTERNAL int ndshm__entry_check(const char *name, const ndshm_options *opts, const void *out,
                                      ndshm_options *o);
/* Unlink the data segments of channel `name` whose nonce is `nonce` (0 = every data segment
 * of the name), except the one named by (keep_gen, keep_token). Returns how many. */
NDSHM_INTERNAL int ndshm__unlink_data(const char *name, uint64_t nonce, uint64_t keep_gen,
                                      uint64_t keep_token);
/* ndshm_gc removes a file nobody claims (an abandoned half-created control segment, an
 * orphaned data segment) only once it is this old: 10 s (a creator is never that slow). */
NDSHM_INTERNAL extern int64_t ndshm__orphan_age_ns;
/* Entry of the shm directory: 1 = a control segment (or array) name, 2 = a data segment
 * (*gen, *token set), 0 = not ours. */
NDSHM_INTERNAL int ndshm__parse_entry(const char *entry, char *name, uint64_t *gen,
                                      uint64_t *token);

/* reader internals used by wait.c */
struct ndshm__waith; /* reader's view of the wait page */
NDSHM_INTERNAL struct ndshm__ctl *ndshm__reader_ctl(ndshm_reader *r);
NDSHM_INTERNAL uint64_t ndshm__reader_pos(ndshm_reader *r);
NDSHM_INTERNAL uint32_t ndshm__reader_spin_ns(ndshm_reader *r);
NDSHM_INTERNAL uint32_t ndshm__reader_flags(ndshm_reader *r);
/* On a path that found nothing new: NDSHM_OK (writer alive), NDSHM_WRITER_GONE or
 * NDSHM_REPLACED; checks with syscalls at most every 100 ms. */
NDSHM_INTERNAL int ndshm__reader_state(ndshm_reader *r);
/* The wait page to announce a sleep in (NULL if it cannot be attached). */
NDSHM_INTERNAL struct ndshm__waitpg *ndshm__reader_waitpg(ndshm_reader *r);

/* wait.c: the writer's side. */
struct ndshm__bellc; /* the writer's cache of attached doorbells */
struct ndshm__waker {
    int id;                   /* SysV id, -1 = none */
    struct ndshm__waitpg *pg; /* attached, NULL = none: then every publish wakes */
    struct ndshm__bellc *bells;
};
/* For tests: the System V id of a waitset's doorbell. */
NDSHM_INTERNAL int ndshm__waitset_bell_id(const ndshm_waitset *ws);
/* Detach every cached doorbell (writer close; also in a forked child's close). */
NDSHM_INTERNAL void ndshm__waker_drop_bells(struct ndshm__waker *wk);
NDSHM_INTERNAL int ndshm__waker_create(struct ndshm__waker *wk, uint64_t nonce, uint32_t mode);
NDSHM_INTERNAL void ndshm__waker_destroy(struct ndshm__waker *wk);
/* W6: bump notify; wake sleepers if any announced themselves. */
NDSHM_INTERNAL void ndshm__notify(struct ndshm__ctl *ctl, struct ndshm__waker *wk);
/* Bump notify and wake unconditionally (takeover, close). */
NDSHM_INTERNAL void ndshm__notify_all(struct ndshm__ctl *ctl);
/* Reader: attach the wait page named in ctl (checked: owner, size, magic, nonce). */
NDSHM_INTERNAL struct ndshm__waitpg *ndshm__waitpg_attach(int id, uint32_t uid, uint64_t nonce);
NDSHM_INTERNAL void ndshm__waitpg_detach(struct ndshm__waitpg *pg);

#endif /* NDSHM_INTERNAL_H */
