/*
 * camera_sub: a consumer of camera_pub's frames (vision, recording, display...). Waits for
 * each new frame, takes it by copy (or as a zero-copy view with --view), computes the mean
 * brightness, and prints frames/s, write-to-read latency p50/p99 and drops once a second; at
 * the end one `summary key=value ...` line for the whole run.
 *
 *   camera_sub [CHANNEL] [--seconds S] [--frames N] [--view] [--no-tag]
 *
 * Stops after S seconds (default 10) or N frames, whichever comes first. Exit status 0 if at
 * least one frame arrived and every frame carried the version it should: camera_pub writes
 * its version number into the first 8 bytes, which is the channel's version, or for a
 * channel republished by `ndshm-bridge recv` the origin version the bridge carries
 * (ndshm_info.origin_version). --no-tag: frames from another publisher (ndshmsink, a real
 * camera), which carry no such tag: not checked.
 */
#include <math.h>
#include <ndshm/ndshm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* The version number camera_pub wrote into the frame: the channel's own, or, for a frame that
 * came through ndshm-bridge (the local channel numbers its versions itself), the origin's
 * version that the bridge carries with it. */
static uint64_t origin_version(const ndshm_info *info)
{
    return (info->flags & NDSHM_INFO_EXTRA) && info->origin_version ? info->origin_version
                                                                    : info->version;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double mean_of(const uint8_t *p, uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i += 61) /* a sparse sample is enough for a brightness */
        sum += p[i];
    return n ? (double)sum / (double)((n + 60) / 61) : 0.0;
}

int main(int argc, char **argv)
{
    const char *name = "camera";
    double seconds = 10;
    uint64_t max_frames = 0;
    int view_mode = 0, check_tag = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            max_frames = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-tag"))
            check_tag = 0;
        else if (!strcmp(argv[i], "--view"))
            view_mode = 1;
        else if (argv[i][0] != '-')
            name = argv[i];
        else {
            fprintf(stderr, "usage: camera_sub [CHANNEL] [--seconds S] [--frames N] [--view] "
                            "[--no-tag]\n");
            return 2;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ndshm_reader *r = NULL;
    int rc;
    /* the publisher may start a moment later, or still be creating the channel */
    for (int i = 0; i < 200; i++) {
        rc = ndshm_reader_open(name, NULL, &r);
        if (rc != NDSHM_E_NOENT && rc != NDSHM_E_NOT_READY)
            break;
        usleep(50000);
    }
    if (rc != NDSHM_OK) {
        fprintf(stderr, "camera_sub: %s: %s\n", name, ndshm_strerror(rc));
        return 1;
    }
    static uint64_t all[65536]; /* the whole run's latencies, for the summary */
    uint64_t lat[4096], nlat = 0, nall = 0, frames = 0, dropped = 0, total = 0, bad = 0;
    uint64_t start = ndshm_now_ns(), tick = start + 1000000000u;
    double bright = 0;
    printf("camera_sub: reading '%s' by %s\n", name, view_mode ? "zero-copy view" : "copy");
    printf("%6s %8s %10s %10s %7s %10s\n", "time", "frames/s", "lat p50", "lat p99", "drops",
           "brightness");
    while (!stop && ndshm_now_ns() - start < (uint64_t)(seconds * 1e9) &&
           (!max_frames || total < max_frames)) {
        rc = ndshm_wait(r, 200000000);
        if (rc == NDSHM_WRITER_GONE)
            break;
        if (rc == NDSHM_OK) {
            ndshm_info info;
            if (view_mode) {
                ndshm_view v;
                rc = ndshm_view_latest(r, &v);
                if (rc == NDSHM_OK) {
                    info = v.info;
                    uint64_t tag;
                    memcpy(&tag, v.data, sizeof tag);
                    double b = mean_of(v.data, info.nbytes);
                    /* only trust what we computed if the frame was intact meanwhile */
                    if (ndshm_view_release(&v) == NDSHM_OK) {
                        bright = b;
                        bad += check_tag && tag != origin_version(&info);
                    }
                }
            } else {
                const void *data;
                rc = ndshm_read_latest_owned(r, &data, &info);
                if (rc == NDSHM_OK) {
                    uint64_t tag;
                    memcpy(&tag, data, sizeof tag);
                    bad += check_tag && tag != origin_version(&info);
                    bright = mean_of(data, info.nbytes);
                }
            }
            if (rc == NDSHM_OK) {
                frames++;
                total++;
                dropped += info.dropped;
                if (nlat < 4096)
                    lat[nlat++] = info.latency_ns;
                if (nall < sizeof all / sizeof all[0])
                    all[nall++] = info.latency_ns;
            } else if (rc < 0) {
                fprintf(stderr, "camera_sub: %s (%s)\n", ndshm_strerror(rc), ndshm_status_name(rc));
                break;
            }
        }
        uint64_t now = ndshm_now_ns();
        if (now >= tick) {
            qsort(lat, nlat, sizeof lat[0], cmp_u64);
            double p50 = nlat ? lat[nlat / 2] / 1e3 : NAN,
                   p99 = nlat ? lat[nlat * 99 / 100] / 1e3 : NAN;
            printf("%5.0fs %8llu %7.1f us %7.1f us %7llu %10.1f\n", (now - start) / 1e9,
                   (unsigned long long)frames, p50, p99, (unsigned long long)dropped, bright);
            fflush(stdout);
            frames = nlat = 0;
            tick += 1000000000u;
        }
    }
    double secs = (ndshm_now_ns() - start) / 1e9;
    if (check_tag)
        printf("camera_sub: %llu frames, %llu skipped as stale (latest-only reader), %llu with a "
               "wrong tag\n",
               (unsigned long long)total, (unsigned long long)dropped, (unsigned long long)bad);
    else
        printf("camera_sub: %llu frames, %llu skipped as stale (latest-only reader), tags not "
               "checked\n",
               (unsigned long long)total, (unsigned long long)dropped);
    qsort(all, nall, sizeof all[0], cmp_u64);
    printf("summary consumer=%s frames=%llu dropped=%llu wrong=%llu lat_p50_ms=%.3f "
           "lat_p99_ms=%.3f fps=%.1f\n",
           view_mode ? "c-view" : "c-copy", (unsigned long long)total, (unsigned long long)dropped,
           (unsigned long long)bad, nall ? all[nall / 2] / 1e6 : 0.0,
           nall ? all[nall * 99 / 100] / 1e6 : 0.0, secs > 0 ? total / secs : 0.0);
    ndshm_reader_close(r);
    return (bad == 0 && total > 0) ? 0 : 1;
}
