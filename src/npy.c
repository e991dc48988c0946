/*
 * .npy files (numpy's format, NEP 1): header formatting, a strict parser, save and load.
 *
 * File layout: "\x93NUMPY", major, minor, header length (2 bytes little-endian in version 1.0,
 * 4 bytes in 2.0 and 3.0), the header — a Python dict literal
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' so the data starts on a 64-byte boundary — then the
 * payload, in C order (or Fortran order when 'fortran_order' is True), in the byte order descr
 * names. The channel functions write and accept C order only; the *_order variants (shared
 * arrays) write and accept both.
 *
 * The parser accepts exactly that dict grammar (any key order, optional trailing comma, any
 * whitespace between tokens) and nothing else: it is fed untrusted bytes (tests/fuzz/fuzz_npy.c).
 * Every length is checked against the real buffer or file size before use; nothing is
 * allocated from a length the file claims until the file has been seen to be that long.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ndshm .npy support assumes a little-endian host (the descr strings say '<')"
#endif

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---------------------------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------------------------- */

int ndshm_npy_header_format(int dtype, uint32_t ndim, const uint64_t *shape, void *buf,
                            size_t buf_size, size_t *len)
{
    return ndshm_npy_header_format_order(dtype, ndim, shape, NDSHM_ORDER_C, buf, buf_size, len);
}

int ndshm_npy_header_format_order(int dtype, uint32_t ndim, const uint64_t *shape, uint32_t order,
                                  void *buf, size_t buf_size, size_t *len)
{
    if (!len || (buf_size > 0 && !buf) || (order != NDSHM_ORDER_C && order != NDSHM_ORDER_F))
        return NDSHM_E_INVAL;
    uint64_t nbytes;
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc)
        return rc;
    /* 32 dims of 20 digits plus separators and the fixed text: well under 1 KiB. */
    char dict[1024];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (",
                     ndshm_dtype_str(dtype), order == NDSHM_ORDER_F ? "True" : "False");
    for (uint32_t i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%llu", i ? ", " : "",
                      (unsigned long long)shape[i]);
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    NDSHM__INVARIANT(n > 0 && (size_t)n < sizeof dict);
    /* magic(6) + version(2) + length(2) + dict + spaces + '\n', a multiple of 64 */
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) & ~(size_t)63;
    if (buf_size < total) {
        *len = total;
        return NDSHM_E_TOO_SMALL;
    }
    uint8_t *b = buf;
    size_t hlen = total - 10;
    memcpy(b, npy_magic, 6);
    b[6] = 1;
    b[7] = 0;
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + 10, dict, (size_t)n);
    memset(b + 10 + n, ' ', hlen - (size_t)n - 1);
    b[total - 1] = '\n';
    *len = total;
    return NDSHM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------------- */

/* Magic, version and header length from the first bytes. *pre = bytes before the dict. */
static int npy_preamble(const uint8_t *b, size_t n, ndshm_npy_header *h, size_t *pre, size_t *hlen)
{
    if (n < 10 || memcmp(b, npy_magic, 6) != 0)
        return NDSHM_E_CORRUPT;
    h->major = b[6];
    h->minor = b[7];
    if (b[6] == 1 && b[7] == 0) {
        *pre = 10;
        *hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if ((b[6] == 2 || b[6] == 3) && b[7] == 0) {
        if (n < 12)
            return NDSHM_E_CORRUPT;
        *pre = 12;
        *hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        return NDSHM_E_CORRUPT; /* a format version we do not know */
    }
    if (*hlen > NDSHM_NPY_MAX_HEADER)
        return NDSHM_E_LIMIT;
    return NDSHM_OK;
}

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(struct cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int eat_word(struct cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A Python string literal in ' or " quotes, printable ASCII without backslashes, into out
 * (NUL-terminated). 0 on success. */
static int parse_str(struct cursor *c, char *out, size_t out_size)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20 || ch > 0x7e || ch == '\\' || n + 1 >= out_size)
            return -1;
        out[n++] = (char)ch;
    }
    if (c->p >= c->end)
        return -1;
    c->p++; /* closing quote */
    out[n] = 0;
    return 0;
}

/* A non-negative decimal integer as Python writes it (no sign, no leading zero), with the
 * optional 'L' suffix of files written by Python 2. 0 on success. */
static int parse_uint(struct cursor *c, uint64_t *v)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return -1;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
        return -1;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, (uint64_t)(*c->p - '0'), &x))
            return -1;
        c->p++;
    }
    if (c->p < c->end && *c->p == 'L')
        c->p++;
    *v = x;
    return 0;
}

/* "(", ")", "(5,)", "(3, 4)", "(3, 4,)". More than NDSHM_MAX_DIMS entries: *ndim is set to
 * NDSHM_MAX_DIMS + 1 and the rest is still checked for syntax. */
static int parse_shape(struct cursor *c, uint32_t *ndim, uint64_t *shape)
{
    if (!eat(c, '('))
        return -1;
    uint32_t n = 0;
    int trailing_comma = 0;
    for (;;) {
        if (eat(c, ')'))
            break;
        uint64_t v;
        if (parse_uint(c, &v))
            return -1;
        if (n < NDSHM_MAX_DIMS)
            shape[n] = v;
        if (n <= NDSHM_MAX_DIMS)
            n++;
        trailing_comma = eat(c, ',');
        if (!trailing_comma) {
            if (!eat(c, ')'))
                return -1;
            break;
        }
    }
    /* Python: "(5)" is the integer 5, not a tuple; "(,)" is a syntax error (caught above). */
    if (n == 1 && !trailing_comma)
        return -1;
    *ndim = n;
    return 0;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

/* *fortran (NULL: Fortran order is refused with NDSHM_E_LIMIT) gets the fortran_order flag. */
static int parse_dict(const char *s, size_t len, ndshm_npy_header *h, int *fortran_out)
{
    struct cursor c = {s, s + len};
    char descr[32] = {0};
    int descr_structured = 0, fortran = 0;
    unsigned seen = 0;
    if (!eat(&c, '{'))
        return NDSHM_E_CORRUPT;
    while (!eat(&c, '}')) {
        char key[16];
        if (parse_str(&c, key, sizeof key) || !eat(&c, ':'))
            return NDSHM_E_CORRUPT;
        unsigned k = strcmp(key, "descr") == 0           ? KEY_DESCR
                     : strcmp(key, "fortran_order") == 0 ? KEY_FORTRAN
                     : strcmp(key, "shape") == 0         ? KEY_SHAPE
                                                         : 0;
        if (!k || (seen & k))
            return NDSHM_E_CORRUPT; /* unknown or repeated key */
        seen |= k;
        if (k == KEY_DESCR) {
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[') {
                /* a structured dtype (list of fields): valid numpy, not supported here */
                descr_structured = 1;
                int depth = 0;
                for (; c.p < c.end; c.p++) {
                    if (*c.p == '[' || *c.p == '(')
                        depth++;
                    else if ((*c.p == ']' || *c.p == ')') && --depth == 0)
                        break;
                }
                if (c.p >= c.end)
                    return NDSHM_E_CORRUPT;
                c.p++;
            } else if (parse_str(&c, descr, sizeof descr)) {
                return NDSHM_E_CORRUPT;
            }
        } else if (k == KEY_FORTRAN) {
            if (eat_word(&c, "True"))
                fortran = 1;
            else if (!eat_word(&c, "False"))
                return NDSHM_E_CORRUPT;
        } else if (parse_shape(&c, &h->ndim, h->shape)) {
            return NDSHM_E_CORRUPT;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return NDSHM_E_CORRUPT;
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end || seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
        return NDSHM_E_CORRUPT; /* bytes after the dict, or a key missing */
    ndshm_dtype dt;
    if (descr_structured || ndshm_dtype_parse(descr, &dt) != NDSHM_OK)
        return NDSHM_E_DTYPE;
    if (fortran && !fortran_out)
        return NDSHM_E_LIMIT;
    if (h->ndim > NDSHM_MAX_DIMS)
        return NDSHM_E_NDIM;
    h->dtype = (int32_t)dt;
    if (fortran_out)
        *fortran_out = fortran;
    return NDSHM_OK;
}

/* Parse the preamble and dict held in b[0..n) (n >= pre + hlen) of a file `total` bytes long.
 * fortran as parse_dict(). */
static int parse_head(const uint8_t *b, size_t n, uint64_t total, ndshm_npy_header *out,
                      int *fortran)
{
    ndshm_npy_header h;
    memset(&h, 0, sizeof h);
    size_t pre, hlen;
    int rc = npy_preamble(b, n, &h, &pre, &hlen);
    if (rc)
        return rc;
    if (n - pre < hlen)
        return NDSHM_E_CORRUPT; /* truncated header */
    if ((rc = parse_dict((const char *)b + pre, hlen, &h, fortran)) != NDSHM_OK)
        return rc;
    if ((rc = ndshm_array_nbytes(h.dtype, h.ndim, h.shape, &h.nbytes)) != NDSHM_OK)
        return rc;
    h.data_offset = pre + hlen;
    if (total < h.data_offset || total - h.data_offset != h.nbytes)
        return NDSHM_E_CORRUPT; /* truncated data, or trailing bytes */
    *out = h;
    return NDSHM_OK;
}

static int npy_parse(const void *buf, size_t len, ndshm_npy_header *hdr, uint32_t *order,
                     const void **data)
{
    if (!hdr || (!buf && len))
        return NDSHM_E_INVAL;
    if (!buf)
        return NDSHM_E_CORRUPT;
    ndshm_npy_header h;
    int fortran = 0;
    int rc = parse_head(buf, len, len, &h, order ? &fortran : NULL);
    if (rc)
        return rc;
    *hdr = h;
    if (order)
        *order = fortran ? NDSHM_ORDER_F : NDSHM_ORDER_C;
    if (data)
        *data = (const uint8_t *)buf + h.data_offset;
    return NDSHM_OK;
}

int ndshm_npy_parse(const void *buf, size_t len, ndshm_npy_header *hdr, const void **data)
{
    return npy_parse(buf, len, hdr, NULL, data);
}

int ndshm_npy_parse_order(const void *buf, size_t len, ndshm_npy_header *hdr, uint32_t *order,
                          const void **data)
{
    if (!order)
        return NDSHM_E_INVAL;
    return npy_parse(buf, len, hdr, order, data);
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

/* File errors keep their errno as NDSHM_E_SYS - errno: the channel-oriented mapping of
 * ndshm__errno_status() would call a missing file "no channel with this name". */
static int file_status(int err)
{
    return err > 0 ? NDSHM_E_SYS - err : NDSHM_E_SYS - EIO;
}

static int write_all(int fd, const void *p, uint64_t n)
{
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > (UINT64_C(1) << 30) ? (size_t)1 << 30 : (size_t)n;
        ssize_t w = write(fd, c, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return file_status(w < 0 ? errno : EIO);
        c += w;
        n -= (uint64_t)w;
    }
    return NDSHM_OK;
}

/* Read exactly n bytes at offset off; a short file is NDSHM_E_CORRUPT (it shrank under us). */
static int read_all(int fd, void *p, uint64_t n, uint64_t off)
{
    char *c = p;
    while (n > 0) {
        size_t chunk = n > (UINT64_C(1) << 30) ? (size_t)1 << 30 : (size_t)n;
        ssize_t r = pread(fd, c, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return file_status(errno);
        if (r == 0)
            return NDSHM_E_CORRUPT;
        c += r;
        n -= (uint64_t)r;
        off += (uint64_t)r;
    }
    return NDSHM_OK;
}

int ndshm_save_npy(const char *path, int dtype, uint32_t ndim, const uint64_t *shape,
                   const void *data)
{
    return ndshm_save_npy_order(path, dtype, ndim, shape, NDSHM_ORDER_C, data);
}

int ndshm_save_npy_order(const char *path, int dtype, uint32_t ndim, const uint64_t *shape,
                         uint32_t order, const void *data)
{
    if (!path || !path[0] || (order != NDSHM_ORDER_C && order != NDSHM_ORDER_F))
        return NDSHM_E_INVAL;
    uint64_t nbytes;
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc)
        return rc;
    if (nbytes > 0 && !data)
        return NDSHM_E_INVAL;
    uint8_t head[1088];
    size_t hlen;
    if ((rc = ndshm_npy_header_format_order(dtype, ndim, shape, order, head, sizeof head, &hlen)) !=
        NDSHM_OK)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return file_status(errno);
    rc = write_all(fd, head, hlen);
    if (rc == NDSHM_OK)
        rc = write_all(fd, data, nbytes);
    if (close(fd) != 0 && rc == NDSHM_OK)
        rc = file_status(errno);
    if (rc != NDSHM_OK)
        unlink(path);
    return rc;
}

static int load_npy(const char *path, ndshm_npy_header *hdr, uint32_t *order, void **data)
{
    if (!path || !path[0] || !hdr || !data)
        return NDSHM_E_INVAL;
    uint8_t *head = NULL;
    void *payload = NULL;
    int fortran = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_status(errno);
    int rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = file_status(errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = NDSHM_E_INVAL; /* a directory, a device, a FIFO: not a file we can size */
        goto out;
    }
    uint64_t total = (uint64_t)st.st_size;
    uint8_t pre12[12];
    size_t first = total < sizeof pre12 ? (size_t)total : sizeof pre12;
    if ((rc = read_all(fd, pre12, first, 0)) != NDSHM_OK)
        goto out;
    ndshm_npy_header h;
    size_t pre, hlen;
    if ((rc = npy_preamble(pre12, first, &h, &pre, &hlen)) != NDSHM_OK)
        goto out;
    if (total < pre + hlen) {
        rc = NDSHM_E_CORRUPT;
        goto out;
    }
    head = malloc(pre + hlen); /* hlen <= NDSHM_NPY_MAX_HEADER */
    if (!head) {
        rc = NDSHM_E_NOMEM;
        goto out;
    }
    if ((rc = read_all(fd, head, pre + hlen, 0)) != NDSHM_OK)
        goto out;
    /* total == data_offset + nbytes is checked here, before the payload is allocated */
    if ((rc = parse_head(head, pre + hlen, total, &h, order ? &fortran : NULL)) != NDSHM_OK)
        goto out;
    payload = malloc(h.nbytes ? (size_t)h.nbytes : 1);
    if (!payload) {
        rc = NDSHM_E_NOMEM;
        goto out;
    }
    if ((rc = read_all(fd, payload, h.nbytes, h.data_offset)) != NDSHM_OK)
        goto out;
    *hdr = h;
    if (order)
        *order = fortran ? NDSHM_ORDER_F : NDSHM_ORDER_C;
    *data = payload;
    payload = NULL;
out:
    free(payload);
    free(head);
    close(fd);
    return rc;
}

int ndshm_load_npy(const char *path, ndshm_npy_header *hdr, void **data)
{
    return load_npy(path, hdr, NULL, data);
}

int ndshm_load_npy_order(const char *path, ndshm_npy_header *hdr, uint32_t *order, void **data)
{
    if (!order)
        return NDSHM_E_INVAL;
    return load_npy(path, hdr, order, data);
}

void ndshm_npy_free(void *data)
{
    free(data);
}
