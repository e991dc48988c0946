/* dtypes: sizes, numpy strings, parsing, array byte sizes and their limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

static const struct {
    int dt;
    const char *str;
    size_t size;
} expect[] = {
    {NDSHM_BOOL, "|b1", 1},      {NDSHM_INT8, "|i1", 1},         {NDSHM_INT16, "<i2", 2},
    {NDSHM_INT32, "<i4", 4},     {NDSHM_INT64, "<i8", 8},        {NDSHM_UINT8, "|u1", 1},
    {NDSHM_UINT16, "<u2", 2},    {NDSHM_UINT32, "<u4", 4},       {NDSHM_UINT64, "<u8", 8},
    {NDSHM_FLOAT16, "<f2", 2},   {NDSHM_FLOAT32, "<f4", 4},      {NDSHM_FLOAT64, "<f8", 8},
    {NDSHM_COMPLEX64, "<c8", 8}, {NDSHM_COMPLEX128, "<c16", 16},
};

static void sizes_strings_roundtrip(void **state)
{
    (void)state;
    assert_int_equal(sizeof expect / sizeof expect[0], NDSHM_DTYPE_COUNT);
    for (size_t i = 0; i < NDSHM_DTYPE_COUNT; i++) {
        assert_int_equal(ndshm_dtype_size(expect[i].dt), expect[i].size);
        assert_string_equal(ndshm_dtype_str(expect[i].dt), expect[i].str);
        ndshm_dtype d = 0;
        assert_int_equal(ndshm_dtype_parse(expect[i].str, &d), NDSHM_OK);
        assert_int_equal(d, expect[i].dt);
        d = 0;
        assert_int_equal(ndshm_dtype_parse(ndshm_dtype_name(expect[i].dt), &d), NDSHM_OK);
        assert_int_equal(d, expect[i].dt);
        /* without byte order, and with '=' */
        char s[8];
        snprintf(s, sizeof s, "%s", expect[i].str + 1);
        d = 0;
        assert_int_equal(ndshm_dtype_parse(s, &d), NDSHM_OK);
        assert_int_equal(d, expect[i].dt);
        snprintf(s, sizeof s, "=%s", expect[i].str + 1);
        d = 0;
        assert_int_equal(ndshm_dtype_parse(s, &d), NDSHM_OK);
        assert_int_equal(d, expect[i].dt);
    }
    ndshm_dtype d = 0;
    assert_int_equal(ndshm_dtype_parse("?", &d), NDSHM_OK);
    assert_int_equal(d, NDSHM_BOOL);
}

static void bad_dtypes(void **state)
{
    (void)state;
    const char *bad[] = {"",       ">f4", "<f3", "<x4",      "f",    "<f",  "<f44", "O",
                         "object", "<U8", "<M8", "float128", "<f16", "|V8", "<i4 ", "<i04"};
    ndshm_dtype d = 77;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ndshm_dtype_parse(bad[i], &d), NDSHM_E_DTYPE);
        assert_int_equal(d, 77); /* out-parameter untouched on failure */
    }
    assert_int_equal(ndshm_dtype_parse(NULL, &d), NDSHM_E_INVAL);
    assert_int_equal(ndshm_dtype_parse("<f4", NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_dtype_size(0), 0);
    assert_int_equal(ndshm_dtype_size(15), 0);
    assert_int_equal(ndshm_dtype_size(-3), 0);
    assert_null(ndshm_dtype_str(0));
    assert_null(ndshm_dtype_name(99));
}

static void array_sizes(void **state)
{
    (void)state;
    uint64_t n = 99;
    uint64_t shape[NDSHM_MAX_DIMS + 1];
    assert_int_equal(ndshm_array_nbytes(NDSHM_FLOAT32, 0, NULL, &n), NDSHM_OK);
    assert_int_equal(n, 4); /* 0-d: a scalar */
    shape[0] = 1080, shape[1] = 1920, shape[2] = 3;
    assert_int_equal(ndshm_array_nbytes(NDSHM_UINT8, 3, shape, &n), NDSHM_OK);
    assert_int_equal(n, 6220800);
    for (int i = 0; i < NDSHM_MAX_DIMS + 1; i++)
        shape[i] = 2;
    assert_int_equal(ndshm_array_nbytes(NDSHM_INT8, NDSHM_MAX_DIMS, shape, &n), NDSHM_OK);
    assert_int_equal(n, UINT64_C(1) << 32);
    n = 99;
    assert_int_equal(ndshm_array_nbytes(NDSHM_INT8, NDSHM_MAX_DIMS + 1, shape, &n), NDSHM_E_NDIM);
    assert_int_equal(n, 99);
    /* zero-element arrays */
    shape[0] = 0, shape[1] = 5;
    assert_int_equal(ndshm_array_nbytes(NDSHM_FLOAT64, 2, shape, &n), NDSHM_OK);
    assert_int_equal(n, 0);
    /* overflow */
    shape[0] = UINT64_MAX / 2, shape[1] = 3;
    n = 99;
    assert_int_equal(ndshm_array_nbytes(NDSHM_UINT8, 2, shape, &n), NDSHM_E_OVERFLOW);
    shape[0] = UINT64_C(1) << 38, shape[1] = 16;
    assert_int_equal(ndshm_array_nbytes(NDSHM_COMPLEX128, 2, shape, &n), NDSHM_E_OVERFLOW);
    assert_int_equal(n, 99);
    assert_int_equal(ndshm_array_nbytes(0, 1, shape, &n), NDSHM_E_DTYPE);
    assert_int_equal(ndshm_array_nbytes(NDSHM_UINT8, 1, NULL, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_nbytes(NDSHM_UINT8, 1, shape, NULL), NDSHM_E_INVAL);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_strings_roundtrip),
        cmocka_unit_test(bad_dtypes),
        cmocka_unit_test(array_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
