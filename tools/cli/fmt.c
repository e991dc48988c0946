/*
 * Arrays as text, the way numpy prints them: str(a) (what print(a) shows) and repr(a), with
 * numpy's default print options (numpy 1.24 arrayprint.py): linewidth 75, precision 8,
 * floatmode 'maxprec', threshold 1000 with edgeitems 3 for summarised output ("..."), sign '-',
 * legacy False. The algorithm is numpy's, step for step:
 *
 *  - the values that get printed (all of them, or the corners kept by _leading_trailing when
 *    the array has more than `threshold` elements) decide each column's format;
 *  - integers: '%{w}d' with w the longest of those values' texts;
 *  - bool: ' True' / 'False' (0-d: 'True');
 *  - floating point (FloatingFormat): exponential notation when a non-zero |value| is >= 1e8,
 *    < 1e-4, or max/min > 1000; otherwise positional. Digits are the shortest that read back
 *    as the same value of the element's own type (Dragon4 "unique"), at most `precision` after
 *    the point; positional values are padded to a common integer and fraction width,
 *    exponential ones get a common number of fraction digits and exponent digits;
 *    nan / inf right-aligned in that width;
 *  - complex: a real and an imaginary FloatingFormat (the latter with sign '+'), 'j' before
 *    the imaginary part's trailing padding;
 *  - _formatArray: nested brackets, a hanging indent of one space per level, rows wrapped at
 *    `linewidth`, one blank line more between blocks of each higher dimension.
 *
 * 0-d arrays print as numpy scalars do in str(): 1.0, 1e-05, (1+2j), True. repr() adds
 * "array(...)" and ", dtype=..." (not for the implied float64, int64, complex128, bool), with
 * numpy's rule for moving the dtype to its own line.
 *
 * Shortest digits come from printf("%.*e") (glibc prints the exact binary value, rounded half
 * to even like Dragon4) with the fewest digits that parse back to the same value. Checked
 * against the real numpy by tests/cli/test_format.py.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---------------------------------------------------------------------------------------------
 * Values of the element types
 * ------------------------------------------------------------------------------------------- */

double cli_half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* The float16 value nearest to x (ties to even), as a double; +-inf beyond the range. */
static double round_to_half(double x)
{
    double a = fabs(x);
    if (isnan(x))
        return x;
    if (!(a < 65520.0)) /* 65520 is halfway to 65536, ties to even: inf */
        return copysign(INFINITY, x);
    if (a == 0)
        return x;
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    int ex = e - 1 < -14 ? -14 : e - 1;
    double ulp = ldexp(1.0, ex - 10);
    return copysign(nearbyint(a / ulp) * ulp, x);
}

uint16_t cli_double_to_half(double x)
{
    double r = round_to_half(x);
    uint16_t sign = signbit(r) ? 0x8000 : 0;
    double a = fabs(r);
    if (isnan(r))
        return 0x7e00;
    if (isinf(r))
        return sign | 0x7c00;
    if (a < ldexp(1.0, -14)) /* subnormal: a multiple of 2^-24 */
        return sign | (uint16_t)(a * ldexp(1.0, 24));
    int e;
    double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)((m * 2 - 1) * 1024);
}

/* kind: bits of the element's floating type (16, 32, 64), for "reads back as the same". */
static int reads_back(const char *text, double v, int kind)
{
    if (kind == 32)
        return strtof(text, NULL) == (float)v;
    double back = strtod(text, NULL);
    return kind == 16 ? round_to_half(back) == v : back == v;
}

/* The shortest decimal digits of |v| (finite) that read back as v: digits[] (no point, NUL
 * terminated, p of them) and the decimal exponent of the first: |v| = d.ddd x 10^exp10. */
static int shortest_digits(double v, int kind, char *digits, int *exp10)
{
    double a = fabs(v);
    if (a == 0) {
        strcpy(digits, "0");
        *exp10 = 0;
        return 1;
    }
    char buf[48];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, a);
        if (reads_back(buf, a, kind))
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", p - 1, a);
    /* buf: d[.ddd]e[+-]xx */
    int n = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[n++] = *q;
    digits[n] = 0;
    *exp10 = atoi(q + 1);
    return n;
}

/* printf("%.*e", prec, |v|) split into mantissa digits and exponent. */
static int exact_digits_e(double v, int prec, char *digits, int *exp10)
{
    char buf[400];
    snprintf(buf, sizeof buf, "%.*e", prec, fabs(v));
    int n = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[n++] = *q;
    digits[n] = 0;
    *exp10 = atoi(q + 1);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Dragon4-style formatting of one value (numpy's dragon4_positional / dragon4_scientific)
 * ------------------------------------------------------------------------------------------- */

struct numtext {
    char ipart[400]; /* with the sign */
    char fpart[400]; /* digits after the point */
    char exp[16];    /* exponential: sign and digits ("+05"); empty for positional */
};

static void put_sign(char *out, double v, int plus)
{
    out[0] = 0;
    if (signbit(v))
        strcpy(out, "-");
    else if (plus)
        strcpy(out, "+");
}

/* unique=True, fractional: shortest digits, at most `precision` digits after the point
 * (rounded, half to even, when more would be needed); trailing zeros trimmed. exact_int (what
 * numpy's min_digits=0 does in arrays): the digits before the point are the value's own, not
 * the shortest digits padded with zeros (float16 18672 prints "18672.", not "18670."). */
static void positional(double v, int kind, int precision, int plus, int exact_int,
                       struct numtext *t)
{
    char d[40];
    int e, p = shortest_digits(v, kind, d, &e);
    put_sign(t->ipart, v, plus);
    t->exp[0] = 0;
    int frac = p - 1 - e > 0 ? p - 1 - e : 0;
    if (frac > precision || (exact_int && frac == 0)) {
        if (frac < precision)
            precision = frac;
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", precision, fabs(v));
        char *dot = strchr(buf, '.');
        if (dot) {
            *dot = 0;
            size_t n = strlen(dot + 1);
            while (n && dot[n] == '0')
                dot[n--] = 0;
            snprintf(t->fpart, sizeof t->fpart, "%s", dot + 1);
        } else {
            t->fpart[0] = 0;
        }
        strcat(t->ipart, buf);
        return;
    }
    size_t il = strlen(t->ipart);
    if (e >= 0) {
        for (int i = 0; i <= e; i++)
            t->ipart[il++] = i < p ? d[i] : '0';
        t->ipart[il] = 0;
        snprintf(t->fpart, sizeof t->fpart, "%s", p > e + 1 ? d + e + 1 : "");
    } else {
        t->ipart[il++] = '0';
        t->ipart[il] = 0;
        int k = 0;
        for (int i = 0; i < -e - 1; i++)
            t->fpart[k++] = '0';
        for (int i = 0; i < p; i++)
            t->fpart[k++] = d[i];
        t->fpart[k] = 0;
    }
}

static void exp_text(char *out, size_t n, int e, int min_digits)
{
    int w = min_digits < 2 ? 2 : min_digits > 5 ? 5 : min_digits; /* |e| <= 324 */
    snprintf(out, n, "%c%0*d", e < 0 ? '-' : '+', w, abs(e) % 100000);
}

/* unique=True scientific: shortest digits, at most `precision` after the point, trailing
 * zeros trimmed (trim '.'). */
static void scientific(double v, int kind, int precision, int plus, struct numtext *t)
{
    char d[400];
    int e, p = shortest_digits(v, kind, d, &e);
    if (p - 1 > precision) {
        p = exact_digits_e(v, precision, d, &e);
        while (p > 1 && d[p - 1] == '0')
            d[--p] = 0;
    }
    put_sign(t->ipart, v, plus);
    size_t il = strlen(t->ipart);
    t->ipart[il] = d[0];
    t->ipart[il + 1] = 0;
    snprintf(t->fpart, sizeof t->fpart, "%s", d + 1);
    exp_text(t->exp, sizeof t->exp, e, 2);
}

/* ---------------------------------------------------------------------------------------------
 * FloatingFormat
 * ------------------------------------------------------------------------------------------- */

struct ffmt {
    int kind, plus, precision;
    int exp_format, pad_left, pad_right, exp_size, min_digits, has_finite;
    /* fill state */
    int any_nonzero, any_nonfinite, neg_inf;
    double max_abs, min_abs;
};

static void ff_init(struct ffmt *f, int kind, int precision, int plus)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->precision = precision;
    f->plus = plus;
}

/* pass 1: the range of the values */
static void ff_scan(struct ffmt *f, double v)
{
    if (!isfinite(v)) {
        f->any_nonfinite = 1;
        if (isinf(v) && v < 0)
            f->neg_inf = 1;
        return;
    }
    f->has_finite = 1;
    double a = fabs(v);
    if (a == 0)
        return;
    if (!f->any_nonzero || a > f->max_abs)
        f->max_abs = a;
    if (!f->any_nonzero || a < f->min_abs)
        f->min_abs = a;
    f->any_nonzero = 1;
}

/* between the passes: the notation */
static void ff_decide(struct ffmt *f)
{
    f->exp_format = 0;
    if (f->any_nonzero) {
        double ratio = f->max_abs / f->min_abs; /* computed in the element's type by numpy */
        if (f->kind == 32)
            ratio = (float)ratio;
        else if (f->kind == 16)
            ratio = round_to_half(ratio);
        if (f->max_abs >= 1e8 || f->min_abs < 0.0001 || ratio > 1000.)
            f->exp_format = 1;
    }
    f->pad_left = f->pad_right = 0;
    f->exp_size = -1;
    f->min_digits = 0;
}

/* pass 2: the widths */
static void ff_measure(struct ffmt *f, double v)
{
    if (!isfinite(v))
        return;
    struct numtext t;
    if (f->exp_format) {
        scientific(v, f->kind, f->precision, f->plus, &t);
        int es = (int)strlen(t.exp) - 1;
        if (es > f->exp_size)
            f->exp_size = es;
        if ((int)strlen(t.fpart) > f->min_digits)
            f->min_digits = (int)strlen(t.fpart);
    } else {
        positional(v, f->kind, f->precision, f->plus, 1, &t);
        if ((int)strlen(t.fpart) > f->pad_right)
            f->pad_right = (int)strlen(t.fpart);
    }
    if ((int)strlen(t.ipart) > f->pad_left)
        f->pad_left = (int)strlen(t.ipart);
}

static void ff_finish(struct ffmt *f)
{
    if (f->has_finite && f->exp_format)
        f->pad_right = f->exp_size + 2 + f->min_digits;
    if (f->any_nonfinite) {
        int neginf = f->plus || f->neg_inf;
        int offset = f->pad_right + 1;
        if (3 - offset > f->pad_left)
            f->pad_left = 3 - offset;
        if (3 + neginf - offset > f->pad_left)
            f->pad_left = 3 + neginf - offset;
    }
}

static void ff_format(const struct ffmt *f, double v, struct sbuf *out)
{
    if (!isfinite(v)) {
        const char *s = isnan(v)  ? (f->plus ? "+nan" : "nan")
                        : v < 0   ? "-inf"
                        : f->plus ? "+inf"
                                  : "inf";
        int w = f->pad_left + f->pad_right + 1 - (int)strlen(s);
        sb_spaces(out, w);
        sb_puts(out, s);
        return;
    }
    char ip[400];
    if (f->exp_format) {
        char d[400];
        int e;
        int p = exact_digits_e(v, f->min_digits, d, &e);
        put_sign(ip, v, f->plus);
        size_t il = strlen(ip);
        ip[il] = d[0];
        ip[il + 1] = 0;
        sb_spaces(out, f->pad_left - (int)strlen(ip));
        sb_puts(out, ip);
        sb_puts(out, ".");
        sb_add(out, d + 1, (size_t)(p - 1));
        char ex[16];
        exp_text(ex, sizeof ex, e, f->exp_size);
        sb_puts(out, "e");
        sb_puts(out, ex);
        return;
    }
    struct numtext t;
    positional(v, f->kind, f->precision, f->plus, 1, &t);
    sb_spaces(out, f->pad_left - (int)strlen(t.ipart));
    sb_puts(out, t.ipart);
    sb_puts(out, ".");
    sb_puts(out, t.fpart);
    sb_spaces(out, f->pad_right - (int)strlen(t.fpart));
}

/* ---------------------------------------------------------------------------------------------
 * Scalars as numpy's str() prints them (0-d arrays)
 * ------------------------------------------------------------------------------------------- */

/* numpy's float scalar str: positional for 0 and 1e-4 <= |v| < 1e16, else scientific; shortest
 * digits; trim: "1.0" (leave one zero) or, for complex parts, "1" (drop point and zeros). */
static void scalar_float(struct sbuf *out, double v, int kind, int plus, int drop_point)
{
    if (isnan(v)) {
        sb_puts(out, plus ? "+nan" : "nan");
        return;
    }
    if (isinf(v)) {
        sb_puts(out, v < 0 ? "-inf" : plus ? "+inf" : "inf");
        return;
    }
    struct numtext t;
    double a = fabs(v);
    if (a == 0 || (a < 1e16 && a >= 1e-4)) {
        positional(v, kind, 400, plus, 0, &t);
        sb_puts(out, t.ipart);
        if (t.fpart[0]) {
            sb_puts(out, ".");
            sb_puts(out, t.fpart);
        } else if (!drop_point) {
            sb_puts(out, ".0");
        }
        return;
    }
    scientific(v, kind, 400, plus, &t);
    sb_puts(out, t.ipart);
    if (t.fpart[0]) {
        sb_puts(out, ".");
        sb_puts(out, t.fpart);
    }
    sb_puts(out, "e");
    sb_puts(out, t.exp);
}

/* ---------------------------------------------------------------------------------------------
 * Elements
 * ------------------------------------------------------------------------------------------- */

static int float_kind(int dtype)
{
    switch (dtype) {
    case NDSHM_FLOAT16:
        return 16;
    case NDSHM_FLOAT32:
    case NDSHM_COMPLEX64:
        return 32;
    default:
        return 64;
    }
}

static int is_complex(int dtype)
{
    return dtype == NDSHM_COMPLEX64 || dtype == NDSHM_COMPLEX128;
}

static int is_float(int dtype)
{
    return dtype == NDSHM_FLOAT16 || dtype == NDSHM_FLOAT32 || dtype == NDSHM_FLOAT64;
}

/* Element p as (re, im) doubles, for the floating types. */
static void get_float(int dtype, const unsigned char *p, double *re, double *im)
{
    *im = 0;
    switch (dtype) {
    case NDSHM_FLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        *re = cli_half_to_double(h);
        break;
    }
    case NDSHM_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        *re = f;
        break;
    }
    case NDSHM_FLOAT64:
        memcpy(re, p, 8);
        break;
    case NDSHM_COMPLEX64: {
        float f[2];
        memcpy(f, p, 8);
        *re = f[0];
        *im = f[1];
        break;
    }
    case NDSHM_COMPLEX128: {
        double d[2];
        memcpy(d, p, 16);
        *re = d[0];
        *im = d[1];
        break;
    }
    default:
        *re = 0;
    }
}

/* Integer (and bool) element p as text. */
static int int_text(int dtype, const unsigned char *p, char *buf, size_t n)
{
    union {
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
    } u;
    memcpy(&u, p, ndshm_dtype_size(dtype));
    switch (dtype) {
    case NDSHM_INT8:
        return snprintf(buf, n, "%d", (int)u.i8);
    case NDSHM_UINT8:
        return snprintf(buf, n, "%u", (unsigned)u.u8);
    case NDSHM_INT16:
        return snprintf(buf, n, "%d", (int)u.i16);
    case NDSHM_UINT16:
        return snprintf(buf, n, "%u", (unsigned)u.u16);
    case NDSHM_INT32:
        return snprintf(buf, n, "%ld", (long)u.i32);
    case NDSHM_UINT32:
        return snprintf(buf, n, "%lu", (unsigned long)u.u32);
    case NDSHM_INT64:
        return snprintf(buf, n, "%lld", (long long)u.i64);
    case NDSHM_UINT64:
        return snprintf(buf, n, "%llu", (unsigned long long)u.u64);
    default:
        return snprintf(buf, n, "?");
    }
}

struct ctx {
    int dtype;
    size_t isz;
    uint32_t ndim;
    const uint64_t *shape;
    uint64_t stride[NDSHM_MAX_DIMS]; /* in elements */
    const unsigned char *data;
    int summarise;
    uint64_t edge;
    const char *sep;
    long linewidth;
    /* element formats */
    int int_width;
    const char *truestr;
    struct ffmt re, im;
};

/* The format of one element, into out. */
static void format_elem(const struct ctx *c, const unsigned char *p, struct sbuf *out)
{
    if (c->dtype == NDSHM_BOOL) {
        sb_puts(out, *p ? c->truestr : "False");
        return;
    }
    if (is_float(c->dtype) || is_complex(c->dtype)) {
        double re, im;
        get_float(c->dtype, p, &re, &im);
        ff_format(&c->re, re, out);
        if (is_complex(c->dtype)) {
            struct sbuf i = SBUF_INIT;
            ff_format(&c->im, im, &i);
            size_t sp = i.len;
            while (sp && i.p[sp - 1] == ' ')
                sp--;
            sb_add(out, i.p, sp);
            sb_puts(out, "j");
            sb_add(out, i.p + sp, i.len - sp);
            sb_free(&i);
        }
        return;
    }
    char buf[32];
    int n = int_text(c->dtype, p, buf, sizeof buf);
    sb_spaces(out, c->int_width - n);
    sb_puts(out, buf);
}

/* Visit every element that will be printed (the corners when summarising). */
static void visit(struct ctx *c, uint32_t dim, uint64_t off, int pass)
{
    if (dim == c->ndim) {
        const unsigned char *p = c->data + off * c->isz;
        if (c->dtype == NDSHM_BOOL)
            return;
        if (is_float(c->dtype) || is_complex(c->dtype)) {
            double re, im;
            get_float(c->dtype, p, &re, &im);
            if (pass == 1) {
                ff_scan(&c->re, re);
                ff_scan(&c->im, im);
            } else {
                ff_measure(&c->re, re);
                ff_measure(&c->im, im);
            }
            return;
        }
        char buf[32];
        int n = int_text(c->dtype, p, buf, sizeof buf);
        if (n > c->int_width)
            c->int_width = n;
        return;
    }
    uint64_t n = c->shape[dim];
    /* numpy's _leading_trailing: a[:e] and a[-e:]; with e = 0 the latter is all of a */
    int cut = c->summarise && n > 2 * c->edge && c->edge > 0;
    for (uint64_t i = 0; i < n; i++) {
        if (cut && i == c->edge)
            i = n - c->edge;
        visit(c, dim + 1, off + i * c->stride[dim], pass);
    }
}

static void rstrip(struct sbuf *b)
{
    while (b->len && b->p[b->len - 1] == ' ')
        b->len--;
}

/* numpy's _extendLine */
static void extend_line(struct sbuf *s, struct sbuf *line, const char *word, size_t wlen,
                        long width, long indent)
{
    int wrap = (long)(line->len + wlen) > width;
    if ((long)line->len <= indent)
        wrap = 0;
    if (wrap) {
        rstrip(line);
        sb_add(s, line->p, line->len);
        sb_puts(s, "\n");
        line->len = 0;
        sb_spaces(line, (int)indent);
    }
    sb_add(line, word, wlen);
}

/* numpy's _formatArray recurser: the text of a[index] (dim = len(index)) into out. */
static void recurse(const struct ctx *c, uint32_t dim, uint64_t off, long hang, long width,
                    struct sbuf *out)
{
    if (dim == c->ndim) {
        format_elem(c, c->data + off * c->isz, out);
        return;
    }
    uint64_t n = c->shape[dim];
    int summary = c->summarise && 2 * c->edge < n;
    uint64_t lead = summary ? c->edge : 0, trail = summary ? c->edge : n;
    struct sbuf s = SBUF_INIT, word = SBUF_INIT;
    size_t seplen = strlen(c->sep);
    if (c->ndim - dim == 1) {
        long elem_width = width - 1; /* max(len(separator.rstrip()), len(']')) */
        struct sbuf line = SBUF_INIT;
        sb_spaces(&line, (int)hang);
        for (uint64_t i = 0; i < lead; i++) {
            word.len = 0;
            recurse(c, dim + 1, off + i * c->stride[dim], hang + 1, width - 1, &word);
            extend_line(&s, &line, word.p, word.len, elem_width, hang);
            sb_add(&line, c->sep, seplen);
        }
        if (summary) {
            extend_line(&s, &line, "...", 3, elem_width, hang);
            sb_add(&line, c->sep, seplen);
        }
        for (uint64_t i = trail; i > 1; i--) {
            word.len = 0;
            recurse(c, dim + 1, off + (n - i) * c->stride[dim], hang + 1, width - 1, &word);
            extend_line(&s, &line, word.p, word.len, elem_width, hang);
            sb_add(&line, c->sep, seplen);
        }
        word.len = 0;
        recurse(c, dim + 1, off + (n - 1) * c->stride[dim], hang + 1, width - 1, &word);
        extend_line(&s, &line, word.p, word.len, elem_width, hang);
        sb_add(&s, line.p, line.len);
        sb_free(&line);
    } else {
        /* separator.rstrip() + '\n' * (axes_left - 1) */
        struct sbuf line_sep = SBUF_INIT;
        size_t sl = seplen;
        while (sl && c->sep[sl - 1] == ' ')
            sl--;
        sb_add(&line_sep, c->sep, sl);
        for (uint32_t k = 0; k + 1 < c->ndim - dim; k++)
            sb_puts(&line_sep, "\n");
        for (uint64_t i = 0; i < lead; i++) {
            sb_spaces(&s, (int)hang);
            recurse(c, dim + 1, off + i * c->stride[dim], hang + 1, width - 1, &s);
            sb_add(&s, line_sep.p, line_sep.len);
        }
        if (summary) {
            sb_spaces(&s, (int)hang);
            sb_puts(&s, "...");
            sb_add(&s, line_sep.p, line_sep.len);
        }
        for (uint64_t i = trail; i > 1; i--) {
            sb_spaces(&s, (int)hang);
            recurse(c, dim + 1, off + (n - i) * c->stride[dim], hang + 1, width - 1, &s);
            sb_add(&s, line_sep.p, line_sep.len);
        }
        sb_spaces(&s, (int)hang);
        recurse(c, dim + 1, off + (n - 1) * c->stride[dim], hang + 1, width - 1, &s);
        sb_free(&line_sep);
    }
    sb_puts(out, "[");
    if (s.len >= (size_t)hang)
        sb_add(out, s.p + hang, s.len - (size_t)hang);
    sb_puts(out, "]");
    sb_free(&s);
    sb_free(&word);
}

static int dtype_implied(int dtype)
{
    return dtype == NDSHM_FLOAT64 || dtype == NDSHM_INT64 || dtype == NDSHM_COMPLEX128 ||
           dtype == NDSHM_BOOL;
}

/* numpy's _array2string for size > 0 */
static void array2string(struct sbuf *out, int dtype, uint32_t ndim, const uint64_t *shape,
                         const void *data, uint64_t size, const struct cli_np_opts *o,
                         const char *sep, size_t prefix_len, long linewidth)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.dtype = dtype;
    c.isz = ndshm_dtype_size(dtype);
    c.ndim = ndim;
    c.shape = shape;
    c.data = data;
    c.summarise = size > o->threshold;
    c.edge = o->edgeitems;
    c.sep = sep;
    c.linewidth = linewidth;
    uint64_t st = 1;
    for (uint32_t d = ndim; d-- > 0;) {
        c.stride[d] = st;
        st *= shape[d];
    }
    c.truestr = ndim ? " True" : "True";
    int kind = float_kind(dtype);
    ff_init(&c.re, kind, (int)o->precision, 0);
    ff_init(&c.im, kind, (int)o->precision, 1);
    if (dtype != NDSHM_BOOL) {
        visit(&c, 0, 0, 1);
        if (is_float(dtype) || is_complex(dtype)) {
            ff_decide(&c.re);
            ff_decide(&c.im);
            visit(&c, 0, 0, 2);
            ff_finish(&c.re);
            ff_finish(&c.im);
        }
    }
    recurse(&c, 0, 0, 1 + (long)prefix_len, linewidth, out);
}

static void shape_tuple(struct sbuf *out, uint32_t ndim, const uint64_t *shape)
{
    sb_puts(out, "(");
    for (uint32_t i = 0; i < ndim; i++)
        sb_printf(out, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    sb_puts(out, ndim == 1 ? ",)" : ")");
}

int cli_np_format(struct sbuf *out, int dtype, uint32_t ndim, const uint64_t *shape,
                  const void *data, const struct cli_np_opts *opts)
{
    struct cli_np_opts o = opts ? *opts : (struct cli_np_opts)CLI_NP_OPTS_INIT;
    uint64_t nbytes;
    int st = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (st)
        return st;
    size_t isz = ndshm_dtype_size(dtype);
    uint64_t size = nbytes / isz;
    if (o.precision > 300)
        o.precision = 300;
    if (!o.repr) {
        if (ndim == 0) {
            /* str() of a 0-d array: the scalar's str */
            const unsigned char *p = data;
            if (dtype == NDSHM_BOOL) {
                sb_puts(out, *p ? "True" : "False");
            } else if (is_float(dtype)) {
                double re, im;
                get_float(dtype, p, &re, &im);
                scalar_float(out, re, float_kind(dtype), 0, 0);
            } else if (is_complex(dtype)) {
                double re, im;
                get_float(dtype, p, &re, &im);
                int kind = float_kind(dtype);
                if (re == 0 && !signbit(re)) {
                    scalar_float(out, im, kind, 0, 1);
                    sb_puts(out, "j");
                } else {
                    sb_puts(out, "(");
                    scalar_float(out, re, kind, 0, 1);
                    scalar_float(out, im, kind, 1, 1);
                    sb_puts(out, "j)");
                }
            } else {
                char buf[32];
                int_text(dtype, p, buf, sizeof buf);
                sb_puts(out, buf);
            }
        } else if (size == 0) {
            sb_puts(out, "[]");
        } else {
            array2string(out, dtype, ndim, shape, data, size, &o, " ", 0, (long)o.linewidth);
        }
        return out->oom ? NDSHM_E_NOMEM : NDSHM_OK;
    }
    /* repr */
    int skipdtype = dtype_implied(dtype) && size > 0;
    const char *suffix = skipdtype ? ")" : ",";
    size_t start = out->len;
    sb_puts(out, "array(");
    if (size > 0)
        array2string(out, dtype, ndim, shape, data, size, &o, ", ", 6,
                     (long)o.linewidth - (long)strlen(suffix));
    else if (ndim == 1)
        sb_puts(out, "[]");
    else {
        sb_puts(out, "[], shape=");
        shape_tuple(out, ndim, shape);
    }
    sb_puts(out, suffix);
    if (!skipdtype) {
        char dt[32];
        snprintf(dt, sizeof dt, "dtype=%s)", ndshm_dtype_name(dtype));
        size_t last = start;
        for (size_t i = start; i < out->len; i++)
            if (out->p[i] == '\n')
                last = i + 1;
        size_t last_len = out->len - last;
        if ((long)(last_len + strlen(dt) + 1) > (long)o.linewidth)
            sb_puts(out, "\n      ");
        else
            sb_puts(out, " ");
        sb_puts(out, dt);
    }
    return out->oom ? NDSHM_E_NOMEM : NDSHM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Basic slicing, numpy style: "0:3,:", "-1", "::2,5", "...,0"
 * ------------------------------------------------------------------------------------------- */

struct axis_sel {
    int drop;                 /* an integer index: the axis goes away */
    int64_t start, step, len; /* the positions start + k * step, k < len */
};

static int parse_i64(const char *s, const char *e, int64_t *v)
{
    while (s < e && *s == ' ')
        s++;
    while (e > s && e[-1] == ' ')
        e--;
    if (s == e)
        return 1; /* empty: default */
    char buf[32];
    if ((size_t)(e - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end || end == buf)
        return -1;
    *v = x;
    return 0;
}

int cli_slice(const char *spec, int dtype, uint32_t ndim, const uint64_t *shape, const void *data,
              struct cli_array *out, char *why, size_t why_len)
{
    struct axis_sel sel[NDSHM_MAX_DIMS];
    char item[NDSHM_MAX_DIMS + 1][64];
    uint32_t nitems = 0;
    int ellipsis = -1;
    const char *p = spec;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (nitems > NDSHM_MAX_DIMS || n >= sizeof item[0]) {
            snprintf(why, why_len, "slice '%s': too many or too long items", spec);
            return NDSHM_E_INVAL;
        }
        memcpy(item[nitems], p, n);
        item[nitems][n] = 0;
        char *t = item[nitems];
        while (*t == ' ')
            t++;
        size_t tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
            t[--tl] = 0;
        if (strcmp(t, "...") == 0) {
            if (ellipsis >= 0) {
                snprintf(why, why_len, "slice '%s': an index can only have a single ellipsis",
                         spec);
                return NDSHM_E_INVAL;
            }
            ellipsis = (int)nitems;
        } else if (!tl) {
            if (!c && nitems > 0)
                break; /* a trailing comma, as in a[0:3,] */
            snprintf(why, why_len, "slice '%s': empty item (use ':' for a whole axis)", spec);
            return NDSHM_E_INVAL;
        }
        if (t != item[nitems])
            memmove(item[nitems], t, strlen(t) + 1);
        nitems++;
        if (!c)
            break;
        p = c + 1;
    }
    uint32_t real = nitems - (ellipsis >= 0);
    if (real > ndim) {
        snprintf(why, why_len,
                 "too many indices for array: array is %u-dimensional, but %u were indexed", ndim,
                 real);
        return NDSHM_E_INVAL;
    }
    /* item k applies to axis ax */
    uint32_t ax = 0;
    for (uint32_t k = 0; k < nitems; k++) {
        if ((int)k == ellipsis) {
            uint32_t fill = ndim - real;
            for (uint32_t f = 0; f < fill; f++, ax++)
                sel[ax] = (struct axis_sel){0, 0, 1, (int64_t)shape[ax]};
            continue;
        }
        int64_t n = (int64_t)shape[ax];
        const char *t = item[k];
        const char *c1 = strchr(t, ':');
        if (!c1) {
            int64_t i;
            if (parse_i64(t, t + strlen(t), &i) != 0) {
                snprintf(why, why_len, "slice '%s': '%s' is not an integer or a slice", spec, t);
                return NDSHM_E_INVAL;
            }
            int64_t j = i < 0 ? i + n : i;
            if (j < 0 || j >= n) {
                snprintf(why, why_len, "index %lld is out of bounds for axis %u with size %lld",
                         (long long)i, ax, (long long)n);
                return NDSHM_E_INVAL;
            }
            sel[ax++] = (struct axis_sel){1, j, 1, 1};
            continue;
        }
        const char *c2 = strchr(c1 + 1, ':');
        if (c2 && strchr(c2 + 1, ':')) {
            snprintf(why, why_len, "slice '%s': '%s' has more than two ':'", spec, t);
            return NDSHM_E_INVAL;
        }
        int64_t start = 0, stop = 0, step = 1;
        int hs = parse_i64(t, c1, &start), he = parse_i64(c1 + 1, c2 ? c2 : t + strlen(t), &stop);
        int hp = c2 ? parse_i64(c2 + 1, t + strlen(t), &step) : 1;
        if (hs < 0 || he < 0 || hp < 0) {
            snprintf(why, why_len, "slice '%s': '%s' is not start:stop[:step] of integers", spec,
                     t);
            return NDSHM_E_INVAL;
        }
        if (hp == 1)
            step = 1;
        if (step == 0) {
            snprintf(why, why_len, "slice step cannot be zero");
            return NDSHM_E_INVAL;
        }
        /* Python's slice.indices(n) */
        if (step > 0) {
            if (hs == 1)
                start = 0;
            else if (start < 0)
                start = start + n < 0 ? 0 : start + n;
            else if (start > n)
                start = n;
            if (he == 1)
                stop = n;
            else if (stop < 0)
                stop = stop + n < 0 ? 0 : stop + n;
            else if (stop > n)
                stop = n;
        } else {
            if (hs == 1)
                start = n - 1;
            else if (start < 0)
                start = start + n < 0 ? -1 : start + n;
            else if (start >= n)
                start = n - 1;
            if (he == 1)
                stop = -1;
            else if (stop < 0)
                stop = stop + n < 0 ? -1 : stop + n;
            else if (stop >= n)
                stop = n - 1;
        }
        int64_t len = 0;
        if (step > 0 && stop > start)
            len = (stop - start + step - 1) / step;
        else if (step < 0 && start > stop)
            len = (start - stop + (-step) - 1) / (-step);
        sel[ax++] = (struct axis_sel){0, start, step, len};
    }
    for (; ax < ndim; ax++)
        sel[ax] = (struct axis_sel){0, 0, 1, (int64_t)shape[ax]};
    /* the result, copied in C order */
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    uint64_t count = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        if (sel[d].drop)
            continue;
        out->shape[out->ndim++] = (uint64_t)sel[d].len;
        count *= (uint64_t)sel[d].len;
    }
    size_t isz = ndshm_dtype_size(dtype);
    out->nbytes = count * isz;
    out->own = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->own) {
        snprintf(why, why_len, "out of memory");
        return NDSHM_E_NOMEM;
    }
    out->data = out->own;
    uint64_t stride[NDSHM_MAX_DIMS], s = 1;
    for (uint32_t d = ndim; d-- > 0;) {
        stride[d] = s;
        s *= shape[d];
    }
    int64_t k[NDSHM_MAX_DIMS] = {0};
    const unsigned char *src = data;
    unsigned char *dst = out->own;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off = 0;
        for (uint32_t d = 0; d < ndim; d++)
            off += (uint64_t)(sel[d].start + k[d] * sel[d].step) * stride[d];
        memcpy(dst + i * isz, src + off * isz, isz);
        for (uint32_t d = ndim; d-- > 0;) {
            if (sel[d].drop)
                continue;
            if (++k[d] < sel[d].len)
                break;
            k[d] = 0;
        }
    }
    return NDSHM_OK;
}
