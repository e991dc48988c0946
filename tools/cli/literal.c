/*
 * Inline array values for `ndshm pub NAME '[1.0, 2.0, 3.0]'`: Python / numpy literal syntax.
 *
 *   value  := '[' [ value { sep value } [','] ] ']' | scalar
 *   sep    := ',' and/or whitespace (so numpy's print() output of a real array reads back)
 *   scalar := integer | float | nan | inf | True | False | complex ("1+2j", "-3.5j", "(1-2j)")
 *
 * Nested lists give n-d arrays; every list at one depth must have the same length (ragged
 * lists are refused, saying where). Without --dtype the dtype is inferred as numpy.array()
 * does: complex128 if any complex, else float64 if any float, else int64 if any integer, else
 * bool. With --dtype, each value must be representable: integers in the type's range, no
 * fraction for an integer dtype, no complex for a real one, no finite value that overflows
 * a float dtype.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

enum tok_kind { T_BOOL = 1, T_INT = 2, T_FLOAT = 3, T_COMPLEX = 4 };

struct tok {
    const char *s;
    size_t n;
    int kind;
    double re, im;
    int neg;       /* T_INT: has a minus sign */
    uint64_t mag;  /* T_INT: |value| */
    int mag_valid; /* T_INT: |value| fits in 64 bits */
};

struct lit {
    struct tok *t;
    size_t n, cap;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
    int have_shape[NDSHM_MAX_DIMS];
    char *why;
    size_t why_len;
    const char *src;
};

#define LWHY(...) snprintf(L->why, L->why_len, __VA_ARGS__)

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A real number in Python syntax (digits with optional point and exponent, nan, inf,
 * infinity; an optional sign). 0 on success. */
static int parse_real(const char *s, size_t n, double *v, int *is_float)
{
    char buf[128];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    const char *p = buf + (buf[0] == '+' || buf[0] == '-');
    if (strcasecmp(p, "nan") == 0 || strcasecmp(p, "inf") == 0 || strcasecmp(p, "infinity") == 0) {
        *v = strtod(buf, NULL);
        *is_float = 1;
        return 0;
    }
    /* digits [. digits] [e [+-] digits], at least one digit in the mantissa; no hex */
    const char *q = p;
    int digits = 0, fl = 0;
    while (*q >= '0' && *q <= '9')
        q++, digits++;
    if (*q == '.') {
        fl = 1;
        q++;
        while (*q >= '0' && *q <= '9')
            q++, digits++;
    }
    if (!digits)
        return -1;
    if (*q == 'e' || *q == 'E') {
        fl = 1;
        q++;
        if (*q == '+' || *q == '-')
            q++;
        if (!(*q >= '0' && *q <= '9'))
            return -1;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q)
        return -1;
    errno = 0;
    *v = strtod(buf, NULL); /* overflow gives inf: caught where the dtype is known */
    *is_float = fl;
    return 0;
}

static int classify(struct lit *L, struct tok *t)
{
    const char *s = t->s;
    size_t n = t->n;
    if ((n == 4 && (memcmp(s, "True", 4) == 0 || memcmp(s, "true", 4) == 0))) {
        t->kind = T_BOOL;
        t->re = 1;
        return 0;
    }
    if (n == 5 && (memcmp(s, "False", 5) == 0 || memcmp(s, "false", 5) == 0)) {
        t->kind = T_BOOL;
        t->re = 0;
        return 0;
    }
    if (n >= 2 && s[0] == '(' && s[n - 1] == ')') {
        s++;
        n -= 2;
    }
    if (n >= 1 && (s[n - 1] == 'j' || s[n - 1] == 'J')) {
        /* [real] (+|-) imag j, or imag j */
        size_t split = 0;
        for (size_t i = n - 1; i-- > 1;)
            if ((s[i] == '+' || s[i] == '-') && s[i - 1] != 'e' && s[i - 1] != 'E') {
                split = i;
                break;
            }
        int f;
        double re = 0, im;
        if (split) {
            if (parse_real(s, split, &re, &f) || parse_real(s + split, n - 1 - split, &im, &f))
                goto bad;
        } else if (n == 1) {
            goto bad;
        } else if (n == 2 && (s[0] == '+' || s[0] == '-')) {
            goto bad;
        } else if (parse_real(s, n - 1, &im, &f)) {
            goto bad;
        }
        t->kind = T_COMPLEX;
        t->re = re;
        t->im = im;
        return 0;
    }
    int fl;
    double v;
    if (parse_real(s, n, &v, &fl))
        goto bad;
    t->re = v;
    t->kind = fl ? T_FLOAT : T_INT;
    if (!fl) {
        const char *d = s + (s[0] == '+' || s[0] == '-');
        t->neg = s[0] == '-';
        errno = 0;
        char *end;
        unsigned long long m = strtoull(d, &end, 10);
        t->mag = m;
        t->mag_valid = errno == 0;
    }
    return 0;
bad:
    LWHY("'%.*s' is not a number (expected an integer, a float such as 1.5, nan, inf, True, "
         "False or a complex such as 1+2j)",
         (int)(t->n > 40 ? 40 : t->n), t->s);
    return -1;
}

/* Parse one value at depth d from *pp. */
static int parse_value(struct lit *L, const char **pp, uint32_t d)
{
    const char *p = *pp;
    while (is_sep(*p))
        p++;
    if (*p == '[') {
        if (d >= NDSHM_MAX_DIMS) {
            LWHY("more than %d levels of nested lists", NDSHM_MAX_DIMS);
            return -1;
        }
        p++;
        uint64_t count = 0;
        for (;;) {
            while (is_sep(*p))
                p++;
            if (*p == ']') {
                p++;
                break;
            }
            if (!*p) {
                LWHY("unterminated list: a ']' is missing");
                return -1;
            }
            if (parse_value(L, &p, d + 1))
                return -1;
            count++;
            while (is_sep(*p))
                p++;
            if (*p == ',') {
                p++;
            } else if (*p != ']' && *p && !is_sep(p[-1])) { /* whitespace also separates */
                LWHY("expected ',' or ']' at '%.10s'", p);
                return -1;
            }
        }
        if (count == 0) {
            /* [] : a zero-length axis; deeper axes of an empty list are unknown */
            if (L->have_shape[d] && L->shape[d] != 0) {
                LWHY("ragged nested lists: a list at depth %u has 0 elements, another %llu", d + 1,
                     (unsigned long long)L->shape[d]);
                return -1;
            }
        }
        if (L->have_shape[d] && L->shape[d] != count) {
            LWHY("ragged nested lists: a list at depth %u has %llu elements, another %llu", d + 1,
                 (unsigned long long)count, (unsigned long long)L->shape[d]);
            return -1;
        }
        if (L->n > 0 && d >= L->ndim) {
            LWHY("ragged nested lists: a list where a number was expected");
            return -1;
        }
        if (!L->have_shape[d]) {
            L->have_shape[d] = 1;
            L->shape[d] = count;
            if (d + 1 > L->ndim)
                L->ndim = d + 1;
        }
        if (count == 0 && L->ndim > d + 1) {
            LWHY("ragged nested lists: an empty list where lists were expected");
            return -1;
        }
        *pp = p;
        return 0;
    }
    /* a scalar at depth d: every scalar must sit at the same depth */
    const char *s = p;
    while (*p && !is_sep(*p) && *p != ',' && *p != ']' && *p != '[')
        p++;
    if (p == s) {
        LWHY(*p ? "expected a value at '%.10s'" : "expected a value%s", p);
        return -1;
    }
    if ((d < L->ndim) || (L->n > 0 && d != L->ndim)) {
        LWHY("ragged nested lists: '%.*s' sits at depth %u, other values at depth %u",
             (int)(p - s > 20 ? 20 : p - s), s, d, L->ndim);
        return -1;
    }
    L->ndim = d;
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 64;
        void *q = realloc(L->t, nc * sizeof *L->t);
        if (!q) {
            LWHY("out of memory");
            return -1;
        }
        L->t = q;
        L->cap = nc;
    }
    struct tok *t = &L->t[L->n];
    memset(t, 0, sizeof *t);
    t->s = s;
    t->n = (size_t)(p - s);
    if (classify(L, t))
        return -1;
    L->n++;
    *pp = p;
    return 0;
}

static int int_range(int dtype, int64_t *lo, uint64_t *hi)
{
    switch (dtype) {
    case NDSHM_INT8:
        *lo = INT8_MIN, *hi = INT8_MAX;
        return 1;
    case NDSHM_INT16:
        *lo = INT16_MIN, *hi = INT16_MAX;
        return 1;
    case NDSHM_INT32:
        *lo = INT32_MIN, *hi = INT32_MAX;
        return 1;
    case NDSHM_INT64:
        *lo = INT64_MIN, *hi = INT64_MAX;
        return 1;
    case NDSHM_UINT8:
        *lo = 0, *hi = UINT8_MAX;
        return 1;
    case NDSHM_UINT16:
        *lo = 0, *hi = UINT16_MAX;
        return 1;
    case NDSHM_UINT32:
        *lo = 0, *hi = UINT32_MAX;
        return 1;
    case NDSHM_UINT64:
        *lo = 0, *hi = UINT64_MAX;
        return 1;
    }
    return 0;
}

static void store_int(int dtype, unsigned char *p, int neg, uint64_t mag)
{
    uint64_t u = neg ? (uint64_t)0 - mag : mag; /* two's complement */
    switch (ndshm_dtype_size(dtype)) {
    case 1: {
        uint8_t x = (uint8_t)u;
        memcpy(p, &x, 1);
        break;
    }
    case 2: {
        uint16_t x = (uint16_t)u;
        memcpy(p, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)u;
        memcpy(p, &x, 4);
        break;
    }
    default:
        memcpy(p, &u, 8);
    }
}

static int store(struct lit *L, int dtype, const struct tok *t, unsigned char *p)
{
    const char *dn = ndshm_dtype_name(dtype);
    int tn = (int)(t->n > 40 ? 40 : t->n);
    if (dtype == NDSHM_BOOL) {
        if (t->kind == T_COMPLEX) {
            LWHY("'%.*s' is complex: not a bool", tn, t->s);
            return -1;
        }
        *p = t->re != 0 || (t->kind == T_INT && t->mag != 0) || isnan(t->re);
        return 0;
    }
    int64_t lo;
    uint64_t hi;
    if (int_range(dtype, &lo, &hi)) {
        if (t->kind == T_COMPLEX || t->kind == T_FLOAT) {
            double v = t->re;
            if (t->kind == T_COMPLEX || !isfinite(v) || v != floor(v) || fabs(v) >= 0x1p64) {
                LWHY("'%.*s' is not an integer: dtype %s holds integers", tn, t->s, dn);
                return -1;
            }
            if ((v < 0 && -v > -(double)lo) || (v >= 0 && v > (double)hi)) {
                LWHY("%.*s is outside the range of %s (%lld..%llu)", tn, t->s, dn, (long long)lo,
                     (unsigned long long)hi);
                return -1;
            }
            store_int(dtype, p, v < 0, (uint64_t)fabs(v));
            return 0;
        }
        uint64_t mag = t->kind == T_BOOL ? (uint64_t)t->re : t->mag;
        int neg = t->kind == T_INT && t->neg && mag != 0;
        if ((t->kind == T_INT && !t->mag_valid) || (neg && mag > (uint64_t)0 - (uint64_t)lo) ||
            (!neg && mag > hi) || (neg && lo == 0)) {
            LWHY("%.*s is outside the range of %s (%lld..%llu)", tn, t->s, dn, (long long)lo,
                 (unsigned long long)hi);
            return -1;
        }
        store_int(dtype, p, neg, mag);
        return 0;
    }
    int cplx = dtype == NDSHM_COMPLEX64 || dtype == NDSHM_COMPLEX128;
    if (t->kind == T_COMPLEX && !cplx) {
        LWHY("'%.*s' is complex: dtype %s is real (use complex64 or complex128)", tn, t->s, dn);
        return -1;
    }
    double re = t->re, im = t->im;
    if (t->kind == T_INT && t->mag_valid)
        re = t->neg ? -(double)t->mag : (double)t->mag;
    /* nan and inf are spelled with an 'n'; any other non-finite value overflowed ("1e999") */
    if ((!isfinite(re) || !isfinite(im)) && !memchr(t->s, 'n', t->n) && !memchr(t->s, 'N', t->n))
        goto overflow;
    switch (dtype) {
    case NDSHM_FLOAT16: {
        uint16_t h = cli_double_to_half(re);
        if (isfinite(re) && !isfinite(cli_half_to_double(h)))
            goto overflow;
        memcpy(p, &h, 2);
        return 0;
    }
    case NDSHM_FLOAT32:
    case NDSHM_COMPLEX64: {
        float f[2] = {(float)re, (float)im};
        if ((isfinite(re) && !isfinite(f[0])) || (isfinite(im) && !isfinite(f[1])))
            goto overflow;
        memcpy(p, f, cplx ? 8 : 4);
        return 0;
    }
    default: {
        double d[2] = {re, im};
        memcpy(p, d, cplx ? 16 : 8);
        return 0;
    }
    }
overflow:
    LWHY("%.*s overflows %s", tn, t->s, dn);
    return -1;
}

int cli_parse_literal(const char *text, int dtype, struct cli_array *out, char *why, size_t why_len)
{
    struct lit L0, *L = &L0;
    memset(L, 0, sizeof *L);
    L->why = why;
    L->why_len = why_len;
    L->src = text;
    const char *p = text;
    int rc = NDSHM_E_INVAL;
    if (parse_value(L, &p, 0))
        goto out;
    while (is_sep(*p))
        p++;
    if (*p) {
        LWHY("unexpected '%.10s' after the value", p);
        goto out;
    }
    for (uint32_t d = 0; d < L->ndim; d++)
        if (!L->have_shape[d]) {
            /* only possible below an empty list: [[]] has shape (1, 0) */
            L->shape[d] = 0;
        }
    if (dtype == 0) {
        int k = T_BOOL;
        for (size_t i = 0; i < L->n; i++)
            if (L->t[i].kind > k)
                k = L->t[i].kind;
        dtype = k == T_COMPLEX ? NDSHM_COMPLEX128
                : k == T_FLOAT ? NDSHM_FLOAT64
                : k == T_INT   ? NDSHM_INT64
                : L->n == 0    ? NDSHM_FLOAT64 /* numpy.array([]) is float64 */
                               : NDSHM_BOOL;
    }
    uint64_t nbytes;
    if ((rc = ndshm_array_nbytes(dtype, L->ndim, L->shape, &nbytes)) != NDSHM_OK) {
        LWHY("the shape's byte size overflows");
        goto out;
    }
    size_t isz = ndshm_dtype_size(dtype);
    if (nbytes / isz != L->n) {
        LWHY("ragged nested lists: %zu values for a shape of %llu elements", L->n,
             (unsigned long long)(nbytes / isz));
        rc = NDSHM_E_INVAL;
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->own = malloc(nbytes ? nbytes : 1);
    if (!out->own) {
        rc = NDSHM_E_NOMEM;
        LWHY("out of memory");
        goto out;
    }
    rc = NDSHM_E_INVAL;
    for (size_t i = 0; i < L->n; i++)
        if (store(L, dtype, &L->t[i], (unsigned char *)out->own + i * isz)) {
            free(out->own);
            out->own = NULL;
            goto out;
        }
    out->dtype = dtype;
    out->ndim = L->ndim;
    memcpy(out->shape, L->shape, sizeof L->shape);
    out->nbytes = nbytes;
    out->data = out->own;
    rc = NDSHM_OK;
out:
    free(L->t);
    return rc;
}

int cli_looks_literal(const char *arg)
{
    if (arg[0] == '[' || arg[0] == '(')
        return 1;
    struct tok t;
    memset(&t, 0, sizeof t);
    t.s = arg;
    t.n = strlen(arg);
    struct lit L;
    char why[8];
    memset(&L, 0, sizeof L);
    L.why = why;
    L.why_len = sizeof why;
    return t.n > 0 && classify(&L, &t) == 0;
}
