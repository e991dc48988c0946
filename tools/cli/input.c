/*
 * Arrays into the tool: .npy files, one array of an .npz archive, and inline values.
 *
 * Every input file is opened with O_NONBLOCK and must be a regular file (a FIFO, a device or a
 * directory is refused at once instead of blocking), read whole, and parsed here, so that each
 * error names the file and says exactly what is wrong with it: not a .npy file (and what it
 * looks like instead), which header field is malformed, the unsupported dtype, Fortran order,
 * how many bytes the shape needs against how many the file has. Nothing in a file is trusted:
 * every length and offset is checked against the bytes actually read. A C-order .npy the parser
 * accepts is also checked by the library's own parser (ndshm_npy_parse), so the tool never
 * publishes what the library would refuse.
 *
 * .npz archives (numpy.savez, numpy.savez_compressed) are zip files: the central directory is
 * read (zip64 fields included), the member chosen with --key is located, inflated when it is
 * deflate-compressed (zlib, when the tool is built with it), its CRC-32 checked, then parsed as
 * a .npy.
 *
 * Fortran-order .npy files: refused with a message that offers --transpose (publish the array's
 * transpose: shape reversed, the bytes as they are — what a Fortran-order array is in C order)
 * and --c-order (convert to C order, same shape).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef NDSHM_CLI_ZLIB
#include <zlib.h>
#endif

#include "cli.h"

#define WHY(...) (snprintf(why, why_len, __VA_ARGS__))

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    return "not a regular file";
}

int cli_read_file(const char *path, uint64_t max, void **buf, size_t *len, char *why,
                  size_t why_len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        WHY("cannot open: %s", strerror(err));
        return NDSHM_E_SYS - err;
    }
    struct stat st;
    int rc = NDSHM_OK;
    char *b = NULL;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        WHY("cannot stat: %s", strerror(err));
        rc = NDSHM_E_SYS - err;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        WHY("%s, not a regular file: inputs must be regular files", file_kind(st.st_mode));
        rc = NDSHM_E_INVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        WHY("%llu bytes: larger than the %llu accepted", (unsigned long long)st.st_size,
            (unsigned long long)max);
        rc = NDSHM_E_LIMIT;
        goto out;
    }
    size_t n = (size_t)st.st_size;
    b = malloc(n + 1); /* one more: text parsers may NUL-terminate */
    if (!b) {
        WHY("%zu bytes: out of memory", n);
        rc = NDSHM_E_NOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got > (1u << 30) ? (1u << 30) : n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            WHY("read failed: %s", strerror(err));
            rc = NDSHM_E_SYS - err;
            goto out;
        }
        if (r == 0)
            break; /* it shrank while we read: parse what is there, the checks catch it */
        got += (size_t)r;
    }
    b[got] = 0;
    *buf = b;
    *len = got;
    b = NULL;
out:
    free(b);
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * .npy headers, parsed for diagnostics
 * ------------------------------------------------------------------------------------------- */

struct cur {
    const char *p, *start, *end;
};

static void ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int peek(struct cur *c, char ch)
{
    ws(c);
    return c->p < c->end && *c->p == ch;
}

static int eat(struct cur *c, char ch)
{
    if (!peek(c, ch))
        return 0;
    c->p++;
    return 1;
}

/* What the parser found instead, for messages: a few characters at the cursor. */
static const char *here(const struct cur *c, char *buf, size_t n)
{
    if (c->p >= c->end)
        return "the end of the header";
    size_t k = 0;
    buf[k++] = '\'';
    for (const char *q = c->p; q < c->end && k + 5 < n && q < c->p + 16; q++)
        buf[k++] = (*q >= 0x20 && *q < 0x7f) ? *q : '?';
    buf[k++] = '\'';
    buf[k] = 0;
    return buf;
}

static int pystr(struct cur *c, char *out, size_t n)
{
    ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20 || ch > 0x7e || ch == '\\' || k + 1 >= n)
            return -1;
        out[k++] = (char)ch;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    out[k] = 0;
    return 0;
}

struct npyhead {
    char descr[64];
    int structured, fortran;
    uint32_t ndim; /* NDSHM_MAX_DIMS + 1 when there are more */
    uint64_t shape[NDSHM_MAX_DIMS];
};

static void fmt_shape_tuple(char *buf, size_t n, uint32_t ndim, const uint64_t *shape)
{
    cli_fmt_shape(buf, n, ndim, shape);
}

/* The dict of a .npy header. 0, or a status with why filled. */
static int parse_dict(const char *s, size_t len, struct npyhead *h, char *why, size_t why_len)
{
    struct cur c = {s, s, s + len};
    char snip[32];
    unsigned seen = 0;
    memset(h, 0, sizeof *h);
    if (!eat(&c, '{')) {
        WHY("malformed .npy header: expected a dict '{...}', found %s",
            here(&c, snip, sizeof snip));
        return NDSHM_E_CORRUPT;
    }
    while (!eat(&c, '}')) {
        char key[32];
        const char *at = c.p;
        if (pystr(&c, key, sizeof key)) {
            c.p = at;
            WHY("malformed .npy header: expected a quoted key, found %s",
                here(&c, snip, sizeof snip));
            return NDSHM_E_CORRUPT;
        }
        if (!eat(&c, ':')) {
            WHY("malformed .npy header: expected ':' after '%s', found %s", key,
                here(&c, snip, sizeof snip));
            return NDSHM_E_CORRUPT;
        }
        unsigned k = strcmp(key, "descr") == 0           ? 1
                     : strcmp(key, "fortran_order") == 0 ? 2
                     : strcmp(key, "shape") == 0         ? 4
                                                         : 0;
        if (!k) {
            WHY("malformed .npy header: unknown key '%s' (numpy writes descr, fortran_order "
                "and shape)",
                key);
            return NDSHM_E_CORRUPT;
        }
        if (seen & k) {
            WHY("malformed .npy header: key '%s' given twice", key);
            return NDSHM_E_CORRUPT;
        }
        seen |= k;
        if (k == 1) {
            ws(&c);
            if (c.p < c.end && *c.p == '[') {
                h->structured = 1;
                int depth = 0;
                for (; c.p < c.end; c.p++) {
                    if (*c.p == '[' || *c.p == '(')
                        depth++;
                    else if ((*c.p == ']' || *c.p == ')') && --depth == 0)
                        break;
                }
                if (c.p >= c.end) {
                    WHY("malformed .npy header: unterminated structured descr");
                    return NDSHM_E_CORRUPT;
                }
                c.p++;
            } else if (pystr(&c, h->descr, sizeof h->descr)) {
                WHY("malformed .npy header: descr must be a quoted dtype string, found %s",
                    here(&c, snip, sizeof snip));
                return NDSHM_E_CORRUPT;
            }
        } else if (k == 2) {
            ws(&c);
            if ((size_t)(c.end - c.p) >= 4 && memcmp(c.p, "True", 4) == 0) {
                h->fortran = 1;
                c.p += 4;
            } else if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "False", 5) == 0) {
                c.p += 5;
            } else {
                WHY("malformed .npy header: fortran_order must be True or False, found %s",
                    here(&c, snip, sizeof snip));
                return NDSHM_E_CORRUPT;
            }
        } else {
            if (!eat(&c, '(')) {
                WHY("malformed .npy header: shape must be a tuple '(...)', found %s",
                    here(&c, snip, sizeof snip));
                return NDSHM_E_CORRUPT;
            }
            uint32_t n = 0;
            int comma = 0;
            while (!eat(&c, ')')) {
                ws(&c);
                if (c.p >= c.end || *c.p < '0' || *c.p > '9' ||
                    (*c.p == '0' && c.p + 1 < c.end && c.p[1] >= '0' && c.p[1] <= '9')) {
                    WHY("malformed .npy header: shape entries must be non-negative integers, "
                        "found %s",
                        here(&c, snip, sizeof snip));
                    return NDSHM_E_CORRUPT;
                }
                uint64_t v = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (__builtin_mul_overflow(v, 10, &v) ||
                        __builtin_add_overflow(v, (uint64_t)(*c.p - '0'), &v)) {
                        WHY("malformed .npy header: a shape entry does not fit in 64 bits");
                        return NDSHM_E_OVERFLOW;
                    }
                    c.p++;
                }
                if (c.p < c.end && *c.p == 'L')
                    c.p++;
                if (n < NDSHM_MAX_DIMS)
                    h->shape[n] = v;
                if (n <= NDSHM_MAX_DIMS)
                    n++;
                comma = eat(&c, ',');
                if (!comma) {
                    if (!eat(&c, ')')) {
                        WHY("malformed .npy header: expected ',' or ')' in shape, found %s",
                            here(&c, snip, sizeof snip));
                        return NDSHM_E_CORRUPT;
                    }
                    break;
                }
            }
            if (n == 1 && !comma) {
                WHY("malformed .npy header: shape '(N)' is not a tuple (numpy writes '(N,)')");
                return NDSHM_E_CORRUPT;
            }
            h->ndim = n;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) {
                WHY("malformed .npy header: expected ',' or '}' after '%s', found %s", key,
                    here(&c, snip, sizeof snip));
                return NDSHM_E_CORRUPT;
            }
            break;
        }
    }
    ws(&c);
    if (c.p != c.end) {
        WHY("malformed .npy header: %s after the dict", here(&c, snip, sizeof snip));
        return NDSHM_E_CORRUPT;
    }
    if (seen != 7) {
        WHY("malformed .npy header: key '%s' missing", !(seen & 1)   ? "descr"
                                                       : !(seen & 2) ? "fortran_order"
                                                                     : "shape");
        return NDSHM_E_CORRUPT;
    }
    return NDSHM_OK;
}

static const char *descr_kind(const char *d)
{
    const char *t = d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=' ? d + 1 : d;
    switch (t[0]) {
    case 'U':
        return "a unicode string dtype";
    case 'S':
    case 'a':
        return "a bytes dtype";
    case 'O':
        return "an object dtype (pickled Python objects)";
    case 'M':
        return "a datetime64 dtype";
    case 'm':
        return "a timedelta64 dtype";
    case 'V':
        return "a void (raw bytes) dtype";
    case 'f':
        if (strcmp(t, "f16") == 0 || strcmp(t, "f12") == 0)
            return "long double (float128), which ndshm does not carry";
        break;
    case 'c':
        if (strcmp(t, "c32") == 0 || strcmp(t, "c24") == 0)
            return "long double complex, which ndshm does not carry";
        break;
    }
    return "not one of the 14 numeric dtypes ndshm carries";
}

void cli_f_to_c(const void *from, void *to, size_t isz, uint32_t ndim, const uint64_t *shape,
                uint64_t count)
{
    const unsigned char *src = from;
    unsigned char *dst = to;
    uint64_t idx[NDSHM_MAX_DIMS] = {0}, fstride[NDSHM_MAX_DIMS];
    uint64_t s = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        fstride[d] = s;
        s *= shape[d];
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off = 0;
        for (uint32_t d = 0; d < ndim; d++)
            off += idx[d] * fstride[d];
        memcpy(dst + i * isz, src + off * isz, isz);
        for (uint32_t d = ndim; d-- > 0;) { /* next C-order index */
            if (++idx[d] < shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* Parse a whole .npy held in b[0..n). out->data points into b (or into out->own after a
 * --c-order conversion). */
static int parse_npy(const unsigned char *b, size_t n, const struct cli_load_opts *o,
                     struct cli_array *out, char *why, size_t why_len)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (n == 0) {
        WHY("empty file, not a .npy file");
        return NDSHM_E_CORRUPT;
    }
    if (n < 6 || memcmp(b, magic, 6) != 0) {
        if (n >= 2 && b[0] == 'P' && b[1] == 'K')
            WHY("a zip archive, not a .npy file (an .npz is read when its name ends in .npz)");
        else if (n >= 2 && b[0] == 0x80 && b[1] <= 5)
            WHY("a Python pickle, not a .npy file (numpy.save writes .npy files)");
        else
            WHY("not a .npy file: it does not start with numpy's magic \"\\x93NUMPY\"");
        return NDSHM_E_CORRUPT;
    }
    if (n < 10) {
        WHY("truncated .npy preamble: %zu bytes", n);
        return NDSHM_E_CORRUPT;
    }
    size_t pre, hlen;
    if (b[6] == 1 && b[7] == 0) {
        pre = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if ((b[6] == 2 || b[6] == 3) && b[7] == 0) {
        if (n < 12) {
            WHY("truncated .npy preamble: %zu bytes", n);
            return NDSHM_E_CORRUPT;
        }
        pre = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        WHY(".npy format version %u.%u, which is not read (1.0, 2.0 and 3.0 are)", b[6], b[7]);
        return NDSHM_E_CORRUPT;
    }
    if (hlen > NDSHM_NPY_MAX_HEADER) {
        WHY("a .npy header of %zu bytes, more than the %u accepted", hlen, NDSHM_NPY_MAX_HEADER);
        return NDSHM_E_LIMIT;
    }
    if (n - pre < hlen) {
        WHY("truncated .npy header: it says %zu bytes, the file has %zu after the preamble", hlen,
            n - pre);
        return NDSHM_E_CORRUPT;
    }
    struct npyhead h;
    int rc = parse_dict((const char *)b + pre, hlen, &h, why, why_len);
    if (rc)
        return rc;
    ndshm_dtype dt;
    if (h.structured) {
        WHY("a structured dtype (record fields): ndshm carries the 14 numeric dtypes only");
        return NDSHM_E_DTYPE;
    }
    if (ndshm_dtype_parse(h.descr, &dt) != NDSHM_OK) {
        if (h.descr[0] == '>' && ndshm_dtype_parse(h.descr + 1, &dt) == NDSHM_OK)
            WHY("big-endian dtype '%s': ndshm carries little-endian data; convert with "
                "a.astype(a.dtype.newbyteorder('<'))",
                h.descr);
        else
            WHY("dtype '%s' is %s (bool, int8..int64, uint8..uint64, float16/32/64, "
                "complex64/128)",
                h.descr, descr_kind(h.descr));
        return NDSHM_E_DTYPE;
    }
    if (h.ndim > NDSHM_MAX_DIMS) {
        WHY("more than %d dimensions", NDSHM_MAX_DIMS);
        return NDSHM_E_NDIM;
    }
    char shape[512];
    fmt_shape_tuple(shape, sizeof shape, h.ndim, h.shape);
    uint64_t nbytes;
    if ((rc = ndshm_array_nbytes(dt, h.ndim, h.shape, &nbytes)) != NDSHM_OK ||
        nbytes > NDSHM_MAX_CAPACITY) {
        WHY("shape %s of %s: the byte size overflows or exceeds 1 TiB", shape,
            ndshm_dtype_name(dt));
        return rc ? rc : NDSHM_E_OVERFLOW;
    }
    size_t off = pre + hlen;
    if (n - off != nbytes) {
        if (n - off < nbytes)
            WHY("truncated: shape %s of %s needs %llu bytes of data, the file has %zu", shape,
                ndshm_dtype_name(dt), (unsigned long long)nbytes, n - off);
        else
            WHY("%llu bytes after the data: shape %s of %s needs %llu, the file has %zu",
                (unsigned long long)(n - off - nbytes), shape, ndshm_dtype_name(dt),
                (unsigned long long)nbytes, n - off);
        return NDSHM_E_CORRUPT;
    }
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
    out->nbytes = nbytes;
    out->data = b + off;
    if (h.fortran) {
        if (h.ndim <= 1) {
            /* 0-d and 1-d: the same bytes in either order */
        } else if (o && o->transpose) {
            for (uint32_t i = 0; i < h.ndim; i++)
                out->shape[i] = h.shape[h.ndim - 1 - i];
        } else if (o && o->c_order) {
            out->own = malloc(nbytes ? nbytes : 1);
            if (!out->own) {
                WHY("out of memory converting %llu bytes to C order", (unsigned long long)nbytes);
                return NDSHM_E_NOMEM;
            }
            size_t isz = ndshm_dtype_size(dt);
            cli_f_to_c(b + off, out->own, isz, h.ndim, h.shape, nbytes / isz);
            out->data = out->own;
        } else {
            char tshape[512];
            uint64_t rev[NDSHM_MAX_DIMS];
            for (uint32_t i = 0; i < h.ndim; i++)
                rev[i] = h.shape[h.ndim - 1 - i];
            fmt_shape_tuple(tshape, sizeof tshape, h.ndim, rev);
            WHY("Fortran-order array (fortran_order: True) of shape %s: channels carry C order; "
                "--transpose publishes its transpose (shape %s, no copy), --c-order converts it "
                "(same shape)",
                shape, tshape);
            return NDSHM_E_LIMIT;
        }
        return NDSHM_OK;
    }
    /* The library must agree: it is what readers of .npy files from ndshm rely on. */
    ndshm_npy_header lh;
    const void *ld;
    if ((rc = ndshm_npy_parse(b, n, &lh, &ld)) != NDSHM_OK) {
        WHY("refused by the library's .npy parser: %s", ndshm_strerror(rc));
        return rc;
    }
    if (lh.dtype != out->dtype || lh.ndim != out->ndim || ld != out->data ||
        memcmp(lh.shape, out->shape, sizeof(uint64_t) * lh.ndim) != 0) {
        WHY("the library's .npy parser reads this header differently");
        return NDSHM_E_CORRUPT;
    }
    return NDSHM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * .npz archives
 * ------------------------------------------------------------------------------------------- */

static uint32_t rd16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const unsigned char *p)
{
    return rd16(p) | rd16(p + 2) << 16;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

struct zentry {
    char name[256];
    uint32_t method, flags, crc;
    uint64_t csize, usize, offset;
};

/* The central directory of a zip held in b[0..n): up to max entries. */
static int zip_entries(const unsigned char *b, size_t n, struct zentry *e, size_t max,
                       size_t *count, char *why, size_t why_len)
{
    /* end of central directory: 22 bytes plus a comment of up to 65535 */
    size_t eocd = SIZE_MAX;
    for (size_t k = 22; k <= n && k <= 22 + 65535; k++) {
        if (rd32(b + n - k) == 0x06054b50u) {
            eocd = n - k;
            break;
        }
    }
    if (eocd == SIZE_MAX) {
        WHY("a zip (.npz) archive without an end-of-central-directory record: truncated?");
        return NDSHM_E_CORRUPT;
    }
    uint64_t entries = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12),
             cd_off = rd32(b + eocd + 16);
    if (entries == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* zip64: the locator sits right before the EOCD */
        if (eocd < 20 || rd32(b + eocd - 20) != 0x07064b50u) {
            WHY("a zip64 (.npz) archive without its zip64 locator");
            return NDSHM_E_CORRUPT;
        }
        uint64_t z = rd64(b + eocd - 20 + 8);
        if (z > n || n - z < 56 || rd32(b + z) != 0x06064b50u) {
            WHY("a zip64 (.npz) archive whose zip64 end record is missing or truncated");
            return NDSHM_E_CORRUPT;
        }
        entries = rd64(b + z + 32);
        cd_size = rd64(b + z + 40);
        cd_off = rd64(b + z + 48);
    }
    if (cd_off > n || cd_size > n - cd_off) {
        WHY("a zip (.npz) archive whose central directory lies outside the file");
        return NDSHM_E_CORRUPT;
    }
    size_t k = 0;
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < entries; i++) {
        if (end - p < 46 || rd32(b + p) != 0x02014b50u) {
            WHY("a zip (.npz) archive with a malformed central directory (entry %llu)",
                (unsigned long long)i + 1);
            return NDSHM_E_CORRUPT;
        }
        const unsigned char *h = b + p;
        uint32_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
        if (end - p - 46 < (uint64_t)nlen + xlen + clen) {
            WHY("a zip (.npz) archive with a truncated central directory entry");
            return NDSHM_E_CORRUPT;
        }
        if (k < max) {
            struct zentry *z = &e[k];
            memset(z, 0, sizeof *z);
            size_t l = nlen < sizeof z->name - 1 ? nlen : sizeof z->name - 1;
            for (size_t j = 0; j < l; j++) {
                unsigned char ch = h[46 + j];
                z->name[j] = (char)(ch >= 0x20 && ch < 0x7f ? ch : '?');
            }
            z->flags = rd16(h + 8);
            z->method = rd16(h + 10);
            z->crc = rd32(h + 16);
            z->csize = rd32(h + 20);
            z->usize = rd32(h + 24);
            z->offset = rd32(h + 42);
            /* zip64 extra field (id 1): the 0xffffffff fields, in order */
            const unsigned char *x = h + 46 + nlen, *xe = x + xlen;
            while (xe - x >= 4) {
                uint32_t id = rd16(x), sz = rd16(x + 2);
                if ((size_t)(xe - x - 4) < sz)
                    break;
                if (id == 1) {
                    const unsigned char *q = x + 4, *qe = q + sz;
                    if (z->usize == 0xffffffffu && qe - q >= 8) {
                        z->usize = rd64(q);
                        q += 8;
                    }
                    if (z->csize == 0xffffffffu && qe - q >= 8) {
                        z->csize = rd64(q);
                        q += 8;
                    }
                    if (z->offset == 0xffffffffu && qe - q >= 8)
                        z->offset = rd64(q);
                }
                x += 4 + sz;
            }
            k++;
        }
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
    *count = k;
    return NDSHM_OK;
}

static int strip_npy(const char *name, char *out, size_t n)
{
    size_t l = strlen(name);
    if (l > 4 && strcmp(name + l - 4, ".npy") == 0)
        l -= 4;
    if (l >= n)
        l = n - 1;
    memcpy(out, name, l);
    out[l] = 0;
    return 0;
}

static int parse_npz(const unsigned char *b, size_t n, const struct cli_load_opts *o,
                     struct cli_array *out, char *why, size_t why_len)
{
    struct zentry ent[64];
    size_t count = 0;
    int rc = zip_entries(b, n, ent, 64, &count, why, why_len);
    if (rc)
        return rc;
    if (count == 0) {
        WHY("an empty .npz archive (no arrays)");
        return NDSHM_E_CORRUPT;
    }
    char keys[1024] = "";
    size_t kl = 0;
    for (size_t i = 0; i < count && kl + 4 < sizeof keys; i++) {
        char k[256];
        strip_npy(ent[i].name, k, sizeof k);
        kl += (size_t)snprintf(keys + kl, sizeof keys - kl, "%s%s", i ? ", " : "", k);
        if (kl >= sizeof keys)
            kl = sizeof keys - 1;
    }
    const struct zentry *z = NULL;
    if (o && o->key) {
        for (size_t i = 0; i < count; i++) {
            char k[256];
            strip_npy(ent[i].name, k, sizeof k);
            if (strcmp(k, o->key) == 0 || strcmp(ent[i].name, o->key) == 0)
                z = &ent[i];
        }
        if (!z) {
            WHY("an .npz archive without an array '%s' (its arrays: %s)", o->key, keys);
            return NDSHM_E_NOENT;
        }
    } else if (count == 1) {
        z = &ent[0];
    } else {
        WHY("an .npz archive of %zu arrays (%s): pick one with --key NAME", count, keys);
        return NDSHM_E_INVAL;
    }
    char key[256];
    strip_npy(z->name, key, sizeof key);
    if (z->flags & 1) {
        WHY("array '%s' of the .npz archive is encrypted", key);
        return NDSHM_E_INVAL;
    }
    if (z->offset > n || n - z->offset < 30 || rd32(b + z->offset) != 0x04034b50u) {
        WHY("array '%s' of the .npz archive: its local header is missing or truncated", key);
        return NDSHM_E_CORRUPT;
    }
    uint64_t data = z->offset + 30 + rd16(b + z->offset + 26) + rd16(b + z->offset + 28);
    if (data > n || n - data < z->csize) {
        WHY("array '%s' of the .npz archive is truncated (%llu bytes stored, %llu present)", key,
            (unsigned long long)z->csize, (unsigned long long)(data > n ? 0 : n - data));
        return NDSHM_E_CORRUPT;
    }
    if (z->usize > NDSHM_MAX_CAPACITY + NDSHM_NPY_MAX_HEADER + 64) {
        WHY("array '%s' of the .npz archive is larger than 1 TiB", key);
        return NDSHM_E_LIMIT;
    }
    unsigned char *member;
    if (z->method == 0) {
        if (z->csize != z->usize) {
            WHY("array '%s' of the .npz archive: stored with sizes %llu and %llu that differ", key,
                (unsigned long long)z->csize, (unsigned long long)z->usize);
            return NDSHM_E_CORRUPT;
        }
        member = malloc(z->usize ? z->usize : 1);
        if (!member)
            return WHY("out of memory"), NDSHM_E_NOMEM;
        memcpy(member, b + data, z->usize);
    } else if (z->method == 8) {
#ifdef NDSHM_CLI_ZLIB
        member = malloc(z->usize ? z->usize : 1);
        if (!member)
            return WHY("out of memory"), NDSHM_E_NOMEM;
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -15) != Z_OK) {
            free(member);
            return WHY("zlib: inflateInit failed"), NDSHM_E_NOMEM;
        }
        uint64_t in_left = z->csize, out_left = z->usize;
        const unsigned char *in = b + data;
        unsigned char *outp = member;
        int zr = Z_OK;
        while (zr == Z_OK) {
            uInt ci = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            uInt co = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            zs.next_in = (Bytef *)(uintptr_t)in;
            zs.avail_in = ci;
            zs.next_out = outp;
            zs.avail_out = co;
            zr = inflate(&zs, Z_NO_FLUSH);
            in += ci - zs.avail_in;
            in_left -= ci - zs.avail_in;
            outp += co - zs.avail_out;
            out_left -= co - zs.avail_out;
            if (zr == Z_OK && ci == zs.avail_in && co == zs.avail_out)
                zr = Z_BUF_ERROR; /* no progress */
        }
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || out_left != 0) {
            free(member);
            WHY("array '%s' of the .npz archive: the compressed data is corrupt (%s)", key,
                zr == Z_STREAM_END ? "shorter than its recorded size" : "inflate failed");
            return NDSHM_E_CORRUPT;
        }
#else
        WHY("array '%s' of the .npz archive is compressed (numpy.savez_compressed) and this "
            "ndshm was built without zlib: save it with numpy.savez or numpy.save",
            key);
        return NDSHM_E_INVAL;
#endif
    } else {
        WHY("array '%s' of the .npz archive uses zip compression method %u (stored and deflate "
            "are read)",
            key, z->method);
        return NDSHM_E_INVAL;
    }
    if (crc32_of(member, z->usize) != z->crc) {
        free(member);
        WHY("array '%s' of the .npz archive fails its CRC-32 check: the file is damaged", key);
        return NDSHM_E_CORRUPT;
    }
    char inner[512];
    rc = parse_npy(member, z->usize, o, out, inner, sizeof inner);
    if (rc) {
        free(member);
        WHY("array '%s' of the .npz archive: %s", key, inner);
        return rc;
    }
    /* out->data points into member: keep member alive as the file buffer */
    if (out->own) {
        free(member);
    } else {
        out->file = member;
    }
    return NDSHM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int cli_parse_array(void *buf, size_t n, int npz_name, const struct cli_load_opts *o,
                    struct cli_array *out, char *why, size_t why_len)
{
    const unsigned char *b = buf;
    int rc;
    int zip = n >= 4 && b[0] == 'P' && b[1] == 'K' && (b[2] == 3 || b[2] == 5);
    if (zip || npz_name) {
        if (!zip) {
            WHY("named .npz but not a zip archive (numpy.savez writes zip files)");
            free(buf);
            return NDSHM_E_CORRUPT;
        }
        rc = parse_npz(b, n, o, out, why, why_len);
        free(buf);
        return rc;
    }
    if (o && o->key) {
        WHY("a .npy file holds one array: --key is for .npz archives");
        free(buf);
        return NDSHM_E_INVAL;
    }
    rc = parse_npy(b, n, o, out, why, why_len);
    if (rc) {
        free(buf);
        return rc;
    }
    if (out->own)
        free(buf);
    else
        out->file = buf;
    return NDSHM_OK;
}

int cli_load_array(const char *path, const struct cli_load_opts *o, struct cli_array *out,
                   char *why, size_t why_len)
{
    void *buf = NULL;
    size_t n = 0;
    int rc =
        cli_read_file(path, NDSHM_MAX_CAPACITY + NDSHM_NPY_MAX_HEADER + 64, &buf, &n, why, why_len);
    if (rc)
        return rc;
    return cli_parse_array(buf, n, ends_with(path, ".npz"), o, out, why, why_len);
}

void cli_array_free(struct cli_array *a)
{
    if (!a)
        return;
    free(a->file);
    free(a->own);
    a->file = a->own = NULL;
    a->data = NULL;
}
