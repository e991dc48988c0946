/*
 * ndshm — publish n-dimensional arrays between processes through shared memory.
 *
 * One writer publishes successive versions of an array into a named channel; any number of
 * readers get the newest consistent copy (read_latest) or every version in order (read_next),
 * each with a status code and the write-to-read latency. No lock, no broker, no syscall on the
 * fast path. The protocol is described in docs/protocol.md and at the top of src/ring.c.
 *
 * Conventions
 *  - Every fallible call returns an int status: 0 (NDSHM_OK) on success, a small positive value
 *    for a normal outcome that is not a success (nothing new, timed out, ...), a negative value
 *    for an error. ndshm_strerror() and ndshm_status_name() describe any status.
 *  - Out-parameters come last, are marked out, and are left untouched on failure (the one
 *    documented exception: NDSHM_E_TOO_SMALL fills the info so the caller learns the size).
 *  - Closing NULL is a harmless no-op.
 *
 * Threads
 *  - A writer handle belongs to one thread at a time. Builds without NDEBUG detect two threads
 *    inside one writer at once and return NDSHM_E_CONCURRENT.
 *  - A reader handle may be shared by threads for ndshm_read_latest(), ndshm_read_next(),
 *    ndshm_view_*() and ndshm_wait(); its mapping is swapped under RCU (liburcu-bp) when the
 *    channel re-allocates. The handle-owned buffer of ndshm_read_*_owned() is per handle: use
 *    those two from one thread at a time. The info flags NDSHM_INFO_META_CHANGED and
 *    NDSHM_INFO_REALLOCATED compare with the handle's previous read, whichever thread made it;
 *    with several threads reading at once they are best-effort per handle (a change may be
 *    flagged to more than one thread, and "previous" may be another thread's read): use one
 *    handle per thread where they matter.
 */
#ifndef NDSHM_NDSHM_H
#define NDSHM_NDSHM_H

#include <stddef.h>
#include <stdint.h>

#include "ndshm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NDSHM_STATIC_DEFINE)
#define NDSHM_API
#elif defined(__GNUC__)
#define NDSHM_API __attribute__((visibility("default")))
#else
#define NDSHM_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes. One list generates the enum, ndshm_status_name() and ndshm_strerror().
 * ------------------------------------------------------------------------------------------- */
#define NDSHM_STATUS_MAP(X)                                                                        \
    X(OK, 0, "success")                                                                            \
    X(NO_NEW, 1, "nothing new since this reader's last read")                                      \
    X(NO_DATA, 2, "nothing has been published on this channel yet")                                \
    X(TIMEOUT, 3, "timed out")                                                                     \
    X(WRITER_GONE, 4, "the channel's writer is gone (closed or dead)")                             \
    X(CONTENDED, 5, "no consistent copy within the retry budget: the writer kept overwriting it")  \
    X(OVERWRITTEN, 6, "the viewed version was overwritten by the writer while in use")             \
    X(REPLACED, 7,                                                                                 \
      "the channel was removed and a new one created under its name: reopen to follow it")         \
    X(E_INVAL, -1, "invalid argument")                                                             \
    X(E_NAME, -2,                                                                                  \
      "invalid channel name: use 1-128 characters of [A-Za-z0-9._-], not starting "                \
      "with '.'")                                                                                  \
    X(E_EXISTS, -3, "a channel or shared array with this name already exists")                     \
    X(E_NOENT, -4, "no channel or shared array with this name")                                    \
    X(E_DTYPE, -5, "unknown or unsupported dtype")                                                 \
    X(E_NDIM, -6, "too many dimensions (the limit is NDSHM_MAX_DIMS)")                             \
    X(E_OVERFLOW, -7, "array size overflows (shape product times item size)")                      \
    X(E_LIMIT, -8, "value outside the supported range")                                            \
    X(E_TOO_SMALL, -9, "buffer too small for the array: info.nbytes holds the size needed")        \
    X(E_NOMEM, -10, "out of memory")                                                               \
    X(E_MAGIC, -11, "not an ndshm segment (wrong magic)")                                          \
    X(E_LAYOUT, -12, "ndshm segment of an unsupported layout version")                             \
    X(E_CORRUPT, -13, "ndshm segment truncated or corrupted")                                      \
    X(E_NOT_READY, -14, "channel is still being created, or its creator died while creating it")   \
    X(E_WRITER_ALIVE, -15, "the channel already has a live writer")                                \
    X(E_PERM, -16, "permission denied")                                                            \
    X(E_NOSPC, -17, "no space left for the segment in the shared-memory file system")              \
    X(E_STATE, -18, "call not valid in this state (commit without loan, publish during a loan)")   \
    X(E_CONCURRENT, -19, "writer handle used by two threads at once")                              \
    X(E_KIND, -20,                                                                                 \
      "the name belongs to the other kind of object (a channel, not a shared array, "              \
      "or the reverse)")                                                                           \
    X(E_SUPERSEDED, -21,                                                                           \
      "this writer no longer owns the channel (taken over, or its segment changed under it)")      \
    X(E_FORKED, -22, "handle inherited over fork(): it belongs to the process that opened it")     \
    X(E_UNTRUSTED, -23,                                                                            \
      "segment failed a trust check (not a regular file, or wrong owner, mode or instance)")       \
    X(E_DIR, -24, "NDSHM_DIR must be an absolute path of at most 255 characters")                  \
    X(E_SYS, -1000, "operating-system error")

typedef enum ndshm_status {
#define NDSHM__ENUM(name, value, text) NDSHM_##name = (value),
    NDSHM_STATUS_MAP(NDSHM__ENUM)
#undef NDSHM__ENUM
} ndshm_status;

/* OS failures keep their errno: status = NDSHM_E_SYS - errno (always <= NDSHM_E_SYS). */
#define NDSHM_SYS_ERRNO(status) ((status) <= NDSHM_E_SYS ? NDSHM_E_SYS - (status) : 0)

/** Short name of a status ("NDSHM_E_EXISTS"); "NDSHM_E_SYS" for any OS error. Never NULL. */
NDSHM_API const char *ndshm_status_name(int status);
/** Human-readable message; for OS errors, strerror of the kept errno. Never NULL, static. */
NDSHM_API const char *ndshm_strerror(int status);

/* ---------------------------------------------------------------------------------------------
 * dtypes: the 14 numpy numeric types. Values are stable (they live in shared memory).
 * ------------------------------------------------------------------------------------------- */
typedef enum ndshm_dtype {
    NDSHM_BOOL = 1,
    NDSHM_INT8 = 2,
    NDSHM_INT16 = 3,
    NDSHM_INT32 = 4,
    NDSHM_INT64 = 5,
    NDSHM_UINT8 = 6,
    NDSHM_UINT16 = 7,
    NDSHM_UINT32 = 8,
    NDSHM_UINT64 = 9,
    NDSHM_FLOAT16 = 10,
    NDSHM_FLOAT32 = 11,
    NDSHM_FLOAT64 = 12,
    NDSHM_COMPLEX64 = 13,
    NDSHM_COMPLEX128 = 14,
} ndshm_dtype;

#define NDSHM_DTYPE_COUNT 14
#define NDSHM_MAX_DIMS    32 /* numpy's own limit */
#define NDSHM_NAME_MAX    128

/** Item size in bytes, or 0 for an unknown dtype. */
NDSHM_API size_t ndshm_dtype_size(int dtype);
/** numpy type string ("<f4", "|u1", "|b1", ...), or NULL for an unknown dtype. */
NDSHM_API const char *ndshm_dtype_str(int dtype);
/** Short name ("float32"), or NULL for an unknown dtype. */
NDSHM_API const char *ndshm_dtype_name(int dtype);
/** Parse a numpy type string ("<f4", "=f4", "f4", "float32", "|u1", "u1", "?"...). Big-endian
 *  ('>') strings are rejected with NDSHM_E_DTYPE. */
NDSHM_API int ndshm_dtype_parse(const char *str, ndshm_dtype *dtype /* out */);
/** Byte size of a C-contiguous array; checks ndim, dtype and overflow. ndim 0 = a scalar. */
NDSHM_API int ndshm_array_nbytes(int dtype, uint32_t ndim, const uint64_t *shape,
                                 uint64_t *nbytes /* out */);

/* ---------------------------------------------------------------------------------------------
 * Options (size-versioned: always start from NDSHM_OPTIONS_INIT).
 * ------------------------------------------------------------------------------------------- */
enum ndshm_flags {
    NDSHM_UNLINK_ON_CLOSE = 1u << 0, /* writer: unlink the channel when the writer closes (only
                                        while it still owns it: never a successor's channel) */
    NDSHM_OPEN_OR_CREATE = 1u << 1,  /* ndshm_writer_create: open (take over) if it exists */
    NDSHM_FORCE_TAKEOVER = 1u << 2,  /* accepted for compatibility, no effect: liveness is the
                                        kernel's lock, so a live writer is never taken over and a
                                        dead one always is (also across pid namespaces) */
    NDSHM_REPLAY = 1u << 3,          /* reader: first read_next starts at the oldest version
                                        still present instead of after the newest */
    NDSHM_PERSISTENT = 1u << 4,      /* writer: ndshm_gc never removes this channel, even after
                                        its writer closed or died (a configuration published
                                        once); ndshm_unlink removes it */
    NDSHM_AWAIT_WRITER = 1u << 5,    /* reader: ndshm_wait keeps sleeping while the channel has
                                        no writer, until a new version, the timeout or the
                                        channel's replacement, instead of returning
                                        NDSHM_WRITER_GONE at once */
};

/* How a channel's slot capacity grows when a version does not fit. */
enum ndshm_growth {
    NDSHM_GROW_DOUBLE = 0, /* default: max(needed, 2 x current), so a growing array re-allocates
                              O(log n) times; never more than needed + 1 GiB */
    NDSHM_GROW_EXACT = 1,  /* exactly what the version needs */
    NDSHM_GROW_FIXED = 2,  /* never: a version larger than the capacity is refused with
                              NDSHM_E_LIMIT (ndshm_writer_reserve still works) */
};

typedef struct ndshm_options {
    uint32_t size;      /* sizeof(ndshm_options); set by NDSHM_OPTIONS_INIT */
    uint32_t flags;     /* bit set of ndshm_flags */
    uint32_t slots;     /* ring slots per data segment, 1..NDSHM_MAX_SLOTS; 0 = default (4) */
    uint32_t mode;      /* who may read: permission bits of the channel's files; 0 = 0600.
                           Group/other write bits are dropped: readers need none */
    uint64_t capacity;  /* initial slot capacity in bytes; 0 = small (64 B), grown by the
                           first version that needs more */
    uint32_t retries;   /* reader: consistent-copy attempts before NDSHM_CONTENDED; 0 = 64 */
    uint32_t spin_ns;   /* reader: how long ndshm_wait spins before sleeping; 0 = 20000 */
    uint32_t growth;    /* writer: ndshm_growth */
    uint32_t reserved_; /* 0 */
} ndshm_options;

#define NDSHM_OPTIONS_INIT                                                                         \
    {                                                                                              \
        sizeof(ndshm_options), 0, 0, 0, 0, 0, 0, 0, 0                                              \
    }
#define NDSHM_MAX_SLOTS    65536u
#define NDSHM_MAX_CAPACITY (UINT64_C(1) << 40) /* 1 TiB per slot */
#define NDSHM_META_MAX     65536u              /* metadata bytes per version */

/* Optional values carried with one version, copied under the same consistency check as its
 * payload (a reader gets them from the same version), read back in ndshm_info (and the
 * metadata bytes with ndshm_read_ex or a view). */
typedef struct ndshm_extra {
    uint32_t size;           /* sizeof(ndshm_extra): start from NDSHM_EXTRA_INIT */
    uint32_t meta_len;       /* bytes at meta, 0..NDSHM_META_MAX */
    const void *meta;        /* opaque bytes (a caps string, JSON, ...) */
    uint64_t user_ns;        /* a user timestamp (sensor time, presentation time); 0 = none */
    uint64_t user_tag;       /* a user word; 0 = none */
    uint64_t origin_version; /* the version's number at its origin (bridges); 0 = none */
    uint64_t origin_ns;      /* CLOCK_REALTIME publish time at the origin (bridges); 0 = none */
} ndshm_extra;

#define NDSHM_EXTRA_INIT                                                                           \
    {                                                                                              \
        sizeof(ndshm_extra), 0, NULL, 0, 0, 0, 0                                                   \
    }

/* ---------------------------------------------------------------------------------------------
 * Writer
 *
 * A writer handle belongs to the process that opened it: used from a child after fork() every
 * call returns NDSHM_E_FORKED and ndshm_writer_close() only frees the child's memory (it never
 * unlinks or releases the parent's channel). A writer holds a kernel lock on its channel for
 * its whole life; the kernel drops it however the process ends, which is how readers, ndshm_gc
 * and a would-be successor tell that the writer is gone.
 * ------------------------------------------------------------------------------------------- */
typedef struct ndshm_writer ndshm_writer;

/** Create channel `name` and become its writer. NDSHM_E_EXISTS if the name is taken, by a
 *  channel or a shared array (with NDSHM_OPEN_OR_CREATE an existing channel is opened as by
 *  ndshm_writer_open; a shared array then gives NDSHM_E_KIND). The channel appears under its
 *  name only once complete. opts may be NULL. */
NDSHM_API int ndshm_writer_create(const char *name, const ndshm_options *opts,
                                  ndshm_writer **writer /* out */);
/** Become the writer of an existing channel: NDSHM_E_WRITER_ALIVE while its writer holds the
 *  writer lock. The kernel serialises competing claimants. Repairs a slot the previous writer
 *  left mid-write; numbering continues after the last version. Needs write permission on the
 *  channel's files (its owner, or root). */
NDSHM_API int ndshm_writer_open(const char *name, const ndshm_options *opts,
                                ndshm_writer **writer /* out */);
/** Publish one version by copy. Never waits for readers. On success *version (may be NULL)
 *  holds the version number (1, 2, 3, ...). Re-allocates if the array does not fit.
 *  NDSHM_E_SUPERSEDED if the channel's memory shows another writer at work (the handle then
 *  refuses every further publish). */
NDSHM_API int ndshm_publish(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                            const void *data, uint64_t *version /* out */);
/** As ndshm_publish, with per-version extras (NULL = none). */
NDSHM_API int ndshm_publish_ex(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                               const void *data, const ndshm_extra *extra,
                               uint64_t *version /* out */);
/** Zero-copy publish, step 1: a pointer into the next slot, sized for dtype/shape
 *  (re-allocating first if needed). Fill it, then ndshm_commit() or ndshm_cancel(). One loan at
 *  a time; nothing is visible to readers until commit. */
NDSHM_API int ndshm_loan(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                         void **data /* out */);
/** As ndshm_loan; extra (may be NULL) gives the version's extras now and reserves room for
 *  its meta_len bytes of metadata, which ndshm_commit_ex may then replace. */
NDSHM_API int ndshm_loan_ex(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                            const ndshm_extra *extra, void **data /* out */);
/** Publish the loaned slot, exactly like ndshm_publish. */
NDSHM_API int ndshm_commit(ndshm_writer *w, uint64_t *version /* out */);
/** As ndshm_commit; a non-NULL extra replaces the loan's. Metadata longer than the room the
 *  channel has (at least the loan's meta_len) gives NDSHM_E_TOO_SMALL and the loan stays open. */
NDSHM_API int ndshm_commit_ex(ndshm_writer *w, const ndshm_extra *extra,
                              uint64_t *version /* out */);
/** Abandon the loan; no half-written version ever becomes visible. */
NDSHM_API int ndshm_cancel(ndshm_writer *w);
/** Move the channel now to a data segment with this slot capacity (bytes) — to pre-size for
 *  large frames or to give memory back; the next publish or loan uses it. NDSHM_E_NOSPC (and
 *  nothing changed) if the shared-memory file system cannot hold it. */
NDSHM_API int ndshm_writer_reserve(ndshm_writer *w, uint64_t capacity);
/** Version number of the last publish (0 = none). */
NDSHM_API uint64_t ndshm_writer_version(const ndshm_writer *w);
/** Close (cancels an open loan; with NDSHM_UNLINK_ON_CLOSE unlinks the channel if it is still
 *  this writer's). Readers see the writer as gone. NULL is a no-op. */
NDSHM_API int ndshm_writer_close(ndshm_writer *w);

/* ---------------------------------------------------------------------------------------------
 * Reader
 *
 * A reader opens every file of the channel read-only: read permission is all it needs, and
 * nothing it does can change what the writer or other readers see. (Sleeping in ndshm_wait
 * announces itself in a separate System V page that the writer grants to everyone who may
 * read; see docs/reliability.md, "Threat model".) Readers inherited over fork() keep working.
 * ------------------------------------------------------------------------------------------- */
typedef struct ndshm_reader ndshm_reader;

enum ndshm_info_flags {
    NDSHM_INFO_META_CHANGED = 1u << 0, /* dtype or shape differs from this handle's last read
                                          (set on a handle's first read too) */
    NDSHM_INFO_REALLOCATED = 1u << 1,  /* the channel moved to a new data segment since the
                                          handle's last read */
    NDSHM_INFO_WRITER_GONE = 1u << 2,  /* the writer closed or died */
    NDSHM_INFO_EXTRA = 1u << 3,        /* the version carries extras (user_ns ... origin_ns) */
};

typedef struct ndshm_info {
    uint64_t version;    /* version number of the array */
    uint64_t publish_ns; /* writer's CLOCK_MONOTONIC at publish, ns */
    uint64_t read_ns;    /* reader's CLOCK_MONOTONIC when the copy was complete and checked */
    uint64_t latency_ns; /* read_ns - publish_ns: write-to-read latency */
    uint64_t dropped;    /* versions between the handle's previous read and this one that it
                            did not get (read_next: lost because the writer lapped the reader) */
    uint64_t nbytes;     /* payload bytes */
    uint64_t generation; /* data segment generation the version lives in */
    uint32_t flags;      /* ndshm_info_flags */
    int32_t dtype;       /* ndshm_dtype */
    uint32_t ndim;
    uint32_t meta_len; /* metadata bytes the version carries */
    uint64_t user_ns;  /* extras (ndshm_extra); 0 when the version has none */
    uint64_t user_tag;
    uint64_t origin_version;
    uint64_t origin_ns;
    uint64_t shape[NDSHM_MAX_DIMS];
} ndshm_info;

/** Attach to channel `name` as a reader. NDSHM_E_NOENT if it does not exist, NDSHM_E_KIND if
 *  the name is a shared array, NDSHM_E_UNTRUSTED if its files fail the trust checks (not
 *  regular files, writable by others, data segments not owned like the control segment). A
 *  channel still being created is waited for up to 250 ms, then NDSHM_E_NOT_READY. opts may be
 *  NULL (only flags NDSHM_REPLAY and NDSHM_AWAIT_WRITER, retries and spin_ns are used). */
NDSHM_API int ndshm_reader_open(const char *name, const ndshm_options *opts,
                                ndshm_reader **reader /* out */);
/** Copy the newest version into buf. NDSHM_OK: a version newer than this handle's last read;
 *  NDSHM_NO_NEW: nothing newer; NDSHM_NO_DATA: nothing published yet; NDSHM_CONTENDED: no
 *  consistent copy within the retry budget; NDSHM_E_TOO_SMALL: buf_size is too small
 *  (info->nbytes says what is needed, nothing copied, the handle does not advance);
 *  NDSHM_REPLACED: nothing new here, and the name now belongs to a new channel. On any status
 *  but NDSHM_OK the contents of buf are unspecified (an attempt may have copied into it);
 *  info is filled only on NDSHM_OK and NDSHM_E_TOO_SMALL. */
NDSHM_API int ndshm_read_latest(ndshm_reader *r, void *buf, size_t buf_size,
                                ndshm_info *info /* out */);
/** Copy the version after this handle's last read (every version, in order). When the writer
 *  has lapped the reader it skips to the oldest version still present and info->dropped says
 *  exactly how many were lost, also across re-allocations. NDSHM_NO_NEW only when no newer
 *  version exists, or when the newer ones are in a data segment that was removed with the
 *  channel (closed with NDSHM_UNLINK_ON_CLOSE, rm, gc) before this reader mapped it: the
 *  handle then moves past them, they count in the next successful read's dropped, and
 *  ndshm_wait says NDSHM_WRITER_GONE (docs/api.md, "Statuses of reads"). */
NDSHM_API int ndshm_read_next(ndshm_reader *r, void *buf, size_t buf_size,
                              ndshm_info *info /* out */);
#define NDSHM_READ_LATEST 0u
#define NDSHM_READ_NEXT   1u
/** ndshm_read_latest (how = NDSHM_READ_LATEST) or ndshm_read_next (NDSHM_READ_NEXT) that also
 *  copies the version's metadata bytes into meta (may be NULL when meta_size is 0). A buffer too
 *  small for either gives NDSHM_E_TOO_SMALL with info->nbytes and info->meta_len set. */
NDSHM_API int ndshm_read_ex(ndshm_reader *r, uint32_t how, void *buf, size_t buf_size, void *meta,
                            size_t meta_size, ndshm_info *info /* out */);
/** As ndshm_read_latest/next, into a buffer the handle owns and grows. *data stays valid until
 *  the next *_owned call or close and always holds exactly the version info describes. On
 *  NDSHM_NO_NEW (and NDSHM_CONTENDED, NDSHM_REPLACED) *data is the last version read (NULL if
 *  none) and info describes it. One thread at a time per handle. */
NDSHM_API int ndshm_read_latest_owned(ndshm_reader *r, const void **data /* out */,
                                      ndshm_info *info /* out */);
NDSHM_API int ndshm_read_next_owned(ndshm_reader *r, const void **data /* out */,
                                    ndshm_info *info /* out */);

/** Zero-copy read: a view of a version in place. */
typedef struct ndshm_view {
    const void *data; /* the payload, read-only, in shared memory */
    const void *meta; /* its info.meta_len metadata bytes, in shared memory */
    ndshm_info info;  /* its metadata; read_ns/latency are taken when the view was made */
    void *priv_[2];   /* internal: mapping reference and slot */
    uint64_t seq_;    /* internal: slot sequence word when the view was taken */
} ndshm_view;

/** A view of the newest version (same statuses as read_latest). Release it with
 *  ndshm_view_release(); until then the mapping stays valid even across re-allocations. */
NDSHM_API int ndshm_view_latest(ndshm_reader *r, ndshm_view *view /* out */);
/** A view of the next version (as read_next). */
NDSHM_API int ndshm_view_next(ndshm_reader *r, ndshm_view *view /* out */);
/** NDSHM_OK if the viewed version is still intact (everything read from data before this call
 *  was that version); NDSHM_OVERWRITTEN if the writer has started to reuse the slot. */
NDSHM_API int ndshm_view_check(const ndshm_view *view);
/** Check (as ndshm_view_check) and release the view; the view is cleared. */
NDSHM_API int ndshm_view_release(ndshm_view *view);

/** Wait until a version newer than this handle's last read exists. NDSHM_OK when there is one,
 *  NDSHM_TIMEOUT after timeout_ns (negative = forever), NDSHM_WRITER_GONE when the writer has
 *  closed or died and nothing newer is left (unless the reader was opened with
 *  NDSHM_AWAIT_WRITER), NDSHM_REPLACED when the name now belongs to a new channel. Spins
 *  briefly, then sleeps on a futex; a writer publishes without a syscall while nobody sleeps. */
NDSHM_API int ndshm_wait(ndshm_reader *r, int64_t timeout_ns);
/** 1 if the channel's writer is alive (holds its kernel lock), 0 if not (a syscall: not for
 *  the fast path). */
NDSHM_API int ndshm_reader_writer_alive(ndshm_reader *r);
/** The reader's last version read (0 = none). */
NDSHM_API uint64_t ndshm_reader_version(const ndshm_reader *r);
/** Close; NULL is a no-op. No other thread may be using the handle. A view still held keeps
 *  its mapping alive until ndshm_view_release(). */
NDSHM_API int ndshm_reader_close(ndshm_reader *r);

/* ---------------------------------------------------------------------------------------------
 * Channels on this machine
 * ------------------------------------------------------------------------------------------- */
/* What a name in the namespace refers to: a channel (versions, one writer) or a shared array
 * (one array changed in place). A name is one or the other, never both. */
enum ndshm_kind {
    NDSHM_KIND_CHANNEL = 1,
    NDSHM_KIND_ARRAY = 2,
};
/* Memory order of a shared array (channels' versions are always C-contiguous). */
enum ndshm_order {
    NDSHM_ORDER_C = 0, /* row-major */
    NDSHM_ORDER_F = 1, /* column-major (Fortran) */
};

typedef struct ndshm_channel_info {
    char name[NDSHM_NAME_MAX + 1];
    int32_t kind;  /* ndshm_kind; 0 if it could not be read (see status) */
    int32_t dtype; /* of the last version / of the array; 0 if none */
    uint32_t ndim;
    uint32_t order; /* ndshm_order (arrays); NDSHM_ORDER_C for channels */
    uint64_t shape[NDSHM_MAX_DIMS];
    uint32_t slots;
    uint32_t mode;        /* permission bits of the control segment / array segment */
    uint64_t capacity;    /* slot capacity, bytes (channels) */
    uint64_t bytes;       /* shared memory used: all segment sizes */
    uint64_t nbytes;      /* payload bytes of the last version / of the array */
    uint64_t version;     /* last published version; 0 = none (channels) */
    uint64_t publish_ns;  /* CLOCK_MONOTONIC of the last publish; 0 = none (channels) */
    uint64_t generation;  /* current data segment generation (channels) */
    uint64_t reallocs;    /* re-allocations so far (channels) */
    uint64_t created_ns;  /* CLOCK_REALTIME at creation */
    int64_t writer_pid;   /* as recorded by the writer (its own pid namespace); 0 = none */
    int32_t writer_alive; /* 1 alive, 0 not (channels) */
    int32_t status;       /* NDSHM_OK, or why the entry could not be read (listing only) */
    int32_t attached;     /* readers of a channel / processes attached to an array, counted
                             from their kernel locks; -1 = unknown */
    uint32_t flags;       /* ndshm_entry_flags */
} ndshm_channel_info;

enum ndshm_entry_flags {
    NDSHM_ENTRY_PERSISTENT = 1u << 0,  /* channel created with NDSHM_PERSISTENT: gc keeps it */
    NDSHM_ENTRY_OTHER_PIDNS = 1u << 1, /* the writer runs in another pid namespace: writer_pid
                                         is not a pid of ours */
};

/** Every channel on the machine. Free *list with ndshm_list_free(). Channels that cannot be
 *  read are listed with a negative .status. */
NDSHM_API int ndshm_list(ndshm_channel_info **list /* out */, size_t *count /* out */);
NDSHM_API void ndshm_list_free(ndshm_channel_info *list);
/** One channel. */
NDSHM_API int ndshm_stat(const char *name, ndshm_channel_info *info /* out */);
/** Remove the channel's segments (readers and a writer still attached keep working on their
 *  mappings, as with unlink(2)). NDSHM_E_NOENT if there is nothing to remove. */
NDSHM_API int ndshm_unlink(const char *name);
/** Unlink every channel whose writer is dead or gone; *removed (may be NULL) gets the count.
 *  Never touches a channel whose writer is alive (it removes a channel only while holding its
 *  writer lock, so a concurrent takeover either wins or finds the channel gone), a channel
 *  created with NDSHM_PERSISTENT, or a shared array. */
NDSHM_API int ndshm_gc(size_t *removed /* out */);
/** Check a channel name (NDSHM_OK or NDSHM_E_NAME). */
NDSHM_API int ndshm_name_check(const char *name);

/** Slots a channel needs so that a reader holding each version for hold_s seconds (a view, or
 *  the time to copy it) while the writer publishes at rate_hz, taking write_s seconds per
 *  write (copy, or loan to commit), never sees it overwritten: ceil(rate * (hold + write)) + 1
 *  (derivation and test: docs/benchmarks.md, "How many slots"). At least 2. Returns 0 for a
 *  negative, NaN or infinite argument, or when more than NDSHM_MAX_SLOTS would be needed. Add
 *  one for writer jitter. */
NDSHM_API uint32_t ndshm_slots_for(double rate_hz, double hold_s, double write_s);

/** CLOCK_MONOTONIC in ns: the clock of publish_ns and read_ns. */
NDSHM_API uint64_t ndshm_now_ns(void);
/** Library version, "MAJOR.MINOR.PATCH". */
NDSHM_API const char *ndshm_version(void);

#include "ndshm/array.h"
#include "ndshm/npy.h"
#include "ndshm/waitset.h"
#include "ndshm/wire.h"

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_NDSHM_H */
