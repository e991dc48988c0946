/* Shared helpers of the ndshm tool: messages, signals, parsing, formatting, JSON, arrays. */
#include <errno.h>
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
 * Arrays
 * ------------------------------------------------------------------------------------------- */

static double half_to_double(uint16_t h)
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

/* The shortest %g text that reads back as the same value (as float when single != 0). */
static void fmt_real(char *buf, size_t n, double v, int single, int json)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "%s", json ? "null" : isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    int p = 1;
    for (; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            break;
    }
    double mag = fabs(v);
    if (strchr(buf, 'e') && mag >= 1e-4 && mag < 1e16) {
        /* numpy's range for positional notation: 10. rather than 1e+01 */
        int decimals = p - 1 - (int)floor(log10(mag));
        snprintf(buf, n, "%.*f", decimals > 0 ? decimals : 0, v);
    }
    if (!json && !strpbrk(buf, ".eE") && strlen(buf) + 2 < n)
        strcat(buf, "."); /* numpy prints floats as "1." */
}

static void print_value(FILE *f, int dtype, const unsigned char *p, int json)
{
    char a[40], b[40];
    switch (dtype) {
    case NDSHM_BOOL:
        fputs(*p ? (json ? "true" : "True") : (json ? "false" : "False"), f);
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
        fmt_real(a, sizeof a, half_to_double(u.u16), 1, json);
        fputs(a, f);
        break;
    case NDSHM_FLOAT32:
        fmt_real(a, sizeof a, u.f32, 1, json);
        fputs(a, f);
        break;
    case NDSHM_FLOAT64:
        fmt_real(a, sizeof a, u.f64, 0, json);
        fputs(a, f);
        break;
    case NDSHM_COMPLEX64:
    case NDSHM_COMPLEX128: {
        int single = dtype == NDSHM_COMPLEX64;
        double re = single ? u.c64[0] : u.c128[0], im = single ? u.c64[1] : u.c128[1];
        fmt_real(a, sizeof a, re, single, json);
        fmt_real(b, sizeof b, im, single, json);
        if (json)
            fprintf(f, "[%s, %s]", a, b);
        else
            fprintf(f, "%s%s%sj", a, (b[0] == '-' || !isfinite(im)) ? "" : "+", b);
        break;
    }
    default:
        fputs(json ? "null" : "?", f);
    }
}

static const unsigned char *print_rec(FILE *f, int dtype, const unsigned char *p, uint32_t dim,
                                      uint32_t ndim, const uint64_t *shape, int json)
{
    if (dim == ndim) {
        print_value(f, dtype, p, json);
        return p + ndshm_dtype_size(dtype);
    }
    fputc('[', f);
    for (uint64_t i = 0; i < shape[dim]; i++) {
        if (i) {
            if (json || dim + 1 == ndim) {
                fputs(", ", f);
            } else {
                fputs(",\n", f);
                for (uint32_t k = 0; k <= dim; k++)
                    fputc(' ', f);
            }
        }
        p = print_rec(f, dtype, p, dim + 1, ndim, shape, json);
    }
    fputc(']', f);
    return p;
}

void cli_print_array(FILE *f, int dtype, uint32_t ndim, const uint64_t *shape, const void *data,
                     int json)
{
    uint64_t nbytes;
    if (ndshm_array_nbytes(dtype, ndim, shape, &nbytes) != NDSHM_OK) {
        fputs(json ? "null" : "?", f);
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
    print_rec(f, dtype, data, 0, ndim, shape, json);
}
