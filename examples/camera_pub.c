/*
 * camera_pub: a capture process. Publishes synthetic RGB frames (default 1080p, uint8,
 * shape (height, width, 3)) at a set rate, written in place with loan/commit (zero copy: a
 * camera driver or decoder would fill the slot directly).
 *
 *   camera_pub [CHANNEL] [--rate HZ] [--seconds S] [--width W] [--height H] [--slots N]
 */
#include <ndshm/ndshm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0 && !stop)
        ;
}

/* A frame that changes every version: a moving gradient, plus the version in the first
 * pixels so a consumer can check what it got. */
static void render(uint8_t *p, uint64_t h, uint64_t w, uint64_t version)
{
    for (uint64_t y = 0; y < h; y++) {
        uint8_t *row = p + y * w * 3;
        uint8_t g = (uint8_t)(y + version);
        for (uint64_t x = 0; x < w; x++) {
            row[3 * x] = (uint8_t)(x + version);
            row[3 * x + 1] = g;
            row[3 * x + 2] = (uint8_t)(version * 3);
        }
    }
    memcpy(p, &version, sizeof version);
}

int main(int argc, char **argv)
{
    const char *name = "camera";
    double rate = 30, seconds = 10;
    uint64_t width = 1920, height = 1080;
    ndshm_options opts = NDSHM_OPTIONS_INIT;
    opts.flags = NDSHM_OPEN_OR_CREATE | NDSHM_UNLINK_ON_CLOSE;
    opts.slots = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--width") && i + 1 < argc)
            width = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--height") && i + 1 < argc)
            height = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
            opts.slots = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-')
            name = argv[i];
        else {
            fprintf(stderr, "usage: camera_pub [CHANNEL] [--rate HZ] [--seconds S] "
                            "[--width W] [--height H] [--slots N]\n");
            return 2;
        }
    }
    if (rate <= 0 || width == 0 || height == 0 || width > 16384 || height > 16384) {
        fprintf(stderr, "camera_pub: rate, width and height must be positive (<= 16384)\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    uint64_t shape[3] = {height, width, 3};
    opts.capacity = height * width * 3; /* pre-size: no re-allocation on the first frame */
    ndshm_writer *w = NULL;
    int rc = ndshm_writer_create(name, &opts, &w);
    if (rc != NDSHM_OK) {
        fprintf(stderr, "camera_pub: %s: %s\n", name, ndshm_strerror(rc));
        return 1;
    }
    printf("camera_pub: publishing %llux%llu RGB frames on '%s' at %.0f Hz for %.0f s\n",
           (unsigned long long)width, (unsigned long long)height, name, rate, seconds);
    fflush(stdout);
    uint64_t period = (uint64_t)(1e9 / rate), start = ndshm_now_ns(), next = start;
    uint64_t frames = 0, busy_ns = 0;
    while (!stop && ndshm_now_ns() - start < (uint64_t)(seconds * 1e9)) {
        void *slot;
        uint64_t t0 = ndshm_now_ns();
        if ((rc = ndshm_loan(w, NDSHM_UINT8, 3, shape, &slot)) != NDSHM_OK)
            goto fail;
        render(slot, height, width, ndshm_writer_version(w) + 1);
        if ((rc = ndshm_commit(w, NULL)) != NDSHM_OK)
            goto fail;
        busy_ns += ndshm_now_ns() - t0;
        frames++;
        next += period;
        sleep_until(next);
    }
    printf("camera_pub: %llu frames, %.1f frames/s, %.0f us per frame to render and publish\n",
           (unsigned long long)frames, frames / ((ndshm_now_ns() - start) / 1e9),
           frames ? busy_ns / 1e3 / (double)frames : 0.0);
    ndshm_writer_close(w);
    return 0;
fail:
    fprintf(stderr, "camera_pub: %s (%s)\n", ndshm_strerror(rc), ndshm_status_name(rc));
    ndshm_writer_close(w);
    return 1;
}
