/*
 * ndshm-pybench-c: the C side of bench/python/bench_py.py — a paced C publisher, and the
 * C-to-C reference reader measured in the same run as the Python reader.
 *
 *   ndshm-pybench-c pub NAME PERIOD_US COUNT DTYPE NDIM S0 S1 ...
 *       creates NAME (unlinked on close), prints "ready", waits for a line on stdin, then
 *       publishes COUNT versions PERIOD_US apart, prints "done", waits for EOF and closes.
 *   ndshm-pybench-c read NAME COUNT copy|view
 *       prints "ready", then COUNT times: wait, read_latest into a preallocated buffer (copy)
 *       or take and release a view (view); per read, the latency (clock after the read
 *       minus publish time) and the read call's duration. Prints one line of
 *       "lat_ns call_ns" per read, then "end".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ndshm/ndshm.h"

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

static int pub(int argc, char **argv)
{
    const char *name = argv[2];
    uint64_t period = strtoull(argv[3], NULL, 10) * 1000u;
    uint64_t count = strtoull(argv[4], NULL, 10);
    int dtype = atoi(argv[5]);
    uint32_t ndim = (uint32_t)strtoul(argv[6], NULL, 10);
    uint64_t shape[NDSHM_MAX_DIMS], nbytes;
    if (ndim > NDSHM_MAX_DIMS || argc < 7 + (int)ndim)
        return 2;
    for (uint32_t i = 0; i < ndim; i++)
        shape[i] = strtoull(argv[7 + i], NULL, 10);
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc)
        return 2;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    o.capacity = nbytes ? nbytes : 1;
    ndshm_writer *w = NULL;
    if ((rc = ndshm_writer_create(name, &o, &w)) != NDSHM_OK) {
        fprintf(stderr, "pub: %s\n", ndshm_strerror(rc));
        return 1;
    }
    unsigned char *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
        ndshm_writer_close(w);
        return 1;
    }
    for (uint64_t i = 0; i < nbytes; i++)
        buf[i] = (unsigned char)(i * 31);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        goto out;
    uint64_t t = ndshm_now_ns();
    for (uint64_t v = 0; v < count && rc == NDSHM_OK; v++) {
        t += period;
        sleep_until(t);
        if (nbytes)
            buf[0] = (unsigned char)v;
        rc = ndshm_publish(w, dtype, ndim, shape, buf, NULL);
    }
    printf("done %s\n", ndshm_status_name(rc));
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) /* until the driver closes our stdin */
        ;
out:
    free(buf);
    ndshm_writer_close(w);
    return rc != NDSHM_OK;
}

static int reader(char **argv)
{
    const char *name = argv[2];
    uint64_t count = strtoull(argv[3], NULL, 10);
    int view = strcmp(argv[4], "view") == 0;
    ndshm_reader *r = NULL;
    int rc = ndshm_reader_open(name, NULL, &r);
    if (rc) {
        fprintf(stderr, "read: %s\n", ndshm_strerror(rc));
        return 1;
    }
    uint64_t *lat = calloc(count ? count : 1, 2 * sizeof(uint64_t));
    void *buf = NULL;
    size_t cap = 0;
    printf("ready\n");
    fflush(stdout);
    uint64_t n = 0;
    while (n < count && lat) {
        rc = ndshm_wait(r, 2000000000);
        if (rc != NDSHM_OK)
            break;
        ndshm_info info;
        uint64_t t0 = ndshm_now_ns();
        if (view) {
            ndshm_view v;
            rc = ndshm_view_latest(r, &v);
            if (rc == NDSHM_OK) {
                info = v.info;
                rc = ndshm_view_release(&v);
            }
        } else {
            rc = ndshm_read_latest(r, buf, cap, &info);
            if (rc == NDSHM_E_TOO_SMALL) { /* first read: allocate once, not timed */
                free(buf);
                cap = (size_t)info.nbytes;
                buf = malloc(cap ? cap : 1);
                if (!buf)
                    break;
                continue;
            }
        }
        uint64_t t1 = ndshm_now_ns();
        if (rc == NDSHM_OK) {
            lat[2 * n] = t1 - info.publish_ns;
            lat[2 * n + 1] = t1 - t0;
            n++;
        }
    }
    for (uint64_t i = 0; i < n; i++)
        printf("%llu %llu\n", (unsigned long long)lat[2 * i], (unsigned long long)lat[2 * i + 1]);
    printf("end\n");
    free(lat);
    free(buf);
    ndshm_reader_close(r);
    return n == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "pub") == 0)
        return pub(argc, argv);
    if (argc >= 5 && strcmp(argv[1], "read") == 0)
        return reader(argv);
    fprintf(stderr,
            "usage: %s pub NAME PERIOD_US COUNT DTYPE NDIM S... | read NAME COUNT "
            "copy|view\n",
            argv[0]);
    return 2;
}
