/*
 * Internal declarations of shared arrays (src/array.c): the file layout and the hooks the
 * channel code calls. Nothing here is API. Protocol: the comment at the top of src/array.c and
 * docs/protocol.md, "Shared arrays".
 */
#ifndef NDSHM_ARRAY_INTERNAL_H
#define NDSHM_ARRAY_INTERNAL_H

#include "internal.h"

#define NDSHM__ARR_MAGIC  UINT64_C(0x315252414d48534e) /* "NSHMARR1" little-endian */
#define NDSHM__ARR_LAYOUT 1u
#define NDSHM__ARR_READY  UINT32_C(0x59445241) /* "ARDY": header complete, pages reserved */
#define NDSHM__ARR_DATA   NDSHM__PAGE          /* data offset: the header is one page */

/* Bytes of the file that carry kernel OFD locks (locks are not data: any offset works). */
#define NDSHM__ARR_LOCK_ATTACH 0 /* every attachment holds a read lock here: the count */
#define NDSHM__ARR_LOCK_CREATE 1 /* the creator holds a write lock here until ready */

/* The header, at offset 0 of "<dir>/ndshm.<name>". Written by the creator only, before
 * `ready`; never changed afterwards. */
struct ndshm__arr {
    uint64_t magic;                 /*   0 NDSHM__ARR_MAGIC */
    uint32_t layout;                /*   8 NDSHM__ARR_LAYOUT */
    uint32_t hdr_size;              /*  12 sizeof(struct ndshm__arr) */
    _Atomic uint32_t ready;         /*  16 NDSHM__ARR_READY, stored last with release */
    uint32_t mode;                  /*  20 permission bits asked for (fstat has the real ones) */
    uint64_t created_ns;            /*  24 CLOCK_REALTIME */
    uint64_t data_offset;           /*  32 NDSHM__ARR_DATA */
    uint64_t nbytes;                /*  40 shape product times item size */
    uint64_t file_size;             /*  48 data_offset + nbytes rounded up to a page (>= 1 page) */
    int32_t dtype;                  /*  56 ndshm_dtype */
    uint32_t ndim;                  /*  60 0..NDSHM_MAX_DIMS */
    uint32_t order;                 /*  64 ndshm_order */
    uint32_t itemsize;              /*  68 ndshm_dtype_size(dtype) */
    int64_t creator_pid;            /*  72 informational (the creator's pid namespace) */
    uint64_t reserved[6];           /*  80 zero */
    uint64_t shape[NDSHM_MAX_DIMS]; /* 128 entries past ndim are zero */
    char name[NDSHM_NAME_MAX + 1];  /* 384 NUL-terminated */
};
static_assert(offsetof(struct ndshm__arr, ready) == 16, "array header layout");
static_assert(offsetof(struct ndshm__arr, dtype) == 56, "array header layout");
static_assert(offsetof(struct ndshm__arr, shape) == 128, "array header layout");
static_assert(offsetof(struct ndshm__arr, name) == 384, "array header layout");
static_assert(sizeof(struct ndshm__arr) == 520, "array header layout");
static_assert(sizeof(struct ndshm__arr) <= NDSHM__ARR_DATA, "header fits its page");

/* Validated, private copy of an array header (never re-read from shared memory). */
struct ndshm__arr_geom {
    int32_t dtype;
    uint32_t ndim;
    uint32_t order;
    uint32_t mode;
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t nbytes;
    uint64_t data_offset;
    uint64_t file_size;
    uint64_t created_ns;
};

/* Check the header at `base` of a file of `size` bytes (base maps at least min(size, 4096)
 * bytes) for array `name` (NULL: any name). NDSHM_OK with *g filled, or NDSHM_E_NOT_READY,
 * NDSHM_E_KIND (a channel), NDSHM_E_MAGIC, NDSHM_E_LAYOUT, NDSHM_E_CORRUPT. */
NDSHM_INTERNAL int ndshm__array_validate(const void *base, uint64_t size, const char *name,
                                         struct ndshm__arr_geom *g);

/* How long ndshm_array_attach() waits for an array whose creator is still creating it
 * (default 250 ms; tests change it). */
NDSHM_INTERNAL extern uint64_t ndshm__array_ready_wait_ns;

/* ndshm_stat() of a name whose file is an array: the channel_info of the array (kind
 * NDSHM_KIND_ARRAY). Called by channel.c when the file is not a channel. */
NDSHM_INTERNAL int ndshm__array_stat_entry(const char *name, ndshm_channel_info *out);

#endif /* NDSHM_ARRAY_INTERNAL_H */
