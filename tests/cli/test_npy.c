/* .npy save/load/parse (src/npy.c): round trips of every dtype and 0-d to 32-d shapes,
 * numpy's exact bytes, and every kind of bad file with its status. Files go to a private
 * temporary directory removed at exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

static char dir[64];

static void remove_dir(void)
{
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static const char *path_of(const char *base)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, base);
    return p;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A .npy file made by hand: preamble of the given version and the dict text, then nbytes of
 * payload. Returns the total length. */
static size_t make_npy(uint8_t *out, int major, const char *dict, size_t nbytes)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    if (major == 1) {
        out[8] = (uint8_t)(dl & 0xff);
        out[9] = (uint8_t)(dl >> 8);
    } else {
        out[8] = (uint8_t)(dl & 0xff);
        out[9] = (uint8_t)(dl >> 8);
        out[10] = 0;
        out[11] = 0;
    }
    memcpy(out + pre, dict, dl);
    for (size_t i = 0; i < nbytes; i++)
        out[pre + dl + i] = (uint8_t)(i * 7 + 1);
    return pre + dl + nbytes;
}

static int parse_dict(const char *dict, size_t nbytes, ndshm_npy_header *h)
{
    static uint8_t buf[8192];
    size_t n = make_npy(buf, 1, dict, nbytes);
    return ndshm_npy_parse(buf, n, h, NULL);
}

/* ------------------------------------------------------------------------------------------ */

static void roundtrip(int dtype, uint32_t ndim, const uint64_t *shape)
{
    uint64_t nbytes;
    assert_int_equal(ndshm_array_nbytes(dtype, ndim, shape, &nbytes), NDSHM_OK);
    uint8_t *data = malloc(nbytes ? nbytes : 1);
    assert_non_null(data);
    tu_fill(data, nbytes, (uint64_t)dtype * 100 + ndim);
    if (dtype == NDSHM_BOOL)
        for (uint64_t i = 0; i < nbytes; i++)
            data[i] &= 1; /* numpy bools are 0 or 1 */
    const char *p = path_of("rt.npy");
    assert_int_equal(ndshm_save_npy(p, dtype, ndim, shape, data), NDSHM_OK);

    ndshm_npy_header h;
    void *back = NULL;
    assert_int_equal(ndshm_load_npy(p, &h, &back), NDSHM_OK);
    assert_non_null(back);
    assert_int_equal(h.dtype, dtype);
    assert_int_equal(h.ndim, ndim);
    assert_int_equal(h.major, 1);
    assert_int_equal(h.nbytes, nbytes);
    assert_int_equal(h.data_offset % 64, 0);
    for (uint32_t i = 0; i < ndim; i++)
        assert_int_equal(h.shape[i], shape[i]);
    assert_memory_equal(back, data, nbytes ? nbytes : 0);
    ndshm_npy_free(back);
    free(data);
}

static void test_roundtrip_every_dtype_and_rank(void **state)
{
    (void)state;
    for (int dt = 1; dt <= NDSHM_DTYPE_COUNT; dt++) {
        uint64_t shape[NDSHM_MAX_DIMS];
        for (uint32_t ndim = 0; ndim <= NDSHM_MAX_DIMS; ndim++) {
            /* sizes 3, 2, 1, 1, ...: every rank, a bounded payload */
            for (uint32_t i = 0; i < ndim; i++)
                shape[i] = i == 0 ? 3 : i == 1 ? 2 : 1;
            roundtrip(dt, ndim, shape);
        }
        uint64_t zero1[] = {0};
        uint64_t zero3[] = {2, 0, 5};
        uint64_t big[] = {17, 33};
        roundtrip(dt, 1, zero1);
        roundtrip(dt, 3, zero3);
        roundtrip(dt, 2, big);
    }
}

static void test_header_bytes_are_numpys(void **state)
{
    (void)state;
    /* what numpy 1.x writes for np.zeros((3, 4), '<f4'), (5,) int16 and a 0-d bool */
    uint8_t b[256];
    size_t n;
    uint64_t s2[] = {3, 4}, s1[] = {5};
    assert_int_equal(ndshm_npy_header_format(NDSHM_FLOAT32, 2, s2, b, sizeof b, &n), NDSHM_OK);
    assert_int_equal(n, 128);
    assert_memory_equal(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    const char *d = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    assert_memory_equal(b + 10, d, strlen(d));
    assert_int_equal(b[127], '\n');
    assert_int_equal(b[126], ' ');
    assert_int_equal(ndshm_npy_header_format(NDSHM_INT16, 1, s1, b, sizeof b, &n), NDSHM_OK);
    d = "{'descr': '<i2', 'fortran_order': False, 'shape': (5,), }";
    assert_memory_equal(b + 10, d, strlen(d));
    assert_int_equal(ndshm_npy_header_format(NDSHM_BOOL, 0, NULL, b, sizeof b, &n), NDSHM_OK);
    d = "{'descr': '|b1', 'fortran_order': False, 'shape': (), }";
    assert_memory_equal(b + 10, d, strlen(d));
    /* too small: the size needed, nothing else */
    size_t need = 0;
    assert_int_equal(ndshm_npy_header_format(NDSHM_BOOL, 0, NULL, b, 10, &need), NDSHM_E_TOO_SMALL);
    assert_int_equal(need, 128); /* 10 + 55 + 1 rounded up to 64 */
    assert_int_equal(ndshm_npy_header_format(99, 0, NULL, b, sizeof b, &n), NDSHM_E_DTYPE);
    assert_int_equal(ndshm_npy_header_format(NDSHM_BOOL, 0, NULL, b, sizeof b, NULL),
                     NDSHM_E_INVAL);
}

static void test_parse_accepts_numpy_variants(void **state)
{
    (void)state;
    ndshm_npy_header h;
    /* numpy >= 1.x key order, double quotes, no trailing comma, python2 'L', odd spacing */
    assert_int_equal(
        parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }  \n", 48, &h),
        NDSHM_OK);
    assert_int_equal(h.dtype, NDSHM_FLOAT64);
    assert_int_equal(h.ndim, 2);
    assert_int_equal(h.shape[1], 3);
    assert_int_equal(
        parse_dict("{\"shape\":(4,),\"descr\":\"|u1\",\"fortran_order\":False}", 4, &h), NDSHM_OK);
    assert_int_equal(h.dtype, NDSHM_UINT8);
    assert_int_equal(
        parse_dict("{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 1L), }", 16, &h),
        NDSHM_OK);
    assert_int_equal(
        parse_dict("{ 'descr' : '<c16' , 'fortran_order' : False , 'shape' : ( ) }", 16, &h),
        NDSHM_OK);
    assert_int_equal(h.dtype, NDSHM_COMPLEX128);
    assert_int_equal(h.ndim, 0);
    /* fortran order with the same bytes as C order is still refused: we never guess */
    assert_int_equal(
        parse_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, &h),
        NDSHM_E_LIMIT);
    /* format versions 2.0 and 3.0: 4-byte header length */
    static uint8_t b[512];
    const char *d = "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }\n";
    for (int major = 2; major <= 3; major++) {
        size_t n = make_npy(b, major, d, 6);
        const void *payload;
        assert_int_equal(ndshm_npy_parse(b, n, &h, &payload), NDSHM_OK);
        assert_int_equal(h.major, major);
        assert_ptr_equal(payload, b + 12 + strlen(d));
        assert_int_equal(h.nbytes, 6);
    }
}

static void test_parse_rejects(void **state)
{
    (void)state;
    ndshm_npy_header h;
    memset(&h, 0xab, sizeof h);
    ndshm_npy_header untouched = h;
    struct {
        const char *dict;
        size_t nbytes;
        int status;
    } cases[] = {
        /* unsupported dtypes */
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4, NDSHM_E_DTYPE},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8, NDSHM_E_DTYPE},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (1,), }", 20, NDSHM_E_DTYPE},
        {"{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }", 8, NDSHM_E_DTYPE},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, NDSHM_E_DTYPE},
        {"{'descr': '<f3', 'fortran_order': False, 'shape': (1,), }", 3, NDSHM_E_DTYPE},
        /* layout */
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, NDSHM_E_LIMIT},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': "
         "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1), }",
         1, NDSHM_E_NDIM},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0,
         NDSHM_E_OVERFLOW},
        /* malformed */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (5), }", 20, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (,), }", 0, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (01,), }", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0,
         NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': false, 'shape': (1,), }", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False}", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'shape': (1,), 'fortran_order': False, 'shape': (1,)}", 4,
         NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,)}", 4, NDSHM_E_CORRUPT},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", 4, NDSHM_E_CORRUPT},
        {"", 0, NDSHM_E_CORRUPT},
        /* payload length must match exactly */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 7, NDSHM_E_CORRUPT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 9, NDSHM_E_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse_dict(cases[i].dict, cases[i].nbytes, &h);
        if (rc != cases[i].status)
            fail_msg("case %zu (%s): %s, expected %s", i, cases[i].dict, ndshm_status_name(rc),
                     ndshm_status_name(cases[i].status));
        assert_memory_equal(&h, &untouched, sizeof h); /* out-param untouched on failure */
    }
    /* preamble problems */
    uint8_t b[256];
    size_t n = make_npy(b, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", 1);
    assert_int_equal(ndshm_npy_parse(b, n, &h, NULL), NDSHM_OK);
    for (size_t cut = 0; cut < n; cut++) /* every truncation */
        assert_int_equal(ndshm_npy_parse(b, cut, &h, NULL), NDSHM_E_CORRUPT);
    b[0] = 0x92;
    assert_int_equal(ndshm_npy_parse(b, n, &h, NULL), NDSHM_E_CORRUPT);
    b[0] = 0x93;
    b[6] = 4; /* unknown major version */
    assert_int_equal(ndshm_npy_parse(b, n, &h, NULL), NDSHM_E_CORRUPT);
    b[6] = 1;
    b[7] = 1; /* unknown minor */
    assert_int_equal(ndshm_npy_parse(b, n, &h, NULL), NDSHM_E_CORRUPT);
    /* a header length larger than the limit, in a 2.0 file */
    n = make_npy(b, 2, "{}", 0);
    b[10] = 0x10; /* 0x100000 + 2 */
    assert_int_equal(ndshm_npy_parse(b, n, &h, NULL), NDSHM_E_LIMIT);
    assert_int_equal(ndshm_npy_parse(NULL, 0, &h, NULL), NDSHM_E_CORRUPT);
    assert_int_equal(ndshm_npy_parse(NULL, 5, &h, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_npy_parse(b, n, NULL, NULL), NDSHM_E_INVAL);
}

static void test_files(void **state)
{
    (void)state;
    ndshm_npy_header h;
    void *data = (void *)0x1;
    /* missing file, a directory, arguments */
    int rc = ndshm_load_npy(path_of("missing.npy"), &h, &data);
    assert_int_equal(NDSHM_SYS_ERRNO(rc), 2 /* ENOENT */);
    assert_int_equal(ndshm_load_npy(dir, &h, &data), NDSHM_E_INVAL);
    assert_ptr_equal(data, (void *)0x1);
    assert_int_equal(ndshm_load_npy(NULL, &h, &data), NDSHM_E_INVAL);
    assert_int_equal(ndshm_load_npy("", &h, &data), NDSHM_E_INVAL);
    assert_int_equal(ndshm_load_npy(path_of("x"), NULL, &data), NDSHM_E_INVAL);
    assert_int_equal(ndshm_save_npy(NULL, NDSHM_UINT8, 0, NULL, "x"), NDSHM_E_INVAL);
    uint64_t s[] = {4};
    assert_int_equal(ndshm_save_npy(path_of("n.npy"), NDSHM_UINT8, 1, s, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_save_npy(path_of("n.npy"), 0, 1, s, "abcd"), NDSHM_E_DTYPE);
    assert_int_equal(access(path_of("n.npy"), F_OK), -1); /* nothing left behind */
    assert_true(ndshm_save_npy("/nonexistent-dir/x.npy", NDSHM_UINT8, 1, s, "abcd") <= NDSHM_E_SYS);

    /* a file truncated in the payload, and one with trailing bytes */
    uint8_t b[256];
    size_t n = make_npy(b, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", 16);
    write_bytes(path_of("ok.npy"), b, n);
    assert_int_equal(ndshm_load_npy(path_of("ok.npy"), &h, &data), NDSHM_OK);
    assert_memory_equal(data, b + n - 16, 16);
    ndshm_npy_free(data);
    write_bytes(path_of("short.npy"), b, n - 1);
    data = (void *)0x1;
    assert_int_equal(ndshm_load_npy(path_of("short.npy"), &h, &data), NDSHM_E_CORRUPT);
    b[n] = 0;
    write_bytes(path_of("long.npy"), b, n + 1);
    assert_int_equal(ndshm_load_npy(path_of("long.npy"), &h, &data), NDSHM_E_CORRUPT);
    write_bytes(path_of("tiny.npy"), b, 5);
    assert_int_equal(ndshm_load_npy(path_of("tiny.npy"), &h, &data), NDSHM_E_CORRUPT);
    write_bytes(path_of("empty.npy"), b, 0);
    assert_int_equal(ndshm_load_npy(path_of("empty.npy"), &h, &data), NDSHM_E_CORRUPT);
    /* a header that claims a huge payload: refused from the file size, nothing allocated */
    n = make_npy(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }", 8);
    write_bytes(path_of("huge.npy"), b, n);
    assert_int_equal(ndshm_load_npy(path_of("huge.npy"), &h, &data), NDSHM_E_CORRUPT);
    assert_ptr_equal(data, (void *)0x1);
    ndshm_npy_free(NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ndshm-npy-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(remove_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_dtype_and_rank),
        cmocka_unit_test(test_header_bytes_are_numpys),
        cmocka_unit_test(test_parse_accepts_numpy_variants),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
