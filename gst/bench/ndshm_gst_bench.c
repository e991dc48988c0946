/* ndshm-gst-bench: 1080p RGB from videotestsrc to consumers in other processes, through
 * ndshmsink/ndshmsrc and through GStreamer's own shmsink/shmsrc, in one run (docs/benchmarks.md,
 * "GStreamer elements"). Not a test: timing numbers, run by hand.
 *
 *   build/bin/ndshm-gst-bench [--seconds S] [--width W --height H] [--json FILE]
 *
 * For each transport (ndshm: zero-copy pool and views; ndshm-copy: the source copies; shm:
 * shmsink/shmsrc), rate (30 fps live, and the maximum: sync=false) and consumer count (1, 3):
 * one producer process `videotestsrc ! caps ! <sink>` and N consumer processes
 * `<src> ! appsink`. The producer writes CLOCK_MONOTONIC into the first 8 bytes of every frame
 * in a probe on videotestsrc's pad (after the frame is drawn, before it is pushed); each
 * consumer computes now - that for every frame it gets: the latency from a drawn frame to a
 * frame in a consumer's hands. CPU per frame is each process's user + system time
 * (getrusage) over its frames; a baseline producer `videotestsrc ! fakesink` shows what
 * drawing the frames costs by itself. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include "ndshm/ndshm.h"

static double g_seconds = 5;
static int g_slots = 8;
static double g_t0; /* start of the measured window, CLOCK_MONOTONIC s */
static int g_width = 1920, g_height = 1080;

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
    return (double)ndshm_now_ns() / 1e9;
}

static GstPadProbeReturn stamp(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
    (void)pad;
    gint *frames = user;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstMapInfo m;
    if (gst_buffer_is_writable(buf) && gst_buffer_map(buf, &m, GST_MAP_WRITE)) {
        guint64 t = ndshm_now_ns();
        if (m.size >= 8)
            memcpy(m.data, &t, 8);
        gst_buffer_unmap(buf, &m);
    }
    g_atomic_int_inc(frames);
    return GST_PAD_PROBE_OK;
}

/* Producer: prints "frames cpu_s seconds". */
static int producer(const char *transport, int rate, const char *name)
{
    char caps[256], sink[512], desc[1024];
    snprintf(caps, sizeof caps, "video/x-raw,format=RGB,width=%d,height=%d,framerate=%d/1", g_width,
             g_height, rate ? rate : 30);
    const char *sync = "false"; /* a live source paces 30 fps; the sink adds no wait */
    if (strcmp(transport, "shm") == 0)
        snprintf(sink, sizeof sink,
                 "shmsink socket-path=/tmp/%s.sock shm-size=%d wait-for-connection=false "
                 "sync=%s",
                 name, g_width * g_height * 3 * 12, sync);
    else if (strcmp(transport, "none") == 0)
        snprintf(sink, sizeof sink, "fakesink sync=%s", sync);
    else
        snprintf(sink, sizeof sink, "ndshmsink channel=%s slots=%d sync=%s", name, g_slots, sync);
    snprintf(desc, sizeof desc, "videotestsrc name=v is-live=%s pattern=black ! %s ! %s",
             rate ? "true" : "false", caps, sink);
    GError *err = NULL;
    GstElement *p = gst_parse_launch(desc, &err);
    if (!p) {
        fprintf(stderr, "producer: %s\n", err->message);
        return 1;
    }
    GstElement *v = gst_bin_get_by_name(GST_BIN(p), "v");
    GstPad *pad = gst_element_get_static_pad(v, "src");
    gint frames = 0;
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, stamp, &frames, NULL);
    gst_object_unref(pad);
    gst_object_unref(v);
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstBus *bus = gst_element_get_bus(p);
    /* The measured window [g_t0, g_t0 + g_seconds] is the same for every process. */
    double c0 = 0, c1 = 0, t0 = 0, t1 = 0;
    guint64 f0 = 0, f1 = 0;
    double marks[3] = {g_t0, g_t0 + g_seconds, g_t0 + g_seconds + 1.0};
    for (int ph = 0; ph < 3; ph++) {
        double left = marks[ph] - now_s();
        GstMessage *m =
            gst_bus_timed_pop_filtered(bus, left > 0 ? (GstClockTime)(left * GST_SECOND) : 0,
                                       GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
        if (m) {
            if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
                gst_message_parse_error(m, &err, NULL);
                fprintf(stderr, "producer: %s\n", err->message);
            }
            gst_message_unref(m);
            break;
        }
        if (ph == 0) {
            c0 = cpu_s();
            t0 = now_s();
            f0 = (guint64)g_atomic_int_get(&frames);
        } else if (ph == 1) {
            c1 = cpu_s();
            t1 = now_s();
            f1 = (guint64)g_atomic_int_get(&frames);
        }
    }
    guint64 counted = f1 > f0 ? f1 - f0 : 0;
    gst_element_set_state(p, GST_STATE_NULL);
    printf("%" G_GUINT64_FORMAT " %.6f %.6f\n", counted, c1 - c0, t1 - t0);
    gst_object_unref(bus);
    gst_object_unref(p);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
    return x < y ? -1 : x > y;
}

/* Consumer: prints "frames cpu_s seconds p50_ns p99_ns". */
static int consumer(const char *transport, int rate, const char *name)
{
    char desc[1024];
    if (strcmp(transport, "shm") == 0)
        snprintf(desc, sizeof desc,
                 "shmsrc socket-path=/tmp/%s.sock is-live=true do-timestamp=true ! "
                 "video/x-raw,format=RGB,width=%d,height=%d,framerate=%d/1 ! appsink name=out "
                 "sync=false max-buffers=4",
                 name, g_width, g_height, rate ? rate : 30);
    else
        snprintf(desc, sizeof desc,
                 "ndshmsrc channel=%s mode=latest zero-copy=%s ! appsink name=out sync=false "
                 "max-buffers=4",
                 name, strcmp(transport, "ndshm") == 0 ? "true" : "false");
    GError *err = NULL;
    GstElement *p = gst_parse_launch(desc, &err);
    if (!p) {
        fprintf(stderr, "consumer: %s\n", err->message);
        return 1;
    }
    GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
    gst_element_set_state(p, GST_STATE_PLAYING);
    size_t cap = 1 << 16, n = 0;
    guint64 *lat = malloc(cap * sizeof *lat);
    double c0 = 0, t0 = 0, c1 = 0, t1 = 0, end = g_t0 + g_seconds;
    for (;;) {
        GstSample *smp = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 20 * GST_MSECOND);
        double now = now_s();
        if (now >= g_t0 && t0 == 0) {
            c0 = cpu_s();
            t0 = now;
        }
        if (now >= end) {
            c1 = cpu_s();
            t1 = now;
            if (smp)
                gst_sample_unref(smp);
            break;
        }
        if (!smp) {
            if (gst_app_sink_is_eos(GST_APP_SINK(out)))
                break;
            continue;
        }
        guint64 t = ndshm_now_ns(), sent = 0;
        gst_buffer_extract(gst_sample_get_buffer(smp), 0, &sent, 8);
        gst_sample_unref(smp);
        if (t0 > 0 && n < cap && sent && t > sent)
            lat[n++] = t - sent;
    }
    gst_element_set_state(p, GST_STATE_NULL);
    qsort(lat, n, sizeof *lat, cmp_u64);
    guint64 p50 = n ? lat[n / 2] : 0, p99 = n ? lat[(size_t)((double)n * 0.99)] : 0;
    printf("%zu %.6f %.6f %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", n, c1 - c0, t1 - t0, p50,
           p99);
    free(lat);
    gst_object_unref(out);
    gst_object_unref(p);
    return 0;
}

/* ----- the orchestrator ------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    FILE *out;
} Child;

static const char *self;

static Child spawn(const char *role, const char *transport, int rate, const char *name)
{
    int fd[2];
    Child c = {-1, NULL};
    if (pipe(fd) != 0)
        return c;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char r[16], s[32], w[16], h[16], t[32], sl[16];
        snprintf(sl, sizeof sl, "%d", g_slots);
        snprintf(t, sizeof t, "%.6f", g_t0);
        snprintf(r, sizeof r, "%d", rate);
        snprintf(s, sizeof s, "%g", g_seconds);
        snprintf(w, sizeof w, "%d", g_width);
        snprintf(h, sizeof h, "%d", g_height);
        execl(self, self, "--role", role, "--transport", transport, "--rate", r, "--name", name,
              "--seconds", s, "--width", w, "--height", h, "--t0", t, "--slots", sl, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    c.pid = pid;
    c.out = fdopen(fd[0], "r");
    return c;
}

static int wait_ready(const char *transport, const char *name)
{
    for (int i = 0; i < 1000; i++) { /* 10 s */
        char path[256];
        ndshm_channel_info info;
        if (strcmp(transport, "shm") == 0) {
            snprintf(path, sizeof path, "/tmp/%s.sock", name);
            if (access(path, F_OK) == 0)
                return 1;
        } else if (ndshm_stat(name, &info) == NDSHM_OK && info.version > 0) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

typedef struct {
    const char *transport;
    int rate, consumers;
    double prod_fps, prod_cpu_ms, cons_fps, cons_cpu_ms, p50_us, p99_us;
} Result;

static void run(Result *res)
{
    char name[64];
    snprintf(name, sizeof name, "gstbench-%d-%s-%d-%d", (int)getpid(), res->transport, res->rate,
             res->consumers);
    g_t0 = now_s() + 3.0; /* every process has started and settled by then */
    Child p = spawn("producer", res->transport, res->rate, name);
    Child c[8];
    int nc = res->consumers;
    if (strcmp(res->transport, "none") != 0 && !wait_ready(res->transport, name)) {
        fprintf(stderr, "%s: the producer did not start\n", res->transport);
        nc = 0;
    }
    for (int i = 0; i < nc; i++)
        c[i] = spawn("consumer", res->transport, res->rate, name);
    double sum_fps = 0, sum_cpu = 0, p50 = 0, p99 = 0;
    for (int i = 0; i < nc; i++) {
        guint64 n = 0, a = 0, b = 0;
        double cpu = 0, secs = 0;
        if (fscanf(c[i].out,
                   "%" G_GUINT64_FORMAT " %lf %lf %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &n,
                   &cpu, &secs, &a, &b) == 5 &&
            n > 0 && secs > 0) {
            sum_fps += (double)n / secs;
            sum_cpu += cpu / (double)n * 1e3;
            p50 += (double)a / 1e3;
            p99 = fmax(p99, (double)b / 1e3);
        }
        fclose(c[i].out);
        waitpid(c[i].pid, NULL, 0);
    }
    guint64 n = 0;
    double cpu = 0, secs = 0;
    if (fscanf(p.out, "%" G_GUINT64_FORMAT " %lf %lf", &n, &cpu, &secs) == 3 && n && secs > 0) {
        res->prod_fps = (double)n / secs;
        res->prod_cpu_ms = cpu / (double)n * 1e3;
    }
    fclose(p.out);
    waitpid(p.pid, NULL, 0);
    if (strcmp(res->transport, "shm") == 0) {
        char path[256];
        snprintf(path, sizeof path, "/tmp/%s.sock", name);
        unlink(path);
    } else {
        ndshm_unlink(name);
    }
    if (nc) {
        res->cons_fps = sum_fps / nc;
        res->cons_cpu_ms = sum_cpu / nc;
        res->p50_us = p50 / nc; /* mean of the consumers' medians */
        res->p99_us = p99;      /* the worst consumer's */
    }
}

int main(int argc, char **argv)
{
    self = argv[0];
    const char *role = NULL, *transport = "ndshm", *name = "gstbench", *json = NULL, *only = NULL;
    int rate = 30;
    static struct option opts[] = {
        {"role", required_argument, 0, 'r'},    {"transport", required_argument, 0, 't'},
        {"rate", required_argument, 0, 'f'},    {"name", required_argument, 0, 'n'},
        {"seconds", required_argument, 0, 's'}, {"width", required_argument, 0, 'w'},
        {"height", required_argument, 0, 'h'},  {"json", required_argument, 0, 'j'},
        {"only", required_argument, 0, 'o'},    {"t0", required_argument, 0, 'T'},
        {"slots", required_argument, 0, 'S'},   {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'r':
            role = optarg;
            break;
        case 't':
            transport = optarg;
            break;
        case 'f':
            rate = atoi(optarg);
            break;
        case 'n':
            name = optarg;
            break;
        case 's':
            g_seconds = atof(optarg);
            break;
        case 'w':
            g_width = atoi(optarg);
            break;
        case 'h':
            g_height = atoi(optarg);
            break;
        case 'S':
            g_slots = atoi(optarg);
            break;
        case 'T':
            g_t0 = atof(optarg);
            break;
        case 'o':
            only = optarg;
            break;
        case 'j':
            json = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [--seconds S] [--width W --height H] [--slots N] [--only TRANSPORT] "
                    "[--json FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    gst_init(NULL, NULL);
    if (role && strcmp(role, "producer") == 0)
        return producer(transport, rate, name);
    if (role && strcmp(role, "consumer") == 0)
        return consumer(transport, rate, name);
    if (!gst_element_factory_find("ndshmsink") || !gst_element_factory_find("shmsink")) {
        fprintf(stderr, "needs ndshmsink (GST_PLUGIN_PATH=build/lib/gstreamer-1.0) and shmsink "
                        "(gstreamer1.0-plugins-bad)\n");
        return 1;
    }
    const char *transports[] = {"none", "ndshm", "ndshm-copy", "shm"};
    const int rates[] = {30, 0};
    Result results[32];
    int nr = 0;
    printf("%dx%d RGB, %g s per run; latency: drawn frame -> consumer's hands; CPU per frame: "
           "user+system\n",
           g_width, g_height, g_seconds);
    printf("%-11s %-5s %-3s | %9s %12s | %9s %12s %9s %9s\n", "transport", "rate", "N", "prod fps",
           "prod ms/fr", "cons fps", "cons ms/fr", "p50 us", "p99 us");
    for (size_t r = 0; r < 2; r++)
        for (size_t t = 0; t < 4; t++)
            for (int n = 1; n <= 3; n += 2) {
                if ((t == 0 && n == 3) || (only && strcmp(only, transports[t]) != 0))
                    continue;
                Result *res = &results[nr++];
                memset(res, 0, sizeof *res);
                res->transport = transports[t];
                res->rate = rates[r];
                res->consumers = t == 0 ? 0 : n;
                run(res);
                printf("%-11s %-5s %-3d | %9.1f %12.3f | %9.1f %12.3f %9.1f %9.1f\n",
                       res->transport, res->rate ? "30" : "max", res->consumers, res->prod_fps,
                       res->prod_cpu_ms, res->cons_fps, res->cons_cpu_ms, res->p50_us, res->p99_us);
                fflush(stdout);
            }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f)
            return 1;
        fprintf(f, "{\"width\": %d, \"height\": %d, \"seconds\": %g, \"runs\": [\n", g_width,
                g_height, g_seconds);
        for (int i = 0; i < nr; i++)
            fprintf(f,
                    "  {\"transport\": \"%s\", \"rate\": %d, \"consumers\": %d, "
                    "\"producer_fps\": %.2f, \"producer_cpu_ms_per_frame\": %.4f, "
                    "\"consumer_fps\": %.2f, \"consumer_cpu_ms_per_frame\": %.4f, "
                    "\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f}%s\n",
                    results[i].transport, results[i].rate, results[i].consumers,
                    results[i].prod_fps, results[i].prod_cpu_ms, results[i].cons_fps,
                    results[i].cons_cpu_ms, results[i].p50_us, results[i].p99_us,
                    i + 1 < nr ? "," : "");
        fprintf(f, "]}\n");
        fclose(f);
    }
    return 0;
}
