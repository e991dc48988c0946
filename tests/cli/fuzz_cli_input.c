/* libFuzzer target for what the ndshm tool parses from untrusted input (tools/cli): .npy files
 * and .npz archives as the tool reads them (input.c: header diagnostics, zip central directory,
 * zip64 fields, inflate, CRC), inline values (literal.c), --slice specs (fmt.c), and the numpy
 * formatter on whatever array came out (fmt.c: any bit pattern, NaN payloads, subnormals).
 * The first byte picks the parser; the rest is its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void format(const struct cli_array *a, int repr)
{
    struct sbuf sb = SBUF_INIT;
    struct cli_np_opts o = CLI_NP_OPTS_INIT;
    o.repr = repr;
    cli_np_format(&sb, a->dtype, a->ndim, a->shape, a->data, &o);
    sb_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], arg = data[1];
    data += 2;
    size -= 2;
    char why[512];
    struct cli_array a;
    memset(&a, 0, sizeof a);
    switch (mode % 4) {
    case 0:
    case 1: { /* a .npy (mode 0) or a file named .npz (mode 1) */
        void *buf = malloc(size + 1);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        ((char *)buf)[size] = 0;
        struct cli_load_opts lo = {NULL, arg & 1, (arg >> 1) & 1 && !(arg & 1)};
        if (arg & 4)
            lo.key = (arg & 8) ? "x" : "arr_0.npy";
        if (cli_parse_array(buf, size, mode % 4 == 1, &lo, &a, why, sizeof why) == NDSHM_OK) {
            if (a.nbytes <= (UINT64_C(1) << 24))
                format(&a, arg & 16);
            cli_array_free(&a);
        }
        break;
    }
    case 2: { /* an inline value, with a dtype (0 = inferred) */
        char *text = malloc(size + 1);
        if (!text)
            return 0;
        memcpy(text, data, size);
        text[size] = 0;
        int dtype = arg % (NDSHM_DTYPE_COUNT + 1);
        if (cli_parse_literal(text, dtype, &a, why, sizeof why) == NDSHM_OK) {
            format(&a, arg & 32);
            cli_array_free(&a);
        }
        cli_looks_literal(text);
        free(text);
        break;
    }
    default: { /* a --slice spec on a (2, 3, 4) array */
        char *spec = malloc(size + 1);
        if (!spec)
            return 0;
        memcpy(spec, data, size);
        spec[size] = 0;
        static const int16_t x[24] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
        static const uint64_t shape[3] = {2, 3, 4};
        if (cli_slice(spec, NDSHM_INT16, 3, shape, x, &a, why, sizeof why) == NDSHM_OK) {
            format(&a, 0);
            cli_array_free(&a);
        }
        free(spec);
        break;
    }
    }
    return 0;
}
