/*
 * ndshm-bridge: carry ndshm channels between hosts over ZeroMQ.
 *
 *   ndshm-bridge send NAME ENDPOINT [--latest] [options]   channel -> network (PUB)
 *   ndshm-bridge recv ENDPOINT NAME [options]              network -> channel (SUB)
 *
 * Each version travels as one ndshm wire message (docs/wire.md) in two ZeroMQ frames: the
 * header part and the payload. Also run as `ndshm bridge ...` by the ndshm tool.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bridge.h"

volatile sig_atomic_t bridge_stop;

#if defined(__SANITIZE_THREAD__)
#define BRIDGE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BRIDGE_TSAN 1
#endif
#endif
#ifdef BRIDGE_TSAN
/* libzmq is not instrumented: ThreadSanitizer does not see the atomics its lock-free queues
 * use between the application thread and its I/O thread, and reports their hand-over as
 * races inside libzmq. Ours (the pool and its mutex) stay checked. called_from_lib: the
 * interceptors libzmq calls (recv, send, memcpy on message buffers) record nothing either;
 * otherwise every received payload read by recv.c counted as a race with the I/O thread's
 * recv(), and merely processing those reports (suppressed, one per new buffer address) took
 * seconds per message: a receiver under ThreadSanitizer fell 10 s behind a 30 Hz stream. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:libzmq.so\ncalled_from_lib:libzmq.so\n";
}
#endif

static void on_stop(int sig)
{
    (void)sig;
    bridge_stop = 1;
}

void bridge_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ndshm-bridge: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void bridge_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL); /* a signal cuts it short: the caller checks bridge_stop */
}

int bridge_socket_setup(void *sock, int hwm, int sending, double peer_timeout_s)
{
    /* TCP keepalive: the kernel answers probes whatever the program does, so it finds a
     * vanished peer (host down, cable pulled) on an idle connection and never a slow one. */
    int zero = 0, one = 1, idle = 10, intvl = 2, cnt = 5;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_INTVL, &intvl, sizeof intvl) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt) != 0)
        return -1;
    /* The receiving side runs no heartbeat timer at all. libzmq's engine stops reading the
     * connection while the socket's receive queue is full (a slow consumer: back-pressure),
     * so it sees neither PONGs nor data; a heartbeat timeout (its own, or the TTL a peer puts
     * in its PINGs) then replaces the engine while a stale "queue has room again" command is
     * in flight, and libzmq aborts on `_input_stopped` (libzmq issue #3937, PR #4830). So:
     * the receiver sends no PINGs (IVL 0) and the sender's PINGs carry no TTL (TTL 0). The
     * sender still drops a receiver that answers nothing for peer_timeout_s (a dead host in
     * every-version mode would otherwise hold the stream until TCP gives up, ~15 min). */
    if (sending && peer_timeout_s > 0) {
        double t_ms = peer_timeout_s * 1000.0;
        int ivl = t_ms < 3000 ? (int)(t_ms / 3) : 1000, timeout = (int)t_ms, ttl = 0;
        if (ivl < 1)
            ivl = 1;
        if (zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) != 0 ||
            zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout) != 0 ||
            zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl) != 0)
            return -1;
    }
    return 0;
}

void out_begin(struct out_line *l, int json, const char *side, const char *what)
{
    l->json = json;
    l->n = 0;
    l->buf[0] = 0;
    if (json)
        l->n =
            (size_t)snprintf(l->buf, sizeof l->buf, "{\"side\":\"%s\",\"what\":\"%s\"", side, what);
    else
        l->n = (size_t)snprintf(l->buf, sizeof l->buf, "%s %s", side, what);
}

static void out_add(struct out_line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(struct out_line *l, const char *fmt, ...)
{
    if (l->n >= sizeof l->buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->buf + l->n, sizeof l->buf - l->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n += (size_t)k;
}

void out_u64(struct out_line *l, const char *key, uint64_t v)
{
    out_add(l, l->json ? ",\"%s\":%llu" : " %s=%llu", key, (unsigned long long)v);
}

void out_num(struct out_line *l, const char *key, double v, int decimals)
{
    out_add(l, l->json ? ",\"%s\":%.*f" : " %s=%.*f", key, decimals, v);
}

void out_str(struct out_line *l, const char *key, const char *v)
{
    if (!l->json) {
        out_add(l, " %s=%s", key, v);
        return;
    }
    out_add(l, ",\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            out_add(l, "\\%c", *p);
        else if (*p < 0x20)
            out_add(l, "\\u%04x", *p);
        else
            out_add(l, "%c", *p);
    }
    out_add(l, "\"");
}

void out_end(struct out_line *l)
{
    if (l->json)
        out_add(l, "}");
    if (l->n >= sizeof l->buf)
        l->n = sizeof l->buf - 1;
    l->buf[l->n] = 0;
    puts(l->buf);
}

static char ipc_path[4096];
static ino_t ipc_ino;
static dev_t ipc_dev;

int bridge_attach(void *sock, const struct bridge_opts *o)
{
    int rc = o->bind ? zmq_bind(sock, o->endpoint) : zmq_connect(sock, o->endpoint);
    if (rc != 0) {
        bridge_log("%s %s: %s", o->bind ? "bind" : "connect", o->endpoint,
                   zmq_strerror(zmq_errno()));
        return -1;
    }
    char last[256] = "";
    size_t n = sizeof last;
    if (o->bind && zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &n) == 0)
        printf("listening %s\n", last); /* the real port when ENDPOINT asked for '*' */
    /* libzmq leaves the socket file of a bound ipc:// endpoint behind: remember which file is
     * ours, to remove it at exit (bridge_detach). */
    struct stat st;
    if (o->bind && !strncmp(o->endpoint, "ipc://", 6) && o->endpoint[6] != '@' &&
        strlen(o->endpoint + 6) < sizeof ipc_path && stat(o->endpoint + 6, &st) == 0) {
        snprintf(ipc_path, sizeof ipc_path, "%s", o->endpoint + 6);
        ipc_ino = st.st_ino;
        ipc_dev = st.st_dev;
    }
    return 0;
}

void bridge_detach(void)
{
    struct stat st;
    /* Only if it is still the file this process bound: a successor may have bound anew. */
    if (ipc_path[0] && stat(ipc_path, &st) == 0 && st.st_ino == ipc_ino && st.st_dev == ipc_dev)
        unlink(ipc_path);
    ipc_path[0] = 0;
}

uint64_t bridge_session_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id || id == 0)
        id = ndshm_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15u;
    return id;
}

void lat_add(struct lat_stats *s, uint64_t ns)
{
    if (ns > s->max)
        s->max = ns;
    if (s->n == s->cap) {
        if (s->cap >= (1u << 20)) /* 1 Mi samples per interval are plenty: keep the first */
            return;
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t lat_pct(struct lat_stats *s, double p)
{
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp_u64);
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return s->v[i < s->n ? i : s->n - 1];
}

void lat_reset(struct lat_stats *s)
{
    s->n = 0;
    s->max = 0;
}

void lat_free(struct lat_stats *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ndshm-bridge send NAME ENDPOINT [--latest] [options]\n"
            "       ndshm-bridge recv ENDPOINT NAME [options]\n"
            "\n"
            "Carries an ndshm channel over ZeroMQ (PUB/SUB): `send` reads channel NAME and\n"
            "publishes each version on ENDPOINT; `recv` subscribes to ENDPOINT and republishes\n"
            "every version into the local channel NAME (created if missing, same dtype and\n"
            "shape, re-allocated as the source does). Several receivers may subscribe to one\n"
            "sender; ZeroMQ reconnects when either side restarts.\n"
            "\n"
            "ENDPOINT: tcp://HOST:PORT, tcp://*:PORT (bind on all interfaces), ipc:///path.\n"
            "By default `send` binds and `recv` connects.\n"
            "\n"
            "options:\n"
            "  --latest         send: only the newest version; under back-pressure stale\n"
            "                   versions are dropped and counted (camera streams).\n"
            "                   recv: republish only the newest message queued.\n"
            "                   Without it, send forwards every version in order.\n"
            "  --bind           bind ENDPOINT (default for send)\n"
            "  --connect        connect to ENDPOINT (default for recv)\n"
            "  --hwm N          ZeroMQ high-water mark in messages (default: send 1000,\n"
            "                   send --latest 2, recv 16)\n"
            "  --queue-mb MB    send: at most MB MiB of payload queued in ZeroMQ (default\n"
            "                   64; one message always fits); beyond it, back-pressure\n"
            "  --stats SECONDS  print a stats line every SECONDS (default 1; 0 = at exit only)\n"
            "  --slots N        recv: ring slots of the local channel (default 4)\n"
            "  --max-rate HZ    recv: republish at most HZ versions per second (a slow link or\n"
            "                   consumer); back-pressure reaches the sender\n"
            "  --origin NAME2   recv: also publish, per version, a uint64 array [local version,\n"
            "                   origin version, origin publish_ns, origin publish_real_ns,\n"
            "                   sender session, stream_seq] into channel NAME2\n"
            "  --mono           recv: latency on CLOCK_MONOTONIC (only when the sender runs on\n"
            "                   this host); default CLOCK_REALTIME (hosts synchronised by\n"
            "                   PTP or chrony)\n"
            "  --peer-timeout S send: drop a receiver that answers nothing for S seconds\n"
            "                   (default 30; 0 = never). A receiver whose queue stays full\n"
            "                   (a slow consumer) answers nothing meanwhile, so S bounds how\n"
            "                   long a dead receiver can hold the stream, and how slow a live\n"
            "                   one may be\n"
            "  --wait-subscriber  send: start reading the channel only once a first receiver\n"
            "                   has subscribed (that receiver then gets every version from\n"
            "                   the channel's newest one on)\n"
            "  --json           stats and events as one JSON object per line\n"
            "  -h, --help       this help\n"
            "\n"
            "Output: one `key=value` stats line on stdout per interval and at exit (SIGINT or\n"
            "SIGTERM ends the program cleanly), and a line per event (recv: connected,\n"
            "disconnected, subscribed; send: subscriber joined or left). A new subscriber\n"
            "first gets the newest version sent so far. Exit status: 0, 1 on error, 2 on\n"
            "bad usage.\n"
            "Details: docs/bridge.md, wire format: docs/wire.md.\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* For test harnesses: die with the parent process. */
    if (getenv("NDSHM_BRIDGE_PDEATHSIG")) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            return 1;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    int is_send = !strcmp(argv[1], "send");
    if (!is_send && strcmp(argv[1], "recv") != 0) {
        fprintf(stderr, "ndshm-bridge: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    struct bridge_opts o = {0};
    o.bind = is_send;
    o.hwm = -1;
    o.stats_s = 1.0;
    o.peer_timeout_s = 30;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        double v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--latest")) {
            o.latest = 1;
        } else if (!strcmp(a, "--bind")) {
            o.bind = 1;
        } else if (!strcmp(a, "--connect")) {
            o.bind = 0;
        } else if (!strcmp(a, "--mono")) {
            o.mono = 1;
        } else if (!strcmp(a, "--json")) {
            o.json = 1;
        } else if (!strcmp(a, "--wait-subscriber")) {
            o.wait_subscriber = 1;
        } else if (i + 1 < argc && !strcmp(a, "--peer-timeout")) {
            if (parse_num(argv[++i], 0, 86400, &v))
                goto bad_value;
            o.peer_timeout_s = v;
        } else if (i + 1 < argc && !strcmp(a, "--hwm")) {
            if (parse_num(argv[++i], 1, 1e6, &v))
                goto bad_value;
            o.hwm = (int)v;
        } else if (i + 1 < argc && !strcmp(a, "--queue-mb")) {
            if (parse_num(argv[++i], 1, 1 << 20, &v))
                goto bad_value;
            o.queue_bytes = (uint64_t)(v * 1048576.0);
        } else if (i + 1 < argc && !strcmp(a, "--stats")) {
            if (parse_num(argv[++i], 0, 86400, &v))
                goto bad_value;
            o.stats_s = v;
        } else if (i + 1 < argc && !strcmp(a, "--slots")) {
            if (parse_num(argv[++i], 1, NDSHM_MAX_SLOTS, &v))
                goto bad_value;
            o.slots = (uint32_t)v;
        } else if (i + 1 < argc && !strcmp(a, "--max-rate")) {
            if (parse_num(argv[++i], 1e-3, 1e9, &v))
                goto bad_value;
            o.max_rate = v;
        } else if (i + 1 < argc && !strcmp(a, "--origin")) {
            o.origin = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ndshm-bridge: unknown option or missing value: %s\n", a);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "ndshm-bridge: too many arguments: %s\n", a);
            return 2;
        }
        continue;
    bad_value:
        fprintf(stderr, "ndshm-bridge: bad value for %s: %s\n", a, argv[i]);
        return 2;
    }
    if (npos != 2) {
        usage(stderr);
        return 2;
    }
    o.name = is_send ? pos[0] : pos[1];
    o.endpoint = is_send ? pos[1] : pos[0];
    int rc = ndshm_name_check(o.name);
    if (rc == NDSHM_OK && o.origin)
        rc = ndshm_name_check(o.origin);
    if (rc != NDSHM_OK) {
        fprintf(stderr, "ndshm-bridge: %s\n", ndshm_strerror(rc));
        return 2;
    }
    if (o.hwm < 0)
        o.hwm = !is_send ? 16 : o.latest ? 2 : 1000;
    if (!o.queue_bytes)
        o.queue_bytes = 64u << 20;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: blocking calls return EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    return is_send ? bridge_send(&o) : bridge_recv(&o);
}
