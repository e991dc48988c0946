/*
 * libFuzzer target: hostile bytes in a shared array's file.
 *
 * A valid array (int16, shape (3, 5, 4), Fortran order: a header page and one data page) is
 * built once in a private NDSHM_DIR and kept as a template. Each input patches a copy of the
 * template (or replaces it), the result is written as the array's file, and then every entry
 * point that reads an array file runs on it: attach read-write and read-only (touching the
 * first and last data byte the header claims, so a claim past the real file would fault),
 * info, stat, ndshm_stat, ndshm_list, ndshm_gc, a channel reader open, and delete; plus the
 * header validator on a private aligned copy. None may crash, hang or trip a sanitizer, and an
 * accepted header must describe data inside the file.
 *
 * Input format: [mode] then records [off_lo][off_hi][len] bytes[len % 16 + 1]
 *   mode 0xff: the rest is the whole file, raw
 *   mode % 2 == 1: after the patches, the file is cut or extended to (off of the last record)
 *                  % (2 * 8192 + 1) bytes
 *   otherwise: patches at off % 8192 only
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array_internal.h"
#include "ndshm/ndshm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NAME "fza"
#define TMPL 8192
#define FMAX (2 * TMPL + 1)
static char dir[128], path[256];
static unsigned char tmpl[TMPL];
static _Alignas(64) unsigned char buf[FMAX + 64];

static void at_exit(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ndshm__array_ready_wait_ns = 0; /* not-ready inputs must not wait */
    ndshm__ready_wait_ns = 0;
    snprintf(dir, sizeof dir, "/dev/shm/ndfza-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir))
        abort();
    setenv("NDSHM_DIR", dir, 1);
    snprintf(path, sizeof path, "%s/ndshm." NAME, dir);
    atexit(at_exit);
    uint64_t shape[3] = {3, 5, 4};
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.order = NDSHM_ORDER_F;
    ndshm_array *a;
    if (ndshm_array_create(NAME, NDSHM_INT16, 3, shape, &o, &a) != NDSHM_OK)
        abort();
    for (int i = 0; i < 60; i++)
        ((int16_t *)ndshm_array_data(a))[i] = (int16_t)(i * 3 - 7);
    ndshm_array_detach(a);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, tmpl, sizeof tmpl) != (ssize_t)sizeof tmpl)
        abort();
    close(fd);
    unlink(path);
    return 0;
}

static void touch(ndshm_array *a, int writable)
{
    ndshm_array_info ai;
    if (ndshm_array_info_get(a, &ai) != NDSHM_OK)
        abort();
    /* an accepted header describes data inside the file */
    struct stat st;
    if (stat(path, &st) != 0 || (uint64_t)st.st_size < NDSHM__ARR_DATA + ai.nbytes)
        abort();
    volatile const unsigned char *p = ndshm_array_cdata(a);
    unsigned char sink = 0;
    if (ai.nbytes)
        sink ^= p[0] ^ p[ai.nbytes - 1];
    (void)sink;
    if (writable && ai.nbytes) {
        unsigned char *w = ndshm_array_data(a);
        w[ai.nbytes - 1] ^= 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = TMPL;
    if (size > 0 && data[0] == 0xff) {
        len = size - 1 > FMAX ? FMAX : size - 1;
        memcpy(buf, data + 1, len);
    } else {
        memcpy(buf, tmpl, TMPL);
        int cut = size > 0 && (data[0] & 1);
        size_t i = size > 0 ? 1 : 0, last = TMPL;
        while (i + 3 <= size) {
            size_t off = (size_t)data[i] | (size_t)data[i + 1] << 8;
            size_t n = (size_t)data[i + 2] % 16 + 1;
            i += 3;
            last = off;
            for (size_t k = 0; k < n && i < size; k++, i++)
                buf[(off + k) % TMPL] = data[i];
        }
        if (cut) {
            len = last % (FMAX + 1);
            if (len > TMPL)
                memset(buf + TMPL, 0, len - TMPL);
        }
    }
    /* the validator on a private, aligned copy */
    struct ndshm__arr_geom g;
    if (ndshm__array_validate(buf, len, NAME, &g) == NDSHM_OK &&
        (g.file_size != len || g.data_offset + g.nbytes > len))
        abort();
    (void)ndshm__array_validate(buf, len, NULL, &g);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
        abort();
    close(fd);
    ndshm_array *a;
    if (ndshm_array_attach(NAME, NULL, &a) == NDSHM_OK) {
        touch(a, 1);
        ndshm_array_detach(a);
    }
    ndshm_array_options ro = NDSHM_ARRAY_OPTIONS_INIT;
    ro.flags = NDSHM_ARRAY_READONLY;
    if (ndshm_array_attach(NAME, &ro, &a) == NDSHM_OK) {
        touch(a, 0);
        ndshm_array_detach(a);
    }
    ndshm_array_info ai;
    (void)ndshm_array_stat(NAME, &ai);
    ndshm_channel_info ci;
    (void)ndshm_stat(NAME, &ci);
    ndshm_channel_info *list;
    size_t n;
    if (ndshm_list(&list, &n) == NDSHM_OK)
        ndshm_list_free(list);
    ndshm_reader *r;
    if (ndshm_reader_open(NAME, NULL, &r) == NDSHM_OK)
        ndshm_reader_close(r);
    size_t removed;
    (void)ndshm_gc(&removed);
    (void)ndshm_array_delete(NAME);
    unlink(path);
    return 0;
}
