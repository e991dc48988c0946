/*
 * ndshm-bridge end to end on loopback: this process publishes into a source channel, runs
 * `ndshm-bridge send` and one or two `ndshm-bridge recv` as child processes, and reads the
 * receivers' local channels, checking every version it gets.
 *
 * Payload of origin version v: v as a little-endian u64, then tu_fill(v) — so a reader of
 * the republished channel (whose own version numbers differ) knows v and detects any byte
 * from another version.
 *
 *  - every_version_small_tcp: 64 B at 10 kHz over tcp://127.0.0.1 to two receivers; every
 *    version published after the pipeline is up arrives at both, in order, intact; the
 *    bridge's own counters agree (no drops anywhere); the origin companion channel maps the
 *    last local version to its origin version.
 *  - every_version_1080p_ipc_kills: uint8 (1080,1920,3) at 30 Hz over ipc://; no drops while
 *    nothing is killed; then the sender and the receiver are each SIGKILLed (the receiver
 *    right after a publish, likely mid-copy) and restarted: the stream resumes, no torn or
 *    out-of-order version ever appears in the local channel, both exit cleanly at the end.
 *  - latest_drops_counted_tcp: 1080p at 30 Hz, sender --latest, receiver limited to 10 Hz:
 *    stale versions are dropped, counted exactly (sent + dropped = span of versions), and
 *    what arrives is intact and increasing.
 *
 * The source rings are deep enough to hold a whole phase, so "no drops" does not depend on
 * the machine's load: only the bridge could lose a version. Children die with this process
 * (PR_SET_PDEATHSIG); the temp dir (ipc sockets, logs) and every channel are removed at exit.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

extern char **environ;

/* Under ThreadSanitizer every byte copied through shared memory is an instrumented relaxed
 * atomic (NDSHM_TSAN_COPY): a 6 MB frame costs ~150 ms per copy, so 30 Hz 1080p cannot
 * cross. That build uses a 320x256 RGB frame (same code paths: multi-page payloads, kills,
 * restarts); every other build runs real 1080p. */
#if defined(__SANITIZE_THREAD__)
#define FRAME_H 256
#define FRAME_W 320
#else
#define FRAME_H 1080
#define FRAME_W 1920
#endif
static char bridge_bin[PATH_MAX];
static char tmpdir[64];

/* ----- housekeeping ------------------------------------------------------------------------ */
static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

static pid_t owner;
static void at_exit_cleanup(void)
{
    if (getpid() == owner)
        remove_tmpdir();
}

static void on_fatal(int sig)
{
    at_exit_cleanup();
    tu_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void find_bridge(void)
{
    const char *env = getenv("NDSHM_BRIDGE");
    if (env && env[0]) {
        snprintf(bridge_bin, sizeof bridge_bin, "%s", env);
        return;
    }
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    assert_non_null(slash);
    *slash = 0;
    snprintf(bridge_bin, sizeof bridge_bin, "%s/ndshm-bridge", self);
}

static const char *tmp_path(const char *name)
{
    static char paths[8][PATH_MAX];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
    return p;
}

/* A loopback TCP port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ----- child processes --------------------------------------------------------------------- */
/* posix_spawn, not fork: this process has threads (liburcu's call_rcu), and a forked child
 * of a threaded process may deadlock or, under ThreadSanitizer, die before it reaches exec.
 * NDSHM_BRIDGE_PDEATHSIG (set in main) makes each child die with this process. */
static pid_t spawn(const char *log, const char *const *args)
{
    char *argv[24];
    int n = 0;
    argv[n++] = bridge_bin;
    for (; args[n - 1] && n < 23; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    pid_t pid = -1;
    fflush(NULL);
    assert_int_equal(posix_spawn(&pid, bridge_bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* SIGTERM and wait (at most 20 s): the exit status, 128 + signal, or -1 if it hung. */
static int stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 2000; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        tu_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void dump_log(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- %s\n", log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* Value of `key` in the last line of `log` starting with `prefix` (e.g. "send final"). */
static int stat_value(const char *log, const char *prefix, const char *key, double *out)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return -1;
    char line[1024], last[1024] = "";
    while (fgets(line, sizeof line, f))
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            snprintf(last, sizeof last, "%s", line);
    fclose(f);
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(last, pat);
    if (!p)
        return -1;
    *out = strtod(p + strlen(pat), NULL);
    return 0;
}

static uint64_t stat_u64(const char *log, const char *prefix, const char *key)
{
    double v = -1;
    if (stat_value(log, prefix, key, &v) != 0) {
        dump_log(log);
        fail_msg("no %s in the '%s' line of %s", key, prefix, log);
    }
    return (uint64_t)v;
}

/* ----- the stream -------------------------------------------------------------------------- */
struct sink {
    const char *name;
    ndshm_reader *r;
    unsigned char *buf, *meta;
    uint64_t first, last, count, gaps, repeats;
};

struct stream {
    ndshm_writer *src;
    int dtype;
    uint32_t ndim;
    uint64_t shape[3];
    size_t n;
    unsigned char *buf;
    uint64_t published;
    struct sink sinks[2];
    int nsinks;
    int allow_gaps;   /* phases with kills or --latest */
    int allow_repeat; /* phases with receiver restarts */
    int extras;       /* versions carry extras and metadata (publish_ex) */
    uint64_t first_real_ns;
};

static void stream_init(struct stream *st, const char *src, uint32_t slots, uint32_t ndim,
                        const uint64_t *shape)
{
    memset(st, 0, sizeof *st);
    st->dtype = NDSHM_UINT8;
    st->ndim = ndim;
    st->n = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        st->shape[i] = shape[i];
        st->n *= shape[i];
    }
    st->buf = malloc(st->n);
    assert_non_null(st->buf);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = slots;
    o.capacity = st->n;
    assert_int_equal(ndshm_writer_create(src, &o, &st->src), NDSHM_OK);
}

static void stream_free(struct stream *st)
{
    for (int i = 0; i < st->nsinks; i++) {
        ndshm_reader_close(st->sinks[i].r);
        free(st->sinks[i].buf);
        free(st->sinks[i].meta);
    }
    ndshm_writer_close(st->src);
    free(st->buf);
}

/* The extras of origin version v in streams with `extras`: a user timestamp and tag and
 * metadata bytes that follow from v (metadata of 0 .. 65536 bytes). */
static uint64_t x_user_ns(uint64_t v)
{
    return v * 1000 + 7;
}
static uint64_t x_user_tag(uint64_t v)
{
    return v ^ UINT64_C(0x5a5a5a5a5a5a5a5a);
}
static uint32_t x_meta_len(uint64_t v)
{
    return v % 5 == 0 ? NDSHM_META_MAX : (uint32_t)(v * 37 % 300);
}
static void x_meta(uint64_t v, unsigned char *out)
{
    tu_fill(out, x_meta_len(v), v + 1000000);
}

static void publish_one(struct stream *st)
{
    if (!st->first_real_ns) /* before anything is published */
        st->first_real_ns = ndshm_wire_realtime_ns();
    uint64_t v = ndshm_writer_version(st->src) + 1;
    for (int i = 0; i < 8; i++)
        st->buf[i] = (unsigned char)(v >> (8 * i));
    tu_fill(st->buf + 8, st->n - 8, v);
    uint64_t got = 0;
    ndshm_extra x = NDSHM_EXTRA_INIT;
    if (st->extras) {
        static unsigned char meta[NDSHM_META_MAX];
        x_meta(v, meta);
        x.meta = meta;
        x.meta_len = x_meta_len(v);
        x.user_ns = x_user_ns(v);
        x.user_tag = x_user_tag(v);
    }
    assert_int_equal(ndshm_publish_ex(st->src, st->dtype, st->ndim, st->shape, st->buf,
                                      st->extras ? &x : NULL, &got),
                     NDSHM_OK);
    assert_int_equal(got, v);
    st->published = v;
}

/* A receiver's local channel; opened when the receiver has created it (at its first
 * message). */
static void stream_add_sink(struct stream *st, const char *dst)
{
    struct sink *k = &st->sinks[st->nsinks++];
    memset(k, 0, sizeof *k);
    k->name = dst;
    k->buf = malloc(st->n);
    k->meta = malloc(NDSHM_META_MAX);
    assert_non_null(k->buf);
    assert_non_null(k->meta);
}

/* Read everything new in one local channel, checking each version. */
static void drain_sink(struct stream *st, struct sink *k)
{
    if (!k->r) {
        int rc = ndshm_reader_open(k->name, NULL, &k->r);
        if (rc == NDSHM_E_NOENT || rc == NDSHM_E_NOT_READY)
            return; /* the receiver has not created it yet */
        assert_int_equal(rc, NDSHM_OK);
    }
    for (;;) {
        ndshm_info info;
        int rc =
            ndshm_read_ex(k->r, NDSHM_READ_NEXT, k->buf, st->n, k->meta, NDSHM_META_MAX, &info);
        if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA || rc == NDSHM_WRITER_GONE)
            return;
        if (rc == NDSHM_CONTENDED)
            continue;
        assert_int_equal(rc, NDSHM_OK);
        assert_int_equal(info.nbytes, st->n);
        assert_int_equal(info.dtype, st->dtype);
        assert_int_equal(info.ndim, st->ndim);
        assert_memory_equal(info.shape, st->shape, sizeof(uint64_t) * st->ndim);
        /* This reader could fall behind the receiver (the local ring is deep, but this
         * machine is shared): a loss here is the reader's, not the bridge's. Only phases
         * that allow gaps accept it. */
        if (info.dropped && !st->allow_gaps)
            fail_msg("the test reader lost %llu versions", (unsigned long long)info.dropped);
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | k->buf[i];
        if (!tu_check(k->buf + 8, st->n - 8, v))
            fail_msg("torn or foreign payload in the local channel (origin version %llu)",
                     (unsigned long long)v);
        assert_true(v >= 1 && v <= st->published);
        /* the local version says which origin version it is, and when it was published */
        if (!(info.flags & NDSHM_INFO_EXTRA) || info.origin_version != v)
            fail_msg("local version %llu holds origin version %llu; its origin_version is %llu "
                     "(extras %s)",
                     (unsigned long long)info.version, (unsigned long long)v,
                     (unsigned long long)info.origin_version,
                     info.flags & NDSHM_INFO_EXTRA ? "present" : "absent");
        if (info.origin_ns + 1000000 < st->first_real_ns ||
            info.origin_ns > ndshm_wire_realtime_ns())
            fail_msg("origin version %llu: origin_ns %llu outside [%llu - 1 ms, now]",
                     (unsigned long long)v, (unsigned long long)info.origin_ns,
                     (unsigned long long)st->first_real_ns);
        if (st->extras) {
            uint32_t ml = x_meta_len(v);
            static unsigned char want[NDSHM_META_MAX];
            x_meta(v, want);
            if (info.user_ns != x_user_ns(v) || info.user_tag != x_user_tag(v) ||
                info.meta_len != ml || memcmp(k->meta, want, ml) != 0)
                fail_msg("origin version %llu: user_ns %llu tag %llx meta_len %u differ from "
                         "the source's (%llu, %llx, %u bytes) or the metadata bytes do",
                         (unsigned long long)v, (unsigned long long)info.user_ns,
                         (unsigned long long)info.user_tag, info.meta_len,
                         (unsigned long long)x_user_ns(v), (unsigned long long)x_user_tag(v), ml);
        } else if (info.user_ns || info.user_tag || info.meta_len) {
            fail_msg("origin version %llu: extras the source did not set", (unsigned long long)v);
        }
        if (v == k->last && st->allow_repeat) {
            k->repeats++; /* a restarted receiver got the newest version again */
            continue;
        }
        if (k->last) {
            if (v <= k->last)
                fail_msg("origin version %llu after %llu", (unsigned long long)v,
                         (unsigned long long)k->last);
            k->gaps += v - k->last - 1;
            if (!st->allow_gaps && v != k->last + 1)
                fail_msg("versions %llu..%llu lost", (unsigned long long)k->last + 1,
                         (unsigned long long)v - 1);
        } else {
            k->first = v;
        }
        k->last = v;
        k->count++;
    }
}

static void drain_all(struct stream *st)
{
    for (int i = 0; i < st->nsinks; i++)
        drain_sink(st, &st->sinks[i]);
}

/* Generous bounds for things that must happen, not for how fast: 60 s, 180 s under
 * ThreadSanitizer (every shared-memory byte is an instrumented atomic there). */
#if defined(__SANITIZE_THREAD__)
#define BUDGET_MS 180000
#else
#define BUDGET_MS 60000
#endif

/* The pipeline is up: one version, published once, reaches every receiver. It may be
 * published before a receiver's subscription reaches the sender: the sender then re-sends its
 * newest version to each new subscriber, so nothing here depends on timing. */
static void warm_up(struct stream *st)
{
    publish_one(st);
    uint64_t v = st->published, t0 = ndshm_now_ns();
    while (ndshm_now_ns() - t0 < (uint64_t)BUDGET_MS * 1000000u) {
        drain_all(st);
        int all = 1;
        for (int k = 0; k < st->nsinks; k++)
            all &= st->sinks[k].last == v;
        if (all)
            return;
        tu_sleep_ms(5);
    }
    for (int k = 0; k < st->nsinks; k++)
        if (st->sinks[k].last != v)
            fail_msg("receiver %d: expected version %llu (published once before it subscribed, "
                     "re-sent to each new subscriber) within %d s; it has %llu",
                     k, (unsigned long long)v, BUDGET_MS / 1000,
                     (unsigned long long)st->sinks[k].last);
}

/* Publish at rate_hz for ms milliseconds, draining the sinks in between. Returns the rate
 * achieved (publishing never bursts more than 8 behind schedule). */
static double run(struct stream *st, double rate_hz, unsigned ms)
{
    uint64_t period = (uint64_t)(1e9 / rate_hz), t0 = ndshm_now_ns(), next = t0;
    uint64_t end = t0 + (uint64_t)ms * 1000000u, count = 0, now;
    while ((now = ndshm_now_ns()) < end) {
        for (int burst = 0; now >= next && burst < 8; burst++) {
            publish_one(st);
            count++;
            next += period;
        }
        if (next + 8 * period < now)
            next = now;
        drain_all(st);
        now = ndshm_now_ns();
        if (next > now) {
            uint64_t d = next - now;
            struct timespec ts = {0, (long)(d < 200000 ? d : 200000)};
            nanosleep(&ts, NULL);
        }
    }
    return (double)count * 1e9 / (double)(ndshm_now_ns() - t0);
}

/* Wait (at most BUDGET_MS) until every sink has received version `v`. */
static void wait_for(struct stream *st, uint64_t v)
{
    uint64_t t0 = ndshm_now_ns();
    while (ndshm_now_ns() - t0 < (uint64_t)BUDGET_MS * 1000000u) {
        drain_all(st);
        int all = 1;
        for (int k = 0; k < st->nsinks; k++)
            all &= st->sinks[k].last >= v;
        if (all)
            return;
        tu_sleep_ms(1);
    }
    for (int k = 0; k < st->nsinks; k++)
        if (st->sinks[k].last < v)
            fail_msg("receiver %d: expected version %llu to cross the bridge within %d s; the "
                     "last one it got is %llu",
                     k, (unsigned long long)v, BUDGET_MS / 1000,
                     (unsigned long long)st->sinks[k].last);
}

/* After a kill and restart: one version published now reaches every receiver. Published
 * once, not every few ms: a restarted sender sends the channel's newest version, a restarted
 * receiver gets the newest version sent when its subscription arrives, so one is enough. (The
 * test used to publish every 10 ms until something arrived; under ThreadSanitizer that flood
 * lapped the sender, whose read_next then chased the slot the writer overwrites next with
 * 250 KB copies slower than a publish period, and the stream stalled for minutes.) */
static void wait_resumed(struct stream *st)
{
    publish_one(st);
    wait_for(st, st->published);
}

/* ----- tests ------------------------------------------------------------------------------- */
static void every_version_small_tcp(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-src"), *d1 = tu_name("br-d1"), *d2 = tu_name("br-d2");
    const char *origin = tu_name("br-origin");
    const char *ls = tmp_path("small-send.log"), *l1 = tmp_path("small-r1.log"),
               *l2 = tmp_path("small-r2.log");
    struct stream st;
    uint64_t shape[1] = {64};
    stream_init(&st, src, 65536, 1, shape);
    pid_t r1 = spawn(l1, (const char *[]){"recv", ep, d1, "--slots", "65536", "--mono", "--origin",
                                          origin, "--stats", "0", NULL});
    pid_t r2 = spawn(
        l2, (const char *[]){"recv", ep, d2, "--slots", "65536", "--mono", "--stats", "0", NULL});
    pid_t s = spawn(ls, (const char *[]){"send", src, ep, "--stats", "0", NULL});
    stream_add_sink(&st, d1);
    stream_add_sink(&st, d2);
    warm_up(&st);
    uint64_t first = st.published + 1;
    double rate = run(&st, 10000, 1500);
    wait_for(&st, st.published);
    for (int k = 0; k < 2; k++) {
        assert_true(st.sinks[k].first < first); /* everything after the warm-up arrived */
        assert_int_equal(st.sinks[k].last, st.published);
        assert_int_equal(st.sinks[k].gaps, 0);
    }
    assert_int_equal(stop_child(s), 0);
    assert_int_equal(stop_child(r1), 0);
    assert_int_equal(stop_child(r2), 0);
    assert_int_equal(stat_u64(ls, "send final", "dropped"), 0);
    assert_int_equal(stat_u64(ls, "send final", "last_version"), st.published);
    assert_int_equal(stat_u64(ls, "send final", "msgs"),
                     st.published - stat_u64(ls, "send final", "first_version") + 1);
    for (int i = 0; i < 2; i++) {
        const char *l = i ? l2 : l1;
        assert_int_equal(stat_u64(l, "recv final", "net_dropped"), 0);
        assert_int_equal(stat_u64(l, "recv final", "version_gaps"), 0);
        assert_int_equal(stat_u64(l, "recv final", "bad"), 0);
        assert_int_equal(stat_u64(l, "recv final", "last_version"), st.published);
    }
    /* the companion channel maps the last local version to its origin version */
    ndshm_reader * or = NULL;
    assert_int_equal(ndshm_reader_open(origin, NULL, & or), NDSHM_OK);
    uint64_t rec[6];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(or, rec, sizeof rec, &info), NDSHM_OK);
    assert_int_equal(rec[0], ndshm_reader_version(st.sinks[0].r));
    assert_int_equal(rec[1], st.published);
    ndshm_reader_close(or);
    double p50 = 0, p99 = 0;
    stat_value(l1, "recv final", "lat_us_p50", &p50);
    stat_value(l1, "recv final", "lat_us_p99", &p99);
    printf("# 64 B: %.0f Hz achieved, %llu versions, 2 receivers, no drops; "
           "origin->local latency p50 %.1f us p99 %.1f us\n",
           rate, (unsigned long long)(st.published - first + 1), p50, p99);
    stream_free(&st);
}

static void every_version_1080p_ipc_kills(void **state)
{
    (void)state;
    char ep[PATH_MAX + 8];
    snprintf(ep, sizeof ep, "ipc://%s", tmp_path("big.ipc"));
    const char *src = tu_name("br-big-src"), *dst = tu_name("br-big-dst");
    const char *ls = tmp_path("big-send.log"), *lr = tmp_path("big-recv.log");
    const char *sargs[] = {"send", src, ep, "--stats", "0", NULL};
    const char *rargs[] = {"recv", ep, dst, "--slots", "32", "--stats", "0", NULL};
    struct stream st;
    uint64_t shape[3] = {FRAME_H, FRAME_W, 3};
    stream_init(&st, src, 48, 3, shape);
    assert_int_equal(st.n, (size_t)FRAME_H * FRAME_W * 3); /* 6,220,800 B for 1080p */
    pid_t r = spawn(lr, rargs);
    pid_t s = spawn(ls, sargs);
    stream_add_sink(&st, dst);
    warm_up(&st);

    /* phase 1: nothing killed, every version arrives */
    uint64_t first = st.published + 1;
    double rate = run(&st, 30, 1500);
    wait_for(&st, st.published);
    assert_true(st.sinks[0].first < first);
    assert_int_equal(st.sinks[0].gaps, 0);
    uint64_t phase1 = st.published - first + 1;

    /* phase 2: SIGKILL and restart, twice each side; drops allowed, tearing and repeats
     * never (a restarted receiver drops the newest version re-sent for it if the local
     * channel has it already: its predecessor republished it) */
    st.allow_gaps = 1;
    for (int round = 0; round < 2; round++) {
        run(&st, 30, 300);
        kill_child(s);
        run(&st, 30, 200); /* the source goes on publishing with no sender */
        s = spawn(ls, sargs);
        wait_resumed(&st);
        /* kill the receiver shortly after a publish: likely in the middle of its copy */
        publish_one(&st);
        struct timespec ts = {0, 1000000L * (1 + round)};
        nanosleep(&ts, NULL);
        kill_child(r);
        run(&st, 30, 200);
        r = spawn(lr, rargs);
        wait_resumed(&st);
        run(&st, 30, 300);
        wait_for(&st, st.published);
    }
    assert_int_equal(stop_child(s), 0);
    assert_int_equal(stop_child(r), 0);
    assert_int_equal(stat_u64(lr, "recv final", "bad"), 0);
    printf("# %dx%dx3: %.1f Hz achieved, %llu frames without loss, then 2 sender and 2 receiver "
           "kills: %llu frames received in all, %llu lost while a side was down\n",
           FRAME_H, FRAME_W, rate, (unsigned long long)phase1,
           (unsigned long long)st.sinks[0].count, (unsigned long long)st.sinks[0].gaps);
    stream_free(&st);
}

static void latest_drops_counted_tcp(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-lt-src"), *dst = tu_name("br-lt-dst");
    const char *ls = tmp_path("latest-send.log"), *lr = tmp_path("latest-recv.log");
    struct stream st;
    uint64_t shape[3] = {FRAME_H, FRAME_W, 3};
    stream_init(&st, src, 4, 3, shape);
    st.allow_gaps = 1;
    pid_t r = spawn(lr, (const char *[]){"recv", ep, dst, "--max-rate", "10", "--hwm", "2",
                                         "--stats", "0", "--mono", NULL});
    pid_t s = spawn(ls, (const char *[]){"send", src, ep, "--latest", "--stats", "0", NULL});
    stream_add_sink(&st, dst);
    warm_up(&st);
    run(&st, 30, 3000);
    /* the last version is the newest: it is never dropped, it arrives */
    wait_for(&st, st.published);
    assert_int_equal(stop_child(s), 0);
    assert_int_equal(stop_child(r), 0);
    uint64_t msgs = stat_u64(ls, "send final", "msgs");
    uint64_t dropped = stat_u64(ls, "send final", "dropped");
    uint64_t fv = stat_u64(ls, "send final", "first_version");
    uint64_t lv = stat_u64(ls, "send final", "last_version");
    assert_int_equal(lv, st.published);
    assert_int_equal(msgs + dropped, lv - fv + 1); /* every version is sent or counted */
    assert_true(dropped > 0);                      /* a 10 Hz consumer of a 30 Hz stream */
    assert_true(st.sinks[0].gaps > 0);
    assert_true(stat_u64(lr, "recv final", "version_gaps") > 0);
    assert_int_equal(stat_u64(lr, "recv final", "bad"), 0);
    printf("# --latest, 30 Hz source, 10 Hz receiver: sent %llu, dropped %llu (counted), "
           "received %llu intact\n",
           (unsigned long long)msgs, (unsigned long long)dropped,
           (unsigned long long)st.sinks[0].count);
    stream_free(&st);
}

/* 1 if `log` has a line starting with `prefix` that contains `needle`. */
static int log_has(const char *log, const char *prefix, const char *needle)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Wait (at most BUDGET_MS) for a line of `log` starting with `prefix` and containing
 * `needle`. */
static void wait_log(const char *log, const char *prefix, const char *needle)
{
    uint64_t t0 = ndshm_now_ns();
    while (!log_has(log, prefix, needle)) {
        if (ndshm_now_ns() - t0 > (uint64_t)BUDGET_MS * 1000000u) {
            dump_log(log);
            fail_msg("expected a line `%s ...%s...` in %s within %d s; none", prefix, needle, log,
                     BUDGET_MS / 1000);
        }
        tu_sleep_ms(5);
    }
}

/* A receiver that takes 5 s per message with a full queue (--max-rate 0.2 --hwm 2) while the
 * source publishes at 50 Hz. libzmq stops reading a connection whose receive queue is full;
 * with ZeroMQ heartbeats on the receiving side (3 s, as the bridge had them) the heartbeat
 * timed out during that pause and libzmq aborted the receiver on `_input_stopped` (libzmq
 * issue #3937) at the second message, every time. Now the receiver lives through several such
 * pauses, on one connection (no reconnect, nothing lost on the wire), and stops cleanly. */
static void slow_consumer_survives_tcp(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-slow-src"), *dst = tu_name("br-slow-dst");
    const char *ls = tmp_path("slow-send.log"), *lr = tmp_path("slow-recv.log");
    struct stream st;
    uint64_t shape[1] = {4096};
    stream_init(&st, src, 64, 1, shape);
    st.allow_gaps = 1; /* back-pressure: the source ring laps the sender, counted */
    pid_t r = spawn(lr, (const char *[]){"recv", ep, dst, "--max-rate", "0.2", "--hwm", "2",
                                         "--stats", "0", "--mono", NULL});
    pid_t s = spawn(ls, (const char *[]){"send", src, ep, "--stats", "0", NULL});
    stream_add_sink(&st, dst);
    warm_up(&st);
    /* 11 s: two 5 s pauses, each longer than the old 3 s heartbeat timeout */
    run(&st, 50, 11000);
    int status;
    if (waitpid(r, &status, WNOHANG) == r) {
        dump_log(lr);
        fail_msg("expected the slow receiver to be running after 11 s; it %s %d",
                 WIFSIGNALED(status) ? "died of signal" : "exited with status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    assert_int_equal(stop_child(r), 0);
    assert_int_equal(stop_child(s), 0);
    drain_all(&st);
    if (st.sinks[0].count < 2)
        fail_msg("expected at least 2 versions at the slow receiver (one per 5 s); got %llu",
                 (unsigned long long)st.sinks[0].count);
    assert_int_equal(stat_u64(lr, "recv final", "bad"), 0);
    assert_int_equal(stat_u64(lr, "recv final", "errors"), 0);
    /* one connection all along: nothing lost on the wire, no second handshake */
    assert_int_equal(stat_u64(lr, "recv final", "net_dropped"), 0);
    assert_int_equal(stat_u64(lr, "recv final", "connects"), 1);
    assert_int_equal(stat_u64(lr, "recv final", "sessions"), 1);
    printf("# slow receiver (5 s per message, queue of 2) under a 50 Hz stream: alive after "
           "11 s, %llu versions republished, one connection\n",
           (unsigned long long)st.sinks[0].count);
    stream_free(&st);
}

/* Connection and subscription are visible, and a receiver that subscribes after the last
 * publish still gets the newest version: 5 versions published, then the sender, then a
 * receiver, then a second one. Each receiver prints `connected` and `subscribed` with
 * lost_before_subscribe = 4 (also as JSON), gets version 5 (re-sent by the sender for the new
 * subscriber), and the first receiver drops the copy made for the second as a duplicate. */
static void late_subscriber_gets_newest_tcp(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-late-src"), *d1 = tu_name("br-late-d1"),
               *d2 = tu_name("br-late-d2");
    const char *ls = tmp_path("late-send.log"), *l1 = tmp_path("late-r1.log"),
               *l2 = tmp_path("late-r2.log");
    struct stream st;
    uint64_t shape[1] = {256};
    stream_init(&st, src, 16, 1, shape);
    for (int i = 0; i < 5; i++)
        publish_one(&st);
    pid_t s = spawn(ls, (const char *[]){"send", src, ep, "--stats", "0", NULL});
    pid_t r1 = spawn(l1, (const char *[]){"recv", ep, d1, "--stats", "0.05", NULL});
    stream_add_sink(&st, d1);
    wait_for(&st, 5);
    pid_t r2 = spawn(l2, (const char *[]){"recv", ep, d2, "--stats", "0", "--json", NULL});
    stream_add_sink(&st, d2);
    wait_for(&st, 5);
    /* the sender re-sends version 5 for the second subscriber; the first receiver, which has
     * it, drops that copy: wait until its stats say so */
    wait_log(l1, "recv stats", " duplicates=1 ");
    assert_int_equal(stop_child(r2), 0);
    assert_int_equal(stop_child(r1), 0);
    assert_int_equal(stop_child(s), 0);
    drain_all(&st);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(st.sinks[k].first, 5);
        assert_int_equal(st.sinks[k].count, 1); /* exactly once, never the duplicate */
    }
    if (!log_has(l1, "recv connected", "endpoint=tcp://127.0.0.1:") ||
        !log_has(l1, "recv subscribed", "version=5 lost_before_subscribe=4")) {
        dump_log(l1);
        fail_msg("expected `recv connected endpoint=...` and `recv subscribed ... version=5 "
                 "lost_before_subscribe=4` in the first receiver's output");
    }
    if (!log_has(l2, "{\"side\":\"recv\",\"what\":\"connected\"", "\"endpoint\":\"tcp://") ||
        !log_has(l2, "{\"side\":\"recv\",\"what\":\"subscribed\"",
                 "\"version\":5,\"lost_before_subscribe\":4") ||
        !log_has(l2, "{\"side\":\"recv\",\"what\":\"final\"", "\"lost_before_subscribe\":4")) {
        dump_log(l2);
        fail_msg("expected the JSON events connected and subscribed (version 5, "
                 "lost_before_subscribe 4) and the final stats in the second receiver's output");
    }
    assert_int_equal(stat_u64(l1, "recv final", "first_version"), 5);
    assert_int_equal(stat_u64(l1, "recv final", "lost_before_subscribe"), 4);
    assert_int_equal(stat_u64(l1, "recv final", "connected"), 1);
    assert_int_equal(stat_u64(l1, "recv final", "duplicates"), 1);
    assert_int_equal(stat_u64(l1, "recv final", "msgs"), 1);
    assert_int_equal(stat_u64(ls, "send final", "joins"), 2);
    assert_int_equal(stat_u64(ls, "send final", "msgs"), 1);
    stream_free(&st);
}

/* A sender killed and restarted finds the newest version its predecessor sent and sends it
 * again (flagged RESENT): the receiver drops it, so the local channel never holds a version
 * twice, and the stream goes on. */
static void restarted_sender_repeats_nothing_tcp(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-rs-src"), *dst = tu_name("br-rs-dst");
    const char *ls = tmp_path("rs-send.log"), *lr = tmp_path("rs-recv.log");
    const char *sargs[] = {"send", src, ep, "--stats", "0", NULL};
    struct stream st;
    uint64_t shape[1] = {128};
    stream_init(&st, src, 16, 1, shape);
    for (int i = 0; i < 3; i++)
        publish_one(&st);
    pid_t r = spawn(lr, (const char *[]){"recv", ep, dst, "--stats", "0.05", NULL});
    pid_t s = spawn(ls, sargs);
    stream_add_sink(&st, dst);
    wait_for(&st, 3);
    kill_child(s);
    /* the new sender reads the channel only once the receiver has subscribed again, so its
     * first message, version 3 again, reaches the receiver as a repeat (without the wait it
     * would go to nobody and the receiver would get the copy made for a new subscriber) */
    s = spawn(ls, (const char *[]){"send", src, ep, "--stats", "0", "--wait-subscriber", NULL});
    wait_log(lr, "recv stats", " duplicates=1 ");
    publish_one(&st);
    wait_for(&st, 4);
    assert_int_equal(stop_child(s), 0);
    assert_int_equal(stop_child(r), 0);
    drain_all(&st);
    assert_int_equal(st.sinks[0].first, 3);
    assert_int_equal(st.sinks[0].count, 2); /* 3 and 4, each once (a repeat fails drain) */
    assert_int_equal(stat_u64(lr, "recv final", "duplicates"), 1);
    assert_int_equal(stat_u64(lr, "recv final", "msgs"), 2);
    assert_int_equal(stat_u64(lr, "recv final", "sessions"), 2);
    assert_int_equal(stat_u64(lr, "recv final", "version_gaps"), 0);
    stream_free(&st);
}

/* Extras cross bridges, and survive a chain of two: the source publishes with a user
 * timestamp, a tag and metadata (up to 64 KiB); it is bridged to d1, and d1 is bridged on to
 * d2. At d1 and at d2 every version carries the source's version number and publish time
 * (origin_version / origin_ns: those of the first channel, not d1's) and its user_ns,
 * user_tag and metadata bytes unchanged; the local numbering differs (d1 starts at 1 where
 * the source was at 10). The first receiver is then killed and restarted: nothing repeats. */
static void extras_cross_two_bridges_tcp(void **state)
{
    (void)state;
    char ep1[64], ep2[64];
    snprintf(ep1, sizeof ep1, "tcp://127.0.0.1:%d", free_port());
    snprintf(ep2, sizeof ep2, "tcp://127.0.0.1:%d", free_port());
    const char *src = tu_name("br-x-src"), *d1 = tu_name("br-x-d1"), *d2 = tu_name("br-x-d2");
    const char *ls1 = tmp_path("x-send1.log"), *lr1 = tmp_path("x-recv1.log"),
               *ls2 = tmp_path("x-send2.log"), *lr2 = tmp_path("x-recv2.log");
    const char *r1args[] = {"recv", ep1, d1, "--slots", "64", "--stats", "0", NULL};
    struct stream st;
    uint64_t shape[2] = {16, 16};
    stream_init(&st, src, 64, 2, shape);
    st.extras = 1;
    for (int i = 0; i < 10; i++)
        publish_one(&st);
    pid_t s1 = spawn(ls1, (const char *[]){"send", src, ep1, "--stats", "0", NULL});
    pid_t r1 = spawn(lr1, r1args);
    pid_t s2 = spawn(ls2, (const char *[]){"send", d1, ep2, "--stats", "0", NULL});
    pid_t r2 = spawn(lr2, (const char *[]){"recv", ep2, d2, "--slots", "64", "--stats", "0", NULL});
    stream_add_sink(&st, d1);
    stream_add_sink(&st, d2);
    wait_for(&st, 10);
    uint64_t first = st.published + 1;
    run(&st, 50, 600);
    wait_for(&st, st.published);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(st.sinks[k].first, 10);
        assert_int_equal(st.sinks[k].gaps, 0);
    }
    /* d1 numbers its own versions: version 1 there is origin version 10 */
    assert_int_equal(ndshm_reader_version(st.sinks[0].r), st.published - 10 + 1);
    /* a receiver restart: the newest version, re-sent for the new subscription, is dropped */
    kill_child(r1);
    r1 = spawn(lr1, r1args);
    wait_resumed(&st);
    assert_int_equal(stop_child(r2), 0);
    assert_int_equal(stop_child(s2), 0);
    assert_int_equal(stop_child(r1), 0);
    assert_int_equal(stop_child(s1), 0);
    drain_all(&st);
    for (int k = 0; k < 2; k++)
        assert_int_equal(st.sinks[k].repeats, 0); /* drain fails on a repeat anyway */
    printf("# extras (user_ns, user_tag, 0..64 KiB metadata) and origin version/time across two "
           "bridges: %llu versions checked at each hop\n",
           (unsigned long long)(st.published - first + 2));
    stream_free(&st);
}

int main(void)
{
    tu_init();
    owner = getpid();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ndshm-bridge-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(at_exit_cleanup);
    int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_fatal);
    find_bridge();
    setenv("NDSHM_BRIDGE_PDEATHSIG", "1", 1);
    if (access(bridge_bin, X_OK) != 0) {
        fprintf(stderr, "ndshm-bridge not found at %s (set NDSHM_BRIDGE)\n", bridge_bin);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_version_small_tcp),
        cmocka_unit_test(every_version_1080p_ipc_kills),
        cmocka_unit_test(latest_drops_counted_tcp),
        cmocka_unit_test(slow_consumer_survives_tcp),
        cmocka_unit_test(late_subscriber_gets_newest_tcp),
        cmocka_unit_test(restarted_sender_repeats_nothing_tcp),
        cmocka_unit_test(extras_cross_two_bridges_tcp),
    };
    if (getenv("NDSHM_TEST_FILTER")) /* e.g. "*latest*" */
        cmocka_set_test_filter(getenv("NDSHM_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed) { /* the children's side of the story */
        DIR *d = opendir(tmpdir);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL)
            if (strstr(e->d_name, ".log"))
                dump_log(tmp_path(e->d_name));
        if (d)
            closedir(d);
    }
    return failed;
}
