/*
 * ndshm wire format: one published version (dtype, ndim, shape, version number, publish time,
 * payload) as one self-describing little-endian byte buffer, and back. Byte-by-byte
 * description: docs/wire.md.
 *
 *   [ fixed header, 64 B | shape, 8 B x ndim | zero padding ] [ payload ]
 *   ^ buffer start                                           ^ payload_offset (multiple of 64)
 *
 * The header part (everything before payload_offset) and the payload may travel as one buffer
 * or as two frames (a ZeroMQ multipart message): their concatenation is the buffer.
 *
 * Decoding never trusts the bytes: every field is checked and each kind of bad input has its
 * own status (see ndshm_wire_decode). Encoding and decoding never allocate.
 */
#ifndef NDSHM_WIRE_H
#define NDSHM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ndshm/ndshm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NDSHM_WIRE_MAGIC      UINT32_C(0x5753444E) /* bytes "NDSW" */
#define NDSHM_WIRE_FORMAT     1u                   /* format version this library speaks */
#define NDSHM_WIRE_FIXED      64u                  /* fixed header bytes before the shape */
#define NDSHM_WIRE_ALIGN      64u                  /* payload offset alignment */
#define NDSHM_WIRE_HEADER_MAX 320u /* largest header part: 64 + 8 x 32 dims, aligned */

/* Header flags. A decoder refuses a buffer with a flag it does not know (NDSHM_E_LAYOUT). */
enum ndshm_wire_flags {
    NDSHM_WIRE_REALTIME = 1u << 0, /* publish_real_ns is set (the origin's CLOCK_REALTIME) */
    NDSHM_WIRE_RESENT = 1u << 1,   /* this version was sent before in this session: a copy of
                                      the newest one for a subscriber that just joined */
};
#define NDSHM_WIRE_KNOWN_FLAGS 0x0003u

/** The metadata of one encoded version. */
typedef struct ndshm_wire_meta {
    int32_t dtype; /* ndshm_dtype */
    uint32_t ndim; /* 0..NDSHM_MAX_DIMS */
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t version;         /* the origin channel's version number */
    uint64_t publish_ns;      /* the origin writer's CLOCK_MONOTONIC at publish (that host's) */
    uint64_t publish_real_ns; /* the same instant in the origin host's CLOCK_REALTIME, ns since
                                 the epoch; meaningful when flags has NDSHM_WIRE_REALTIME */
    uint64_t nbytes;          /* payload bytes; must equal ndshm_array_nbytes(dtype, shape) */
    uint64_t stream_seq;      /* sender's message counter (1, 2, ...) within one session */
    uint64_t session;         /* sender's random session id (changes when a sender restarts) */
    uint32_t flags;           /* ndshm_wire_flags */
    uint32_t reserved_;       /* ignored by encode, 0 after decode */
} ndshm_wire_meta;

/** Bytes of the header part for ndim dimensions: the payload offset, a multiple of 64.
 *  NDSHM_E_NDIM if ndim > NDSHM_MAX_DIMS. */
NDSHM_API int ndshm_wire_header_size(uint32_t ndim, size_t *size /* out */);

/** Bytes of the whole encoded buffer (header part + payload). Checks the metadata as encode
 *  does. */
NDSHM_API int ndshm_wire_size(const ndshm_wire_meta *meta, uint64_t *size /* out */);

/** Write the header part (fixed header, shape, zero padding up to the payload offset) into buf.
 *  *written = the payload offset. Checks dtype (NDSHM_E_DTYPE), ndim (NDSHM_E_NDIM), that
 *  meta->nbytes equals the array size (NDSHM_E_INVAL otherwise), unknown flags (NDSHM_E_INVAL);
 *  NDSHM_E_TOO_SMALL if buf_size is below the header size (nothing written). */
NDSHM_API int ndshm_wire_encode_header(const ndshm_wire_meta *meta, void *buf, size_t buf_size,
                                       size_t *written /* out */);

/** Header part plus payload (meta->nbytes bytes from payload; NULL allowed when 0) into buf.
 *  *written = ndshm_wire_size(). buf and payload must not overlap. */
NDSHM_API int ndshm_wire_encode(const ndshm_wire_meta *meta, const void *payload, void *buf,
                                size_t buf_size, size_t *written /* out */);

/** Decode and check a header part: buf holds at least the header (the payload need not
 *  follow). *payload_offset = where the payload starts. Statuses:
 *    NDSHM_E_INVAL      a NULL argument
 *    NDSHM_E_TOO_SMALL  truncated: fewer bytes than the header says it has
 *    NDSHM_E_MAGIC      not an ndshm wire buffer
 *    NDSHM_E_LAYOUT     unknown format version, or a flag this decoder does not know
 *    NDSHM_E_NDIM       ndim above NDSHM_MAX_DIMS
 *    NDSHM_E_DTYPE      unknown dtype
 *    NDSHM_E_OVERFLOW   the shape's byte size overflows (or exceeds NDSHM_MAX_CAPACITY)
 *    NDSHM_E_CORRUPT    inconsistent: header length, payload offset or payload length do not
 *                       match ndim/dtype/shape, or padding bytes are not zero */
NDSHM_API int ndshm_wire_decode_header(const void *buf, size_t size,
                                       ndshm_wire_meta *meta /* out */,
                                       size_t *payload_offset /* out */);

/** Decode a whole buffer, zero-copy: *payload points into buf (at the payload offset; it is
 *  64-byte aligned when buf is). Statuses as ndshm_wire_decode_header, plus NDSHM_E_TOO_SMALL
 *  when the payload is cut short and NDSHM_E_LIMIT when the buffer is longer than header +
 *  payload (oversized: trailing bytes). */
NDSHM_API int ndshm_wire_decode(const void *buf, size_t size, ndshm_wire_meta *meta /* out */,
                                const void **payload /* out */);

/** Metadata for a version read from a channel: dtype, shape, version, nbytes and publish_ns
 *  from info; publish_real_ns = CLOCK_REALTIME now - (CLOCK_MONOTONIC now - publish_ns), with
 *  NDSHM_WIRE_REALTIME set; stream_seq and session 0 (the sender's to fill). */
NDSHM_API int ndshm_wire_meta_from_info(const ndshm_info *info, ndshm_wire_meta *meta /* out */);

/** CLOCK_REALTIME in ns since the epoch (the clock of publish_real_ns). */
NDSHM_API uint64_t ndshm_wire_realtime_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_WIRE_H */
