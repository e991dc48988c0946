/* libFuzzer target for the wire decoder (src/wire.c). Properties checked on every input:
 *  - decoding never reads outside the buffer (ASan) and never misbehaves (UBSan);
 *  - a format-2 buffer that decodes re-encodes to exactly the same bytes (a format-1 one to a
 *    format-2 buffer that decodes to the same content), its payload and metadata pointers lie
 *    inside the buffer where the lengths say, and decode_header agrees with decode;
 *  - any status is one of the documented ones. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ndshm/ndshm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_wire: property violated: %s\n", what);
        abort();
    }
}

static int documented(int rc)
{
    return rc == NDSHM_OK || rc == NDSHM_E_TOO_SMALL || rc == NDSHM_E_MAGIC ||
           rc == NDSHM_E_LAYOUT || rc == NDSHM_E_NDIM || rc == NDSHM_E_DTYPE ||
           rc == NDSHM_E_OVERFLOW || rc == NDSHM_E_CORRUPT || rc == NDSHM_E_LIMIT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy so ASan catches a read one byte past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);

    ndshm_wire_meta h;
    size_t off = 0;
    int rh = ndshm_wire_decode_header(buf, size, &h, &off);
    check(documented(rh), "decode_header status");

    ndshm_wire_meta m;
    const void *payload = NULL;
    int rc = ndshm_wire_decode(buf, size, &m, &payload);
    check(documented(rc), "decode status");
    if (rc == NDSHM_OK) {
        check(rh == NDSHM_OK, "decode ok implies decode_header ok");
        check(memcmp(&h, &m, sizeof m) == 0, "decode_header and decode agree");
        check(m.format == 1 || m.format == 2, "format");
        check(m.meta_len <= NDSHM_WIRE_META_MAX, "meta_len");
        size_t hs = 0;
        check(ndshm_wire_header_size(m.ndim, &hs) == NDSHM_OK, "header size");
        if (m.format == 2)
            check(off == (NDSHM_WIRE_FIXED + 8u * m.ndim + m.meta_len + 63) / 64 * 64 &&
                      (m.meta_len > 0 || off == hs),
                  "payload offset");
        check(m.meta_len == 0 ? m.meta == NULL
                              : (const uint8_t *)m.meta >= buf &&
                                    (const uint8_t *)m.meta + m.meta_len <= buf + off,
              "metadata inside the header part");
        check((const uint8_t *)payload == buf + off, "payload at the header size");
        check(off + m.nbytes == size, "payload ends at the buffer end");
        uint64_t nb = 0;
        check(ndshm_array_nbytes(m.dtype, m.ndim, m.shape, &nb) == NDSHM_OK && nb == m.nbytes,
              "nbytes consistent");
        uint64_t total = 0;
        check(ndshm_wire_size(&m, &total) == NDSHM_OK, "size of the re-encoding");
        uint8_t *again = malloc(total ? total : 1);
        size_t n = 0;
        check(again != NULL, "malloc");
        check(ndshm_wire_encode(&m, payload, again, total, &n) == NDSHM_OK && n == total,
              "re-encode");
        if (m.format == 2) {
            check(n == size && memcmp(again, buf, size) == 0, "re-encode is byte-identical");
        } else {
            ndshm_wire_meta e;
            const void *p2 = NULL;
            check(ndshm_wire_decode(again, n, &e, &p2) == NDSHM_OK && e.format == 2,
                  "a format-1 buffer re-encodes as format 2");
            e.format = 1;
            check(memcmp(&e, &m, sizeof e) == 0 && memcmp(p2, payload, m.nbytes) == 0,
                  "... with the same content");
        }
        free(again);
    }
    free(buf);
    return 0;
}
