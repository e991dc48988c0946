/*
 * ndshm-pypeer: the C side of the Python binding's interop tests, driven over stdin/stdout.
 *
 *   ndshm-pypeer sizes            struct sizes and offsets, to check the ctypes mirrors
 *   ndshm-pypeer serve            line commands, one reply line each ("ok ..." / "bad ..."):
 *       create NAME | open NAME | close
 *       pub DTYPE SEED NDIM S0 S1 ...     publish the pattern array (see fill())
 *       check DTYPE SEED NDIM S0 S1 ...   read_latest and compare with the pattern
 *   ndshm-pypeer torn NAME SECONDS  free-running writer of checksummed uint64 payloads:
 *       a[0] = v (its version), a[i] = v * K + i; sizes vary so the channel re-allocates.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ndshm/ndshm.h"

#define TORN_K UINT64_C(0x9E3779B97F4A7C15)

/* Byte j of the pattern array for (dtype, seed); bool items must be 0 or 1. */
static unsigned char pattern(int dtype, uint64_t seed, uint64_t j)
{
    if (dtype == NDSHM_BOOL)
        return (unsigned char)((seed + j) & 1);
    return (unsigned char)((seed * 7 + j * 13 + (j >> 8)) & 0xff);
}

static int parse_case(char *args, int *dtype, uint64_t *seed, uint32_t *ndim, uint64_t *shape)
{
    char *save = NULL;
    char *tok = strtok_r(args, " \n", &save);
    if (!tok)
        return -1;
    *dtype = atoi(tok);
    if (!(tok = strtok_r(NULL, " \n", &save)))
        return -1;
    *seed = strtoull(tok, NULL, 10);
    if (!(tok = strtok_r(NULL, " \n", &save)))
        return -1;
    *ndim = (uint32_t)strtoul(tok, NULL, 10);
    if (*ndim > NDSHM_MAX_DIMS)
        return -1;
    for (uint32_t i = 0; i < *ndim; i++) {
        if (!(tok = strtok_r(NULL, " \n", &save)))
            return -1;
        shape[i] = strtoull(tok, NULL, 10);
    }
    return 0;
}

static int cmd_pub(ndshm_writer *w, char *args)
{
    int dtype;
    uint64_t seed, shape[NDSHM_MAX_DIMS], nbytes, version = 0;
    uint32_t ndim;
    if (parse_case(args, &dtype, &seed, &ndim, shape))
        return printf("bad syntax\n");
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc)
        return printf("bad nbytes %s\n", ndshm_status_name(rc));
    unsigned char *buf = malloc(nbytes ? nbytes : 1);
    if (!buf)
        return printf("bad nomem\n");
    for (uint64_t j = 0; j < nbytes; j++)
        buf[j] = pattern(dtype, seed, j);
    rc = ndshm_publish(w, dtype, ndim, shape, buf, &version);
    free(buf);
    if (rc)
        return printf("bad publish %s\n", ndshm_status_name(rc));
    return printf("ok %llu\n", (unsigned long long)version);
}

static int cmd_check(ndshm_reader *r, char *args)
{
    int dtype;
    uint64_t seed, shape[NDSHM_MAX_DIMS], nbytes;
    uint32_t ndim;
    if (parse_case(args, &dtype, &seed, &ndim, shape))
        return printf("bad syntax\n");
    if (ndshm_array_nbytes(dtype, ndim, shape, &nbytes))
        return printf("bad nbytes\n");
    ndshm_info info;
    size_t cap = 0;
    unsigned char *buf = NULL;
    int rc;
    /* Start with a buffer too small, to exercise E_TOO_SMALL, then grow. */
    for (;;) {
        rc = ndshm_read_latest(r, buf, cap, &info);
        if (rc != NDSHM_E_TOO_SMALL)
            break;
        free(buf);
        cap = (size_t)info.nbytes;
        buf = malloc(cap ? cap : 1);
        if (!buf)
            return printf("bad nomem\n");
    }
    int out;
    if (rc != NDSHM_OK) {
        out = printf("bad read %s\n", ndshm_status_name(rc));
    } else if (info.dtype != dtype || info.ndim != ndim ||
               memcmp(info.shape, shape, ndim * sizeof(uint64_t)) != 0 || info.nbytes != nbytes) {
        out = printf("bad meta dtype %d ndim %u nbytes %llu\n", info.dtype, info.ndim,
                     (unsigned long long)info.nbytes);
    } else {
        uint64_t j = 0;
        while (j < nbytes && buf[j] == pattern(dtype, seed, j))
            j++;
        if (j < nbytes)
            out = printf("bad byte %llu\n", (unsigned long long)j);
        else
            out = printf("ok %llu\n", (unsigned long long)info.version);
    }
    free(buf);
    return out;
}

static int serve(void)
{
    char line[4096];
    ndshm_writer *w = NULL;
    ndshm_reader *r = NULL;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *args = strchr(line, ' ');
        if (args)
            *args++ = 0;
        else
            args = line + strlen(line);
        int rc;
        if (strcmp(line, "create") == 0) {
            rc = ndshm_writer_create(args, NULL, &w);
            printf(rc ? "bad %s\n" : "ok%s\n", rc ? ndshm_status_name(rc) : "");
        } else if (strcmp(line, "open") == 0) {
            rc = ndshm_reader_open(args, NULL, &r);
            printf(rc ? "bad %s\n" : "ok%s\n", rc ? ndshm_status_name(rc) : "");
        } else if (strcmp(line, "pub") == 0) {
            if (w)
                cmd_pub(w, args);
            else
                printf("bad no writer\n");
        } else if (strcmp(line, "check") == 0) {
            if (r)
                cmd_check(r, args);
            else
                printf("bad no reader\n");
        } else if (strcmp(line, "close") == 0) {
            ndshm_writer_close(w);
            ndshm_reader_close(r);
            w = NULL;
            r = NULL;
            printf("ok\n");
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            printf("bad command %s\n", line);
        }
        fflush(stdout);
    }
    ndshm_writer_close(w);
    ndshm_reader_close(r);
    return 0;
}

static volatile sig_atomic_t torn_stop;

static void on_torn_stop(int sig)
{
    (void)sig;
    torn_stop = 1;
}

/* Publishes for `seconds`, then on until SIGTERM (the test has seen enough), at most 300 s
 * more: a reader on a slow machine gets as long as it needs. */
static int torn(const char *name, double seconds)
{
    signal(SIGTERM, on_torn_stop);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    ndshm_writer *w = NULL;
    int rc = ndshm_writer_create(name, &o, &w);
    if (rc) {
        fprintf(stderr, "torn: create: %s\n", ndshm_strerror(rc));
        return 1;
    }
    const uint64_t max_words = 65536; /* 512 KiB: beyond the default 64 KiB capacity */
    uint64_t *buf = malloc(max_words * sizeof *buf);
    if (!buf) {
        ndshm_writer_close(w);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    uint64_t end = ndshm_now_ns() + (uint64_t)(seconds * 1e9), give_up = end + 300000000000u;
    uint64_t count = 0;
    while (rc == NDSHM_OK &&
           ((count & 63) || ndshm_now_ns() < end || (!torn_stop && ndshm_now_ns() < give_up))) {
        uint64_t v = ndshm_writer_version(w) + 1;
        /* mostly small arrays (a fast writer), every 16th a large one */
        uint64_t n = (v % 16 == 0) ? 1 + (v * 7919) % max_words : 1 + (v * 31) % 2048;
        buf[0] = v;
        for (uint64_t i = 1; i < n; i++)
            buf[i] = v * TORN_K + i;
        uint64_t shape[1] = {n}, got = 0;
        rc = ndshm_publish(w, NDSHM_UINT64, 1, shape, buf, &got);
        if (rc == NDSHM_OK && got != v)
            rc = NDSHM_E_STATE;
        count++;
    }
    printf("done %llu %s\n", (unsigned long long)count, ndshm_status_name(rc));
    fflush(stdout);
    free(buf);
    ndshm_writer_close(w);
    return rc != NDSHM_OK;
}

/* "<struct> <size>" and "<struct>.<field> <offset>" for every struct the ctypes binding
 * mirrors (python/ndshm/_lib.py), so a field added, moved or resized in C fails the test. */
#define SIZE(tag, type)       printf(tag " %zu\n", sizeof(type))
#define OFF(tag, type, field) printf(tag "." #field " %zu\n", offsetof(type, field))
static void print_layouts(void)
{
    SIZE("options", ndshm_options);
    OFF("options", ndshm_options, size);
    OFF("options", ndshm_options, flags);
    OFF("options", ndshm_options, slots);
    OFF("options", ndshm_options, mode);
    OFF("options", ndshm_options, capacity);
    OFF("options", ndshm_options, retries);
    OFF("options", ndshm_options, spin_ns);
    OFF("options", ndshm_options, growth);
    SIZE("info", ndshm_info);
    OFF("info", ndshm_info, version);
    OFF("info", ndshm_info, publish_ns);
    OFF("info", ndshm_info, read_ns);
    OFF("info", ndshm_info, latency_ns);
    OFF("info", ndshm_info, dropped);
    OFF("info", ndshm_info, nbytes);
    OFF("info", ndshm_info, generation);
    OFF("info", ndshm_info, flags);
    OFF("info", ndshm_info, dtype);
    OFF("info", ndshm_info, ndim);
    OFF("info", ndshm_info, meta_len);
    OFF("info", ndshm_info, user_ns);
    OFF("info", ndshm_info, user_tag);
    OFF("info", ndshm_info, origin_version);
    OFF("info", ndshm_info, origin_ns);
    OFF("info", ndshm_info, shape);
    SIZE("view", ndshm_view);
    OFF("view", ndshm_view, data);
    OFF("view", ndshm_view, meta);
    OFF("view", ndshm_view, info);
    OFF("view", ndshm_view, priv_);
    OFF("view", ndshm_view, seq_);
    SIZE("channel", ndshm_channel_info);
    OFF("channel", ndshm_channel_info, name);
    OFF("channel", ndshm_channel_info, kind);
    OFF("channel", ndshm_channel_info, dtype);
    OFF("channel", ndshm_channel_info, ndim);
    OFF("channel", ndshm_channel_info, order);
    OFF("channel", ndshm_channel_info, shape);
    OFF("channel", ndshm_channel_info, slots);
    OFF("channel", ndshm_channel_info, mode);
    OFF("channel", ndshm_channel_info, capacity);
    OFF("channel", ndshm_channel_info, bytes);
    OFF("channel", ndshm_channel_info, nbytes);
    OFF("channel", ndshm_channel_info, version);
    OFF("channel", ndshm_channel_info, publish_ns);
    OFF("channel", ndshm_channel_info, generation);
    OFF("channel", ndshm_channel_info, reallocs);
    OFF("channel", ndshm_channel_info, created_ns);
    OFF("channel", ndshm_channel_info, writer_pid);
    OFF("channel", ndshm_channel_info, writer_alive);
    OFF("channel", ndshm_channel_info, status);
    OFF("channel", ndshm_channel_info, attached);
    OFF("channel", ndshm_channel_info, flags);
    SIZE("wire", ndshm_wire_meta);
    OFF("wire", ndshm_wire_meta, dtype);
    OFF("wire", ndshm_wire_meta, ndim);
    OFF("wire", ndshm_wire_meta, shape);
    OFF("wire", ndshm_wire_meta, version);
    OFF("wire", ndshm_wire_meta, publish_ns);
    OFF("wire", ndshm_wire_meta, publish_real_ns);
    OFF("wire", ndshm_wire_meta, nbytes);
    OFF("wire", ndshm_wire_meta, stream_seq);
    OFF("wire", ndshm_wire_meta, session);
    OFF("wire", ndshm_wire_meta, flags);
    OFF("wire", ndshm_wire_meta, format);
    OFF("wire", ndshm_wire_meta, user_ns);
    OFF("wire", ndshm_wire_meta, user_tag);
    OFF("wire", ndshm_wire_meta, origin_version);
    OFF("wire", ndshm_wire_meta, origin_ns);
    OFF("wire", ndshm_wire_meta, meta_len);
    OFF("wire", ndshm_wire_meta, meta);
    OFF("wire", ndshm_wire_meta, channel);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "sizes") == 0) {
        print_layouts();
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve();
    if (argc >= 4 && strcmp(argv[1], "torn") == 0)
        return torn(argv[2], atof(argv[3]));
    fprintf(stderr, "usage: %s sizes | serve | torn NAME SECONDS\n", argv[0]);
    return 2;
}
