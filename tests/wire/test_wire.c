/* Wire format: round trips for every dtype and ndim, with extras and metadata, the exact byte
 * layout of docs/wire.md (format 2), format-1 buffers still decoded, and one clear status for
 * each kind of bad buffer (truncated at every length, oversized, foreign, unknown format or
 * flag, inconsistent lengths, metadata too long, bad reserved or padding bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

static ndshm_wire_meta meta_for(int dtype, uint32_t ndim, const uint64_t *shape, uint64_t v)
{
    ndshm_wire_meta m;
    memset(&m, 0, sizeof m);
    m.dtype = dtype;
    m.ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++)
        m.shape[i] = shape[i];
    assert_int_equal(ndshm_array_nbytes(dtype, ndim, shape, &m.nbytes), NDSHM_OK);
    m.version = v;
    m.publish_ns = 1000 + v;
    m.publish_real_ns = UINT64_C(1700000000000000000) + v;
    m.stream_seq = v * 3;
    m.session = UINT64_C(0x0123456789abcdef);
    m.flags = NDSHM_WIRE_REALTIME;
    return m;
}

/* Encodes m with a tu_fill payload into a fresh 64-aligned buffer; *len gets its size. */
static unsigned char *encode(const ndshm_wire_meta *m, size_t *len)
{
    uint64_t total = 0;
    assert_int_equal(ndshm_wire_size(m, &total), NDSHM_OK);
    void *payload = malloc(m->nbytes ? m->nbytes : 1);
    assert_non_null(payload);
    tu_fill(payload, m->nbytes, m->version);
    unsigned char *buf = aligned_alloc(64, (total + 63) / 64 * 64);
    assert_non_null(buf);
    size_t written = 0;
    assert_int_equal(ndshm_wire_encode(m, payload, buf, total, &written), NDSHM_OK);
    assert_int_equal(written, total);
    free(payload);
    *len = written;
    return buf;
}

static void roundtrip_all_dtypes_and_ndims(void **state)
{
    (void)state;
    for (int dt = 1; dt <= NDSHM_DTYPE_COUNT; dt++) {
        for (uint32_t ndim = 0; ndim <= NDSHM_MAX_DIMS; ndim++) {
            uint64_t shape[NDSHM_MAX_DIMS];
            for (uint32_t i = 0; i < ndim; i++)
                shape[i] = i < 3 ? 3 + i + (uint64_t)dt % 2 : 1;
            ndshm_wire_meta m = meta_for(dt, ndim, shape, (uint64_t)dt * 100 + ndim);
            size_t len;
            unsigned char *buf = encode(&m, &len);
            ndshm_wire_meta d;
            const void *payload = NULL;
            assert_int_equal(ndshm_wire_decode(buf, len, &d, &payload), NDSHM_OK);
            assert_int_equal(d.dtype, dt);
            assert_int_equal(d.ndim, ndim);
            assert_memory_equal(d.shape, shape, sizeof(uint64_t) * ndim);
            assert_int_equal(d.version, m.version);
            assert_int_equal(d.publish_ns, m.publish_ns);
            assert_int_equal(d.publish_real_ns, m.publish_real_ns);
            assert_int_equal(d.nbytes, m.nbytes);
            assert_int_equal(d.stream_seq, m.stream_seq);
            assert_int_equal(d.session, m.session);
            assert_int_equal(d.flags, NDSHM_WIRE_REALTIME);
            /* zero-copy: the payload is inside the buffer, 64-byte aligned */
            size_t hs = 0;
            assert_int_equal(ndshm_wire_header_size(ndim, &hs), NDSHM_OK);
            assert_ptr_equal(payload, buf + hs);
            assert_int_equal((uintptr_t)payload % 64, 0);
            assert_true(tu_check(payload, d.nbytes, m.version));
            free(buf);
        }
    }
}

static void byte_layout(void **state)
{
    (void)state;
    uint64_t shape[3] = {1080, 1920, 3};
    ndshm_wire_meta m = meta_for(NDSHM_UINT8, 3, shape, 0x1122334455667788u);
    m.user_ns = 0x0101010101010101u;
    m.origin_version = 0x0202020202020202u;
    m.channel = 0x0303030303030303u;
    static unsigned char hdr[NDSHM_WIRE_HEADER_MAX];
    memset(hdr, 0xee, sizeof hdr);
    size_t n = 0;
    assert_int_equal(ndshm_wire_encode_header(&m, hdr, sizeof hdr, &n), NDSHM_OK);
    assert_int_equal(n, 192); /* 128 + 3 x 8 = 152, rounded up to 192 */
    static const unsigned char expect_start[16] = {
        'N',         'D', 'S', 'W', 2, 0, /* format 2 */ 152, 0, /* header_len */
        1,           0,                                          /* flags: REALTIME */
        NDSHM_UINT8, 3,                                          /* dtype, ndim */
        192,         0,   0,   0,                                /* payload offset */
    };
    assert_memory_equal(hdr, expect_start, 16);
    static const unsigned char expect_version[8] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(hdr + 16, expect_version, 8);
    /* payload_len = 6,220,800 = 0x5EEC00 */
    static const unsigned char expect_len[8] = {0x00, 0xEC, 0x5E, 0, 0, 0, 0, 0};
    assert_memory_equal(hdr + 40, expect_len, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(hdr[64 + i], 0x01); /* user_ns */
        assert_int_equal(hdr[72 + i], 0);    /* user_tag */
        assert_int_equal(hdr[80 + i], 0x02); /* origin_version */
    }
    for (size_t i = 96; i < 128; i++) /* meta_len 0, reserved, channel */
        assert_int_equal(hdr[i], i >= 104 && i < 112 ? 0x03 : 0);
    static const unsigned char expect_dim0[8] = {0x38, 0x04, 0, 0, 0, 0, 0, 0}; /* 1080 */
    assert_memory_equal(hdr + 128, expect_dim0, 8);
    for (size_t i = 152; i < 192; i++)
        assert_int_equal(hdr[i], 0);
    assert_int_equal(hdr[192], 0xee); /* nothing written past the header part */

    size_t hs = 0;
    assert_int_equal(ndshm_wire_header_size(0, &hs), NDSHM_OK);
    assert_int_equal(hs, 128);
    assert_int_equal(ndshm_wire_header_size(32, &hs), NDSHM_OK);
    assert_int_equal(hs, 384);
    assert_int_equal(ndshm_wire_header_size(33, &hs), NDSHM_E_NDIM);
    /* the largest header part: 32 dims and the most metadata */
    uint64_t ones[NDSHM_MAX_DIMS];
    for (int i = 0; i < NDSHM_MAX_DIMS; i++)
        ones[i] = 1;
    ndshm_wire_meta big = meta_for(NDSHM_UINT8, NDSHM_MAX_DIMS, ones, 1);
    big.meta_len = NDSHM_WIRE_META_MAX;
    big.meta = hdr; /* any bytes */
    uint64_t total = 0;
    assert_int_equal(ndshm_wire_size(&big, &total), NDSHM_OK);
    assert_int_equal(total - big.nbytes, NDSHM_WIRE_HEADER_MAX);

    /* decode_header needs only the header part (multipart: header frame alone) */
    ndshm_wire_meta d;
    size_t off = 0;
    assert_int_equal(ndshm_wire_decode_header(hdr, n, &d, &off), NDSHM_OK);
    assert_int_equal(off, 192);
    assert_int_equal(d.nbytes, 6220800);
    assert_int_equal(d.format, 2);
    assert_int_equal(d.user_ns, m.user_ns);
    assert_int_equal(d.origin_version, m.origin_version);
    assert_int_equal(d.channel, m.channel);
    assert_int_equal(d.meta_len, 0);
    assert_null(d.meta);
}

/* Extras and metadata of every interesting length travel unchanged; the payload stays 64-byte
 * aligned after the metadata. */
static void extras_and_metadata(void **state)
{
    (void)state;
    static unsigned char blob[NDSHM_WIRE_META_MAX];
    tu_fill(blob, sizeof blob, 77);
    uint32_t lens[] = {0, 1, 63, 64, 65, 4000, NDSHM_WIRE_META_MAX};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        uint64_t shape[2] = {5, 7};
        ndshm_wire_meta m = meta_for(NDSHM_FLOAT64, 2, shape, 1000 + k);
        m.user_ns = 111 + k;
        m.user_tag = UINT64_MAX - k;
        m.origin_version = 5000 + k;
        m.origin_ns = UINT64_C(1700000000000000000) + k;
        m.channel = UINT64_C(1800000000000000000) + k;
        m.meta_len = lens[k];
        m.meta = lens[k] ? blob : NULL;
        m.flags |= NDSHM_WIRE_RESENT;
        size_t len;
        unsigned char *buf = encode(&m, &len);
        ndshm_wire_meta d;
        const void *payload = NULL;
        assert_int_equal(ndshm_wire_decode(buf, len, &d, &payload), NDSHM_OK);
        assert_int_equal(d.format, 2);
        assert_int_equal(d.flags, NDSHM_WIRE_REALTIME | NDSHM_WIRE_RESENT);
        assert_int_equal(d.user_ns, m.user_ns);
        assert_int_equal(d.user_tag, m.user_tag);
        assert_int_equal(d.origin_version, m.origin_version);
        assert_int_equal(d.origin_ns, m.origin_ns);
        assert_int_equal(d.channel, m.channel);
        assert_int_equal(d.meta_len, lens[k]);
        if (lens[k]) {
            assert_ptr_equal(d.meta, buf + 128 + 16);
            assert_memory_equal(d.meta, blob, lens[k]);
        } else {
            assert_null(d.meta);
        }
        assert_int_equal((uintptr_t)payload % 64, 0);
        assert_int_equal((size_t)((const unsigned char *)payload - buf),
                         (128 + 16 + lens[k] + 63) / 64 * 64);
        assert_true(tu_check(payload, d.nbytes, m.version));
        /* every truncation, into the metadata too, is E_TOO_SMALL */
        for (size_t cut = 0; cut < len; cut += 1 + cut / 16)
            assert_int_equal(ndshm_wire_decode(buf, cut, &d, &payload), NDSHM_E_TOO_SMALL);
        free(buf);
    }
    /* too much metadata, or a length without bytes */
    uint64_t shape[1] = {3};
    ndshm_wire_meta m = meta_for(NDSHM_UINT8, 1, shape, 1);
    uint64_t total;
    m.meta_len = NDSHM_WIRE_META_MAX + 1;
    m.meta = blob;
    assert_int_equal(ndshm_wire_size(&m, &total), NDSHM_E_LIMIT);
    m.meta_len = 4;
    m.meta = NULL;
    assert_int_equal(ndshm_wire_size(&m, &total), NDSHM_E_INVAL);
}

/* A format-1 buffer (64-byte fixed header, no extras), as a sender of the previous release
 * writes it, still decodes; the RESENT flag does not exist in format 1. */
static void format1_still_decodes(void **state)
{
    (void)state;
    unsigned char b[64 + 16 + 48 + 6]; /* ndim 2: header_len 80, payload at 128, 6 bytes */
    memset(b, 0, sizeof b);
    memcpy(b, "NDSW", 4);
    b[4] = 1;            /* format 1 */
    b[6] = 80;           /* header_len */
    b[8] = 1;            /* flags: REALTIME */
    b[10] = NDSHM_UINT8; /* dtype */
    b[11] = 2;           /* ndim */
    b[12] = 128;         /* payload_offset */
    b[16] = 9;           /* version */
    b[24] = 10;          /* publish_ns */
    b[32] = 11;          /* publish_real_ns */
    b[40] = 6;           /* payload_len */
    b[48] = 12;          /* stream_seq */
    b[56] = 13;          /* session */
    b[64] = 2;           /* shape 2 x 3 */
    b[72] = 3;
    memcpy(b + 128, "abcdef", 6);
    ndshm_wire_meta d;
    const void *payload;
    assert_int_equal(ndshm_wire_decode(b, sizeof b, &d, &payload), NDSHM_OK);
    assert_int_equal(d.format, 1);
    assert_int_equal(d.version, 9);
    assert_int_equal(d.publish_ns, 10);
    assert_int_equal(d.publish_real_ns, 11);
    assert_int_equal(d.stream_seq, 12);
    assert_int_equal(d.session, 13);
    assert_int_equal(d.ndim, 2);
    assert_int_equal(d.shape[0], 2);
    assert_int_equal(d.shape[1], 3);
    assert_int_equal(d.user_ns | d.user_tag | d.origin_version | d.origin_ns | d.meta_len, 0);
    assert_int_equal(d.channel, 0);
    assert_ptr_equal(payload, b + 128);
    b[8] = 1 | NDSHM_WIRE_RESENT;
    assert_int_equal(ndshm_wire_decode(b, sizeof b, &d, &payload), NDSHM_E_LAYOUT);
    b[8] = 1;
    b[4] = 3; /* an unknown format */
    assert_int_equal(ndshm_wire_decode(b, sizeof b, &d, &payload), NDSHM_E_LAYOUT);
    b[4] = 1;
    /* re-encoded, it becomes format 2 with the same content */
    unsigned char out[256];
    size_t n;
    assert_int_equal(ndshm_wire_decode(b, sizeof b, &d, &payload), NDSHM_OK);
    assert_int_equal(ndshm_wire_encode(&d, payload, out, sizeof out, &n), NDSHM_OK);
    assert_int_equal(n, 128 + 64 + 6); /* 128 + 16 = 144, rounded up to 192 */
    ndshm_wire_meta e;
    const void *p2;
    assert_int_equal(ndshm_wire_decode(out, n, &e, &p2), NDSHM_OK);
    assert_int_equal(e.format, 2);
    e.format = 1;
    assert_memory_equal(&e, &d, sizeof e);
    assert_memory_equal(p2, "abcdef", 6);
}

static void encode_rejects_bad_meta(void **state)
{
    (void)state;
    uint64_t shape[2] = {4, 5};
    ndshm_wire_meta m = meta_for(NDSHM_FLOAT32, 2, shape, 1);
    unsigned char buf[512];
    size_t n = 12345;
    ndshm_wire_meta bad = m;
    bad.nbytes += 1;
    assert_int_equal(ndshm_wire_encode_header(&bad, buf, sizeof buf, &n), NDSHM_E_INVAL);
    bad = m;
    bad.dtype = 0;
    assert_int_equal(ndshm_wire_encode_header(&bad, buf, sizeof buf, &n), NDSHM_E_DTYPE);
    bad = m;
    bad.ndim = 33;
    assert_int_equal(ndshm_wire_encode_header(&bad, buf, sizeof buf, &n), NDSHM_E_NDIM);
    bad = m;
    bad.flags = 0x8000;
    assert_int_equal(ndshm_wire_encode_header(&bad, buf, sizeof buf, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wire_encode_header(&m, buf, 191, &n), NDSHM_E_TOO_SMALL);
    assert_int_equal(ndshm_wire_encode_header(NULL, buf, sizeof buf, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wire_encode_header(&m, NULL, sizeof buf, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wire_encode(&m, NULL, buf, sizeof buf, &n), NDSHM_E_INVAL);
    float data[20] = {0};
    assert_int_equal(ndshm_wire_encode(&m, data, buf, 192 + 79, &n), NDSHM_E_TOO_SMALL);
    assert_int_equal(n, 12345); /* out-param untouched on failure */
    assert_int_equal(ndshm_wire_encode(&m, data, buf, 192 + 80, &n), NDSHM_OK);
    assert_int_equal(n, 272);
}

static void decode_truncated_and_oversized(void **state)
{
    (void)state;
    uint64_t shape[2] = {7, 3};
    ndshm_wire_meta m = meta_for(NDSHM_INT16, 2, shape, 42);
    size_t len;
    unsigned char *buf = encode(&m, &len);
    ndshm_wire_meta d;
    memset(&d, 0x5a, sizeof d);
    const ndshm_wire_meta before = d;
    const void *payload = (const void *)&d;
    /* every truncation gets E_TOO_SMALL and leaves the outs untouched */
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(ndshm_wire_decode(buf, n, &d, &payload), NDSHM_E_TOO_SMALL);
        assert_memory_equal(&d, &before, sizeof d);
        assert_ptr_equal(payload, (const void *)&d);
    }
    /* oversized: trailing bytes */
    unsigned char *big = malloc(len + 1);
    assert_non_null(big);
    memcpy(big, buf, len);
    big[len] = 0;
    assert_int_equal(ndshm_wire_decode(big, len + 1, &d, &payload), NDSHM_E_LIMIT);
    assert_int_equal(ndshm_wire_decode(big, len, &d, &payload), NDSHM_OK);
    free(big);
    assert_int_equal(ndshm_wire_decode(NULL, len, &d, &payload), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wire_decode(buf, len, NULL, &payload), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wire_decode(buf, len, &d, NULL), NDSHM_E_INVAL);
    free(buf);
}

/* Decodes a copy of buf with byte `at` set to `value`. */
static int decode_patched(const unsigned char *buf, size_t len, size_t at, unsigned char value)
{
    unsigned char *c = malloc(len);
    assert_non_null(c);
    memcpy(c, buf, len);
    c[at] = value;
    ndshm_wire_meta d;
    const void *payload;
    int rc = ndshm_wire_decode(c, len, &d, &payload);
    free(c);
    return rc;
}

static void decode_bad_fields(void **state)
{
    (void)state;
    uint64_t shape[2] = {7, 3};
    ndshm_wire_meta m = meta_for(NDSHM_INT16, 2, shape, 42);
    size_t len;
    unsigned char *buf = encode(&m, &len);
    assert_int_equal(decode_patched(buf, len, 0, 'X'), NDSHM_E_MAGIC);
    assert_int_equal(decode_patched(buf, len, 4, 3), NDSHM_E_LAYOUT);            /* format 3 */
    assert_int_equal(decode_patched(buf, len, 5, 1), NDSHM_E_LAYOUT);            /* format 258 */
    assert_int_equal(decode_patched(buf, len, 4, 1), NDSHM_E_CORRUPT);           /* as format 1 */
    assert_int_equal(decode_patched(buf, len, 8, 0x04), NDSHM_E_LAYOUT);         /* unknown flag */
    assert_int_equal(decode_patched(buf, len, 9, 0x80), NDSHM_E_LAYOUT);         /* unknown flag */
    assert_int_equal(decode_patched(buf, len, 8, 0x00), NDSHM_OK);               /* no realtime */
    assert_int_equal(decode_patched(buf, len, 8, 0x03), NDSHM_OK);               /* RESENT */
    assert_int_equal(decode_patched(buf, len, 6, 145), NDSHM_E_CORRUPT);         /* header_len */
    assert_int_equal(decode_patched(buf, len, 12, 128), NDSHM_E_CORRUPT);        /* offset */
    assert_int_equal(decode_patched(buf, len, 10, 0), NDSHM_E_DTYPE);            /* dtype 0 */
    assert_int_equal(decode_patched(buf, len, 10, 15), NDSHM_E_DTYPE);           /* dtype 15 */
    assert_int_equal(decode_patched(buf, len, 10, NDSHM_INT8), NDSHM_E_CORRUPT); /* length */
    assert_int_equal(decode_patched(buf, len, 11, 33), NDSHM_E_NDIM);
    assert_int_equal(decode_patched(buf, len, 11, 3), NDSHM_E_CORRUPT);   /* ndim vs lens */
    assert_int_equal(decode_patched(buf, len, 40, 43), NDSHM_E_CORRUPT);  /* payload_len */
    assert_int_equal(decode_patched(buf, len, 97, 1), NDSHM_E_CORRUPT);   /* meta_len 256 */
    assert_int_equal(decode_patched(buf, len, 98, 2), NDSHM_E_LIMIT);     /* meta_len 2^17 */
    assert_int_equal(decode_patched(buf, len, 100, 1), NDSHM_E_CORRUPT);  /* reserved */
    assert_int_equal(decode_patched(buf, len, 103, 1), NDSHM_E_CORRUPT);  /* reserved */
    assert_int_equal(decode_patched(buf, len, 112, 1), NDSHM_E_CORRUPT);  /* reserved */
    assert_int_equal(decode_patched(buf, len, 127, 1), NDSHM_E_CORRUPT);  /* reserved */
    assert_int_equal(decode_patched(buf, len, 104, 1), NDSHM_OK);         /* channel */
    assert_int_equal(decode_patched(buf, len, 128, 8), NDSHM_E_CORRUPT);  /* shape[0] */
    assert_int_equal(decode_patched(buf, len, 134, 1), NDSHM_E_OVERFLOW); /* 2^48 x 3 x 2 */
    assert_int_equal(decode_patched(buf, len, 150, 1), NDSHM_E_CORRUPT);  /* padding */
    assert_int_equal(decode_patched(buf, len, 191, 1), NDSHM_E_CORRUPT);  /* padding */
    /* payload bytes and the informational fields are not interpreted */
    assert_int_equal(decode_patched(buf, len, 192, 0xff), NDSHM_OK);
    assert_int_equal(decode_patched(buf, len, 20, 0xff), NDSHM_OK);
    assert_int_equal(decode_patched(buf, len, 50, 0xff), NDSHM_OK);
    assert_int_equal(decode_patched(buf, len, 70, 0xff), NDSHM_OK); /* user_ns */
    assert_int_equal(decode_patched(buf, len, 90, 0xff), NDSHM_OK); /* origin_ns */
    free(buf);
}

static void zero_sized_arrays(void **state)
{
    (void)state;
    uint64_t shape[3] = {4, 0, 9};
    ndshm_wire_meta m = meta_for(NDSHM_FLOAT64, 3, shape, 5);
    assert_int_equal(m.nbytes, 0);
    size_t len;
    unsigned char *buf = encode(&m, &len);
    assert_int_equal(len, 192);
    ndshm_wire_meta d;
    const void *payload = NULL;
    assert_int_equal(ndshm_wire_decode(buf, len, &d, &payload), NDSHM_OK);
    assert_int_equal(d.nbytes, 0);
    assert_ptr_equal(payload, buf + 192);
    free(buf);
    /* a scalar */
    m = meta_for(NDSHM_COMPLEX128, 0, NULL, 6);
    buf = encode(&m, &len);
    assert_int_equal(len, 128 + 16);
    assert_int_equal(ndshm_wire_decode(buf, len, &d, &payload), NDSHM_OK);
    assert_int_equal(d.ndim, 0);
    assert_true(tu_check(payload, 16, 6));
    free(buf);
}

static void meta_from_a_channel(void **state)
{
    (void)state;
    const char *name = tu_name("wire-info");
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    ndshm_reader *r = NULL;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    uint64_t shape[2] = {3, 5};
    uint32_t data[15];
    tu_fill(data, sizeof data, 9);
    uint64_t real_before = ndshm_wire_realtime_ns();
    assert_int_equal(ndshm_publish(w, NDSHM_UINT32, 2, shape, data, NULL), NDSHM_OK);
    uint32_t got[15];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, got, sizeof got, &info), NDSHM_OK);
    ndshm_wire_meta m;
    assert_int_equal(ndshm_wire_meta_from_info(&info, &m), NDSHM_OK);
    uint64_t real_after = ndshm_wire_realtime_ns();
    assert_int_equal(m.version, 1);
    assert_int_equal(m.dtype, NDSHM_UINT32);
    assert_int_equal(m.nbytes, sizeof data);
    assert_int_equal(m.publish_ns, info.publish_ns);
    assert_true(m.flags & NDSHM_WIRE_REALTIME);
    /* the wall-clock estimate lies within the publish window, up to clock-read jitter */
    assert_true(m.publish_real_ns + 1000000 >= real_before);
    assert_true(m.publish_real_ns <= real_after);
    unsigned char buf[256];
    size_t n;
    assert_int_equal(ndshm_wire_encode(&m, got, buf, sizeof buf, &n), NDSHM_OK);
    ndshm_wire_meta d;
    const void *payload;
    assert_int_equal(ndshm_wire_decode(buf, n, &d, &payload), NDSHM_OK);
    assert_true(tu_check(payload, d.nbytes, 9));
    assert_int_equal(ndshm_reader_close(r), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_all_dtypes_and_ndims),
        cmocka_unit_test(byte_layout),
        cmocka_unit_test(extras_and_metadata),
        cmocka_unit_test(format1_still_decodes),
        cmocka_unit_test(encode_rejects_bad_meta),
        cmocka_unit_test(decode_truncated_and_oversized),
        cmocka_unit_test(decode_bad_fields),
        cmocka_unit_test(zero_sized_arrays),
        cmocka_unit_test(meta_from_a_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
