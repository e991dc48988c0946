/* libFuzzer target for the .npy parser (src/npy.c): any byte string is either rejected with
 * an error status or parsed into a header whose payload lies exactly inside the input, and
 * whose re-formatted header parses back to the same dtype and shape. Works in memory only:
 * no file is ever written. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ndshm/ndshm.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ndshm_npy_header h;
    const void *payload = NULL;
    int rc = ndshm_npy_parse(data, size, &h, &payload);
    if (rc != NDSHM_OK) {
        CHECK(rc < 0);
        return 0;
    }
    /* the payload is exactly the rest of the input */
    CHECK(h.data_offset <= size && h.data_offset + h.nbytes == size);
    CHECK(payload == data + h.data_offset);
    CHECK(h.ndim <= NDSHM_MAX_DIMS && h.dtype >= 1 && h.dtype <= NDSHM_DTYPE_COUNT);
    CHECK(h.major >= 1 && h.major <= 3 && h.minor == 0);
    uint64_t nbytes;
    CHECK(ndshm_array_nbytes(h.dtype, h.ndim, h.shape, &nbytes) == NDSHM_OK && nbytes == h.nbytes);

    /* re-format and re-parse: the same array description */
    uint8_t head[1088];
    size_t hlen;
    CHECK(ndshm_npy_header_format(h.dtype, h.ndim, h.shape, head, sizeof head, &hlen) == NDSHM_OK);
    CHECK(hlen % 64 == 0);
    uint8_t *file = malloc(hlen + (size_t)h.nbytes + 1);
    CHECK(file != NULL);
    memcpy(file, head, hlen);
    if (h.nbytes)
        memcpy(file + hlen, payload, (size_t)h.nbytes);
    ndshm_npy_header h2;
    const void *p2;
    CHECK(ndshm_npy_parse(file, hlen + (size_t)h.nbytes, &h2, &p2) == NDSHM_OK);
    CHECK(h2.dtype == h.dtype && h2.ndim == h.ndim && h2.nbytes == h.nbytes);
    CHECK(memcmp(h2.shape, h.shape, h.ndim * sizeof h.shape[0]) == 0);
    CHECK(h.nbytes == 0 || memcmp(p2, payload, (size_t)h.nbytes) == 0);
    free(file);
    return 0;
}
