/* Shared helpers of the ndshm tool: messages, signals, parsing, formatting, JSON, arrays. */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char *cli_cmd_name = "";
volatile sig_atomic_t cli_stop;

static void prefix(void)
{
    if (cli_cmd_name[0])
        fprintf(stderr, "ndshm %s: ", cli_cmd_name);
    else
        fprintf(stderr, "ndshm: ");
}

int cli_fail(int status, const char *fmt, ...)
{
    prefix();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s (%s)\n", ndshm_strerror(status), ndshm_status_name(status));
    return CLI_FAIL;
}

int cli_fail_why(int status, const char *why, const char *fmt, ...)
{
    prefix();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s (%s)\n", why, ndshm_status_name(status));
    return CLI_FAIL;
}

int cli_usage(const char *fmt, ...)
{
    prefix();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cli_cmd_name[0])
        fprintf(stderr, " (see: ndshm %s --help)\n", cli_cmd_name);
    else
        fprintf(stderr, " (see: ndshm --help)\n");
    return CLI_USAGE;
}

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a sleep returns early so the loop sees cli_stop */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_sleep_until(uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    while (!cli_stop) {
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc != EINTR)
            break;
    }
}

int cli_parse_u64(const char *s, uint64_t *v)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double *v)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    double x = strtod(s, &end);
    if (errno || *end || !isfinite(x))
        return -1;
    *v = x;
    return 0;
}

int cli_parse_seconds(const char *s, double *v)
{
    double x;
    if (parse_double(s, &x) || x < 0 || x > 1e9)
        return -1;
    *v = x;
    return 0;
}

int cli_parse_rate(const char *s, double *v)
{
    double x;
    if (parse_double(s, &x) || x <= 0 || x > 1e9)
        return -1;
    *v = x;
    return 0;
}

void cli_fmt_shape(char *buf, size_t n, uint32_t ndim, const uint64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "(");
    for (uint32_t i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "%s)", ndim == 1 ? "," : "");
}

void cli_fmt_bytes(char *buf, size_t n, uint64_t bytes)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, n, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f %s", v, units[u]);
}

void cli_fmt_duration(char *buf, size_t n, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, n, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, n, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
    else if (ns < UINT64_C(3600000000000))
        snprintf(buf, n, "%.1f s", (double)ns / 1e9);
    else
        snprintf(buf, n, "%.1f h", (double)ns / 3.6e12);
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f); /* bytes >= 0x80 pass through (UTF-8 file names) */
    }
    fputc('"', f);
}

void cli_json_shape(FILE *f, uint32_t ndim, const uint64_t *shape)
{
    fputc('[', f);
    for (uint32_t i = 0; i < ndim; i++)
        fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    fputc(']', f);
}

const char *cli_shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return (d && d[0] == '/' && strlen(d) < 256) ? d : "/dev/shm";
}

/* ---------------------------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------------------------- */

static int sb_grow(struct sbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (sb_grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sb_puts(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_spaces(struct sbuf *b, int n)
{
    if (n <= 0 || sb_grow(b, (size_t)n))
        return;
    memset(b->p + b->len, ' ', (size_t)n);
    b->len += (size_t)n;
    b->p[b->len] = 0;
}

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Arrays as JSON
 * ------------------------------------------------------------------------------------------- */

/* The shortest %g text that reads back as the same value (as float when single != 0). */
static void json_real(char *buf, size_t n, double v, int single)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "null");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            break;
    }
}

static void json_value(FILE *f, int dtype, const unsigned char *p)
{
    char a[40], b[40];
    switch (dtype) {
    case NDSHM_BOOL:
        fputs(*p ? "true" : "false", f);
        return;
    case NDSHM_INT8:
        fprintf(f, "%d", (int)*(const int8_t *)p);
        return;
    case NDSHM_UINT8:
        fprintf(f, "%u", (unsigned)*p);
        return;
    }
    union {
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
        float c64[2];
        double c128[2];
    } u;
    memcpy(&u, p, ndshm_dtype_size(dtype));
    switch (dtype) {
    case NDSHM_INT16:
        fprintf(f, "%d", (int)u.i16);
        break;
    case NDSHM_UINT16:
        fprintf(f, "%u", (unsigned)u.u16);
        break;
    case NDSHM_INT32:
        fprintf(f, "%ld", (long)u.i32);
        break;
    case NDSHM_UINT32:
        fprintf(f, "%lu", (unsigned long)u.u32);
        break;
    case NDSHM_INT64:
        fprintf(f, "%lld", (long long)u.i64);
        break;
    case NDSHM_UINT64:
        fprintf(f, "%llu", (unsigned long long)u.u64);
        break;
    case NDSHM_FLOAT16:
        json_real(a, sizeof a, cli_half_to_double(u.u16), 1);
        fputs(a, f);
        break;
    case NDSHM_FLOAT32:
        json_real(a, sizeof a, u.f32, 1);
        fputs(a, f);
        break;
    case NDSHM_FLOAT64:
        json_real(a, sizeof a, u.f64, 0);
        fputs(a, f);
        break;
    case NDSHM_COMPLEX64:
    case NDSHM_COMPLEX128: {
        int single = dtype == NDSHM_COMPLEX64;
        json_real(a, sizeof a, single ? u.c64[0] : u.c128[0], single);
        json_real(b, sizeof b, single ? u.c64[1] : u.c128[1], single);
        fprintf(f, "[%s, %s]", a, b);
        break;
    }
    default:
        fputs("null", f);
    }
}

static const unsigned char *json_rec(FILE *f, int dtype, const unsigned char *p, uint32_t dim,
                                     uint32_t ndim, const uint64_t *shape)
{
    if (dim == ndim) {
        json_value(f, dtype, p);
        return p + ndshm_dtype_size(dtype);
    }
    fputc('[', f);
    for (uint64_t i = 0; i < shape[dim]; i++) {
        if (i)
            fputs(", ", f);
        p = json_rec(f, dtype, p, dim + 1, ndim, shape);
    }
    fputc(']', f);
    return p;
}

void cli_print_json_array(FILE *f, int dtype, uint32_t ndim, const uint64_t *shape,
                          const void *data)
{
    uint64_t nbytes;
    if (ndshm_array_nbytes(dtype, ndim, shape, &nbytes) != NDSHM_OK) {
        fputs("null", f);
        return;
    }
    if (nbytes == 0) {
        /* zero elements: no value is read, but the nesting of the leading dims is printed,
         * [[], []] for shape (2, 0); bounded so that shape (10**12, 0) cannot flood. */
        uint64_t outer = 1;
        for (uint32_t d = 0; d < ndim && shape[d] != 0; d++)
            if (__builtin_mul_overflow(outer, shape[d], &outer))
                outer = UINT64_MAX;
        if (outer > 10000) {
            fputs("[]", f);
            return;
        }
        static const unsigned char none;
        data = &none;
    }
    json_rec(f, dtype, data, 0, ndim, shape);
}

/* ---------------------------------------------------------------------------------------------
 * Channel names and globs
 * ------------------------------------------------------------------------------------------- */

int cli_is_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

int cli_match_names(int nargs, char **args, int kinds, char ***names, size_t *count)
{
    ndshm_channel_info *list = NULL;
    size_t n = 0, k = 0;
    int globs = 0;
    for (int i = 0; i < nargs; i++)
        globs |= cli_is_glob(args[i]);
    if (globs) {
        int st = ndshm_list(&list, &n);
        if (st)
            return cli_fail(st, "listing %s", cli_shm_dir());
    }
    size_t cap = (size_t)nargs + n;
    char **out = calloc(cap ? cap : 1, sizeof *out);
    if (!out) {
        ndshm_list_free(list);
        return cli_fail(NDSHM_E_NOMEM, "matching names");
    }
    int ret = CLI_OK;
    for (int i = 0; i < nargs && ret == CLI_OK; i++) {
        if (!cli_is_glob(args[i])) {
            int dup = 0;
            for (size_t j = 0; j < k; j++)
                dup |= strcmp(out[j], args[i]) == 0;
            if (!dup)
                out[k++] = args[i];
            continue;
        }
        size_t matched = 0;
        for (size_t e = 0; e < n; e++) {
            if (fnmatch(args[i], list[e].name, 0) != 0)
                continue;
            if (kinds && list[e].kind && !(kinds & (1 << list[e].kind)))
                continue;
            matched++;
            int dup = 0;
            for (size_t j = 0; j < k; j++)
                dup |= strcmp(out[j], list[e].name) == 0;
            if (!dup && !(out[k] = strdup(list[e].name)))
                ret = cli_fail(NDSHM_E_NOMEM, "matching names");
            else if (!dup)
                k++;
        }
        if (!matched && ret == CLI_OK)
            ret = cli_fail(NDSHM_E_NOENT, "no %s matches '%s'",
                           kinds == (1 << NDSHM_KIND_ARRAY) ? "array" : "channel", args[i]);
    }
    ndshm_list_free(list);
    if (ret != CLI_OK) {
        cli_free_names(nargs, args, out, k);
        return ret;
    }
    *names = out;
    *count = k;
    return CLI_OK;
}

void cli_free_names(int nargs, char **args, char **names, size_t count)
{
    for (size_t j = 0; j < count; j++) {
        int mine = 1;
        for (int i = 0; i < nargs; i++)
            if (names[j] == args[i])
                mine = 0;
        if (mine)
            free(names[j]);
    }
    free(names);
}

int cli_parse_duration(const char *s, double *v)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || !isfinite(x) || x < 0)
        return -1;
    double mul = 1;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mul = 1;
    else if (strcmp(end, "ms") == 0)
        mul = 1e-3;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else if (strcmp(end, "d") == 0)
        mul = 86400;
    else
        return -1;
    if (x * mul > 1e12)
        return -1;
    *v = x * mul;
    return 0;
}
