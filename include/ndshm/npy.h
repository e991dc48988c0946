/*
 * ndshm .npy files: numpy's own on-disk format (NEP 1, "A Simple File Format for NumPy Arrays"),
 * readable by numpy.load and writable by numpy.save. Included by ndshm/ndshm.h.
 *
 *  - Writing produces format version 1.0, little-endian, C order (Fortran order with the
 *    *_order functions, for shared arrays), header padded so the data starts on a 64-byte
 *    boundary (what numpy itself writes).
 *  - Reading accepts format versions 1.0, 2.0 and 3.0 with a header of the exact numpy form
 *    {'descr': <str>, 'fortran_order': <bool>, 'shape': <tuple>} (keys in any order, each once).
 *  - Rejected, each with its status:
 *      NDSHM_E_DTYPE    descr is not one of the 14 numeric dtypes in little-endian (or byte)
 *                       order: big-endian ('>f4'), object ('|O'), strings, structured, ...
 *      NDSHM_E_LIMIT    fortran_order True (only C order is supported by the channel
 *                       functions; the *_order functions accept it), or a header larger
 *                       than NDSHM_NPY_MAX_HEADER
 *      NDSHM_E_NDIM     more than NDSHM_MAX_DIMS dimensions
 *      NDSHM_E_OVERFLOW the shape's byte size overflows or exceeds NDSHM_MAX_CAPACITY
 *      NDSHM_E_CORRUPT  not a .npy file (magic), unknown format version, malformed header,
 *                       truncated data or trailing bytes after the data
 *  - Nothing in the bytes is trusted: lengths are checked against the real buffer/file size
 *    before anything is allocated or copied.
 */
#ifndef NDSHM_NPY_H
#define NDSHM_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "ndshm/ndshm.h" /* NDSHM_API, NDSHM_MAX_DIMS (guarded: safe either way round) */

#ifdef __cplusplus
extern "C" {
#endif

#define NDSHM_NPY_MAX_HEADER 65536u /* bytes of header dict accepted (numpy's default: 10000) */

/** What a .npy header says. */
typedef struct ndshm_npy_header {
    int32_t dtype; /* ndshm_dtype */
    uint32_t ndim; /* 0 = a scalar */
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t nbytes;      /* payload bytes: shape product times item size */
    uint64_t data_offset; /* where the payload starts: magic, version, length and dict */
    uint32_t major;       /* format version the file was written in (1, 2 or 3) */
    uint32_t minor;
} ndshm_npy_header;

/** Format the preamble of a .npy file (magic, version 1.0, header dict, padding) into buf.
 *  *len gets its length (a multiple of 64). NDSHM_E_TOO_SMALL if buf_size is too small
 *  (*len then holds the size needed). */
NDSHM_API int ndshm_npy_header_format(int dtype, uint32_t ndim, const uint64_t *shape, void *buf,
                                      size_t buf_size, size_t *len /* out */);

/** Parse a whole .npy file held in memory: the header, and check that exactly hdr->nbytes of
 *  payload follow. *data (may be NULL) points at the payload inside buf. */
NDSHM_API int ndshm_npy_parse(const void *buf, size_t len, ndshm_npy_header *hdr /* out */,
                              const void **data /* out */);

/** Write a C-contiguous array to `path` (created or truncated, mode 0666 & ~umask). On failure
 *  the partly written file is removed. */
NDSHM_API int ndshm_save_npy(const char *path, int dtype, uint32_t ndim, const uint64_t *shape,
                             const void *data);

/** Read `path`. *data gets a buffer of hdr->nbytes bytes (never NULL on success, even for zero
 *  bytes) to free with ndshm_npy_free(). */
NDSHM_API int ndshm_load_npy(const char *path, ndshm_npy_header *hdr /* out */,
                             void **data /* out */);

/** Free a buffer from ndshm_load_npy() or ndshm_load_npy_order(); NULL is a no-op. */
NDSHM_API void ndshm_npy_free(void *data);

/* Memory order (NDSHM_ORDER_C or NDSHM_ORDER_F, as numpy's fortran_order): for shared arrays,
 * which may be Fortran-ordered. The payload is the array's memory, in that order. */

/** As ndshm_npy_header_format, with 'fortran_order': True when order is NDSHM_ORDER_F. */
NDSHM_API int ndshm_npy_header_format_order(int dtype, uint32_t ndim, const uint64_t *shape,
                                            uint32_t order, void *buf, size_t buf_size,
                                            size_t *len /* out */);
/** As ndshm_npy_parse, accepting fortran_order True too: *order tells which. */
NDSHM_API int ndshm_npy_parse_order(const void *buf, size_t len, ndshm_npy_header *hdr /* out */,
                                    uint32_t *order /* out */, const void **data /* out */);
/** As ndshm_save_npy, for data in `order` (numpy.load gives an F-contiguous array for F). */
NDSHM_API int ndshm_save_npy_order(const char *path, int dtype, uint32_t ndim,
                                   const uint64_t *shape, uint32_t order, const void *data);
/** As ndshm_load_npy, accepting fortran_order True too: *order tells which (the payload is
 *  then in Fortran order). */
NDSHM_API int ndshm_load_npy_order(const char *path, ndshm_npy_header *hdr /* out */,
                                   uint32_t *order /* out */, void **data /* out */);

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_NPY_H */
