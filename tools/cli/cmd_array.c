/* ndshm array create, save, fill: shared arrays from the command line (include/ndshm/array.h).
 * Listing, inspecting and removing arrays are `ndshm ls`, `stat`, `cat` and `rm`. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_array(int argc, char **argv);

static int bad_option(char **argv)
{
    return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
}

/* "3,4", "(3, 4)", "5," or "5" -> shape; "" or "()" -> a scalar (ndim 0). 0 on success. */
static int parse_shape(const char *s, uint32_t *ndim, uint64_t *shape)
{
    char buf[1024];
    size_t len = strlen(s);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s, len + 1);
    char *p = buf, *end = buf + len;
    while (*p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        *--end = 0;
    if (*p == '(') {
        if (end == p || end[-1] != ')')
            return -1;
        *--end = 0;
        p++;
    }
    uint32_t n = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        char *e = p + strlen(p);
        while (e > p && e[-1] == ' ')
            *--e = 0;
        if (n == NDSHM_MAX_DIMS || cli_parse_u64(p, &shape[n]))
            return -1;
        n++;
        if (!comma)
            break;
        p = comma + 1;
        while (*p == ' ')
            p++;
        if (!*p && n > 0)
            break; /* a trailing comma: "(5,)" */
    }
    *ndim = n;
    return 0;
}

static int parse_mode(const char *s, uint32_t *mode)
{
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '7')
            return -1;
    errno = 0;
    unsigned long m = strtoul(s, NULL, 8);
    if (errno || m == 0 || m > 07777)
        return -1;
    *mode = (uint32_t)m;
    return 0;
}

/* IEEE binary16 from a double, rounded to nearest, ties to even (as numpy's float16()). */
static uint16_t half_from_double(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    uint16_t sign = (uint16_t)((b >> 48) & 0x8000);
    int exp = (int)((b >> 52) & 0x7ff);
    uint64_t mant = b & ((UINT64_C(1) << 52) - 1);
    if (exp == 0x7ff)
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0)); /* inf, nan */
    int e = exp - 1023 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00); /* too large: inf */
    int shift = 42;                       /* 52 - 10 mantissa bits dropped */
    if (e <= 0) {                         /* a subnormal half, or zero */
        if (e < -10)
            return sign;
        mant |= UINT64_C(1) << 52;
        shift += 1 - e;
        e = 0;
    }
    uint64_t m = mant >> shift, rem = mant & ((UINT64_C(1) << shift) - 1);
    uint64_t halfway = UINT64_C(1) << (shift - 1);
    uint32_t h = (uint32_t)e << 10 | (uint32_t)m;
    if (rem > halfway || (rem == halfway && (h & 1)))
        h++; /* a carry into the exponent is right, up to inf */
    return (uint16_t)(sign | h);
}

static int parse_real(const char *s, double *v)
{
    if (!s || !*s)
        return -1;
    char *end;
    double x = strtod(s, &end); /* ERANGE: the nearest value (0, a subnormal or inf), as numpy */
    if (*end)
        return -1;
    *v = x;
    return 0;
}

/* "1.5", "2j", "1+2j", "1-2.5e3j", "(1+2j)" -> re, im. */
static int parse_complex(const char *s, double *re, double *im)
{
    char buf[256];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len + 1);
    char *p = buf;
    if (p[0] == '(' && p[len - 1] == ')') {
        p[len - 1] = 0;
        p++;
        len -= 2;
    }
    char *end;
    double a = strtod(p, &end);
    if (end == p)
        return -1;
    if ((*end == 'j' || *end == 'J') && end[1] == 0) {
        *re = 0;
        *im = a;
        return 0;
    }
    if (*end == 0) {
        *re = a;
        *im = 0;
        return 0;
    }
    if (*end != '+' && *end != '-')
        return -1;
    char *q = end;
    double b = strtod(q, &end);
    if (end == q || (*end != 'j' && *end != 'J') || end[1] != 0)
        return -1;
    *re = a;
    *im = b;
    return 0;
}

/* VALUE as one item of dtype into out (ndshm_dtype_size(dtype) bytes). 0 on success. */
static int parse_value(int dtype, const char *s, unsigned char *out)
{
    double d, im;
    switch (dtype) {
    case NDSHM_BOOL:
        if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "True"))
            out[0] = 1;
        else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "False"))
            out[0] = 0;
        else
            return -1;
        return 0;
    case NDSHM_INT8:
    case NDSHM_INT16:
    case NDSHM_INT32:
    case NDSHM_INT64: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno)
            return -1;
        size_t n = ndshm_dtype_size(dtype);
        if (n < 8) {
            long long lim = 1LL << (8 * n - 1);
            if (v < -lim || v >= lim)
                return -1;
        }
        int8_t i8 = (int8_t)v;
        int16_t i16 = (int16_t)v;
        int32_t i32 = (int32_t)v;
        int64_t i64 = (int64_t)v;
        memcpy(out, n == 1 ? (void *)&i8 : n == 2 ? (void *)&i16 : n == 4 ? (void *)&i32 : &i64, n);
        return 0;
    }
    case NDSHM_UINT8:
    case NDSHM_UINT16:
    case NDSHM_UINT32:
    case NDSHM_UINT64: {
        uint64_t v;
        if (cli_parse_u64(s, &v))
            return -1;
        size_t n = ndshm_dtype_size(dtype);
        if (n < 8 && v >> (8 * n))
            return -1;
        uint8_t u8 = (uint8_t)v;
        uint16_t u16 = (uint16_t)v;
        uint32_t u32 = (uint32_t)v;
        memcpy(out, n == 1 ? (void *)&u8 : n == 2 ? (void *)&u16 : n == 4 ? (void *)&u32 : &v, n);
        return 0;
    }
    case NDSHM_FLOAT16: {
        if (parse_real(s, &d))
            return -1;
        uint16_t h = half_from_double(d);
        memcpy(out, &h, 2);
        return 0;
    }
    case NDSHM_FLOAT32: {
        if (parse_real(s, &d))
            return -1;
        float f = (float)d;
        memcpy(out, &f, 4);
        return 0;
    }
    case NDSHM_FLOAT64:
        if (parse_real(s, &d))
            return -1;
        memcpy(out, &d, 8);
        return 0;
    case NDSHM_COMPLEX64: {
        if (parse_complex(s, &d, &im))
            return -1;
        float c[2] = {(float)d, (float)im};
        memcpy(out, c, 8);
        return 0;
    }
    case NDSHM_COMPLEX128: {
        if (parse_complex(s, &d, &im))
            return -1;
        double c[2] = {d, im};
        memcpy(out, c, 16);
        return 0;
    }
    }
    return -1;
}

static void describe(const char *verb, const char *name, const ndshm_array_info *ai)
{
    char shape[1024], size[32];
    cli_fmt_shape(shape, sizeof shape, ai->ndim, ai->shape);
    cli_fmt_bytes(size, sizeof size, ai->nbytes);
    printf("%s %s: %s %s, %s order, %s\n", verb, name, ndshm_dtype_name(ai->dtype), shape,
           ai->order == NDSHM_ORDER_F ? "F" : "C", size);
}

/* ------------------------------------------------------------------------------------------ */

static int array_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dtype", required_argument, NULL, 'd'}, {"shape", required_argument, NULL, 's'},
        {"order", required_argument, NULL, 'o'}, {"mode", required_argument, NULL, 'm'},
        {"from", required_argument, NULL, 'f'},  {NULL, 0, NULL, 0}};
    const char *from = NULL;
    int have_dtype = 0, have_shape = 0, have_order = 0, c;
    ndshm_dtype dtype = 0;
    uint32_t ndim = 0;
    uint64_t shape[NDSHM_MAX_DIMS];
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (ndshm_dtype_parse(optarg, &dtype) != NDSHM_OK)
                return cli_usage("--dtype wants one of bool, int8..int64, uint8..uint64, "
                                 "float16/32/64, complex64/128 (or a numpy string such as "
                                 "'<f4'), not '%s'",
                                 optarg);
            have_dtype = 1;
            break;
        case 's':
            if (parse_shape(optarg, &ndim, shape))
                return cli_usage("--shape wants up to %d sizes separated by commas ('3,4'; "
                                 "'' for a scalar), not '%s'",
                                 NDSHM_MAX_DIMS, optarg);
            have_shape = 1;
            break;
        case 'o':
            if (!strcmp(optarg, "C") || !strcmp(optarg, "c"))
                o.order = NDSHM_ORDER_C;
            else if (!strcmp(optarg, "F") || !strcmp(optarg, "f"))
                o.order = NDSHM_ORDER_F;
            else
                return cli_usage("--order wants C or F, not '%s'", optarg);
            have_order = 1;
            break;
        case 'm':
            if (parse_mode(optarg, &o.mode))
                return cli_usage("--mode wants octal permission bits such as 0640, not '%s'",
                                 optarg);
            break;
        case 'f':
            from = optarg;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind != 1)
        return cli_usage("expected one array name");
    const char *name = argv[optind];
    if (from && (have_dtype || have_shape || have_order))
        return cli_usage("--from takes dtype, shape and order from the file: no --dtype, "
                         "--shape or --order with it");
    if (!from && (!have_dtype || !have_shape))
        return cli_usage("expected --dtype and --shape, or --from FILE.npy");
    ndshm_npy_header h;
    void *data = NULL;
    if (from) {
        int st = ndshm_load_npy_order(from, &h, &o.order, &data);
        if (st)
            return cli_fail(st, "reading %s", from);
        dtype = (ndshm_dtype)h.dtype;
        ndim = h.ndim;
        memcpy(shape, h.shape, sizeof shape);
    }
    ndshm_array *a;
    int st = ndshm_array_create(name, dtype, ndim, shape, &o, &a);
    if (st) {
        ndshm_npy_free(data);
        return cli_fail(st, "creating array %s", name);
    }
    ndshm_array_info ai;
    ndshm_array_info_get(a, &ai);
    if (data && ai.nbytes)
        memcpy(ndshm_array_data(a), data, ai.nbytes);
    ndshm_npy_free(data);
    describe("created", name, &ai);
    ndshm_array_detach(a);
    return CLI_OK;
}

static int array_save(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    if (getopt_long(argc, argv, "", opts, NULL) != -1)
        return bad_option(argv);
    if (argc - optind != 2)
        return cli_usage("expected an array name and a file name");
    const char *name = argv[optind], *path = argv[optind + 1];
    if (!path[0])
        return cli_usage("expected a file name");
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = NDSHM_ARRAY_READONLY;
    ndshm_array *a;
    int st = ndshm_array_attach(name, &o, &a);
    if (st)
        return cli_fail(st, "%s", name);
    ndshm_array_info ai;
    ndshm_array_info_get(a, &ai);
    st = ndshm_save_npy_order(path, ai.dtype, ai.ndim, ai.shape, ai.order, ndshm_array_cdata(a));
    ndshm_array_detach(a);
    if (st)
        return cli_fail(st, "writing %s", path);
    describe("saved", name, &ai);
    return CLI_OK;
}

static int array_fill(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    /* "+" : stop at the first non-option, so a negative VALUE is not taken for an option */
    if (getopt_long(argc, argv, "+", opts, NULL) != -1)
        return bad_option(argv);
    if (argc - optind != 2)
        return cli_usage("expected an array name and a value");
    const char *name = argv[optind], *value = argv[optind + 1];
    ndshm_array *a;
    int st = ndshm_array_attach(name, NULL, &a);
    if (st)
        return cli_fail(st, "%s", name);
    ndshm_array_info ai;
    ndshm_array_info_get(a, &ai);
    unsigned char item[16];
    if (parse_value(ai.dtype, value, item)) {
        ndshm_array_detach(a);
        return cli_usage("'%s' is not a valid %s value", value, ndshm_dtype_name(ai.dtype));
    }
    size_t isz = ndshm_dtype_size(ai.dtype);
    unsigned char *d = ndshm_array_data(a);
    if (ai.nbytes) {
        memcpy(d, item, isz);
        for (uint64_t done = isz; done < ai.nbytes;) {
            uint64_t n = done < ai.nbytes - done ? done : ai.nbytes - done;
            memcpy(d + done, d, (size_t)n);
            done += n;
        }
    }
    ndshm_array_detach(a);
    describe("filled", name, &ai);
    return CLI_OK;
}

int cmd_array(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("expected a subcommand: create, save or fill");
    const char *sub = argv[1];
    if (!strcmp(sub, "create"))
        return array_create(argc - 1, argv + 1);
    if (!strcmp(sub, "save"))
        return array_save(argc - 1, argv + 1);
    if (!strcmp(sub, "fill"))
        return array_fill(argc - 1, argv + 1);
    return cli_usage("unknown subcommand '%s' (create, save or fill)", sub);
}
