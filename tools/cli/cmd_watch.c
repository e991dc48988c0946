/*
 * ndshm watch: live rate, period jitter, bandwidth, write-to-read latency, drops and
 * re-allocations of one or more channels (names or globs), in the manner of `ros2 topic hz`
 * and `ros2 topic bw` together.
 *
 * One reader thread per channel reads every version (as a copying reader does) and sleeps in
 * ndshm_wait() between them, so the latencies are those of a real reader. Per interval and
 * channel:
 *   PUB/s      versions published per second (the channel's version counter)
 *   PERIOD     min / max / std of the time between consecutive versions, from their publish
 *              times (the writer's clock: the writer's own jitter, not this reader's); mean
 *              rate = 1 / mean period in --json
 *   BW/s       bytes per second of the versions read
 *   LAT        write-to-read latency p50 / p99 / max as this reader sees it
 *   DROPS      versions lost because the writer lapped this reader
 */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SAMPLE_CAP (1u << 16) /* latencies kept per interval and channel (reservoir beyond) */

struct period {
    uint64_t n, min, max;
    double sum, sumsq;
};

static void period_add(struct period *p, uint64_t d)
{
    if (!p->n || d < p->min)
        p->min = d;
    if (!p->n || d > p->max)
        p->max = d;
    p->n++;
    p->sum += (double)d;
    p->sumsq += (double)d * (double)d;
}

static void period_merge(struct period *into, const struct period *p)
{
    if (!p->n)
        return;
    if (!into->n || p->min < into->min)
        into->min = p->min;
    if (!into->n || p->max > into->max)
        into->max = p->max;
    into->n += p->n;
    into->sum += p->sum;
    into->sumsq += p->sumsq;
}

static double period_mean(const struct period *p)
{
    return p->n ? p->sum / (double)p->n : 0;
}

static double period_std(const struct period *p)
{
    if (p->n < 2)
        return 0;
    double m = p->sum / (double)p->n, v = p->sumsq / (double)p->n - m * m;
    return v > 0 ? sqrt(v) : 0;
}

struct interval {
    uint64_t *lat;
    uint64_t n_lat, reads, dropped, contended, bytes, rng, lat_sum;
    struct period per;
};

struct wch {
    const char *name;
    ndshm_reader *r;
    pthread_mutex_t lock;
    pthread_t thread;
    int started;
    struct interval iv; /* under lock */
    ndshm_info last;    /* under lock */
    int have_last;
    uint64_t prev_version, prev_pub;
    int error; /* under lock: a read failed with this status */
    /* main thread only */
    ndshm_channel_info ci;
    uint64_t pub_prev, realloc_prev;
    uint64_t t_reads, t_dropped, t_contended, t_bytes, t_lat_sum, t_lat_max;
    struct period t_per;
};

static volatile int watch_stop;

static void add_sample(struct interval *iv, uint64_t v)
{
    if (iv->n_lat < SAMPLE_CAP) {
        iv->lat[iv->n_lat++] = v;
        return;
    }
    iv->n_lat++;
    iv->rng = iv->rng * 6364136223846793005u + 1442695040888963407u;
    uint64_t j = (iv->rng >> 11) % iv->n_lat;
    if (j < SAMPLE_CAP)
        iv->lat[j] = v;
}

static void *watch_thread(void *arg)
{
    struct wch *w = arg;
    while (!__atomic_load_n(&watch_stop, __ATOMIC_ACQUIRE)) {
        const void *data;
        ndshm_info info;
        int st = ndshm_read_next_owned(w->r, &data, &info);
        if (st == NDSHM_OK) {
            pthread_mutex_lock(&w->lock);
            w->iv.reads++;
            w->iv.dropped += info.dropped;
            w->iv.bytes += info.nbytes;
            w->iv.lat_sum += info.latency_ns;
            add_sample(&w->iv, info.latency_ns);
            if (w->prev_version && info.version == w->prev_version + 1 &&
                info.publish_ns >= w->prev_pub)
                period_add(&w->iv.per, info.publish_ns - w->prev_pub);
            w->prev_version = info.version;
            w->prev_pub = info.publish_ns;
            w->last = info;
            w->have_last = 1;
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (st == NDSHM_CONTENDED) {
            pthread_mutex_lock(&w->lock);
            w->iv.contended++;
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (st != NDSHM_NO_NEW && st != NDSHM_NO_DATA) {
            pthread_mutex_lock(&w->lock);
            w->error = st;
            pthread_mutex_unlock(&w->lock);
            __atomic_store_n(&watch_stop, 1, __ATOMIC_RELEASE);
            break;
        }
        /* look at the stop flag at least every 100 ms */
        if (ndshm_wait(w->r, 100000000) == NDSHM_WRITER_GONE) /* nothing will come: sleep */
            cli_sleep_until(ndshm_now_ns() + 100000000u);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted samples. */
static uint64_t pct(const uint64_t *s, uint64_t n, double p)
{
    uint64_t rank = (uint64_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return s[rank - 1];
}

static const char *writer_word(const ndshm_channel_info *ci)
{
    return ci->writer_pid == 0 ? "closed" : ci->writer_alive ? "alive" : "dead";
}

static void print_header(int named, int w)
{
    if (named)
        printf("%7s  %-*s", "TIME s", w, "NAME");
    else
        printf("%7s", "TIME s");
    printf("  %9s  %9s  %9s  %9s  %10s  %9s  %9s  %9s  %7s  %8s  %9s  %-6s  %s\n", "PUB/s",
           "PER min", "PER max", "PER std", "BW/s", "LAT p50", "LAT p99", "LAT max", "DROPS",
           "REALLOCS", "VERSION", "WRITER", "DTYPE SHAPE");
}

/* One interval of one channel: iv is a snapshot the caller owns. */
static void emit(struct wch *w, int json, int named, int namew, double t, double secs,
                 struct interval *iv, const ndshm_info *last, int have_last)
{
    ndshm_channel_info cur;
    if (ndshm_stat(w->name, &cur) == NDSHM_OK)
        w->ci = cur; /* else: removed meanwhile; keep the last state seen */
    const ndshm_channel_info *ci = &w->ci;
    uint64_t pub = ci->version >= w->pub_prev ? ci->version - w->pub_prev : ci->version;
    uint64_t reallocs =
        ci->reallocs >= w->realloc_prev ? ci->reallocs - w->realloc_prev : ci->reallocs;
    w->pub_prev = ci->version;
    w->realloc_prev = ci->reallocs;
    uint64_t n = iv->n_lat < SAMPLE_CAP ? iv->n_lat : SAMPLE_CAP;
    uint64_t p50 = 0, p99 = 0, mx = 0;
    if (n) {
        qsort(iv->lat, n, sizeof *iv->lat, cmp_u64);
        p50 = pct(iv->lat, n, 0.50);
        p99 = pct(iv->lat, n, 0.99);
        mx = iv->lat[n - 1];
    }
    if (mx > w->t_lat_max)
        w->t_lat_max = mx;
    w->t_reads += iv->reads;
    w->t_dropped += iv->dropped;
    w->t_contended += iv->contended;
    w->t_bytes += iv->bytes;
    period_merge(&w->t_per, &iv->per);
    const char *dn = have_last ? ndshm_dtype_name(last->dtype) : NULL;
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, w->name);
        printf(", \"t\": %.3f, \"pub_per_s\": %.1f, \"read_per_s\": %.1f, \"latency_ns\": ", t,
               (double)pub / secs, (double)iv->reads / secs);
        if (n)
            printf("{\"p50\": %llu, \"p99\": %llu, \"max\": %llu}", (unsigned long long)p50,
                   (unsigned long long)p99, (unsigned long long)mx);
        else
            printf("null");
        printf(", \"period_ns\": ");
        if (iv->per.n)
            printf("{\"n\": %llu, \"mean\": %.0f, \"min\": %llu, \"max\": %llu, \"std\": %.0f}",
                   (unsigned long long)iv->per.n, period_mean(&iv->per),
                   (unsigned long long)iv->per.min, (unsigned long long)iv->per.max,
                   period_std(&iv->per));
        else
            printf("null");
        printf(", \"rate_hz\": ");
        if (iv->per.n && period_mean(&iv->per) > 0)
            printf("%.3f", 1e9 / period_mean(&iv->per));
        else
            printf("null");
        printf(", \"bytes\": %llu, \"bytes_per_s\": %.0f", (unsigned long long)iv->bytes,
               (double)iv->bytes / secs);
        printf(", \"read\": %llu, \"dropped\": %llu, \"contended\": %llu, \"reallocs\": %llu, "
               "\"version\": %llu, \"readers\": ",
               (unsigned long long)iv->reads, (unsigned long long)iv->dropped,
               (unsigned long long)iv->contended, (unsigned long long)reallocs,
               (unsigned long long)ci->version);
        if (ci->attached >= 0)
            printf("%d", (int)ci->attached);
        else
            printf("null");
        printf(", \"writer\": \"%s\", \"dtype\": ", writer_word(ci));
        if (dn)
            cli_json_str(stdout, dn);
        else
            printf("null");
        printf(", \"shape\": ");
        if (have_last)
            cli_json_shape(stdout, last->ndim, last->shape);
        else
            printf("null");
        printf("}\n");
    } else {
        char a[32] = "-", b[32] = "-", c[32] = "-", pmin[32] = "-", pmax[32] = "-", pstd[32] = "-",
             bw[40], shape[256] = "-";
        if (n) {
            cli_fmt_duration(a, sizeof a, p50);
            cli_fmt_duration(b, sizeof b, p99);
            cli_fmt_duration(c, sizeof c, mx);
        }
        if (iv->per.n) {
            cli_fmt_duration(pmin, sizeof pmin, iv->per.min);
            cli_fmt_duration(pmax, sizeof pmax, iv->per.max);
            cli_fmt_duration(pstd, sizeof pstd, (uint64_t)period_std(&iv->per));
        }
        cli_fmt_bytes(bw, sizeof bw, (uint64_t)((double)iv->bytes / secs));
        if (have_last)
            cli_fmt_shape(shape, sizeof shape, last->ndim, last->shape);
        if (named)
            printf("%7.1f  %-*s", t, namew, w->name);
        else
            printf("%7.1f", t);
        printf("  %9.1f  %9s  %9s  %9s  %10s  %9s  %9s  %9s  %7llu  %8llu  %9llu  %-6s  %s %s\n",
               (double)pub / secs, pmin, pmax, pstd, bw, a, b, c, (unsigned long long)iv->dropped,
               (unsigned long long)reallocs, (unsigned long long)ci->version, writer_word(ci),
               dn ? dn : "-", shape);
    }
}

static void summary(const struct wch *w, int json, double total)
{
    double mean = w->t_reads ? (double)w->t_lat_sum / (double)w->t_reads : 0;
    if (json) {
        printf("{\"summary\": true, \"name\": ");
        cli_json_str(stdout, w->name);
        printf(", \"seconds\": %.3f, \"read\": %llu, \"dropped\": %llu, \"contended\": %llu, "
               "\"bytes\": %llu, \"latency_mean_ns\": %.0f, \"latency_max_ns\": %llu, "
               "\"period_ns\": ",
               total, (unsigned long long)w->t_reads, (unsigned long long)w->t_dropped,
               (unsigned long long)w->t_contended, (unsigned long long)w->t_bytes, mean,
               (unsigned long long)w->t_lat_max);
        if (w->t_per.n)
            printf("{\"n\": %llu, \"mean\": %.0f, \"min\": %llu, \"max\": %llu, \"std\": %.0f}",
                   (unsigned long long)w->t_per.n, period_mean(&w->t_per),
                   (unsigned long long)w->t_per.min, (unsigned long long)w->t_per.max,
                   period_std(&w->t_per));
        else
            printf("null");
        printf(", \"rate_hz\": ");
        if (w->t_per.n && period_mean(&w->t_per) > 0)
            printf("%.3f", 1e9 / period_mean(&w->t_per));
        else
            printf("null");
        printf("}\n");
        return;
    }
    char m[32], x[32], per[160] = "", bw[40];
    cli_fmt_duration(m, sizeof m, (uint64_t)mean);
    cli_fmt_duration(x, sizeof x, w->t_lat_max);
    cli_fmt_bytes(bw, sizeof bw, total > 0 ? (uint64_t)((double)w->t_bytes / total) : 0);
    if (w->t_per.n) {
        char a[32], b[32], c[32];
        cli_fmt_duration(a, sizeof a, w->t_per.min);
        cli_fmt_duration(b, sizeof b, w->t_per.max);
        cli_fmt_duration(c, sizeof c, (uint64_t)period_std(&w->t_per));
        snprintf(per, sizeof per, ", rate %.2f Hz (period min %s, max %s, std %s)",
                 1e9 / period_mean(&w->t_per), a, b, c);
    }
    printf("watch: %s: %llu version(s) read in %.1f s, %llu dropped, latency mean %s, max %s%s, "
           "%s/s\n",
           w->name, (unsigned long long)w->t_reads, total, (unsigned long long)w->t_dropped,
           w->t_reads ? m : "-", w->t_reads ? x : "-", per, bw);
}

int cmd_watch(int argc, char **argv)
{
    static const struct option opts[] = {{"for", required_argument, NULL, 'f'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    double dur = -1, interval = 1;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (cli_parse_seconds(optarg, &dur))
                return cli_usage("--for wants seconds >= 0, not '%s'", optarg);
            break;
        case 'i':
            if (cli_parse_seconds(optarg, &interval) || interval < 0.01)
                return cli_usage("--interval wants seconds >= 0.01, not '%s'", optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 1)
        return cli_usage("expected one or more channel names (or globs)");
    char **names;
    size_t nch;
    int ret = cli_match_names(argc - optind, argv + optind, 1 << NDSHM_KIND_CHANNEL, &names, &nch);
    if (ret)
        return ret;
    struct wch *w = calloc(nch, sizeof *w);
    uint64_t *lat = NULL, *snap_lat = malloc(SAMPLE_CAP * sizeof(uint64_t));
    ret = CLI_FAIL;
    if (!w || !snap_lat || !(lat = malloc(nch * SAMPLE_CAP * sizeof(uint64_t)))) {
        cli_fail(NDSHM_E_NOMEM, "watching");
        goto out;
    }
    int namew = 4;
    for (size_t i = 0; i < nch; i++) {
        w[i].name = names[i];
        if ((int)strlen(names[i]) > namew)
            namew = (int)strlen(names[i]);
        pthread_mutex_init(&w[i].lock, NULL);
        w[i].iv.lat = lat + i * SAMPLE_CAP;
        w[i].iv.rng = 1 + i;
        int st = ndshm_reader_open(names[i], NULL, &w[i].r);
        if (st == NDSHM_OK)
            st = ndshm_stat(names[i], &w[i].ci);
        if (st) {
            cli_fail(st, "%s", names[i]);
            goto out;
        }
        w[i].pub_prev = w[i].ci.version;
        w[i].realloc_prev = w[i].ci.reallocs;
    }
    cli_catch_signals();
    __atomic_store_n(&watch_stop, 0, __ATOMIC_RELEASE);
    for (size_t i = 0; i < nch; i++) {
        if (pthread_create(&w[i].thread, NULL, watch_thread, &w[i]) != 0) {
            cli_fail(NDSHM_E_NOMEM, "starting a thread");
            goto out;
        }
        w[i].started = 1;
    }
    int named = nch > 1;
    if (!json)
        print_header(named, namew);
    uint64_t step = (uint64_t)(interval * 1e9);
    uint64_t t0 = ndshm_now_ns(), tick_start = t0, next_tick = t0 + step;
    uint64_t end = dur >= 0 ? t0 + (uint64_t)(dur * 1e9) : UINT64_MAX;
    ret = CLI_OK;
    for (;;) {
        uint64_t until = next_tick < end ? next_tick : end;
        cli_sleep_until(until);
        uint64_t now = ndshm_now_ns();
        int stopping = cli_stop || now >= end || __atomic_load_n(&watch_stop, __ATOMIC_ACQUIRE);
        if (now < next_tick && !stopping)
            continue;
        double secs = (double)(now - tick_start) / 1e9;
        if (secs > 1e-3 || !stopping) {
            for (size_t i = 0; i < nch; i++) {
                struct interval iv;
                ndshm_info last;
                pthread_mutex_lock(&w[i].lock);
                iv = w[i].iv;
                memcpy(snap_lat, w[i].iv.lat,
                       (iv.n_lat < SAMPLE_CAP ? iv.n_lat : SAMPLE_CAP) * sizeof(uint64_t));
                last = w[i].last;
                int have_last = w[i].have_last;
                uint64_t *keep = w[i].iv.lat, rng = w[i].iv.rng;
                memset(&w[i].iv, 0, sizeof w[i].iv);
                w[i].iv.lat = keep;
                w[i].iv.rng = rng;
                pthread_mutex_unlock(&w[i].lock);
                w[i].t_lat_sum += iv.lat_sum;
                iv.lat = snap_lat;
                emit(&w[i], json, named, namew, (double)(now - t0) / 1e9, secs > 1e-6 ? secs : 1e-6,
                     &iv, &last, have_last);
            }
            fflush(stdout);
        }
        tick_start = now;
        next_tick = next_tick + step > now ? next_tick + step : now + step;
        if (stopping)
            break;
    }
    __atomic_store_n(&watch_stop, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < nch; i++)
        if (w[i].started) {
            pthread_join(w[i].thread, NULL);
            w[i].started = 0;
        }
    double total = (double)(ndshm_now_ns() - t0) / 1e9;
    for (size_t i = 0; i < nch; i++) {
        if (w[i].error)
            ret = cli_fail(w[i].error, "%s: reading", w[i].name);
        summary(&w[i], json, total);
    }
out:
    __atomic_store_n(&watch_stop, 1, __ATOMIC_RELEASE);
    if (w) {
        for (size_t i = 0; i < nch; i++) {
            if (w[i].started)
                pthread_join(w[i].thread, NULL);
            ndshm_reader_close(w[i].r);
            if (w[i].name)
                pthread_mutex_destroy(&w[i].lock);
        }
    }
    free(w);
    free(lat);
    free(snap_lat);
    cli_free_names(argc - optind, argv + optind, names, nch);
    return ret;
}
