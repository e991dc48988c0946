/*
 * The ndshm wire format: one version as one self-describing byte buffer. Encoders write
 * format 2; decoders read formats 2 and 1.
 *
 * LAYOUT, format 2 (all integers little-endian, byte offsets from the buffer start;
 * docs/wire.md)
 *    0  u32  magic            "NDSW"
 *    4  u16  format           2
 *    6  u16  header_len       128 + 8 * ndim  (fixed header and shape)
 *    8  u16  flags            bit 0: publish_real_ns valid; bit 1: a re-sent version;
 *                             other bits must be 0
 *   10  u8   dtype            ndshm_dtype, 1..14
 *   11  u8   ndim             0..32
 *   12  u32  payload_offset   header_len + meta_len rounded up to a multiple of 64
 *   16  u64  version          sending channel's version number
 *   24  u64  publish_ns       its writer's CLOCK_MONOTONIC at publish
 *   32  u64  publish_real_ns  the same instant in that host's CLOCK_REALTIME
 *   40  u64  payload_len      = ndshm_array_nbytes(dtype, ndim, shape)
 *   48  u64  stream_seq       sender's message counter within a session
 *   56  u64  session          sender's session id
 *   64  u64  user_ns          the version's extras (ndshm_extra), 0 = none
 *   72  u64  user_tag
 *   80  u64  origin_version
 *   88  u64  origin_ns
 *   96  u32  meta_len         metadata bytes, 0..65536
 *  100  u32  reserved         0
 *  104  u64  channel          the sending channel's incarnation (created_ns), 0 = unknown
 *  112  u8[16] reserved       0
 *  128  u64  shape[ndim]
 *  header_len: meta_len bytes of metadata
 *  header_len + meta_len .. payload_offset: zero padding
 *  payload_offset: payload_len bytes of C-contiguous array data, nothing after.
 *
 * Format 1 (read only): the first 64 bytes as above without the extras (bytes 64.. are the
 * shape, header_len = 64 + 8 * ndim, payload_offset = header_len rounded up to 64), flag
 * bit 0 only.
 *
 * Every length is explicit and redundant on purpose: a decoder recomputes header_len,
 * payload_offset and payload_len from ndim, dtype, shape and meta_len and refuses any
 * mismatch, so no field read from the buffer ever drives an access by itself. Fields are read
 * byte by byte (no unaligned or type-punned loads), so the decoder is independent of host
 * endianness and of the buffer's alignment.
 */
#include <string.h>
#include <time.h>

#include "internal.h"
#include "ndshm/wire.h"

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define FIXED_V1 64u /* fixed header of format 1 */

/* header_len and payload_offset of format `format` for ndim <= NDSHM_MAX_DIMS and
 * meta_len <= NDSHM_WIRE_META_MAX */
static uint32_t header_len(uint32_t format, uint32_t ndim)
{
    return (format == 1 ? FIXED_V1 : NDSHM_WIRE_FIXED) + 8u * ndim;
}

static uint32_t payload_offset(uint32_t format, uint32_t ndim, uint32_t meta_len)
{
    return (header_len(format, ndim) + meta_len + NDSHM_WIRE_ALIGN - 1) / NDSHM_WIRE_ALIGN *
           NDSHM_WIRE_ALIGN;
}

static_assert(NDSHM_WIRE_FIXED + 8u * NDSHM_MAX_DIMS + NDSHM_WIRE_META_MAX <= NDSHM_WIRE_HEADER_MAX,
              "header max");
static_assert(NDSHM_WIRE_HEADER_MAX % NDSHM_WIRE_ALIGN == 0, "header max aligned");
static_assert(NDSHM_WIRE_HEADER_MAX <= UINT32_MAX, "payload_offset is a u32");
#ifdef NDSHM_META_MAX
static_assert(NDSHM_WIRE_META_MAX == NDSHM_META_MAX, "the wire carries a channel's metadata");
#endif

int ndshm_wire_header_size(uint32_t ndim, size_t *size)
{
    if (!size)
        return NDSHM_E_INVAL;
    if (ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    *size = payload_offset(NDSHM_WIRE_FORMAT, ndim, 0);
    return NDSHM_OK;
}

/* Checks the metadata an encoder is given. */
static int meta_check(const ndshm_wire_meta *meta)
{
    if (!meta)
        return NDSHM_E_INVAL;
    if (meta->ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    if (meta->flags & ~(uint32_t)NDSHM_WIRE_KNOWN_FLAGS)
        return NDSHM_E_INVAL;
    if (meta->meta_len > NDSHM_WIRE_META_MAX)
        return NDSHM_E_LIMIT;
    if (meta->meta_len > 0 && !meta->meta)
        return NDSHM_E_INVAL;
    uint64_t nbytes;
    int rc = ndshm_array_nbytes(meta->dtype, meta->ndim, meta->shape, &nbytes);
    if (rc != NDSHM_OK)
        return rc;
    if (nbytes != meta->nbytes)
        return NDSHM_E_INVAL;
    return NDSHM_OK;
}

int ndshm_wire_size(const ndshm_wire_meta *meta, uint64_t *size)
{
    if (!size)
        return NDSHM_E_INVAL;
    int rc = meta_check(meta);
    if (rc != NDSHM_OK)
        return rc;
    /* nbytes <= NDSHM_MAX_CAPACITY (2^40): no overflow */
    *size = payload_offset(NDSHM_WIRE_FORMAT, meta->ndim, meta->meta_len) + meta->nbytes;
    return NDSHM_OK;
}

int ndshm_wire_encode_header(const ndshm_wire_meta *meta, void *buf, size_t buf_size,
                             size_t *written)
{
    if (!buf || !written)
        return NDSHM_E_INVAL;
    int rc = meta_check(meta);
    if (rc != NDSHM_OK)
        return rc;
    uint32_t hlen = header_len(NDSHM_WIRE_FORMAT, meta->ndim);
    uint32_t off = payload_offset(NDSHM_WIRE_FORMAT, meta->ndim, meta->meta_len);
    if (buf_size < off)
        return NDSHM_E_TOO_SMALL;
    unsigned char *p = buf;
    put32(p + 0, NDSHM_WIRE_MAGIC);
    put16(p + 4, NDSHM_WIRE_FORMAT);
    put16(p + 6, (uint16_t)hlen);
    put16(p + 8, (uint16_t)meta->flags);
    p[10] = (unsigned char)meta->dtype;
    p[11] = (unsigned char)meta->ndim;
    put32(p + 12, off);
    put64(p + 16, meta->version);
    put64(p + 24, meta->publish_ns);
    put64(p + 32, meta->publish_real_ns);
    put64(p + 40, meta->nbytes);
    put64(p + 48, meta->stream_seq);
    put64(p + 56, meta->session);
    put64(p + 64, meta->user_ns);
    put64(p + 72, meta->user_tag);
    put64(p + 80, meta->origin_version);
    put64(p + 88, meta->origin_ns);
    put32(p + 96, meta->meta_len);
    memset(p + 100, 0, 4);
    put64(p + 104, meta->channel);
    memset(p + 112, 0, NDSHM_WIRE_FIXED - 112);
    for (uint32_t i = 0; i < meta->ndim; i++)
        put64(p + NDSHM_WIRE_FIXED + 8 * i, meta->shape[i]);
    if (meta->meta_len)
        memcpy(p + hlen, meta->meta, meta->meta_len);
    memset(p + hlen + meta->meta_len, 0, off - hlen - meta->meta_len);
    *written = off;
    return NDSHM_OK;
}

int ndshm_wire_encode(const ndshm_wire_meta *meta, const void *payload, void *buf, size_t buf_size,
                      size_t *written)
{
    if (!buf || !written)
        return NDSHM_E_INVAL;
    uint64_t total;
    int rc = ndshm_wire_size(meta, &total);
    if (rc != NDSHM_OK)
        return rc;
    if (meta->nbytes > 0 && !payload)
        return NDSHM_E_INVAL;
    if (total > buf_size)
        return NDSHM_E_TOO_SMALL;
    size_t off;
    rc = ndshm_wire_encode_header(meta, buf, buf_size, &off);
    if (rc != NDSHM_OK)
        return rc;
    if (meta->nbytes > 0)
        memcpy((unsigned char *)buf + off, payload, (size_t)meta->nbytes);
    *written = (size_t)total;
    return NDSHM_OK;
}

int ndshm_wire_decode_header(const void *buf, size_t size, ndshm_wire_meta *meta,
                             size_t *payload_offset_out)
{
    if (!buf || !meta || !payload_offset_out)
        return NDSHM_E_INVAL;
    const unsigned char *p = buf;
    /* Identity first, so a foreign buffer is called foreign rather than truncated. */
    if (size < 4)
        return NDSHM_E_TOO_SMALL;
    if (get32(p) != NDSHM_WIRE_MAGIC)
        return NDSHM_E_MAGIC;
    if (size < 6)
        return NDSHM_E_TOO_SMALL;
    uint32_t format = get16(p + 4);
    if (format != 1 && format != 2)
        return NDSHM_E_LAYOUT;
    uint32_t fixed = format == 1 ? FIXED_V1 : NDSHM_WIRE_FIXED;
    if (size < fixed)
        return NDSHM_E_TOO_SMALL;
    uint32_t flags = get16(p + 8);
    if (flags & ~(uint32_t)(format == 1 ? NDSHM_WIRE_REALTIME : NDSHM_WIRE_KNOWN_FLAGS))
        return NDSHM_E_LAYOUT;
    uint32_t ndim = p[11];
    if (ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    uint32_t meta_len = format == 1 ? 0 : get32(p + 96);
    if (meta_len > NDSHM_WIRE_META_MAX)
        return NDSHM_E_LIMIT;
    /* The redundant lengths must be exactly what ndim and meta_len imply. */
    uint32_t hlen = header_len(format, ndim), off = payload_offset(format, ndim, meta_len);
    if (get16(p + 6) != hlen || get32(p + 12) != off)
        return NDSHM_E_CORRUPT;
    if (format == 2)
        for (uint32_t i = 100; i < NDSHM_WIRE_FIXED; i++)
            if (p[i] != 0 && (i < 104 || i >= 112))
                return NDSHM_E_CORRUPT; /* reserved */
    if (size < (size_t)hlen + meta_len)
        return NDSHM_E_TOO_SMALL;
    int32_t dtype = p[10];
    if (ndshm_dtype_size(dtype) == 0)
        return NDSHM_E_DTYPE;
    uint64_t shape[NDSHM_MAX_DIMS];
    for (uint32_t i = 0; i < ndim; i++)
        shape[i] = get64(p + fixed + 8 * i);
    uint64_t nbytes;
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc != NDSHM_OK)
        return rc; /* NDSHM_E_OVERFLOW: the shape cannot be an array */
    if (get64(p + 40) != nbytes)
        return NDSHM_E_CORRUPT;
    /* Padding, as far as the caller gave it, must be zero. */
    size_t pad_end = size < off ? size : off;
    for (size_t i = (size_t)hlen + meta_len; i < pad_end; i++)
        if (p[i] != 0)
            return NDSHM_E_CORRUPT;

    ndshm_wire_meta m;
    memset(&m, 0, sizeof m);
    m.dtype = dtype;
    m.ndim = ndim;
    memcpy(m.shape, shape, sizeof(uint64_t) * ndim);
    m.version = get64(p + 16);
    m.publish_ns = get64(p + 24);
    m.publish_real_ns = get64(p + 32);
    m.nbytes = nbytes;
    m.stream_seq = get64(p + 48);
    m.session = get64(p + 56);
    m.flags = flags;
    m.format = format;
    if (format == 2) {
        m.user_ns = get64(p + 64);
        m.user_tag = get64(p + 72);
        m.origin_version = get64(p + 80);
        m.origin_ns = get64(p + 88);
        m.meta_len = meta_len;
        m.meta = meta_len ? p + hlen : NULL;
        m.channel = get64(p + 104);
    }
    *meta = m;
    *payload_offset_out = off;
    return NDSHM_OK;
}

int ndshm_wire_decode(const void *buf, size_t size, ndshm_wire_meta *meta, const void **payload)
{
    if (!buf || !meta || !payload)
        return NDSHM_E_INVAL;
    ndshm_wire_meta m;
    size_t off;
    int rc = ndshm_wire_decode_header(buf, size, &m, &off);
    if (rc != NDSHM_OK)
        return rc;
    /* off <= NDSHM_WIRE_HEADER_MAX and nbytes <= 2^40: the sum cannot overflow 64 bits. */
    uint64_t total = (uint64_t)off + m.nbytes;
    if ((uint64_t)size < total)
        return NDSHM_E_TOO_SMALL;
    if ((uint64_t)size > total)
        return NDSHM_E_LIMIT;
    *meta = m;
    *payload = (const unsigned char *)buf + off;
    return NDSHM_OK;
}

uint64_t ndshm_wire_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

int ndshm_wire_meta_from_info(const ndshm_info *info, ndshm_wire_meta *meta)
{
    if (!info || !meta)
        return NDSHM_E_INVAL;
    if (info->ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    if (info->meta_len > NDSHM_WIRE_META_MAX)
        return NDSHM_E_LIMIT;
    ndshm_wire_meta m;
    memset(&m, 0, sizeof m);
    m.dtype = info->dtype;
    m.ndim = info->ndim;
    memcpy(m.shape, info->shape, sizeof(uint64_t) * info->ndim);
    m.version = info->version;
    m.publish_ns = info->publish_ns;
    m.nbytes = info->nbytes;
    m.user_ns = info->user_ns;
    m.user_tag = info->user_tag;
    m.origin_version = info->origin_version;
    m.origin_ns = info->origin_ns;
    m.meta_len = info->meta_len; /* the bytes: the caller's (m.meta) */
    /* The origin's monotonic stamp as a wall-clock instant: the age of the version, taken on
     * this host's monotonic clock, subtracted from the wall clock now. */
    uint64_t mono = ndshm_now_ns();
    uint64_t real = ndshm_wire_realtime_ns();
    uint64_t age = mono > info->publish_ns ? mono - info->publish_ns : 0;
    m.publish_real_ns = real > age ? real - age : 0;
    m.flags = NDSHM_WIRE_REALTIME;
    *meta = m;
    return NDSHM_OK;
}
