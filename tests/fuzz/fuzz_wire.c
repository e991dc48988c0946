/* libFuzzer target for the wire decoder (src/wire.c). Properties checked on every input:
 *  - decoding never reads outside the buffer (ASan) and never misbehaves (UBSan);
 *  - a buffer that decodes re-encodes to exactly the same bytes, its payload pointer lies
 *    inside the buffer at the header size, and decode_header agrees with decode;
 *  - any status is one of the documented ones. */
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
        size_t hs = 0;
        check(ndshm_wire_header_size(m.ndim, &hs) == NDSHM_OK && hs == off, "header size");
        check((const uint8_t *)payload == buf + off, "payload at the header size");
        check(off + m.nbytes == size, "payload ends at the buffer end");
        uint64_t nb = 0;
        check(ndshm_array_nbytes(m.dtype, m.ndim, m.shape, &nb) == NDSHM_OK && nb == m.nbytes,
              "nbytes consistent");
        uint8_t *again = malloc(size ? size : 1);
        size_t n = 0;
        check(again != NULL, "malloc");
        check(ndshm_wire_encode(&m, payload, again, size, &n) == NDSHM_OK, "re-encode");
        check(n == size && memcmp(again, buf, size) == 0, "re-encode is byte-identical");
        free(again);
    }
    free(buf);
    return 0;
}
