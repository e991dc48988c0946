/*
 * ndshm wire format: one published version (dtype, ndim, shape, version number, publish time,
 * the version's extras and metadata bytes, payload) as one self-describing little-endian byte
 * buffer, and back. Byte-by-byte description: docs/wire.md.
 *
 *   [ fixed header, 128 B | shape, 8 B x ndim | meta, meta_len B | zero padding ] [ payload ]
 *   ^ buffer start                                                  ^ payload_offset (x 64)
 *
 * The header part (everything before payload_offset) and the payload may travel as one buffer
 * or as two frames (a ZeroMQ multipart message): their concatenation is the buffer. Encoders
 * write format 2; decoders read format 2 and format 1 (64-byte fixed header, no extras, no
 * metadata).
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

#define NDSHM_WIRE_MAGIC    UINT32_C(0x5753444E) /* bytes "NDSW" */
#define NDSHM_WIRE_FORMAT   2u                   /* format version encoders write */
#define NDSHM_WIRE_FIXED    128u                 /* fixed header bytes before the shape */
#define NDSHM_WIRE_ALIGN    64u                  /* payload offset alignment */
#define NDSHM_WIRE_META_MAX 65536u               /* metadata bytes per version (NDSHM_META_MAX) */
/* Largest header part: 128 + 8 x 32 dims + NDSHM_WIRE_META_MAX, aligned (64 + 8 x 32, aligned,
 * = 320 in format 1). Without metadata it is at most 384 bytes. */
#define NDSHM_WIRE_HEADER_MAX 65920u

/* Header flags. A decoder refuses a buffer with a flag it does not know (NDSHM_E_LAYOUT). */
enum ndshm_wire_flags {
    NDSHM_WIRE_REALTIME = 1u << 0, /* publish_real_ns is set (the origin's CLOCK_REALTIME) */
    NDSHM_WIRE_RESENT = 1u << 1,   /* a repeat: this version may have been sent before (the
                                      newest one again, for a subscriber that just joined, or
                                      the head a restarted sender finds); a receiver that has
                                      republished it already drops it (format 2) */
};
#define NDSHM_WIRE_KNOWN_FLAGS 0x0003u

/** The metadata of one encoded version. */
typedef struct ndshm_wire_meta {
    int32_t dtype; /* ndshm_dtype */
    uint32_t ndim; /* 0..NDSHM_MAX_DIMS */
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t version;         /* the sending channel's version number */
    uint64_t publish_ns;      /* its writer's CLOCK_MONOTONIC at publish (that host's) */
    uint64_t publish_real_ns; /* the same instant in that host's CLOCK_REALTIME, ns since the
                                 epoch; meaningful when flags has NDSHM_WIRE_REALTIME */
    uint64_t nbytes;          /* payload bytes; must equal ndshm_array_nbytes(dtype, shape) */
    uint64_t stream_seq;      /* sender's message counter (1, 2, ...) within one session */
    uint64_t session;         /* sender's random session id (changes when a sender restarts) */
    uint32_t flags;           /* ndshm_wire_flags */
    uint32_t format;          /* decode: the buffer's format (1 or 2); ignored by encode */
    /* The version's extras (ndshm_extra), carried as they are; 0 / none when absent (and
     * always in a format-1 buffer). A bridge's receiver republishes user_ns, user_tag and the
     * metadata unchanged, and origin_version / origin_ns as given or, when 0, the sending
     * channel's version / publish_real_ns: the first hop's values survive any chain. */
    uint64_t user_ns;
    uint64_t user_tag;
    uint64_t origin_version;
    uint64_t origin_ns;
    uint32_t meta_len;  /* metadata bytes, 0..NDSHM_WIRE_META_MAX */
    uint32_t reserved_; /* ignored by encode, 0 after decode */
    const void *meta;   /* encode: meta_len bytes read from here (NULL allowed when 0);
                           decode: points into the decoded buffer (NULL when meta_len is 0) */
    uint64_t channel;   /* the sending channel's incarnation (its created_ns): a channel removed
                           and created again under the same name (numbering restarts at 1)
                           has another; 0 = unknown (and in a format-1 buffer) */
} ndshm_wire_meta;

/** Bytes of the header part for ndim dimensions and no metadata: the payload offset, a
 *  multiple of 64 (128 for ndim 0, 384 for 32). NDSHM_E_NDIM if ndim > NDSHM_MAX_DIMS. With
 *  metadata: ndshm_wire_size() - nbytes. */
NDSHM_API int ndshm_wire_header_size(uint32_t ndim, size_t *size /* out */);

/** Bytes of the whole encoded buffer (header part + payload). Checks the metadata as encode
 *  does. */
NDSHM_API int ndshm_wire_size(const ndshm_wire_meta *meta, uint64_t *size /* out */);

/** Write the header part (fixed header, shape, metadata, zero padding up to the payload
 *  offset) into buf, in format 2. *written = the payload offset. Checks dtype (NDSHM_E_DTYPE),
 *  ndim (NDSHM_E_NDIM), that meta->nbytes equals the array size (NDSHM_E_INVAL otherwise),
 *  unknown flags and meta_len > 0 with meta NULL (NDSHM_E_INVAL), meta_len above
 *  NDSHM_WIRE_META_MAX (NDSHM_E_LIMIT); NDSHM_E_TOO_SMALL if buf_size is below the header
 *  size (nothing written). */
NDSHM_API int ndshm_wire_encode_header(const ndshm_wire_meta *meta, void *buf, size_t buf_size,
                                       size_t *written /* out */);

/** Header part plus payload (meta->nbytes bytes from payload; NULL allowed when 0) into buf.
 *  *written = ndshm_wire_size(). buf and payload must not overlap. */
NDSHM_API int ndshm_wire_encode(const ndshm_wire_meta *meta, const void *payload, void *buf,
                                size_t buf_size, size_t *written /* out */);

/** Decode and check a header part (format 2 or 1): buf holds at least the header and its
 *  metadata (the payload need not follow). *payload_offset = where the payload starts.
 *  Statuses:
 *    NDSHM_E_INVAL      a NULL argument
 *    NDSHM_E_TOO_SMALL  truncated: fewer bytes than the header and metadata say they have
 *    NDSHM_E_MAGIC      not an ndshm wire buffer
 *    NDSHM_E_LAYOUT     unknown format version, or a flag this decoder does not know (the
 *                       RESENT flag in a format-1 buffer too)
 *    NDSHM_E_NDIM       ndim above NDSHM_MAX_DIMS
 *    NDSHM_E_LIMIT      meta_len above NDSHM_WIRE_META_MAX
 *    NDSHM_E_DTYPE      unknown dtype
 *    NDSHM_E_OVERFLOW   the shape's byte size overflows (or exceeds NDSHM_MAX_CAPACITY)
 *    NDSHM_E_CORRUPT    inconsistent: header length, payload offset or payload length do not
 *                       match ndim/dtype/shape/meta_len, or reserved or padding bytes are not
 *                       zero */
NDSHM_API int ndshm_wire_decode_header(const void *buf, size_t size,
                                       ndshm_wire_meta *meta /* out */,
                                       size_t *payload_offset /* out */);

/** Decode a whole buffer, zero-copy: *payload points into buf (at the payload offset; it is
 *  64-byte aligned when buf is). Statuses as ndshm_wire_decode_header, plus NDSHM_E_TOO_SMALL
 *  when the payload is cut short and NDSHM_E_LIMIT when the buffer is longer than header +
 *  payload (oversized: trailing bytes). */
NDSHM_API int ndshm_wire_decode(const void *buf, size_t size, ndshm_wire_meta *meta /* out */,
                                const void **payload /* out */);

/** Metadata for a version read from a channel: dtype, shape, version, nbytes, publish_ns and
 *  the extras (user_ns, user_tag, origin_version, origin_ns, meta_len) from info;
 *  publish_real_ns = CLOCK_REALTIME now - (CLOCK_MONOTONIC now - publish_ns), with
 *  NDSHM_WIRE_REALTIME set; stream_seq and session 0 (the sender's to fill); meta NULL: point
 *  it at the metadata bytes (ndshm_read_ex) when meta_len is not 0. */
NDSHM_API int ndshm_wire_meta_from_info(const ndshm_info *info, ndshm_wire_meta *meta /* out */);

/** CLOCK_REALTIME in ns since the epoch (the clock of publish_real_ns). */
NDSHM_API uint64_t ndshm_wire_realtime_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_WIRE_H */
