/*
 * libFuzzer target: hostile bytes in the control and data segments.
 *
 * A valid channel (control segment + one data segment, 2 slots, three versions published)
 * is built once in a private NDSHM_DIR and kept as a template. Each input is a list of
 * patches applied to copies of the template (or, with a leading 0xff, raw bytes for both
 * segments); the patched segments are written back as files and then every entry point that
 * parses shared memory runs on them: reader open, read_latest / read_next (copy and owned),
 * views, wait, writer liveness, stat, list, gc and a writer takeover (repair) followed by a
 * publish. None may crash, hang or trip a sanitizer. A leading 0xfe feeds the rest to the
 * other parsers of untrusted text: directory entry names, dtype strings, channel names.
 *
 * Input format (patch mode): repeated records [kind][off_lo][off_hi][len] bytes[len % 16 + 1]
 *   kind % 4 == 0: patch the control segment at off % 4096
 *   kind % 4 == 1: patch the data segment at off % its size
 *   kind % 4 == 2: truncate or extend the data segment to off % (2 * its size + 1) bytes
 *   kind % 4 == 3: truncate or extend the control segment to off % 8193 bytes
 */
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "ndshm/ndshm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NAME    "fz"
#define CTL_MAX 8192

static char dir[128];
static unsigned char tmpl_ctl[NDSHM__CTL_SIZE];
static unsigned char *tmpl_data;
static size_t tmpl_data_size;
static unsigned char *buf_data;
static unsigned char buf_ctl[CTL_MAX];
static unsigned char *readbuf;
#define READBUF (1u << 20)

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void at_exit(void)
{
    clear_dir();
    rmdir(dir);
}

static int write_file(const char *seg, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = n ? write(fd, p, n) : 0;
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

static unsigned char *read_file(const char *seg, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len)
        abort();
    fclose(f);
    *n = (size_t)len;
    return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ndshm__ready_wait_ns = 0; /* not-ready inputs must not sleep 250 ms each */
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/dev/shm/ndfz-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/ndfz-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(dir))
            abort();
    }
    setenv("NDSHM_DIR", dir, 1);
    atexit(at_exit);
    /* The template: a real channel, three versions of a 2-d array, writer closed. */
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 2;
    o.capacity = 256;
    ndshm_writer *w;
    if (ndshm_writer_create(NAME, &o, &w) != NDSHM_OK)
        abort();
    for (int v = 1; v <= 3; v++) {
        uint16_t a[4][5];
        for (int i = 0; i < 20; i++)
            a[i / 5][i % 5] = (uint16_t)(v * 100 + i);
        uint64_t shape[2] = {4, 5};
        if (ndshm_publish(w, NDSHM_UINT16, 2, shape, a, NULL) != NDSHM_OK)
            abort();
    }
    ndshm_writer_close(w);
    size_t n;
    unsigned char *c = read_file("ndshm." NAME, &n);
    if (n != sizeof tmpl_ctl)
        abort();
    memcpy(tmpl_ctl, c, n);
    free(c);
    char seg[NDSHM__SEG_MAX];
    const struct ndshm__ctl *tc = (const void *)tmpl_ctl;
    ndshm__data_name(seg, NAME, 1, tc->token[1]);
    tmpl_data = read_file(seg, &tmpl_data_size);
    buf_data = malloc(2 * tmpl_data_size + 1);
    readbuf = malloc(READBUF);
    if (!buf_data || !readbuf)
        abort();
    clear_dir();
    return 0;
}

static void exercise_reader(void)
{
    ndshm_reader *r;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_REPLAY;
    o.retries = 4;
    o.spin_ns = 1;
    if (ndshm_reader_open(NAME, &o, &r) != NDSHM_OK)
        return;
    ndshm_info info;
    for (int i = 0; i < 4; i++) {
        if (ndshm_read_next(r, readbuf, READBUF, &info) == NDSHM_OK && info.nbytes)
            readbuf[info.nbytes - 1] ^= 1; /* the whole claimed size must be ours */
    }
    (void)ndshm_read_latest(r, readbuf, 16, &info); /* too small */
    (void)ndshm_read_latest(r, readbuf, READBUF, &info);
    ndshm_view v;
    if (ndshm_view_latest(r, &v) == NDSHM_OK) {
        volatile unsigned char sink = 0;
        const unsigned char *p = v.data;
        for (uint64_t i = 0; i < v.info.nbytes; i += 61)
            sink ^= p[i]; /* every byte the view claims must be mapped */
        if (v.info.nbytes)
            sink ^= p[v.info.nbytes - 1];
        (void)sink;
        (void)ndshm_view_check(&v);
        (void)ndshm_view_release(&v);
    }
    if (ndshm_view_next(r, &v) == NDSHM_OK)
        (void)ndshm_view_release(&v);
    const void *owned;
    (void)ndshm_read_next_owned(r, &owned, &info);
    (void)ndshm_read_latest_owned(r, &owned, &info);
    (void)ndshm_wait(r, 0);
    (void)ndshm_reader_writer_alive(r);
    (void)ndshm_reader_version(r);
    ndshm_reader_close(r);
}

static void exercise_channel(void)
{
    ndshm_channel_info ci;
    (void)ndshm_stat(NAME, &ci);
    ndshm_channel_info *list;
    size_t n;
    if (ndshm_list(&list, &n) == NDSHM_OK)
        ndshm_list_free(list);
}

static void exercise_writer(void)
{
    ndshm_writer *w;
    if (ndshm_writer_open(NAME, NULL, &w) != NDSHM_OK)
        return;
    uint8_t a[7] = {1, 2, 3, 4, 5, 6, 7};
    uint64_t shape[1] = {7};
    (void)ndshm_publish(w, NDSHM_UINT8, 1, shape, a, NULL);
    ndshm_writer_close(w);
    /* ... and what it left must read back. */
    exercise_reader();
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1 && data[0] == 0xfe) { /* entry-name, dtype and name parsers */
        char s[256], name[NDSHM_NAME_MAX + 1];
        uint64_t g, t;
        size_t n = size - 1 < sizeof s - 1 ? size - 1 : sizeof s - 1;
        memcpy(s, data + 1, n);
        s[n] = 0;
        ndshm_dtype dt;
        (void)ndshm__parse_entry(s, name, &g, &t);
        (void)ndshm_dtype_parse(s, &dt);
        (void)ndshm_name_check(s);
        return 0;
    }
    size_t ctl_size = sizeof tmpl_ctl, data_size = tmpl_data_size;
    memset(buf_ctl, 0, sizeof buf_ctl);
    if (size >= 1 && data[0] == 0xff) { /* raw: both segments straight from the input */
        size_t rest = size - 1;
        ctl_size = rest / 2 < CTL_MAX ? rest / 2 : CTL_MAX;
        memcpy(buf_ctl, data + 1, ctl_size);
        data_size = rest - ctl_size;
        if (data_size > 2 * tmpl_data_size)
            data_size = 2 * tmpl_data_size;
        memcpy(buf_data, data + 1 + ctl_size, data_size);
    } else {
        memcpy(buf_ctl, tmpl_ctl, sizeof tmpl_ctl);
        memset(buf_data, 0, 2 * tmpl_data_size + 1);
        memcpy(buf_data, tmpl_data, tmpl_data_size);
        size_t i = 0;
        while (i + 4 <= size) {
            unsigned kind = data[i] % 4;
            size_t off = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
            size_t len = (size_t)(data[i + 3] % 16) + 1;
            i += 4;
            if (len > size - i)
                len = size - i;
            if (kind == 0) {
                off %= sizeof tmpl_ctl;
                if (len > sizeof tmpl_ctl - off)
                    len = sizeof tmpl_ctl - off;
                memcpy(buf_ctl + off, data + i, len);
            } else if (kind == 1) {
                if (data_size == 0) {
                    i += len;
                    continue;
                }
                off %= data_size;
                if (len > data_size - off)
                    len = data_size - off;
                memcpy(buf_data + off, data + i, len);
            } else if (kind == 2) {
                data_size = off % (2 * tmpl_data_size + 1);
                len = 0;
            } else {
                ctl_size = off % (CTL_MAX + 1);
                len = 0;
            }
            i += len;
        }
    }
    /* The data segment goes where the (patched) control segment says it is. */
    size_t tok_off = offsetof(struct ndshm__ctl, token);
    uint64_t gen = ctl_size >= offsetof(struct ndshm__ctl, gen) + 8
                       ? le64(buf_ctl + offsetof(struct ndshm__ctl, gen))
                       : 1;
    uint64_t tok[2] = {0, 0};
    if (ctl_size >= tok_off + 16) {
        tok[0] = le64(buf_ctl + tok_off);
        tok[1] = le64(buf_ctl + tok_off + 8);
    }
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, NAME, gen, tok[gen % 2]);
    if (write_file("ndshm." NAME, buf_ctl, ctl_size) || write_file(seg, buf_data, data_size))
        abort();
    if (gen != 2) { /* and a copy of it as generation 2, for re-map paths */
        ndshm__data_name(seg, NAME, 2, tok[0]);
        if (write_file(seg, buf_data, data_size))
            abort();
    }
    exercise_reader();
    exercise_channel();
    exercise_writer();
    size_t removed;
    (void)ndshm_gc(&removed);
    clear_dir();
    return 0;
}
