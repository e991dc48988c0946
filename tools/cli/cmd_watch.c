/* ndshm watch: live rate, write-to-read latency, drops and re-allocations of one channel. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SAMPLE_CAP (1u << 20) /* latencies kept per interval (reservoir beyond that) */

struct interval {
    uint64_t *lat;
    uint64_t n_lat;   /* samples offered this interval */
    uint64_t reads;   /* versions read */
    uint64_t dropped; /* versions lost (lapped) */
    uint64_t contended;
    uint64_t rng;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

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

struct totals {
    uint64_t reads, dropped, contended, lat_sum, lat_max;
};

static void emit(const char *name, int json, double t, double secs, struct interval *iv,
                 const ndshm_channel_info *ci, uint64_t pub, uint64_t reallocs,
                 const ndshm_info *last, int have_last, struct totals *tot)
{
    uint64_t n = iv->n_lat < SAMPLE_CAP ? iv->n_lat : SAMPLE_CAP;
    uint64_t p50 = 0, p99 = 0, mx = 0;
    if (n) {
        qsort(iv->lat, n, sizeof *iv->lat, cmp_u64);
        p50 = pct(iv->lat, n, 0.50);
        p99 = pct(iv->lat, n, 0.99);
        mx = iv->lat[n - 1];
    }
    if (mx > tot->lat_max)
        tot->lat_max = mx;
    tot->reads += iv->reads;
    tot->dropped += iv->dropped;
    tot->contended += iv->contended;
    const char *writer = ci->writer_pid == 0 ? "closed" : ci->writer_alive ? "alive" : "dead";
    const char *dn = have_last ? ndshm_dtype_name(last->dtype) : NULL;
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"t\": %.3f, \"pub_per_s\": %.1f, \"read_per_s\": %.1f, \"latency_ns\": ", t,
               (double)pub / secs, (double)iv->reads / secs);
        if (n)
            printf("{\"p50\": %llu, \"p99\": %llu, \"max\": %llu}", (unsigned long long)p50,
                   (unsigned long long)p99, (unsigned long long)mx);
        else
            printf("null");
        printf(", \"read\": %llu, \"dropped\": %llu, \"contended\": %llu, \"reallocs\": %llu, "
               "\"version\": %llu, \"writer\": \"%s\", \"dtype\": ",
               (unsigned long long)iv->reads, (unsigned long long)iv->dropped,
               (unsigned long long)iv->contended, (unsigned long long)reallocs,
               (unsigned long long)ci->version, writer);
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
        char a[32] = "-", b[32] = "-", c[32] = "-", shape[256] = "-";
        if (n) {
            cli_fmt_duration(a, sizeof a, p50);
            cli_fmt_duration(b, sizeof b, p99);
            cli_fmt_duration(c, sizeof c, mx);
        }
        if (have_last)
            cli_fmt_shape(shape, sizeof shape, last->ndim, last->shape);
        printf("%7.1f  %9.1f  %9.1f  %9s  %9s  %9s  %7llu  %8llu  %9llu  %-6s  %s %s\n", t,
               (double)pub / secs, (double)iv->reads / secs, a, b, c,
               (unsigned long long)iv->dropped, (unsigned long long)reallocs,
               (unsigned long long)ci->version, writer, dn ? dn : "-", shape);
    }
    fflush(stdout);
    iv->n_lat = iv->reads = iv->dropped = iv->contended = 0;
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
    if (argc - optind != 1)
        return cli_usage("expected one channel name");
    const char *name = argv[optind];
    ndshm_reader *r = NULL;
    ndshm_channel_info ci;
    int st = ndshm_reader_open(name, NULL, &r);
    if (st == NDSHM_OK)
        st = ndshm_stat(name, &ci);
    if (st) {
        ndshm_reader_close(r);
        return cli_fail(st, "%s", name);
    }
    struct interval iv = {.lat = malloc(SAMPLE_CAP * sizeof(uint64_t)), .rng = 1};
    if (!iv.lat) {
        ndshm_reader_close(r);
        return cli_fail(NDSHM_E_NOMEM, "%s", name);
    }
    cli_catch_signals();
    if (!json)
        printf("%7s  %9s  %9s  %9s  %9s  %9s  %7s  %8s  %9s  %-6s  %s\n", "TIME s", "PUB/s",
               "READ/s", "LAT p50", "LAT p99", "LAT max", "DROPS", "REALLOCS", "VERSION", "WRITER",
               "DTYPE SHAPE");
    uint64_t step = (uint64_t)(interval * 1e9);
    uint64_t t0 = ndshm_now_ns(), tick_start = t0, next_tick = t0 + step;
    uint64_t end = dur >= 0 ? t0 + (uint64_t)(dur * 1e9) : UINT64_MAX;
    uint64_t pub_prev = ci.version, realloc_prev = ci.reallocs;
    struct totals tot = {0};
    ndshm_info last;
    int have_last = 0, ret = CLI_OK;
    for (;;) {
        uint64_t now = ndshm_now_ns();
        int stopping = cli_stop || now >= end;
        if (now >= next_tick || stopping) {
            double secs = (double)(now - tick_start) / 1e9;
            if (secs > 1e-3 || !stopping) {
                ndshm_channel_info cur;
                if (ndshm_stat(name, &cur) == NDSHM_OK)
                    ci = cur; /* else: removed meanwhile; keep the last state we saw */
                emit(name, json, (double)(now - t0) / 1e9, secs > 1e-6 ? secs : 1e-6, &iv, &ci,
                     ci.version - (ci.version >= pub_prev ? pub_prev : ci.version),
                     ci.reallocs - (ci.reallocs >= realloc_prev ? realloc_prev : ci.reallocs),
                     &last, have_last, &tot);
                pub_prev = ci.version;
                realloc_prev = ci.reallocs;
            }
            tick_start = now;
            next_tick = next_tick + step > now ? next_tick + step : now + step;
        }
        if (stopping)
            break;
        const void *data;
        ndshm_info info;
        st = ndshm_read_next_owned(r, &data, &info);
        if (st == NDSHM_OK) {
            iv.reads++;
            iv.dropped += info.dropped;
            tot.lat_sum += info.latency_ns;
            add_sample(&iv, info.latency_ns);
            last = info;
            have_last = 1;
            continue;
        }
        if (st == NDSHM_CONTENDED) {
            iv.contended++;
            continue;
        }
        if (st != NDSHM_NO_NEW && st != NDSHM_NO_DATA) {
            ret = cli_fail(st, "%s: reading", name);
            break;
        }
        uint64_t until = next_tick < end ? next_tick : end;
        now = ndshm_now_ns();
        int64_t wait = until > now ? (int64_t)(until - now) : 0;
        if (wait > 100000000)
            wait = 100000000;                         /* look at cli_stop at least every 100 ms */
        if (ndshm_wait(r, wait) == NDSHM_WRITER_GONE) /* nothing will come: just sleep */
            cli_sleep_until(ndshm_now_ns() + (uint64_t)wait);
    }
    double total = (double)(ndshm_now_ns() - t0) / 1e9;
    double mean = tot.reads ? (double)tot.lat_sum / (double)tot.reads : 0;
    if (json) {
        printf("{\"summary\": true, \"name\": ");
        cli_json_str(stdout, name);
        printf(", \"seconds\": %.3f, \"read\": %llu, \"dropped\": %llu, \"contended\": %llu, "
               "\"latency_mean_ns\": %.0f, \"latency_max_ns\": %llu}\n",
               total, (unsigned long long)tot.reads, (unsigned long long)tot.dropped,
               (unsigned long long)tot.contended, mean, (unsigned long long)tot.lat_max);
    } else {
        char m[32], x[32];
        cli_fmt_duration(m, sizeof m, (uint64_t)mean);
        cli_fmt_duration(x, sizeof x, tot.lat_max);
        printf("watch: %s: %llu version(s) read in %.1f s, %llu dropped, latency mean %s, max "
               "%s\n",
               name, (unsigned long long)tot.reads, total, (unsigned long long)tot.dropped,
               tot.reads ? m : "-", tot.reads ? x : "-");
    }
    free(iv.lat);
    ndshm_reader_close(r);
    return ret;
}
