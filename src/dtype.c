/* The 14 numpy numeric dtypes: sizes, type strings, parsing, array byte sizes. */
#include <string.h>

#include "internal.h"

struct dtype_desc {
    const char *str;  /* numpy descr on a little-endian machine */
    const char *name; /* numpy name */
    uint8_t size;
};

/* Indexed by ndshm_dtype; entry 0 is "unknown". */
static const struct dtype_desc dtypes[NDSHM_DTYPE_COUNT + 1] = {
    [NDSHM_BOOL] = {"|b1", "bool", 1},           [NDSHM_INT8] = {"|i1", "int8", 1},
    [NDSHM_INT16] = {"<i2", "int16", 2},         [NDSHM_INT32] = {"<i4", "int32", 4},
    [NDSHM_INT64] = {"<i8", "int64", 8},         [NDSHM_UINT8] = {"|u1", "uint8", 1},
    [NDSHM_UINT16] = {"<u2", "uint16", 2},       [NDSHM_UINT32] = {"<u4", "uint32", 4},
    [NDSHM_UINT64] = {"<u8", "uint64", 8},       [NDSHM_FLOAT16] = {"<f2", "float16", 2},
    [NDSHM_FLOAT32] = {"<f4", "float32", 4},     [NDSHM_FLOAT64] = {"<f8", "float64", 8},
    [NDSHM_COMPLEX64] = {"<c8", "complex64", 8}, [NDSHM_COMPLEX128] = {"<c16", "complex128", 16},
};

static int dtype_known(int dtype)
{
    return dtype >= 1 && dtype <= NDSHM_DTYPE_COUNT;
}

size_t ndshm_dtype_size(int dtype)
{
    return dtype_known(dtype) ? dtypes[dtype].size : 0;
}

const char *ndshm_dtype_str(int dtype)
{
    return dtype_known(dtype) ? dtypes[dtype].str : NULL;
}

const char *ndshm_dtype_name(int dtype)
{
    return dtype_known(dtype) ? dtypes[dtype].name : NULL;
}

int ndshm_dtype_parse(const char *str, ndshm_dtype *dtype)
{
    if (!str || !dtype)
        return NDSHM_E_INVAL;
    size_t len = strnlen(str, 16);
    if (len == 0 || len >= 16)
        return NDSHM_E_DTYPE;
    for (int d = 1; d <= NDSHM_DTYPE_COUNT; d++) {
        if (strcmp(str, dtypes[d].name) == 0) {
            *dtype = (ndshm_dtype)d;
            return NDSHM_OK;
        }
    }
    if (strcmp(str, "?") == 0 || strcmp(str, "bool_") == 0) {
        *dtype = NDSHM_BOOL;
        return NDSHM_OK;
    }
    /* numpy descr: optional byte-order char, kind char, item size in decimal. */
    const char *p = str;
    char order = '=';
    if (*p == '<' || *p == '>' || *p == '|' || *p == '=')
        order = *p++;
    if (order == '>')
        return NDSHM_E_DTYPE; /* big-endian data would need a byte swap: not supported */
    char kind = *p++;
    if (!kind || !strchr("biufc", kind))
        return NDSHM_E_DTYPE;
    unsigned size = 0;
    if (*p < '1' || *p > '9')
        return NDSHM_E_DTYPE;
    while (*p >= '0' && *p <= '9' && size < 100)
        size = size * 10 + (unsigned)(*p++ - '0');
    if (*p)
        return NDSHM_E_DTYPE;
    for (int d = 1; d <= NDSHM_DTYPE_COUNT; d++) {
        const char *s = dtypes[d].str;
        if (s[1] == kind && dtypes[d].size == size) {
            /* one-byte types are written with '|' by numpy; '<' and '=' are accepted too */
            *dtype = (ndshm_dtype)d;
            return NDSHM_OK;
        }
    }
    return NDSHM_E_DTYPE;
}

int ndshm_array_nbytes(int dtype, uint32_t ndim, const uint64_t *shape, uint64_t *nbytes)
{
    if (!nbytes || (ndim > 0 && !shape))
        return NDSHM_E_INVAL;
    if (!dtype_known(dtype))
        return NDSHM_E_DTYPE;
    if (ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    uint64_t n = dtypes[dtype].size;
    int zero = 0;
    for (uint32_t i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            zero = 1;
        else if (__builtin_mul_overflow(n, shape[i], &n))
            return NDSHM_E_OVERFLOW;
    }
    /* Even a zero-element array must have a representable shape product. */
    if (n > NDSHM_MAX_CAPACITY && !zero)
        return NDSHM_E_OVERFLOW;
    *nbytes = zero ? 0 : n;
    return NDSHM_OK;
}
