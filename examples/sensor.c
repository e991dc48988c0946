/*
 * sensor: a sensor pipeline that must see every sample block. A child process publishes
 * blocks of 64 float32 samples at 1 kHz (each block starts with its sequence number); the
 * parent consumes every version in order with ndshm_read_next and checks continuity: any
 * loss shows up as info.dropped, never silently.
 *
 *   sensor [--seconds S] [--slow]     (--slow makes the consumer lag, to show counted drops)
 */
#include <ndshm/ndshm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 64

static int producer(const char *name, double seconds, int ready_fd)
{
    ndshm_writer *w = NULL;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_OPEN_OR_CREATE;
    o.slots = 64; /* 64 ms of history: room for a consumer that is briefly descheduled */
    int rc = ndshm_writer_create(name, &o, &w);
    if (rc != NDSHM_OK)
        goto fail;
    /* tell the consumer the writer is there: a wait on a channel without a writer returns
     * NDSHM_WRITER_GONE at once */
    if (write(ready_fd, "r", 1) != 1)
        goto fail;
    float block[BLOCK];
    uint64_t shape[1] = {BLOCK}, n = (uint64_t)(seconds * 1000);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (uint64_t i = 1; i <= n; i++) {
        block[0] = (float)i;
        for (int k = 1; k < BLOCK; k++)
            block[k] = (float)(i % 1000) * 0.001f * (float)k;
        if ((rc = ndshm_publish(w, NDSHM_FLOAT32, 1, shape, block, NULL)) != NDSHM_OK)
            goto fail;
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    ndshm_writer_close(w); /* the consumer sees the writer gone after the last block */
    return 0;
fail:
    fprintf(stderr, "sensor producer: %s\n", ndshm_strerror(rc));
    ndshm_writer_close(w);
    return 1;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int slow = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--slow"))
            slow = 1;
        else {
            fprintf(stderr, "usage: sensor [--seconds S] [--slow]\n");
            return 2;
        }
    }
    char name[64];
    snprintf(name, sizeof name, "sensor-%d", (int)getpid());
    ndshm_writer *w0 = NULL;
    ndshm_reader *r = NULL;
    int rc = ndshm_writer_create(name, NULL, &w0); /* create first: no block is missed */
    if (rc == NDSHM_OK)
        rc = ndshm_reader_open(name, NULL, &r);
    ndshm_writer_close(w0);
    if (rc != NDSHM_OK) {
        fprintf(stderr, "sensor: %s\n", ndshm_strerror(rc));
        ndshm_unlink(name);
        return 1;
    }
    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("sensor: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child == 0)
        _exit(producer(name, seconds, pfd[1]));
    char c;
    if (read(pfd[0], &c, 1) != 1) {
        fprintf(stderr, "sensor: the producer did not start\n");
        waitpid(child, NULL, 0);
        ndshm_reader_close(r);
        ndshm_unlink(name);
        return 1;
    }
    uint64_t got = 0, dropped = 0, broken = 0, expect = 1, maxlat = 0;
    float block[BLOCK];
    for (;;) {
        ndshm_info info;
        rc = ndshm_read_next(r, block, sizeof block, &info);
        if (rc == NDSHM_OK) {
            got++;
            dropped += info.dropped;
            /* the payload's own counter must agree with the version accounting */
            if ((uint64_t)block[0] != expect + info.dropped)
                broken++;
            expect = (uint64_t)block[0] + 1;
            if (info.latency_ns > maxlat)
                maxlat = info.latency_ns;
            if (slow && got % 100 == 0)
                usleep(150000); /* lag far behind: the writer laps us */
            continue;
        }
        if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA) {
            rc = ndshm_wait(r, 2000000000);
            if (rc == NDSHM_WRITER_GONE)
                break; /* nothing newer left and no writer */
            if (rc == NDSHM_OK || rc == NDSHM_TIMEOUT)
                continue;
        }
        fprintf(stderr, "sensor: %s\n", ndshm_strerror(rc));
        broken++;
        break;
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("sensor: %llu blocks received, %llu dropped (counted), %llu inconsistent, "
           "max latency %.1f us\n",
           (unsigned long long)got, (unsigned long long)dropped, (unsigned long long)broken,
           maxlat / 1e3);
    ndshm_reader_close(r);
    ndshm_unlink(name);
    int ok = broken == 0 && got > 0 && got + dropped == expect - 1 && WIFEXITED(status) &&
             WEXITSTATUS(status) == 0;
    return ok ? 0 : 1;
}
