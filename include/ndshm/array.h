/*
 * ndshm shared arrays: named n-dimensional arrays that many processes map and change in place
 * (the SharedArray / wea / shared_memory model), beside channels. Included by ndshm/ndshm.h.
 *
 *  - An array is one file `<dir>/ndshm.<name>` (the path a channel's control segment uses, so
 *    a name is a channel or an array, never both): a one-page header, then the data, page
 *    aligned. Layout and protocol: docs/protocol.md ("Shared arrays") and src/array.c.
 *  - There are no versions and no consistency beyond what the users arrange (typically each
 *    process owns some rows): a store by one process is visible to every other at once.
 *  - The array outlives every process until ndshm_array_delete() / ndshm_unlink(); existing
 *    attachments stay valid after a delete until they detach (unlink(2) semantics).
 *  - Channel calls on an array's name return NDSHM_E_KIND, and array calls on a channel's
 *    name return NDSHM_E_KIND.
 *  - An attachment may be used by several threads at once (it is a mapping and a descriptor;
 *    nothing in it changes after attach). A process that forks may use an inherited
 *    attachment in the child too; detach it in each process that holds it.
 */
#ifndef NDSHM_ARRAY_H
#define NDSHM_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "ndshm/ndshm.h" /* NDSHM_API, NDSHM_MAX_DIMS, ndshm_writer (guarded: safe either way) */

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque attachment to a shared array: a mapping of it and the descriptor whose kernel lock
 *  counts the attachment. */
typedef struct ndshm_array ndshm_array;

enum ndshm_array_flags {
    NDSHM_ARRAY_READONLY = 1u << 0, /* attach: O_RDONLY + PROT_READ; a store through the
                                       mapping is a SIGSEGV, never a silent change */
};

/** Options (size-versioned: start from NDSHM_ARRAY_OPTIONS_INIT; NULL = defaults). */
typedef struct ndshm_array_options {
    uint32_t size;  /* sizeof(ndshm_array_options); set by NDSHM_ARRAY_OPTIONS_INIT */
    uint32_t flags; /* ndshm_array_flags: NDSHM_ARRAY_READONLY (attach only) */
    uint32_t mode;  /* create: permission bits, applied exactly (no umask); 0 = 0600 */
    uint32_t order; /* create: NDSHM_ORDER_C (default) or NDSHM_ORDER_F */
} ndshm_array_options;

#define NDSHM_ARRAY_OPTIONS_INIT                                                                   \
    {                                                                                              \
        sizeof(ndshm_array_options), 0, 0, NDSHM_ORDER_C                                           \
    }

/** What an array is (ndshm_array_info_get, ndshm_array_stat). */
typedef struct ndshm_array_info {
    char name[NDSHM_NAME_MAX + 1];
    int32_t dtype;                  /* ndshm_dtype */
    uint32_t ndim;                  /* 0..NDSHM_MAX_DIMS; 0 = a scalar */
    uint32_t order;                 /* ndshm_order */
    uint32_t mode;                  /* permission bits of the file (fstat, now) */
    uint64_t shape[NDSHM_MAX_DIMS]; /* entries past ndim are 0 */
    uint64_t nbytes;                /* data bytes: shape product times item size */
    uint64_t created_ns;            /* CLOCK_REALTIME at creation */
    int32_t attached; /* processes (open attachments) holding it, counted from their kernel
                         locks in /proc/locks; -1 = unknown. Best effort. */
    int32_t readonly; /* this attachment is read-only (0 for ndshm_array_stat) */
} ndshm_array_info;

/** Create array `name`: dtype (one of the 14), ndim 0..32, shape (may be NULL when ndim is 0),
 *  zero-filled, mode 0600 unless opts->mode, C order unless opts->order. The pages are
 *  reserved here: a full file system fails with NDSHM_E_NOSPC and leaves nothing behind, and
 *  no later store can SIGBUS for lack of space. NDSHM_E_EXISTS if the name is taken (by an
 *  array or a channel). On success *out is a read-write attachment. */
NDSHM_API int ndshm_array_create(const char *name, int dtype, uint32_t ndim, const uint64_t *shape,
                                 const ndshm_array_options *opts, ndshm_array **out /* out */);
/** Attach to array `name`, read-write or (NDSHM_ARRAY_READONLY) read-only. NDSHM_E_NOENT if it
 *  does not exist; NDSHM_E_KIND for a channel; NDSHM_E_NOT_READY for an array still being
 *  created (waited for up to 250 ms while its creator is alive) or whose creator died while
 *  creating it (remove it with ndshm_array_delete() or ndshm_unlink()); NDSHM_E_UNTRUSTED for a
 *  FIFO, symlink, directory or other non-regular file under the name; NDSHM_E_MAGIC /
 *  NDSHM_E_LAYOUT / NDSHM_E_CORRUPT for a foreign, newer or damaged file. */
NDSHM_API int ndshm_array_attach(const char *name, const ndshm_array_options *opts,
                                 ndshm_array **out /* out */);
/** The data (page aligned, nbytes long), or NULL for a read-only attachment or NULL a. */
NDSHM_API void *ndshm_array_data(ndshm_array *a);
/** The data for reading (any attachment), or NULL for NULL a. */
NDSHM_API const void *ndshm_array_cdata(const ndshm_array *a);
/** Describe the attachment (attached is counted now). */
NDSHM_API int ndshm_array_info_get(const ndshm_array *a, ndshm_array_info *out /* out */);
/** Unmap and drop the attachment. NULL is a no-op. Other attachments are unaffected. */
NDSHM_API int ndshm_array_detach(ndshm_array *a);
/** Remove the name (unlink): existing attachments stay valid until they detach; the memory is
 *  freed by the system after the last one. NDSHM_E_NOENT if absent, NDSHM_E_KIND for a
 *  channel. An array whose creator died before writing its header cannot be told from a
 *  channel being created: NDSHM_E_NOT_READY, and ndshm_unlink() removes it. */
NDSHM_API int ndshm_array_delete(const char *name);
/** Describe array `name` without attaching (attached is counted now, readonly = 0). */
NDSHM_API int ndshm_array_stat(const char *name, ndshm_array_info *out /* out */);
/** Snapshot: publish the array's current bytes as one version of the writer's channel (a copy;
 *  stores other processes make during the copy may or may not be in it, as with any copy of
 *  memory others change). A Fortran-order array is published as the C-order array of its
 *  transpose, whose bytes are the same: shape reversed (numpy's a.T). *version as
 *  ndshm_publish. */
NDSHM_API int ndshm_array_publish(ndshm_writer *w, const ndshm_array *a,
                                  uint64_t *version /* out */);

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_ARRAY_H */
