/*
 * ndshm-bench: the two-process latency harness.
 *
 * Writer and reader run in separate processes (fork) pinned to different CPUs. For each row
 * (transport x mode x payload size) the writer sends one message, waits until the reader has
 * it, waits a gap, and sends the next: one-way latency = the reader's CLOCK_MONOTONIC once it
 * holds the whole array (copy done, or view obtained and checked) minus the writer's clock
 * taken just before it started sending (before the copy in). Then the writer sends back to
 * back for a while and the reader's receive rate is the row's maximum sustainable rate.
 *
 * References are measured in the same run, so results are ratios that survive a noisy
 * machine: the cache-line ping-pong one-way time (measured before and after every row: the
 * virtual CPUs switch between a fast and a slow cross-core state, and a row whose state
 * changed is repeated), memcpy of each size, a bare futex wake-up, a pipe, a UNIX domain
 * socket and ZeroMQ ipc:// carrying the same payloads.
 *
 * Output: progress on stderr, a Markdown report on stdout (or --md FILE), --json FILE for
 * machines, --dat FILE for gnuplot (bench/plot.gp).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef NDSHM_BENCH_ZMQ
#include <zmq.h>
#endif

#include "ndshm/ndshm.h"

/* ----- configuration --------------------------------------------------------------------- */

#define MAX_SAMPLES   20000
#define WARMUP        8
#define FAST_LIMIT_NS 170.0 /* cache-line one-way below this: fast state */

static const uint64_t SIZES[] = {64, 4096, 65536, 1048576, 6220800, 33177600};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

enum transport { T_NDSHM, T_PIPE, T_UNIX, T_ZMQ, T_SEQ };
static const char *const TNAME[] = {"ndshm", "pipe", "unix", "zmq", "seqlock"};

struct rowspec {
    enum transport t;
    int wait; /* ndshm: blocking ndshm_wait instead of busy-poll */
    int zc;   /* ndshm: loan+commit and view instead of copies */
    const char *label;
};
static const struct rowspec ROWS[] = {
    {T_NDSHM, 0, 0, "ndshm copy, busy-poll"},
    {T_SEQ, 0, 0, "bare seqlock copy, busy-poll"},
    {T_NDSHM, 0, 1, "ndshm zero-copy, busy-poll"},
    {T_SEQ, 0, 1, "bare seqlock zero-copy, busy-poll"},
    {T_NDSHM, 1, 0, "ndshm copy, wait"},
    {T_NDSHM, 1, 1, "ndshm zero-copy, wait"},
    {T_PIPE, 1, 0, "pipe"},
    {T_UNIX, 1, 0, "UNIX socket"},
    {T_ZMQ, 1, 0, "ZeroMQ ipc"},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

static struct {
    int quick;
    const char *json;
    const char *md;
    const char *dat;
    int cpu_w, cpu_r;
    double budget_s;    /* latency phase per row */
    double rate_s;      /* rate phase per row */
    unsigned size_mask; /* --sizes: bit i = SIZES[i]; 0 = default set */
    uint32_t slots;     /* ring slots of the ndshm channels and the bare seqlock (--slots) */
} cfg;

/* ----- small helpers --------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "ndshm-bench: %s: %s (%d)\n", what, ndshm_strerror(rc), rc);
    exit(1);
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0)
        fprintf(stderr, "ndshm-bench: sched_setaffinity(%d): %s\n", cpu, strerror(errno));
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_until(uint64_t t)
{
    while (now_ns() < t)
        relax();
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, n ? n : 64))
        die("posix_memalign", NDSHM_E_NOMEM);
    memset(p, 0x5a, n); /* fault every page in */
    return p;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct stats {
    uint64_t n;
    double min, p50, p99, p999, max; /* ns */
};

static struct stats stats_of(uint64_t *v, uint64_t n)
{
    struct stats s = {0};
    if (!n)
        return s;
    qsort(v, n, sizeof *v, cmp_u64);
    s.n = n;
    s.min = (double)v[0];
    s.max = (double)v[n - 1];
    s.p50 = (double)v[(n - 1) / 2];
    s.p99 = (double)v[(uint64_t)((double)(n - 1) * 0.99)];
    s.p999 = (double)v[(uint64_t)((double)(n - 1) * 0.999)];
    return s;
}

static const char *fmt_size(uint64_t n)
{
    static char buf[8][32];
    static int k;
    char *b = buf[k++ & 7];
    if (n == 6220800)
        snprintf(b, 32, "6,220,800 B (1080p)");
    else if (n == 33177600)
        snprintf(b, 32, "33,177,600 B (4K)");
    else if (n >= 1048576)
        snprintf(b, 32, "%" PRIu64 " MiB", n >> 20);
    else if (n >= 1024)
        snprintf(b, 32, "%" PRIu64 " KiB", n >> 10);
    else
        snprintf(b, 32, "%" PRIu64 " B", n);
    return b;
}

static const char *fmt_ns(double ns)
{
    static char buf[16][32];
    static int k;
    char *b = buf[k++ & 15];
    if (ns <= 0)
        snprintf(b, 32, "–");
    else if (ns < 1000)
        snprintf(b, 32, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(b, 32, "%.*f µs", ns < 1e4 ? 2 : 1, ns / 1e3);
    else
        snprintf(b, 32, "%.*f ms", ns < 1e7 ? 2 : 1, ns / 1e6);
    return b;
}

/* ----- memory shared by the writer and the reader processes ------------------------------ */

struct shared {
    _Alignas(64) _Atomic uint64_t pp;    /* cache-line ping-pong */
    _Alignas(64) _Atomic uint64_t ack;   /* reader: last message index it holds */
    _Alignas(64) _Atomic uint64_t phase; /* writer -> reader */
    _Atomic uint64_t stop;               /* reader -> writer: end of the rate phase */
    _Atomic uint64_t ready;              /* reader attached */
    _Atomic uint64_t received;           /* rate phase: messages the reader got */
    _Atomic uint64_t contended;          /* rate phase: CONTENDED / OVERWRITTEN */
    _Atomic uint64_t errors;             /* wrong content, unexpected statuses */
    _Atomic uint64_t rate_ns;            /* rate phase duration as measured by the reader */
    _Alignas(64) _Atomic uint32_t futex; /* bare futex reference */
    _Alignas(64) _Atomic uint64_t t0[MAX_SAMPLES + WARMUP + 2]; /* writer stamp per message */
    uint64_t lat[MAX_SAMPLES + WARMUP + 2];                     /* reader result per message */
    uint64_t wside[MAX_SAMPLES + WARMUP + 2];                   /* writer's own cost */
};
static struct shared *sh;

static void shared_reset(void)
{
    atomic_store(&sh->ack, 0);
    atomic_store(&sh->phase, 0);
    atomic_store(&sh->stop, 0);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->received, 0);
    atomic_store(&sh->contended, 0);
    atomic_store(&sh->errors, 0);
    atomic_store(&sh->rate_ns, 0);
    atomic_store(&sh->futex, 0);
}

/* Wait for a shared counter to reach a value; 0 on success, -1 on timeout (10 s). */
static int await_ge(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t deadline = now_ns() + 10000000000ull;
    unsigned i = 0;
    while (atomic_load_explicit(p, memory_order_acquire) < v) {
        relax();
        if ((++i & 1023) == 0 && now_ns() > deadline)
            return -1;
    }
    return 0;
}

/* ----- reference: cache-line ping-pong ---------------------------------------------------- */

static void *pp_thread(void *arg)
{
    uint64_t rounds = *(uint64_t *)arg;
    pin(cfg.cpu_r);
    for (uint64_t i = 1; i <= rounds; i++) {
        while (atomic_load_explicit(&sh->pp, memory_order_acquire) != 2 * i - 1)
            relax();
        atomic_store_explicit(&sh->pp, 2 * i, memory_order_release);
    }
    return NULL;
}

/* One-way time of a cache line between the two CPUs: half a round trip, median of batches. */
static double pingpong(void)
{
    enum { BATCHES = 7, PER = 400 };
    uint64_t rounds = BATCHES * PER;
    atomic_store(&sh->pp, 0);
    pthread_t th;
    pin(cfg.cpu_w);
    pthread_create(&th, NULL, pp_thread, &rounds);
    uint64_t v[BATCHES];
    uint64_t i = 1;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t = now_ns();
        for (int k = 0; k < PER; k++, i++) {
            atomic_store_explicit(&sh->pp, 2 * i - 1, memory_order_release);
            while (atomic_load_explicit(&sh->pp, memory_order_acquire) != 2 * i)
                relax();
        }
        v[b] = (now_ns() - t) / (2 * PER);
    }
    pthread_join(th, NULL);
    struct stats s = stats_of(v, BATCHES);
    return s.p50;
}

static const char *state_of(double cl)
{
    return cl < FAST_LIMIT_NS ? "fast" : "slow";
}

/* ----- reference: memcpy ------------------------------------------------------------------ */

static double memcpy_ns(uint64_t size)
{
    pin(cfg.cpu_w);
    char *a = xalloc(size), *b = xalloc(size);
    uint64_t v[64];
    int n = size >= 6000000 ? (cfg.quick ? 7 : 15) : 41;
    for (int i = 0; i < 3; i++)
        memcpy(b, a, size);
    for (int i = 0; i < n; i++) {
        uint64_t t = now_ns();
        memcpy(b, a, size);
        __asm__ __volatile__("" ::"r"(b) : "memory");
        v[i] = now_ns() - t;
    }
    free(a);
    free(b);
    return stats_of(v, (uint64_t)n).p50;
}

struct memref {
    uint64_t size;
    double ns;
    double cl_before, cl_after;
    const char *state;
};
static struct memref mem[NSIZES];
static const struct memref *find_mem(uint64_t size);

static void stamp(unsigned char *p, uint64_t size, uint64_t idx);
static int stamp_ok(const unsigned char *p, uint64_t size, uint64_t idx);

/* ----- reference: a bare seqlock ring --------------------------------------------------------
 * The floor a seqlock channel can reach on this machine: the same ring as ndshm (the same slot
 * count, slot v % N, the payload 64-byte aligned after a one-line header, page aligned from 64
 * KiB, in a tmpfs-backed mapping with its pages reserved) and nothing else: no header
 * validation, no info, no RCU, no clock reads. Writer: seq odd (relaxed) + release fence, the
 * version word and the payload, seq even (release), head (release). Reader: head (acquire), seq
 * (acquire), version, payload, acquire fence, seq again. */
struct seqslot {
    _Alignas(64) _Atomic uint64_t seq;
    _Atomic uint64_t version;
};
struct seqreg {
    unsigned char *base; /* line 0: head; slots from 4096 */
    uint64_t map_size, stride, poff;
    uint32_t slots;
};

static void seq_create(struct seqreg *q, uint64_t size, uint32_t slots)
{
    q->slots = slots;
    q->poff = size >= 65536 ? 4096 : 64;
    uint64_t align = size >= 65536 ? 4096 : 64;
    q->stride = (q->poff + size + align - 1) / align * align;
    q->map_size = 4096 + (uint64_t)slots * q->stride;
    int fd = (int)syscall(SYS_memfd_create, "ndshm-bench-seqlock", 0u);
    if (fd < 0 || ftruncate(fd, (off_t)q->map_size) != 0 ||
        posix_fallocate(fd, 0, (off_t)q->map_size) != 0)
        die("memfd", NDSHM_E_SYS);
    q->base = mmap(NULL, q->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (q->base == MAP_FAILED)
        die("mmap seqlock", NDSHM_E_SYS);
}

static void seq_destroy(struct seqreg *q)
{
    if (q->base)
        munmap(q->base, q->map_size);
    q->base = NULL;
}

static inline _Atomic uint64_t *seq_head(const struct seqreg *q)
{
    return (_Atomic uint64_t *)(void *)q->base;
}

static inline struct seqslot *seq_slot(const struct seqreg *q, uint64_t v)
{
    return (struct seqslot *)(void *)(q->base + 4096 + (v % q->slots) * q->stride);
}

/* Publish version v: copy size bytes from src, or (src NULL: zero-copy) only the two stamp
 * words in place. */
static void seq_write(struct seqreg *q, uint64_t v, const void *src, uint64_t size)
{
    struct seqslot *s = seq_slot(q, v);
    unsigned char *p = (unsigned char *)s + q->poff;
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->version, v, memory_order_relaxed);
    if (src)
        memcpy(p, src, size);
    else {
        memcpy(p, &v, 8);
        memcpy(p + size - 8, &v, 8);
    }
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
    atomic_store_explicit(seq_head(q), v, memory_order_release);
}

/* The newest version if newer than *last: 1 (copied into dst, or with dst NULL checked in place
 * by its stamp words), 0 nothing new, 2 torn (retry). */
static int seq_read(struct seqreg *q, uint64_t *last, void *dst, uint64_t size, uint64_t *idx)
{
    uint64_t h = atomic_load_explicit(seq_head(q), memory_order_acquire);
    if (h <= *last)
        return 0;
    struct seqslot *s = seq_slot(q, h);
    const unsigned char *p = (const unsigned char *)s + q->poff;
    uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
    if (s1 & 1)
        return 2;
    uint64_t ver = atomic_load_explicit(&s->version, memory_order_relaxed);
    int good = 1;
    if (dst)
        memcpy(dst, p, size);
    else
        good = stamp_ok(p, size, h);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1 || ver != h)
        return 2;
    if (!good)
        return -1;
    *last = h;
    *idx = h;
    return 1;
}

/* ----- transports ------------------------------------------------------------------------- */

struct tx {
    struct rowspec spec;
    uint64_t size;
    char chan[64];
    ndshm_writer *w;
    ndshm_reader *r;
    int fd[2]; /* pipe / socketpair: [0] reader end, [1] writer end */
    char ep[128];
    void *zctx, *zsock;
    struct seqreg seq;  /* T_SEQ */
    uint64_t seq_last;  /* T_SEQ reader: last version it got */
    unsigned char *buf; /* writer source / reader destination */
};

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = read(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static void stamp(unsigned char *p, uint64_t size, uint64_t idx)
{
    memcpy(p, &idx, 8);
    memcpy(p + size - 8, &idx, 8);
}

static int stamp_ok(const unsigned char *p, uint64_t size, uint64_t idx)
{
    uint64_t a, b;
    memcpy(&a, p, 8);
    memcpy(&b, p + size - 8, 8);
    return a == idx && b == idx;
}

/* Before fork: what both processes inherit. */
static void tx_prepare(struct tx *x)
{
    static unsigned serial;
    x->fd[0] = x->fd[1] = -1;
    if (x->spec.t == T_NDSHM) {
        snprintf(x->chan, sizeof x->chan, "ndshm-bench-%d-%u", (int)getpid(), serial++);
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.flags = NDSHM_UNLINK_ON_CLOSE;
        o.capacity = x->size;
        o.slots = cfg.slots;
        int rc = ndshm_writer_create(x->chan, &o, &x->w);
        if (rc)
            die("ndshm_writer_create", rc);
    } else if (x->spec.t == T_SEQ) {
        seq_create(&x->seq, x->size, cfg.slots);
    } else if (x->spec.t == T_PIPE) {
        if (pipe(x->fd))
            die("pipe", NDSHM_E_SYS);
        fcntl(x->fd[1], F_SETPIPE_SZ, 1 << 20);
    } else if (x->spec.t == T_UNIX) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, x->fd))
            die("socketpair", NDSHM_E_SYS);
    } else {
        snprintf(x->ep, sizeof x->ep, "ipc:///tmp/ndshm-bench-%d-%u.ipc", (int)getpid(), serial++);
    }
}

static void tx_reader_init(struct tx *x)
{
    x->buf = xalloc(x->size);
    if (x->spec.t == T_NDSHM) {
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.spin_ns = 1; /* wait mode: sleep at once, so every message is a real wake-up */
        int rc = ndshm_reader_open(x->chan, &o, &x->r);
        if (rc)
            die("ndshm_reader_open", rc);
    } else if (x->spec.t == T_PIPE || x->spec.t == T_UNIX) {
        close(x->fd[1]);
    } else if (x->spec.t == T_ZMQ) {
#ifdef NDSHM_BENCH_ZMQ
        x->zctx = zmq_ctx_new();
        x->zsock = zmq_socket(x->zctx, ZMQ_PULL);
        int hwm = 2;
        zmq_setsockopt(x->zsock, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_bind(x->zsock, x->ep) != 0)
            die("zmq_bind", NDSHM_E_SYS);
#endif
    }
}

static void tx_writer_init(struct tx *x)
{
    x->buf = xalloc(x->size);
    if (x->spec.t == T_PIPE || x->spec.t == T_UNIX) {
        close(x->fd[0]);
    } else if (x->spec.t == T_ZMQ) {
#ifdef NDSHM_BENCH_ZMQ
        x->zctx = zmq_ctx_new();
        x->zsock = zmq_socket(x->zctx, ZMQ_PUSH);
        int hwm = 2;
        zmq_setsockopt(x->zsock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        if (zmq_connect(x->zsock, x->ep) != 0)
            die("zmq_connect", NDSHM_E_SYS);
#endif
    }
}

/* Send message idx; the stamp t0 is taken just before the transport touches the data. */
static int tx_send(struct tx *x, uint64_t idx, int record)
{
    const uint64_t dims[1] = {x->size};
    if (x->spec.t == T_SEQ) {
        if (!x->spec.zc)
            stamp(x->buf, x->size, idx);
        uint64_t t0 = now_ns();
        if (record)
            atomic_store_explicit(&sh->t0[idx], t0, memory_order_relaxed);
        seq_write(&x->seq, idx, x->spec.zc ? NULL : x->buf, x->size);
        if (record)
            sh->wside[idx] = now_ns() - t0;
        return 0;
    }
    if (x->spec.t == T_NDSHM && x->spec.zc) {
        /* Zero-copy: the producer writes in place (here only the two stamp words: filling the
         * frame is the producer's work, not the transport's). */
        uint64_t t0 = now_ns();
        if (record)
            atomic_store_explicit(&sh->t0[idx], t0, memory_order_relaxed);
        void *p;
        int rc = ndshm_loan(x->w, NDSHM_UINT8, 1, dims, &p);
        if (rc)
            return rc;
        stamp(p, x->size, idx);
        rc = ndshm_commit(x->w, NULL);
        if (record)
            sh->wside[idx] = now_ns() - t0;
        return rc;
    }
    stamp(x->buf, x->size, idx);
    uint64_t t0 = now_ns();
    if (record)
        atomic_store_explicit(&sh->t0[idx], t0, memory_order_relaxed);
    int rc = 0;
    switch (x->spec.t) {
    case T_NDSHM:
        rc = ndshm_publish(x->w, NDSHM_UINT8, 1, dims, x->buf, NULL);
        break;
    case T_PIPE:
    case T_UNIX:
        rc = write_all(x->fd[1], x->buf, x->size);
        break;
    case T_ZMQ:
#ifdef NDSHM_BENCH_ZMQ
        rc = zmq_send(x->zsock, x->buf, x->size, 0) == (int)x->size ? 0 : -1;
#endif
        break;
    case T_SEQ: /* handled above */
        break;
    }
    if (record)
        sh->wside[idx] = now_ns() - t0;
    return rc;
}

/* Receive one message. latest: newest (read_latest / view_latest) instead of next. Returns 1
 * with *idx set, 0 when nothing was there yet (busy-poll), -1 on an error, 2 when a consistent
 * copy could not be had (CONTENDED / OVERWRITTEN). */
static int tx_recv(struct tx *x, int latest, uint64_t *idx)
{
    if (x->spec.t == T_SEQ) {
        int rc = seq_read(&x->seq, &x->seq_last, x->spec.zc ? NULL : x->buf, x->size, idx);
        if (rc == 1 && !x->spec.zc && !stamp_ok(x->buf, x->size, *idx))
            return -1;
        return rc;
    }
    if (x->spec.t == T_NDSHM) {
        int rc;
        if (x->spec.wait) {
            rc = ndshm_wait(x->r, 2000000000);
            if (rc != NDSHM_OK)
                return rc == NDSHM_TIMEOUT ? 0 : -1;
        }
        if (x->spec.zc) {
            ndshm_view v;
            rc = latest ? ndshm_view_latest(x->r, &v) : ndshm_view_next(x->r, &v);
            if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA)
                return 0;
            if (rc == NDSHM_CONTENDED)
                return 2;
            if (rc != NDSHM_OK)
                return -1;
            int good = v.info.nbytes == x->size && stamp_ok(v.data, x->size, v.info.version);
            *idx = v.info.version;
            rc = ndshm_view_release(&v); /* the check: nothing overwritten while in use */
            if (rc == NDSHM_OVERWRITTEN)
                return 2;
            return good && rc == NDSHM_OK ? 1 : -1;
        }
        ndshm_info info;
        rc = latest ? ndshm_read_latest(x->r, x->buf, x->size, &info)
                    : ndshm_read_next(x->r, x->buf, x->size, &info);
        if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA)
            return 0;
        if (rc == NDSHM_CONTENDED)
            return 2;
        if (rc != NDSHM_OK)
            return -1;
        *idx = info.version;
        return stamp_ok(x->buf, x->size, info.version) ? 1 : -1;
    }
    if (x->spec.t == T_ZMQ) {
#ifdef NDSHM_BENCH_ZMQ
        int k = zmq_recv(x->zsock, x->buf, x->size, 0);
        if (k == 0)
            return -1; /* end marker */
        if (k != (int)x->size)
            return -1;
#endif
    } else if (read_all(x->fd[0], x->buf, x->size) != 0) {
        return -1;
    }
    memcpy(idx, x->buf, 8);
    return stamp_ok(x->buf, x->size, *idx) ? 1 : -1;
}

static void tx_close_writer(struct tx *x)
{
    if (x->spec.t == T_SEQ) {
        seq_destroy(&x->seq);
    } else if (x->spec.t == T_NDSHM) {
        ndshm_writer_close(x->w);
    } else if (x->spec.t == T_ZMQ) {
#ifdef NDSHM_BENCH_ZMQ
        zmq_send(x->zsock, "", 0, ZMQ_DONTWAIT); /* end marker, best effort */
        int linger = 0;
        zmq_setsockopt(x->zsock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(x->zsock);
        zmq_ctx_term(x->zctx);
#endif
    } else if (x->fd[1] >= 0) {
        close(x->fd[1]);
    }
    free(x->buf);
}

/* ----- one row: latency phase, then rate phase ------------------------------------------ */

struct row {
    struct rowspec spec;
    uint64_t size;
    struct stats lat;
    double wside_p50; /* writer: time inside send/publish, median */
    double rate_hz;
    double cl_before, cl_after;
    const char *state;
    int attempts;
    uint64_t errors;
    int ok;
};

static void reader_main(struct tx *x, uint64_t n)
{
    pin(cfg.cpu_r);
    tx_reader_init(x);
    atomic_store(&sh->ready, 1);
    /* warm-up + latency phase: messages 1..WARMUP+n, one at a time */
    uint64_t got = 0;
    while (got < WARMUP + n) {
        uint64_t idx = 0;
        int rc = tx_recv(x, 1, &idx);
        if (rc == 0 || rc == 2)
            continue;
        uint64_t t = now_ns();
        if (rc < 0 || idx != got + 1) {
            atomic_fetch_add(&sh->errors, 1);
            if (rc < 0)
                _exit(3);
        }
        got = idx;
        sh->lat[idx] = t - atomic_load_explicit(&sh->t0[idx], memory_order_relaxed);
        atomic_store_explicit(&sh->ack, idx, memory_order_release);
    }
    /* rate phase: the writer sends back to back; count what arrives consistently */
    await_ge(&sh->phase, 1);
    uint64_t start = now_ns(), end = start + (uint64_t)(cfg.rate_s * 1e9), cnt = 0, bad = 0;
    uint64_t t = start;
    while (t < end) {
        uint64_t idx;
        int rc = tx_recv(x, 0, &idx);
        if (rc == 1)
            cnt++;
        else if (rc == 2)
            bad++;
        else if (rc < 0)
            break;
        t = now_ns();
    }
    atomic_store(&sh->rate_ns, t - start);
    atomic_store(&sh->received, cnt);
    atomic_store(&sh->contended, bad);
    atomic_store_explicit(&sh->stop, 1, memory_order_release);
#ifdef NDSHM_BENCH_ZMQ
    if (x->spec.t == T_ZMQ) {
        int tmo = 500;
        zmq_setsockopt(x->zsock, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    }
#endif
    if (x->spec.t != T_NDSHM &&
        x->spec.t != T_SEQ) { /* drain until the writer closes, so it never blocks */
        uint64_t idx;
        while (tx_recv(x, 0, &idx) == 1)
            ;
    }
    if (x->spec.t == T_ZMQ) {
#ifdef NDSHM_BENCH_ZMQ
        zmq_close(x->zsock);
        zmq_ctx_term(x->zctx);
#endif
    }
    ndshm_reader_close(x->r);
    _exit(0);
}

static int run_row_once(struct row *row)
{
    struct tx x = {.spec = row->spec, .size = row->size};
    /* samples: as many as fit the time budget, by an estimate of the cost per message */
    const struct memref *mr = find_mem(row->size);
    double cp = mr && mr->ns > 0 ? mr->ns : (double)row->size / 10.0;
    double per =
        (x.spec.wait ? 200e3 : 20e3) + 3.0 * cp + 40e3 * (x.spec.t != T_NDSHM && x.spec.t != T_SEQ);
    uint64_t n = (uint64_t)(cfg.budget_s * 1e9 / per);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    if (n < 30)
        n = 30;
    uint64_t gap = x.spec.wait ? 200000 : 20000;
    shared_reset();
    tx_prepare(&x);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NDSHM_E_SYS);
    if (pid == 0)
        reader_main(&x, n);
    pin(cfg.cpu_w);
    int fail = await_ge(&sh->ready, 1);
    tx_writer_init(&x);
    for (uint64_t i = 1; !fail && i <= WARMUP + n; i++) {
        spin_until(now_ns() + gap);
        if (tx_send(&x, i, 1) != 0 || await_ge(&sh->ack, i) != 0)
            fail = 1;
    }
    /* rate phase */
    atomic_store_explicit(&sh->phase, 1, memory_order_release);
    for (uint64_t i = WARMUP + n + 1; !fail; i++) {
        if (atomic_load_explicit(&sh->stop, memory_order_acquire))
            break;
        if (tx_send(&x, i, 0) != 0)
            fail = 1;
    }
    if (!fail)
        await_ge(&sh->stop, 1);
    tx_close_writer(&x);
    if (fail)
        kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail = 1;
    row->lat = stats_of(sh->lat + WARMUP + 1, n);
    row->wside_p50 = stats_of(sh->wside + WARMUP + 1, n).p50;
    uint64_t rn = atomic_load(&sh->rate_ns);
    row->rate_hz = rn ? (double)atomic_load(&sh->received) * 1e9 / (double)rn : 0;
    row->errors = atomic_load(&sh->errors);
    if (x.spec.t == T_ZMQ)
        unlink(x.ep + 6);
    return fail ? -1 : 0;
}

static void run_row(struct row *row)
{
    for (row->attempts = 1; row->attempts <= 3; row->attempts++) {
        row->cl_before = pingpong();
        row->ok = run_row_once(row) == 0;
        row->cl_after = pingpong();
        int same = (row->cl_before < FAST_LIMIT_NS) == (row->cl_after < FAST_LIMIT_NS);
        row->state = same ? state_of(row->cl_before) : "mixed";
        if (same || !row->ok)
            break;
    }
    fprintf(stderr, "  %-28s %-22s p50 %-10s p99 %-10s rate %9.0f/s  [%s %.0f/%.0f ns]%s\n",
            row->spec.label, fmt_size(row->size), fmt_ns(row->lat.p50), fmt_ns(row->lat.p99),
            row->rate_hz, row->state, row->cl_before, row->cl_after, row->ok ? "" : " FAILED");
}

/* ----- the iceoryx method: round trip / 2, copy in and copy out ---------------------------
 * iceperf (iceoryx's own benchmark) measures latency as half a ping-pong round trip: side A
 * copies a message in and sends it, side B receives it, copies it out, copies it into its
 * reply and sends that, A receives and copies out. Both sides busy-poll. The same exchange is
 * run here over ndshm (two channels, publish + read_latest), over the bare seqlock ring (two
 * rings) and, when the harness is built with iceoryx's C binding and `iox-roudi` is found,
 * over iceoryx itself (loan + memcpy + publish; take + memcpy + release), so the three are
 * measured by the same code in the same run. */
enum rtkind { RT_NDSHM, RT_SEQ, RT_IOX };
static const char *const RTNAME[] = {"ndshm", "bare seqlock", "iceoryx"};
static const uint64_t RT_SIZES[] = {64, 4096, 1048576, 6220800};
#define NRT_SIZES (sizeof RT_SIZES / sizeof RT_SIZES[0])

struct rtt {
    enum rtkind kind;
    uint64_t size;
    struct stats half; /* round trip / 2 */
    double cl_before, cl_after;
    const char *state;
    int ok, attempts;
};

/* One side's ends of the exchange. */
struct rtend {
    enum rtkind kind;
    uint64_t size;
    ndshm_writer *w; /* RT_NDSHM */
    ndshm_reader *r;
    struct seqreg *out, *in; /* RT_SEQ */
    uint64_t in_last, out_v;
    void *pub, *sub; /* RT_IOX: iox_pub_t, iox_sub_t */
    unsigned char *src, *dst;
};

#ifdef NDSHM_BENCH_IOX
#include <pwd.h>

#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>

static pid_t roudi_pid = -1, roudi_owner = -1;
static char roudi_cfg[64];

/* Start a RouDi (iceoryx's broker) with memory pools for the sizes measured; 0 when it runs. */
static int roudi_start(void)
{
    snprintf(roudi_cfg, sizeof roudi_cfg, "/tmp/ndshm-bench-roudi-%d.toml", (int)getpid());
    FILE *f = fopen(roudi_cfg, "w");
    if (!f)
        return -1;
    fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n\n");
    for (unsigned i = 0; i < NRT_SIZES; i++)
        fprintf(f, "[[segment.mempool]]\nsize = %" PRIu64 "\ncount = 12\n\n",
                (RT_SIZES[i] + 1024 + 63) / 64 * 64);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("iox-roudi", "iox-roudi", "-c", roudi_cfg, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    /* A RouDi that cannot start (another one runs) exits at once; one that lives for 1.5 s has
     * set up its memory (it reserves it before it serves anyone). */
    for (int i = 0; i < 30; i++) {
        usleep(50000);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "  iceoryx: iox-roudi exited (%d; another RouDi running?): skipped\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            return -1;
        }
    }
    roudi_pid = pid;
    roudi_owner = getpid();
    return 0;
}

static void roudi_stop(void)
{
    if (roudi_owner != getpid())
        return; /* a child of the harness: the RouDi is the parent's */
    if (roudi_pid > 0) {
        kill(roudi_pid, SIGTERM);
        waitpid(roudi_pid, NULL, 0);
        /* RouDi leaves its segments behind when clients went away abruptly: ours to remove
         * (the RouDi that made them was ours and has exited). */
        struct passwd *pw = getpwuid(geteuid());
        char seg[300];
        unlink("/dev/shm/iceoryx_mgmt");
        if (pw) {
            snprintf(seg, sizeof seg, "/dev/shm/%s", pw->pw_name);
            unlink(seg);
        }
    }
    roudi_pid = -1;
    unlink(roudi_cfg);
}

static int iox_open(struct rtend *e, int side)
{
    char name[64], s1[32];
    snprintf(name, sizeof name, "ndshm-bench-%d", (int)getpid());
    iox_set_loglevel(Iceoryx_LogLevel_Off);
    iox_runtime_init(name);
    snprintf(s1, sizeof s1, "%" PRIu64, e->size);
    static iox_pub_storage_t ps;
    static iox_sub_storage_t ss;
    iox_pub_options_t po;
    iox_pub_options_init(&po);
    po.historyCapacity = 0;
    iox_sub_options_t so;
    iox_sub_options_init(&so);
    so.queueCapacity = 1;
    so.historyRequest = 0;
    so.queueFullPolicy = QueueFullPolicy_DISCARD_OLDEST_DATA;
    e->pub = iox_pub_init(&ps, "ndshm-bench", s1, side ? "pong" : "ping", &po);
    e->sub = iox_sub_init(&ss, "ndshm-bench", s1, side ? "ping" : "pong", &so);
    for (int i = 0; i < 1000; i++) { /* RouDi connects them asynchronously */
        if (iox_pub_has_subscribers((iox_pub_t)e->pub) &&
            iox_sub_get_subscription_state((iox_sub_t)e->sub) == SubscribeState_SUBSCRIBED)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int iox_send(struct rtend *e)
{
    void *p;
    if (iox_pub_loan_chunk((iox_pub_t)e->pub, &p, (uint32_t)e->size) != AllocationResult_SUCCESS)
        return -1;
    memcpy(p, e->src, e->size); /* copy in */
    iox_pub_publish_chunk((iox_pub_t)e->pub, p);
    return 0;
}

static int iox_recv(struct rtend *e)
{
    const void *p;
    if (iox_sub_take_chunk((iox_sub_t)e->sub, &p) != ChunkReceiveResult_SUCCESS)
        return 0;
    memcpy(e->dst, p, e->size); /* copy out */
    iox_sub_release_chunk((iox_sub_t)e->sub, p);
    return 1;
}

static void iox_close(struct rtend *e)
{
    iox_sub_deinit((iox_sub_t)e->sub);
    iox_pub_deinit((iox_pub_t)e->pub);
    iox_runtime_shutdown();
}
#endif

/* Send message idx (its number in the first and last words). */
static int rt_send(struct rtend *e, uint64_t idx)
{
    stamp(e->src, e->size, idx);
    const uint64_t dims[1] = {e->size};
    switch (e->kind) {
    case RT_NDSHM:
        return ndshm_publish(e->w, NDSHM_UINT8, 1, dims, e->src, NULL);
    case RT_SEQ:
        seq_write(e->out, ++e->out_v, e->src, e->size);
        return 0;
    case RT_IOX:
#ifdef NDSHM_BENCH_IOX
        return iox_send(e);
#endif
        break;
    }
    return -1;
}

/* Busy-poll until message idx (or a later one) is copied out: 0, or -1 (wrong content, error,
 * 10 s without it). */
static int rt_recv(struct rtend *e, uint64_t idx)
{
    uint64_t deadline = now_ns() + 10000000000ull;
    for (unsigned i = 0;; i++) {
        int got = 0;
        if (e->kind == RT_NDSHM) {
            ndshm_info info;
            int rc = ndshm_read_latest(e->r, e->dst, e->size, &info);
            if (rc == NDSHM_OK)
                got = 1;
            else if (rc < 0)
                return -1;
        } else if (e->kind == RT_SEQ) {
            uint64_t v;
            got = seq_read(e->in, &e->in_last, e->dst, e->size, &v) == 1;
        } else {
#ifdef NDSHM_BENCH_IOX
            got = iox_recv(e);
#endif
        }
        if (got) {
            uint64_t a;
            memcpy(&a, e->dst, 8);
            if (a == idx)
                return stamp_ok(e->dst, e->size, idx) ? 0 : -1;
        }
        if ((i & 1023) == 1023 && now_ns() > deadline)
            return -1;
    }
}

static int rtt_run(const struct rtt *t, uint64_t n)
{
    struct seqreg ping = {0}, pong = {0};
    char cping[64], cpong[64];
    snprintf(cping, sizeof cping, "ndshm-bench-%d-ping", (int)getpid());
    snprintf(cpong, sizeof cpong, "ndshm-bench-%d-pong", (int)getpid());
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    o.capacity = t->size;
    o.slots = cfg.slots;
    struct rtend a = {.kind = t->kind, .size = t->size};
    if (t->kind == RT_SEQ) {
        seq_create(&ping, t->size, cfg.slots);
        seq_create(&pong, t->size, cfg.slots);
    } else if (t->kind == RT_NDSHM) {
        int rc = ndshm_writer_create(cping, &o, &a.w);
        if (rc)
            die("ndshm_writer_create", rc);
    }
    shared_reset();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NDSHM_E_SYS);
    if (pid == 0) { /* side B: echo */
        pin(cfg.cpu_r);
        struct rtend b = {.kind = t->kind, .size = t->size};
        b.src = xalloc(t->size);
        b.dst = xalloc(t->size);
        if (t->kind == RT_NDSHM) {
            if (ndshm_reader_open(cping, NULL, &b.r) || ndshm_writer_create(cpong, &o, &b.w))
                _exit(2);
        } else if (t->kind == RT_SEQ) {
            b.in = &ping;
            b.out = &pong;
        } else {
#ifdef NDSHM_BENCH_IOX
            atomic_store(&sh->ready, 1); /* A opens its side now; both wait for the other */
            if (iox_open(&b, 1)) {
                fprintf(stderr, "ndshm-bench: iceoryx echo side could not connect\n");
                _exit(2);
            }
#endif
        }
        atomic_store(&sh->ready, 1);
        int bad = 0;
        for (uint64_t i = 1; i <= WARMUP + n && !bad; i++)
            bad = rt_recv(&b, i) || rt_send(&b, i);
        if (t->kind == RT_NDSHM) {
            ndshm_reader_close(b.r);
            await_ge(&sh->stop, 1); /* A reads our last reply before we unlink it */
            ndshm_writer_close(b.w);
        }
#ifdef NDSHM_BENCH_IOX
        if (t->kind == RT_IOX) {
            await_ge(&sh->stop, 1);
            iox_close(&b);
        }
#endif
        _exit(bad ? 3 : 0);
    }
    pin(cfg.cpu_w);
    a.src = xalloc(t->size);
    a.dst = xalloc(t->size);
    int fail = await_ge(&sh->ready, 1);
    if (!fail) {
        if (t->kind == RT_NDSHM) {
            fail = ndshm_reader_open(cpong, NULL, &a.r) != NDSHM_OK;
        } else if (t->kind == RT_SEQ) {
            a.in = &pong;
            a.out = &ping;
        } else {
#ifdef NDSHM_BENCH_IOX
            fail = iox_open(&a, 0) != 0;
#endif
        }
    }
    for (uint64_t i = 1; !fail && i <= WARMUP + n; i++) {
        spin_until(now_ns() + 20000);
        uint64_t t0 = now_ns();
        fail = rt_send(&a, i) || rt_recv(&a, i);
        if (fail)
            fprintf(stderr, "ndshm-bench: round trip %s: message %" PRIu64 " failed\n",
                    RTNAME[t->kind], i);
        sh->lat[i] = (now_ns() - t0) / 2;
    }
    atomic_store(&sh->stop, 1);
    if (fail)
        kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail = 1;
    if (t->kind == RT_NDSHM) {
        ndshm_reader_close(a.r);
        ndshm_writer_close(a.w);
    }
#ifdef NDSHM_BENCH_IOX
    if (t->kind == RT_IOX && !fail)
        iox_close(&a);
#endif
    seq_destroy(&ping);
    seq_destroy(&pong);
    free(a.src);
    free(a.dst);
    return fail ? -1 : 0;
}

static int rtt_once(struct rtt *t, uint64_t n)
{
    int fail;
    if (t->kind == RT_IOX) {
        /* iceoryx's runtime is once per process: both sides run in children of their own */
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork", NDSHM_E_SYS);
        if (pid == 0)
            _exit(rtt_run(t, n) ? 1 : 0);
        int st = 0;
        waitpid(pid, &st, 0);
        fail = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    } else {
        fail = rtt_run(t, n) != 0;
    }
    t->half = stats_of(sh->lat + WARMUP + 1, n);
    return fail ? -1 : 0;
}

static void rtt_measure(struct rtt *t)
{
    const struct memref *mr = find_mem(t->size);
    double cp = mr && mr->ns > 0 ? mr->ns : (double)t->size / 10.0;
    uint64_t n = (uint64_t)(cfg.budget_s * 0.5e9 / (40e3 + 5.0 * cp));
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    if (n < 60)
        n = 60;
    for (t->attempts = 1; t->attempts <= 3; t->attempts++) {
        t->cl_before = pingpong();
        t->ok = rtt_once(t, n) == 0;
        t->cl_after = pingpong();
        int same = (t->cl_before < FAST_LIMIT_NS) == (t->cl_after < FAST_LIMIT_NS);
        t->state = same ? state_of(t->cl_before) : "mixed";
        if (same || !t->ok)
            break;
    }
    fprintf(stderr, "  round trip / 2, %-13s %-22s p50 %-10s p99 %-10s [%s %.0f/%.0f ns]%s\n",
            RTNAME[t->kind], fmt_size(t->size), fmt_ns(t->half.p50), fmt_ns(t->half.p99), t->state,
            t->cl_before, t->cl_after, t->ok ? "" : " FAILED");
}

/* ----- reference: bare futex wake-up ------------------------------------------------------ */

struct futex_ref {
    struct stats lat; /* waker's stamp before FUTEX_WAKE -> waiter running again */
    double wake_p50;  /* time inside FUTEX_WAKE */
    double cl_before, cl_after;
    const char *state;
};

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static void futex_once(struct futex_ref *f)
{
    uint64_t n = cfg.quick ? 300 : 3000;
    uint64_t gap = 200000; /* as the ndshm wait rows */
    shared_reset();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin(cfg.cpu_r);
        for (uint64_t i = 1; i <= WARMUP + n; i++) {
            while (atomic_load_explicit(&sh->futex, memory_order_acquire) < i)
                futex(&sh->futex, FUTEX_WAIT, (uint32_t)(i - 1));
            uint64_t t = now_ns();
            sh->lat[i] = t - atomic_load_explicit(&sh->t0[i], memory_order_relaxed);
            atomic_store_explicit(&sh->ack, i, memory_order_release);
        }
        _exit(0);
    }
    pin(cfg.cpu_w);
    for (uint64_t i = 1; i <= WARMUP + n; i++) {
        spin_until(now_ns() + gap);
        uint64_t t0 = now_ns();
        atomic_store_explicit(&sh->t0[i], t0, memory_order_relaxed);
        atomic_store_explicit(&sh->futex, (uint32_t)i, memory_order_release);
        futex(&sh->futex, FUTEX_WAKE, 1);
        sh->wside[i] = now_ns() - t0;
        if (await_ge(&sh->ack, i))
            break;
    }
    waitpid(pid, NULL, 0);
    f->lat = stats_of(sh->lat + WARMUP + 1, n);
    f->wake_p50 = stats_of(sh->wside + WARMUP + 1, n).p50;
}

static void futex_measure(struct futex_ref *f)
{
    for (int a = 0; a < 3; a++) {
        f->cl_before = pingpong();
        futex_once(f);
        f->cl_after = pingpong();
        int same = (f->cl_before < FAST_LIMIT_NS) == (f->cl_after < FAST_LIMIT_NS);
        f->state = same ? state_of(f->cl_before) : "mixed";
        if (same)
            break;
    }
    fprintf(stderr, "  futex wake-up: p50 %s (inside FUTEX_WAKE %s) [%s]\n", fmt_ns(f->lat.p50),
            fmt_ns(f->wake_p50), f->state);
}

/* ----- waiting on many channels: waitsets --------------------------------------------------
 * The writer (this process) owns `nchan` channels; a reader process waits on all of them and
 * the writer publishes on one (channel 0), one message at a time with the gap of the blocking
 * rows, so the waiter really sleeps. Latency = waiter's clock once ndshm_waitset_wait() has
 * named the channel (or the poll of its descriptor returned and the wait named it, or a sweep
 * of read_latest over every reader found it) - the writer's clock before the publish. */
enum wsmode { WS_WAIT, WS_FD, WS_POLL };
static const char *const WSNAME[] = {"ndshm_waitset_wait", "poll(ndshm_waitset_fd) + wait(0)",
                                     "read_latest sweep over every reader (no waitset)"};
struct wsrow {
    uint32_t nchan;
    enum wsmode mode;
    struct stats lat;
    double cl_before, cl_after;
    const char *state;
    int ok;
};

static int ws_once(struct wsrow *row, uint64_t n)
{
    uint32_t nc = row->nchan;
    ndshm_writer **w = calloc(nc, sizeof *w);
    char base[64];
    snprintf(base, sizeof base, "ndshm-bench-%d-ws", (int)getpid());
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    for (uint32_t i = 0; i < nc; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%u", base, i);
        int rc = ndshm_writer_create(name, &o, &w[i]);
        if (rc)
            die("ndshm_writer_create (waitset row)", rc);
    }
    shared_reset();
    atomic_store(&sh->received, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin(cfg.cpu_r);
        ndshm_reader **r = calloc(nc, sizeof *r);
        ndshm_waitset *ws = NULL;
        ndshm_options ro = NDSHM_OPTIONS_INIT;
        ro.spin_ns = 1;
        if (row->mode != WS_POLL && ndshm_waitset_create(&ws))
            _exit(2);
        for (uint32_t i = 0; i < nc; i++) {
            char name[96];
            snprintf(name, sizeof name, "%s%u", base, i);
            if (ndshm_reader_open(name, &ro, &r[i]) || (ws && ndshm_waitset_add(ws, r[i], i)))
                _exit(3);
        }
        int fd = -1;
        if (row->mode == WS_FD && ndshm_waitset_fd(ws, &fd))
            _exit(4);
        atomic_store(&sh->ready, 1);
        unsigned char buf[64];
        ndshm_info info;
        for (uint64_t i = 1; i <= WARMUP + n; i++) {
            uint64_t key[8];
            size_t cnt = 0;
            int found = 0;
            while (!found) {
                if (row->mode == WS_POLL) {
                    for (uint32_t k = 0; k < nc && !found; k++)
                        if (ndshm_read_latest(r[k], buf, sizeof buf, &info) == NDSHM_OK)
                            found = k == 0 ? 1 : -1;
                    continue;
                }
                if (row->mode == WS_FD) {
                    struct pollfd pf = {fd, POLLIN, 0};
                    if (poll(&pf, 1, 2000) < 0)
                        _exit(5);
                    if (ndshm_waitset_wait(ws, 0, key, 8, &cnt) != NDSHM_OK)
                        continue;
                } else if (ndshm_waitset_wait(ws, 2000000000, key, 8, &cnt) != NDSHM_OK) {
                    continue;
                }
                found = cnt == 1 && key[0] == 0 ? 1 : -1;
                if (ndshm_read_latest(r[key[0]], buf, sizeof buf, &info) != NDSHM_OK)
                    found = -1;
            }
            uint64_t t = now_ns();
            if (found < 0 || info.version != i)
                atomic_fetch_add(&sh->errors, 1);
            sh->lat[i] = t - atomic_load_explicit(&sh->t0[i], memory_order_relaxed);
            atomic_store_explicit(&sh->ack, i, memory_order_release);
        }
        ndshm_waitset_close(ws);
        for (uint32_t i = 0; i < nc; i++)
            ndshm_reader_close(r[i]);
        _exit(0);
    }
    pin(cfg.cpu_w);
    int fail = await_ge(&sh->ready, 1) != 0;
    const uint64_t dims[1] = {64};
    unsigned char src[64] = {0};
    for (uint64_t i = 1; !fail && i <= WARMUP + n; i++) {
        spin_until(now_ns() + 200000);
        uint64_t t0 = now_ns();
        atomic_store_explicit(&sh->t0[i], t0, memory_order_relaxed);
        if (ndshm_publish(w[0], NDSHM_UINT8, 1, dims, src, NULL) || await_ge(&sh->ack, i))
            fail = 1;
    }
    if (fail)
        kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || atomic_load(&sh->errors))
        fail = 1;
    for (uint32_t i = 0; i < nc; i++)
        ndshm_writer_close(w[i]);
    free(w);
    row->lat = stats_of(sh->lat + WARMUP + 1, n);
    return fail ? -1 : 0;
}

/* System V segments that can still be created (kernel.shmmni minus those in use): each
 * writer makes one wait page, each waitset one doorbell. */
static uint32_t sysv_headroom(void)
{
    FILE *f = fopen("/proc/sys/kernel/shmmni", "r");
    long mni = 4096, used = 0;
    if (f) {
        if (fscanf(f, "%ld", &mni) != 1)
            mni = 4096;
        fclose(f);
    }
    f = fopen("/proc/sysvipc/shm", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        used++;
    if (f)
        fclose(f);
    used = used > 0 ? used - 1 : 0; /* header line */
    return mni > used ? (uint32_t)(mni - used) : 0;
}

static void ws_measure(struct wsrow *row)
{
    uint64_t n = cfg.quick ? 200 : 2000;
    for (int a = 0; a < 3; a++) {
        row->cl_before = pingpong();
        row->ok = ws_once(row, n) == 0;
        row->cl_after = pingpong();
        int same = (row->cl_before < FAST_LIMIT_NS) == (row->cl_after < FAST_LIMIT_NS);
        row->state = same ? state_of(row->cl_before) : "mixed";
        if (same || !row->ok)
            break;
    }
    fprintf(stderr, "  %u channel(s), %-48s p50 %-10s p99 %-10s [%s]%s\n", row->nchan,
            WSNAME[row->mode], fmt_ns(row->lat.p50), fmt_ns(row->lat.p99), row->state,
            row->ok ? "" : " FAILED");
}

/* ----- syscalls made by a publish --------------------------------------------------------- */

struct sysc {
    int available;
    uint64_t publishes;
    uint64_t no_reader, polling_reader, sleeping_reader; /* syscalls per `publishes` */
};

static int tracepoint_fd(void)
{
    static const char *const paths[] = {
        "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
        "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    long id = -1;
    for (int i = 0; i < 2 && id < 0; i++) {
        FILE *f = fopen(paths[i], "r");
        if (f) {
            if (fscanf(f, "%ld", &id) != 1)
                id = -1;
            fclose(f);
        }
    }
    if (id < 0)
        return -1;
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof a;
    a.config = (uint64_t)id;
    a.disabled = 1;
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

/* Syscalls this thread makes during `k` publishes of 64 B, minus the counter's own overhead. */
static uint64_t count_publish_syscalls(int fd, ndshm_writer *w, uint64_t k, uint64_t gap)
{
    const uint64_t dims[1] = {64};
    unsigned char buf[64] = {0};
    uint64_t c0 = 0, c1 = 0;
    /* the overhead: enable + disable with nothing between */
    ioctl(fd, PERF_EVENT_IOC_RESET, 0);
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    if (read(fd, &c0, sizeof c0) != sizeof c0)
        return UINT64_MAX;
    ioctl(fd, PERF_EVENT_IOC_RESET, 0);
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    for (uint64_t i = 0; i < k; i++) {
        uint64_t t = now_ns() + gap;
        ndshm_publish(w, NDSHM_UINT8, 1, dims, buf, NULL);
        while (now_ns() < t) /* clock_gettime is a vDSO call: no syscall */
            relax();
    }
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    if (read(fd, &c1, sizeof c1) != sizeof c1)
        return UINT64_MAX;
    return c1 >= c0 ? c1 - c0 : 0;
}

static void syscalls_measure(struct sysc *s)
{
    memset(s, 0, sizeof *s);
    s->publishes = cfg.quick ? 1000 : 10000;
    pin(cfg.cpu_w);
    int fd = tracepoint_fd();
    if (fd < 0) {
        fprintf(stderr, "  syscall count: perf_event_open unavailable (%s)\n", strerror(errno));
        return;
    }
    s->available = 1;
    char chan[64];
    snprintf(chan, sizeof chan, "ndshm-bench-%d-sys", (int)getpid());
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    ndshm_writer *w;
    int rc = ndshm_writer_create(chan, &o, &w);
    if (rc)
        die("ndshm_writer_create", rc);
    s->no_reader = count_publish_syscalls(fd, w, s->publishes, 2000);
    for (int mode = 0; mode < 2; mode++) {
        shared_reset();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            pin(cfg.cpu_r);
            ndshm_options ro = NDSHM_OPTIONS_INIT;
            ro.spin_ns = mode ? 1 : 1000000000; /* sleeps at once / spins for 1 s: never sleeps */
            ndshm_reader *r;
            if (ndshm_reader_open(chan, &ro, &r))
                _exit(2);
            atomic_store(&sh->ready, 1);
            unsigned char buf[64];
            ndshm_info info;
            while (!atomic_load_explicit(&sh->stop, memory_order_acquire)) {
                if (mode == 0) {
                    (void)ndshm_read_latest(r, buf, sizeof buf, &info);
                } else if (ndshm_wait(r, 50000000) == NDSHM_OK) {
                    (void)ndshm_read_latest(r, buf, sizeof buf, &info);
                }
            }
            ndshm_reader_close(r);
            _exit(0);
        }
        await_ge(&sh->ready, 1);
        uint64_t c = count_publish_syscalls(fd, w, s->publishes, mode ? 100000 : 2000);
        if (mode == 0)
            s->polling_reader = c;
        else
            s->sleeping_reader = c;
        atomic_store(&sh->stop, 1);
        waitpid(pid, NULL, 0);
    }
    ndshm_writer_close(w);
    close(fd);
    fprintf(stderr,
            "  syscalls in %" PRIu64 " publishes: no reader %" PRIu64 ", polling reader %" PRIu64
            ", sleeping reader %" PRIu64 "\n",
            s->publishes, s->no_reader, s->polling_reader, s->sleeping_reader);
}

/* ----- starvation: back-to-back 1080p writer vs a paced one, copying reader ---------------- */

struct starve {
    uint64_t size;
    double bb_reader_hz, bb_writer_hz, bb_contended_hz;
    double paced_reader_hz, paced_writer_hz;
    double oneslot_reader_hz, oneslot_contended_hz;
    double cl_before, cl_after;
    const char *state;
};

/* The reader copies read_latest in a loop for `secs`; the writer publishes back to back
 * (pace 0) or waits as long as its last publish took after each one (pace 1: 50 % duty). */
static void starve_once(uint32_t slots, int pace, double secs, double *rhz, double *whz,
                        double *chz)
{
    uint64_t size = 6220800;
    char chan[64];
    snprintf(chan, sizeof chan, "ndshm-bench-%d-starve", (int)getpid());
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    o.capacity = size;
    o.slots = slots;
    ndshm_writer *w;
    int rc = ndshm_writer_create(chan, &o, &w);
    if (rc)
        die("ndshm_writer_create", rc);
    unsigned char *src = xalloc(size);
    const uint64_t dims[1] = {size};
    ndshm_publish(w, NDSHM_UINT8, 1, dims, src, NULL);
    shared_reset();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin(cfg.cpu_r);
        ndshm_reader *r;
        if (ndshm_reader_open(chan, NULL, &r))
            _exit(2);
        unsigned char *dst = xalloc(size);
        atomic_store(&sh->ready, 1);
        await_ge(&sh->phase, 1);
        uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), ok = 0, bad = 0, t;
        ndshm_info info;
        while ((t = now_ns()) < end) {
            rc = ndshm_read_latest(r, dst, size, &info);
            if (rc == NDSHM_OK)
                ok++;
            else if (rc == NDSHM_CONTENDED)
                bad++;
        }
        atomic_store(&sh->rate_ns, t - start);
        atomic_store(&sh->received, ok);
        atomic_store(&sh->contended, bad);
        atomic_store(&sh->stop, 1);
        ndshm_reader_close(r);
        _exit(0);
    }
    pin(cfg.cpu_w);
    await_ge(&sh->ready, 1);
    atomic_store(&sh->phase, 1);
    uint64_t start = now_ns(), pubs = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_acquire)) {
        uint64_t t = now_ns();
        stamp(src, size, pubs);
        ndshm_publish(w, NDSHM_UINT8, 1, dims, src, NULL);
        pubs++;
        if (pace)
            spin_until(now_ns() + (now_ns() - t));
    }
    uint64_t el = now_ns() - start;
    waitpid(pid, NULL, 0);
    ndshm_writer_close(w);
    free(src);
    double rn = (double)atomic_load(&sh->rate_ns);
    *rhz = (double)atomic_load(&sh->received) * 1e9 / rn;
    *chz = (double)atomic_load(&sh->contended) * 1e9 / rn;
    *whz = (double)pubs * 1e9 / (double)el;
}

static void starve_measure(struct starve *s)
{
    double secs = cfg.quick ? 0.3 : 1.5, dummy;
    s->size = 6220800;
    for (int a = 0; a < 3; a++) {
        s->cl_before = pingpong();
        starve_once(4, 0, secs, &s->bb_reader_hz, &s->bb_writer_hz, &s->bb_contended_hz);
        starve_once(4, 1, secs, &s->paced_reader_hz, &s->paced_writer_hz, &dummy);
        starve_once(1, 0, secs, &s->oneslot_reader_hz, &dummy, &s->oneslot_contended_hz);
        s->cl_after = pingpong();
        int same = (s->cl_before < FAST_LIMIT_NS) == (s->cl_after < FAST_LIMIT_NS);
        s->state = same ? state_of(s->cl_before) : "mixed";
        if (same)
            break;
    }
    fprintf(stderr,
            "  starvation 1080p: back-to-back writer %.0f/s -> reader %.0f/s (contended %.0f/s); "
            "paced writer %.0f/s -> reader %.0f/s; one slot: reader %.0f/s [%s]\n",
            s->bb_writer_hz, s->bb_reader_hz, s->bb_contended_hz, s->paced_writer_hz,
            s->paced_reader_hz, s->oneslot_reader_hz, s->state);
}

/* ----- publish cost with 4 readers reading vs none ----------------------------------------- */

struct pubr {
    uint64_t size;
    double none_p50, four_p50; /* ns */
    double cl_before, cl_after;
    const char *state;
};

static double publish_cost(const char *chan, ndshm_writer *w, uint64_t size, int readers)
{
    uint64_t n = cfg.quick ? 500 : 5000;
    if (size > 1000000)
        n = cfg.quick ? 30 : 200;
    unsigned char *src = xalloc(size);
    const uint64_t dims[1] = {size};
    shared_reset();
    pid_t pids[4];
    for (int i = 0; i < readers; i++) {
        fflush(NULL);
        pids[i] = fork();
        if (pids[i] == 0) {
            pin(cfg.cpu_r);
            ndshm_reader *r;
            if (ndshm_reader_open(chan, NULL, &r))
                _exit(2);
            unsigned char *dst = xalloc(size);
            atomic_fetch_add(&sh->ready, 1);
            ndshm_info info;
            while (!atomic_load_explicit(&sh->stop, memory_order_acquire))
                (void)ndshm_read_latest(r, dst, size, &info);
            ndshm_reader_close(r);
            _exit(0);
        }
    }
    await_ge(&sh->ready, (uint64_t)readers);
    pin(cfg.cpu_w);
    uint64_t *v = calloc(n, sizeof *v);
    uint64_t gap = size > 1000000 ? 3000000 : 20000; /* readers get to read every version */
    for (uint64_t i = 0; i < n + WARMUP; i++) {
        spin_until(now_ns() + gap);
        uint64_t t = now_ns();
        ndshm_publish(w, NDSHM_UINT8, 1, dims, src, NULL);
        if (i >= WARMUP)
            v[i - WARMUP] = now_ns() - t;
    }
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < readers; i++)
        waitpid(pids[i], NULL, 0);
    double p50 = stats_of(v, n).p50;
    free(v);
    free(src);
    return p50;
}

static void pubr_measure(struct pubr *p, uint64_t size)
{
    p->size = size;
    char chan[64];
    snprintf(chan, sizeof chan, "ndshm-bench-%d-pubr", (int)getpid());
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    o.capacity = size;
    for (int a = 0; a < 3; a++) {
        ndshm_writer *w;
        int rc = ndshm_writer_create(chan, &o, &w);
        if (rc)
            die("ndshm_writer_create", rc);
        p->cl_before = pingpong();
        p->none_p50 = publish_cost(chan, w, size, 0);
        p->four_p50 = publish_cost(chan, w, size, 4);
        p->cl_after = pingpong();
        ndshm_writer_close(w);
        int same = (p->cl_before < FAST_LIMIT_NS) == (p->cl_after < FAST_LIMIT_NS);
        p->state = same ? state_of(p->cl_before) : "mixed";
        if (same)
            break;
    }
    fprintf(stderr, "  publish %s: no reader %s, 4 readers %s [%s]\n", fmt_size(size),
            fmt_ns(p->none_p50), fmt_ns(p->four_p50), p->state);
}

/* ----- the machine ---------------------------------------------------------------------------- */

static struct {
    char model[128];
    char caches[256]; /* "L1d 32 KiB, L2 512 KiB, L3 32 MiB" (per instance, from sysfs) */
    uint64_t llc_bytes;
} mach;

static uint64_t parse_cache_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    if (*end == 'K')
        v <<= 10;
    else if (*end == 'M')
        v <<= 20;
    return v;
}

static void machine_info(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(mach.model, sizeof mach.model, "unknown CPU");
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            snprintf(mach.model, sizeof mach.model, "%s", c + 2);
            mach.model[strcspn(mach.model, "\n")] = 0;
            break;
        }
    }
    if (f)
        fclose(f);
    size_t off = 0;
    for (int i = 0; i < 8; i++) {
        char path[128], lvl[16] = "", type[32] = "", size[32] = "";
        const char *names[3] = {"level", "type", "size"};
        char *vals[3] = {lvl, type, size};
        int ok = 1;
        for (int k = 0; k < 3 && ok; k++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cache/index%d/%s", cfg.cpu_w,
                     i, names[k]);
            FILE *g = fopen(path, "r");
            ok = g && fgets(vals[k], k == 1 ? 32 : 16, g);
            if (g)
                fclose(g);
            vals[k][strcspn(vals[k], "\n")] = 0;
        }
        if (!ok)
            break;
        if (strcmp(type, "Instruction") == 0)
            continue;
        uint64_t b = parse_cache_size(size);
        if (atoi(lvl) >= 2 && b > mach.llc_bytes)
            mach.llc_bytes = b;
        off += (size_t)snprintf(mach.caches + off, sizeof mach.caches - off, "%sL%s%s %s",
                                off ? ", " : "", lvl, strcmp(type, "Data") == 0 ? "d" : "",
                                fmt_size(b));
        if (off >= sizeof mach.caches)
            break;
    }
    if (!off)
        snprintf(mach.caches, sizeof mach.caches, "unknown (no sysfs cache information)");
    fprintf(stderr, "machine: %s; caches (per instance): %s\n", mach.model, mach.caches);
}

/* ----- report ------------------------------------------------------------------------------ */

struct target {
    char name[96];
    double value, limit; /* value <= limit: met */
    char detail[256];
    const char *state;
    int known;
    int ge;   /* met when value >= limit (else <=) */
    int goal; /* one of issue 15's goals: printed in their own table */
};

static struct row rows[NROWS * NSIZES];
static struct rtt rtts[3 * NRT_SIZES];
static int nrtt, have_iox;
static struct wsrow wsrows[8];
static int nws;
static uint32_t ws_many;
static int nrows_done;
static struct futex_ref fref;
static struct sysc sysc;
static struct starve starve;
static struct pubr pubr[2];
static struct target targets[48];
static int ntargets;
static double cl_all[2 * NROWS * NSIZES + 6 * NRT_SIZES + 64];
static int ncl;

static struct row *find_row(enum transport t, int wait, int zc, uint64_t size)
{
    for (int i = 0; i < nrows_done; i++)
        if (rows[i].spec.t == t && rows[i].spec.wait == wait && rows[i].spec.zc == zc &&
            rows[i].size == size && rows[i].ok)
            return &rows[i];
    return NULL;
}

static const struct memref *find_mem(uint64_t size)
{
    for (unsigned i = 0; i < NSIZES; i++)
        if (mem[i].size == size)
            return &mem[i];
    return NULL;
}

static struct target *add_target(const char *name, double limit)
{
    struct target *t = &targets[ntargets++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->limit = limit;
    t->state = "–";
    return t;
}

/* Same state for a ratio? Both must be fast or both slow (never mixed). */
static int same_state(const char *a, const char *b)
{
    return strcmp(a, "mixed") != 0 && strcmp(a, b) == 0;
}

static struct rtt *find_rtt(enum rtkind k, uint64_t size)
{
    for (int i = 0; i < nrtt; i++)
        if (rtts[i].kind == k && rtts[i].size == size && rtts[i].ok)
            return &rtts[i];
    return NULL;
}

/* a / b of two rows' medians, comparable only in the same cross-core state */
static void ratio_rows(struct target *t, const struct row *a, const struct row *b, int inverse)
{
    if (!a || !b)
        return;
    t->value = inverse ? b->lat.p50 / a->lat.p50 : a->lat.p50 / b->lat.p50;
    t->known = same_state(a->state, b->state);
    t->state = a->state;
    snprintf(t->detail, sizeof t->detail, "%s: %s; %s: %s [%s / %s]", a->spec.label,
             fmt_ns(a->lat.p50), b->spec.label, fmt_ns(b->lat.p50), a->state, b->state);
}

static void eval_goals_wait(void)
{
    struct target *t = add_target("G3 64 B blocking wait / bare futex wake-up", 1.2);
    t->goal = 1;
    struct row *w64 = find_row(T_NDSHM, 1, 0, 64);
    if (w64 && fref.lat.n) {
        t->value = w64->lat.p50 / fref.lat.p50;
        t->known = same_state(w64->state, fref.state);
        t->state = w64->state;
        snprintf(t->detail, sizeof t->detail, "%s / %s [futex %s]", fmt_ns(w64->lat.p50),
                 fmt_ns(fref.lat.p50), fref.state);
    }
    struct wsrow *one = NULL, *many = NULL, *sweep = NULL;
    for (int i = 0; i < nws; i++) {
        if (!wsrows[i].ok)
            continue;
        if (wsrows[i].nchan == 1 && wsrows[i].mode == WS_WAIT)
            one = &wsrows[i];
        if (wsrows[i].nchan > 1 && wsrows[i].mode == WS_WAIT)
            many = &wsrows[i];
        if (wsrows[i].nchan > 1 && wsrows[i].mode == WS_POLL)
            sweep = &wsrows[i];
    }
    t = add_target("G3 waitset wake, 1 channel / bare futex wake-up", 1.2);
    t->goal = 1;
    if (one && fref.lat.n) {
        t->value = one->lat.p50 / fref.lat.p50;
        t->known = same_state(one->state, fref.state);
        t->state = one->state;
        snprintf(t->detail, sizeof t->detail, "%s / %s [futex %s]", fmt_ns(one->lat.p50),
                 fmt_ns(fref.lat.p50), fref.state);
    }
    char wname[96];
    snprintf(wname, sizeof wname, "G3 waitset, %u idle channels / 1 channel", ws_many);
    t = add_target(wname, 2.0);
    t->goal = 1;
    if (one && many) {
        t->value = many->lat.p50 / one->lat.p50;
        t->known = same_state(many->state, one->state);
        t->state = many->state;
        snprintf(t->detail, sizeof t->detail, "%s / %s; polling them all instead: %s [%s]",
                 fmt_ns(many->lat.p50), fmt_ns(one->lat.p50), sweep ? fmt_ns(sweep->lat.p50) : "–",
                 one->state);
    }
    t = add_target("G3 syscalls in publishes while nobody waits", 0);
    t->goal = 1;
    if (sysc.available) {
        t->value = (double)(sysc.no_reader + sysc.polling_reader);
        t->known = 1;
        snprintf(t->detail, sizeof t->detail,
                 "%" PRIu64 " (no reader) + %" PRIu64 " (polling reader) in 2 x %" PRIu64
                 " publishes",
                 sysc.no_reader, sysc.polling_reader, sysc.publishes);
    } else {
        snprintf(t->detail, sizeof t->detail,
                 "perf_event_open unavailable here (no raw_syscalls tracepoint)");
    }
}

static void eval_goals(void)
{
    struct target *t;
    static const uint64_t small[] = {64, 4096}, large[] = {1048576, 6220800};
    for (int zc = 0; zc < 2; zc++) {
        char name[96];
        snprintf(name, sizeof name, "G1 64 B %s: ndshm / bare seqlock (same slots)",
                 zc ? "view" : "copy");
        t = add_target(name, 1.25);
        t->goal = 1;
        ratio_rows(t, find_row(T_NDSHM, 0, zc, 64), find_row(T_SEQ, 0, zc, 64), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "G2 %s copy: iceoryx / ndshm (round trip / 2)",
                 fmt_size(large[i]));
        t = add_target(name, 1.3);
        t->goal = 1;
        t->ge = 1;
        struct rtt *n = find_rtt(RT_NDSHM, large[i]), *x = find_rtt(RT_IOX, large[i]);
        if (n && x) {
            t->value = x->half.p50 / n->half.p50;
            t->known = same_state(n->state, x->state);
            t->state = n->state;
            snprintf(t->detail, sizeof t->detail, "iceoryx %s / ndshm %s [%s / %s]",
                     fmt_ns(x->half.p50), fmt_ns(n->half.p50), x->state, n->state);
        } else if (!have_iox) {
            snprintf(t->detail, sizeof t->detail,
                     "iceoryx not measured (harness built without iceoryx, or no iox-roudi)");
        }
    }
    for (unsigned i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "G2 %s copy: ndshm / bare seqlock (same slots)",
                 fmt_size(large[i]));
        t = add_target(name, 1.2);
        t->goal = 1;
        ratio_rows(t, find_row(T_NDSHM, 0, 0, large[i]), find_row(T_SEQ, 0, 0, large[i]), 0);
    }
    for (unsigned i = 0; i < 2; i++) { /* "ahead of iceoryx at every size": small ones too */
        char name[96];
        snprintf(name, sizeof name, "G2 %s copy: iceoryx / ndshm (round trip / 2)",
                 fmt_size(small[i]));
        t = add_target(name, 1.0);
        t->goal = 1;
        t->ge = 1;
        struct rtt *n = find_rtt(RT_NDSHM, small[i]), *x = find_rtt(RT_IOX, small[i]);
        if (n && x) {
            t->value = x->half.p50 / n->half.p50;
            t->known = same_state(n->state, x->state);
            t->state = n->state;
            snprintf(t->detail, sizeof t->detail, "iceoryx %s / ndshm %s [%s / %s]",
                     fmt_ns(x->half.p50), fmt_ns(n->half.p50), x->state, n->state);
        }
    }
    eval_goals_wait();
    t = add_target("G4 Python per-call cost (64 B read(out=) <= 1.5 µs, view <= 2 µs)", 0);
    t->goal = 1;
    snprintf(t->detail, sizeof t->detail,
             "not measured by this harness: bench/python/bench_py.py (docs/benchmarks-python.md)");
    t = add_target("G5 every micro-benchmark finishes in seconds", 0);
    t->goal = 1;
    snprintf(t->detail, sizeof t->detail,
             "not measured by this harness: `ndshm-micro` (docs/benchmarks.md, Micro-benchmarks)");
}

static void eval_targets(void)
{
    struct target *t;
    eval_goals();
    struct row *r64 = find_row(T_NDSHM, 0, 0, 64);
    t = add_target("64 B busy-poll copy / cache-line one-way", 2.5);
    if (r64) {
        double cl = (r64->cl_before + r64->cl_after) / 2;
        t->value = r64->lat.p50 / cl;
        t->known = strcmp(r64->state, "mixed") != 0;
        t->state = r64->state;
        snprintf(t->detail, sizeof t->detail, "%s / %.0f ns", fmt_ns(r64->lat.p50), cl);
    }
    struct row *hd = find_row(T_NDSHM, 0, 0, 6220800);
    const struct memref *m = find_mem(6220800);
    t = add_target("1080p busy-poll copy / (2 x memcpy 1080p)", 1.2);
    if (hd && m) {
        t->value = hd->lat.p50 / (2 * m->ns);
        t->known = same_state(hd->state, m->state);
        t->state = hd->state;
        snprintf(t->detail, sizeof t->detail, "%s / (2 x %s) [memcpy %s]", fmt_ns(hd->lat.p50),
                 fmt_ns(m->ns), m->state);
    }
    struct row *zc = find_row(T_NDSHM, 0, 1, 6220800);
    t = add_target("1080p zero-copy busy-poll / 64 B copy busy-poll", 3.0);
    if (zc && r64) {
        t->value = zc->lat.p50 / r64->lat.p50;
        t->known = same_state(zc->state, r64->state);
        t->state = zc->state;
        snprintf(t->detail, sizeof t->detail, "%s / %s [64 B row %s]", fmt_ns(zc->lat.p50),
                 fmt_ns(r64->lat.p50), r64->state);
    }
    struct row *w64 = find_row(T_NDSHM, 1, 0, 64);
    t = add_target("64 B blocking wait / bare futex wake-up", 1.2);
    if (w64 && fref.lat.n) {
        t->value = w64->lat.p50 / fref.lat.p50;
        t->known = same_state(w64->state, fref.state);
        t->state = w64->state;
        snprintf(t->detail, sizeof t->detail, "%s / %s [futex %s]", fmt_ns(w64->lat.p50),
                 fmt_ns(fref.lat.p50), fref.state);
    }
    t = add_target("syscalls in publishes while no reader sleeps", 0);
    if (sysc.available) {
        t->value = (double)(sysc.no_reader + sysc.polling_reader);
        t->known = 1;
        snprintf(t->detail, sizeof t->detail,
                 "%" PRIu64 " (no reader) + %" PRIu64 " (polling reader) in 2 x %" PRIu64
                 " publishes; with a sleeping reader: %" PRIu64,
                 sysc.no_reader, sysc.polling_reader, sysc.publishes, sysc.sleeping_reader);
    }
    /* against the sockets: lower is better, so the target is ratio >= X; store 1/ratio */
    static const struct {
        const char *name;
        uint64_t size;
        int zc;
        double x;
    } vs[] = {{"64 B busy-poll", 64, 0, 50},
              {"1080p copy", 6220800, 0, 4},
              {"1080p zero-copy", 6220800, 1, 1000}};
    for (unsigned i = 0; i < 3; i++) {
        for (enum transport tr = T_UNIX; tr <= T_ZMQ; tr++) {
            char name[96];
            snprintf(name, sizeof name, "%s: %s / ndshm", vs[i].name, TNAME[tr]);
            t = add_target(name, vs[i].x);
            struct row *a = find_row(tr, 1, 0, vs[i].size);
            struct row *b = find_row(T_NDSHM, 0, vs[i].zc, vs[i].size);
            if (a && b) {
                t->value = a->lat.p50 / b->lat.p50;
                t->known = same_state(a->state, b->state);
                t->state = b->state;
                snprintf(t->detail, sizeof t->detail, "%s / %s [%s row %s]", fmt_ns(a->lat.p50),
                         fmt_ns(b->lat.p50), TNAME[tr], a->state);
            }
        }
    }
    t = add_target("starvation: back-to-back reader rate / paced reader rate", 0.8);
    if (starve.paced_reader_hz > 0) {
        t->value = starve.bb_reader_hz / starve.paced_reader_hz;
        t->known = strcmp(starve.state, "mixed") != 0;
        t->state = starve.state;
        snprintf(t->detail, sizeof t->detail, "%.0f/s / %.0f/s (one slot: %.0f/s)",
                 starve.bb_reader_hz, starve.paced_reader_hz, starve.oneslot_reader_hz);
    }
    for (int i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "publish %s: 4 readers / none", fmt_size(pubr[i].size));
        t = add_target(name, 1.3);
        if (pubr[i].none_p50 > 0) {
            t->value = pubr[i].four_p50 / pubr[i].none_p50;
            t->known = strcmp(pubr[i].state, "mixed") != 0;
            t->state = pubr[i].state;
            snprintf(t->detail, sizeof t->detail, "%s / %s", fmt_ns(pubr[i].four_p50),
                     fmt_ns(pubr[i].none_p50));
        }
    }
}

static int target_ge(const struct target *t)
{
    /* ">= X" targets (the socket comparisons, starvation) are met when value >= limit */
    return t->ge || strstr(t->name, " / ndshm") != NULL || strstr(t->name, "starvation") != NULL;
}

static int target_met(const struct target *t)
{
    return target_ge(t) ? t->value >= t->limit : t->value <= t->limit;
}

static const char *met_text(const struct target *t)
{
    return !t->detail[0] || (t->goal && t->limit == 0 && !t->known) ? "n/a"
           : !t->known                                              ? "n/a (states differ)"
           : target_met(t)                                          ? "**yes**"
                                                                    : "**no**";
}

static void md_target(FILE *f, const struct target *t)
{
    fprintf(f, "| %s | %.*f | %s %g | %s | %s | %s |\n", t->name, t->value < 10 ? 2 : 0, t->value,
            target_ge(t) ? "≥" : "≤", t->limit, met_text(t), t->state, t->detail);
}

static void write_md(FILE *f, const char *cmdline, double secs)
{
    struct utsname u;
    uname(&u);
    double load[3] = {0};
    getloadavg(load, 3);
    fprintf(f,
            "Command: `%s` — %s, %s %s, CPUs %d (writer) and %d (reader), run took %.0f s, "
            "load average at the end %.2f %.2f %.2f.\n\n",
            cmdline, cfg.quick ? "quick mode" : "full mode", u.sysname, u.release, cfg.cpu_w,
            cfg.cpu_r, secs, load[0], load[1], load[2]);
    uint64_t clv[sizeof cl_all / sizeof cl_all[0]];
    int nfast = 0;
    for (int i = 0; i < ncl; i++) {
        clv[i] = (uint64_t)cl_all[i];
        nfast += cl_all[i] < FAST_LIMIT_NS;
    }
    struct stats cs = stats_of(clv, (uint64_t)ncl);
    fprintf(f,
            "Cache-line one-way time over the whole run: median %.0f ns, min %.0f ns, max "
            "%.0f ns; %d of %d measurements in the fast state (< %.0f ns).\n\n",
            cs.p50, cs.min, cs.max, nfast, ncl, FAST_LIMIT_NS);
    fprintf(f,
            "Machine: %s; caches (per instance, sysfs): %s; ring slots %u (ndshm and the "
            "bare seqlock).\n\n",
            mach.model, mach.caches, cfg.slots);
    for (int pass = 0; pass < 2; pass++) {
        fprintf(f, pass ? "\n### Other targets\n\n| target | figure | limit | met | state | detail "
                          "|\n|---|---|---|---|---|---|\n"
                        : "### Goals of issue 15\n\n| goal | figure | limit | met | state | detail "
                          "|\n|---|---|---|---|---|---|\n");
        for (int i = 0; i < ntargets; i++) {
            const struct target *t = &targets[i];
            if (t->goal != !pass)
                continue;
            md_target(f, t);
        }
    }
    if (nws) {
        fprintf(f, "\n### Waiting on many channels (64 B, writer publishes on one channel every "
                   "200 µs; latency = publish → the waiter knows which channel and holds the "
                   "version)\n\n| channels | how | n | min | median | p99 | state |\n"
                   "|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < nws; i++) {
            const struct wsrow *r = &wsrows[i];
            fprintf(f, "| %u | %s | %" PRIu64 " | %s | %s | %s | %s %.0f/%.0f%s |\n", r->nchan,
                    WSNAME[r->mode], r->lat.n, fmt_ns(r->lat.min), fmt_ns(r->lat.p50),
                    fmt_ns(r->lat.p99), r->state, r->cl_before, r->cl_after,
                    r->ok ? "" : " FAILED");
        }
    }
    if (nrtt) {
        fprintf(f, "\n### Round trip / 2 (iceperf's method: copy in, copy out, both sides "
                   "busy-poll)\n\n| transport | size | n | min | median | p99 | state |\n"
                   "|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < nrtt; i++) {
            const struct rtt *r = &rtts[i];
            fprintf(f, "| %s | %s | %" PRIu64 " | %s | %s | %s | %s %.0f/%.0f%s |\n",
                    RTNAME[r->kind], fmt_size(r->size), r->half.n, fmt_ns(r->half.min),
                    fmt_ns(r->half.p50), fmt_ns(r->half.p99), r->state, r->cl_before, r->cl_after,
                    r->ok ? "" : " FAILED");
        }
    }
    fprintf(f, "\n### References (same run)\n\n| reference | size | median | state |\n"
               "|---|---|---|---|\n");
    for (unsigned i = 0; i < NSIZES; i++)
        if (mem[i].size)
            fprintf(f, "| memcpy | %s | %s | %s |\n", fmt_size(mem[i].size), fmt_ns(mem[i].ns),
                    mem[i].state);
    if (fref.lat.n)
        fprintf(f, "| bare futex wake-up (p99 %s; writer inside FUTEX_WAKE %s) | 4 B | %s | %s |\n",
                fmt_ns(fref.lat.p99), fmt_ns(fref.wake_p50), fmt_ns(fref.lat.p50), fref.state);
    fprintf(f, "\n### One-way latency\n\nLatency = reader's clock once it holds the whole array "
               "(copy done, or view obtained and checked) − writer's clock just before it "
               "started sending. *writer* = the writer's time inside publish / send. *rate* = "
               "messages per second the reader gets while the writer sends back to back. "
               "*state* = cache-line state before/after the row (ns).\n\n"
               "| transport | size | n | min | median | p99 | p99.9 | max | writer | rate /s | "
               "state |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nrows_done; i++) {
        const struct row *r = &rows[i];
        fprintf(f,
                "| %s | %s | %" PRIu64 " | %s | %s | %s | %s | %s | %s | %.0f | %s %.0f/%.0f%s |\n",
                r->spec.label, fmt_size(r->size), r->lat.n, fmt_ns(r->lat.min), fmt_ns(r->lat.p50),
                fmt_ns(r->lat.p99), fmt_ns(r->lat.p999), fmt_ns(r->lat.max), fmt_ns(r->wside_p50),
                r->rate_hz, r->state, r->cl_before, r->cl_after, r->ok ? "" : " FAILED");
    }
    fprintf(f, "\n### Syscalls, starvation, readers\n\n");
    if (sysc.available)
        fprintf(f,
                "- Syscalls counted by the `raw_syscalls:sys_enter` tracepoint (perf_event_open "
                "on the writer thread) during %" PRIu64 " publishes of 64 B: **%" PRIu64
                "** with no reader, **%" PRIu64 "** with a busy-polling reader, %" PRIu64
                " with a reader sleeping in ndshm_wait (the FUTEX_WAKEs: the counter works).\n",
                sysc.publishes, sysc.no_reader, sysc.polling_reader, sysc.sleeping_reader);
    else
        fprintf(f, "- Syscall count: perf_event_open unavailable on this machine.\n");
    fprintf(f,
            "- Starvation (1080p, copying reader, read_latest, 4 slots): writer back to back "
            "%.0f/s → reader %.0f consistent frames/s (%.0f CONTENDED/s); writer paced at 50 %% "
            "duty %.0f/s → reader %.0f/s; ratio %.2f. A one-slot channel with the writer back "
            "to back: reader %.0f/s (%.0f CONTENDED/s). State %s (%.0f/%.0f ns).\n",
            starve.bb_writer_hz, starve.bb_reader_hz, starve.bb_contended_hz,
            starve.paced_writer_hz, starve.paced_reader_hz,
            starve.paced_reader_hz > 0 ? starve.bb_reader_hz / starve.paced_reader_hz : 0,
            starve.oneslot_reader_hz, starve.oneslot_contended_hz, starve.state, starve.cl_before,
            starve.cl_after);
    for (int i = 0; i < 2; i++)
        fprintf(f,
                "- Publish %s, median: %s with no reader, %s with 4 readers attached and "
                "reading (state %s).\n",
                fmt_size(pubr[i].size), fmt_ns(pubr[i].none_p50), fmt_ns(pubr[i].four_p50),
                pubr[i].state);
}

static void json_stats(FILE *f, const struct stats *s)
{
    fprintf(f,
            "\"n\": %" PRIu64 ", \"min_ns\": %.0f, \"p50_ns\": %.0f, \"p99_ns\": %.0f, "
            "\"p999_ns\": %.0f, \"max_ns\": %.0f",
            s->n, s->min, s->p50, s->p99, s->p999, s->max);
}

static void write_json(FILE *f, double secs)
{
    fprintf(f,
            "{\n  \"tool\": \"ndshm-bench\", \"version\": \"%s\", \"quick\": %s, "
            "\"seconds\": %.1f, \"cpus\": [%d, %d],\n  \"rows\": [\n",
            ndshm_version(), cfg.quick ? "true" : "false", secs, cfg.cpu_w, cfg.cpu_r);
    for (int i = 0; i < nrows_done; i++) {
        const struct row *r = &rows[i];
        fprintf(f,
                "    {\"transport\": \"%s\", \"mode\": \"%s\", \"zero_copy\": %s, "
                "\"label\": \"%s\", \"size\": %" PRIu64 ", ",
                TNAME[r->spec.t], r->spec.wait ? "wait" : "poll", r->spec.zc ? "true" : "false",
                r->spec.label, r->size);
        json_stats(f, &r->lat);
        fprintf(f,
                ", \"writer_p50_ns\": %.0f, \"rate_hz\": %.1f, \"state\": \"%s\", "
                "\"cacheline_before_ns\": %.0f, \"cacheline_after_ns\": %.0f, "
                "\"attempts\": %d, \"errors\": %" PRIu64 ", \"ok\": %s}%s\n",
                r->wside_p50, r->rate_hz, r->state, r->cl_before, r->cl_after, r->attempts,
                r->errors, r->ok ? "true" : "false", i + 1 < nrows_done ? "," : "");
    }
    fprintf(f, "  ],\n  \"references\": {\n    \"memcpy\": [");
    int first = 1;
    for (unsigned i = 0; i < NSIZES; i++) {
        if (!mem[i].size)
            continue;
        fprintf(f, "%s{\"size\": %" PRIu64 ", \"p50_ns\": %.0f, \"state\": \"%s\"}",
                first ? "" : ", ", mem[i].size, mem[i].ns, mem[i].state);
        first = 0;
    }
    fprintf(f, "],\n    \"futex\": {");
    json_stats(f, &fref.lat);
    fprintf(f, ", \"wake_p50_ns\": %.0f, \"state\": \"%s\"},\n    \"cacheline_ns\": [",
            fref.wake_p50, fref.state ? fref.state : "");
    for (int i = 0; i < ncl; i++)
        fprintf(f, "%s%.0f", i ? ", " : "", cl_all[i]);
    fprintf(f, "]\n  },\n  \"targets\": [\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *t = &targets[i];
        fprintf(f,
                "    {\"name\": \"%s\", \"value\": %.4g, \"limit\": %g, \"met\": %s, "
                "\"comparable\": %s, \"goal\": %s, \"ge\": %s, \"state\": \"%s\", "
                "\"detail\": \"%s\"}%s\n",
                t->name, t->value, t->limit, target_met(t) ? "true" : "false",
                t->known ? "true" : "false", t->goal ? "true" : "false",
                target_ge(t) ? "true" : "false", t->state, t->detail, i + 1 < ntargets ? "," : "");
    }
    fprintf(f,
            "  ],\n  \"syscalls\": {\"available\": %s, \"publishes\": %" PRIu64
            ", \"no_reader\": %" PRIu64 ", \"polling_reader\": %" PRIu64
            ", \"sleeping_reader\": %" PRIu64 "},\n",
            sysc.available ? "true" : "false", sysc.publishes, sysc.no_reader, sysc.polling_reader,
            sysc.sleeping_reader);
    fprintf(f,
            "  \"starvation\": {\"size\": %" PRIu64 ", \"backtoback_writer_hz\": %.1f, "
            "\"backtoback_reader_hz\": %.1f, \"backtoback_contended_hz\": %.1f, "
            "\"paced_writer_hz\": %.1f, \"paced_reader_hz\": %.1f, "
            "\"oneslot_reader_hz\": %.1f, \"oneslot_contended_hz\": %.1f, \"state\": \"%s\"},\n",
            starve.size, starve.bb_writer_hz, starve.bb_reader_hz, starve.bb_contended_hz,
            starve.paced_writer_hz, starve.paced_reader_hz, starve.oneslot_reader_hz,
            starve.oneslot_contended_hz, starve.state ? starve.state : "");
    fprintf(f,
            "  \"machine\": {\"model\": \"%s\", \"caches\": \"%s\", \"llc_bytes\": %" PRIu64
            ", \"slots\": %u},\n  \"rtt\": [",
            mach.model, mach.caches, mach.llc_bytes, cfg.slots);
    for (int i = 0; i < nrtt; i++) {
        fprintf(f, "%s{\"transport\": \"%s\", \"size\": %" PRIu64 ", ", i ? ", " : "",
                RTNAME[rtts[i].kind], rtts[i].size);
        json_stats(f, &rtts[i].half);
        fprintf(f, ", \"state\": \"%s\", \"ok\": %s}", rtts[i].state ? rtts[i].state : "",
                rtts[i].ok ? "true" : "false");
    }
    fprintf(f, "],\n  \"waitsets\": [");
    for (int i = 0; i < nws; i++) {
        fprintf(f, "%s{\"channels\": %u, \"mode\": \"%s\", ", i ? ", " : "", wsrows[i].nchan,
                WSNAME[wsrows[i].mode]);
        json_stats(f, &wsrows[i].lat);
        fprintf(f, ", \"state\": \"%s\", \"ok\": %s}", wsrows[i].state ? wsrows[i].state : "",
                wsrows[i].ok ? "true" : "false");
    }
    fprintf(f, "],\n");
    fprintf(f, "  \"publish_readers\": [");
    for (int i = 0; i < 2; i++)
        fprintf(f,
                "%s{\"size\": %" PRIu64 ", \"none_p50_ns\": %.0f, \"four_p50_ns\": %.0f, "
                "\"state\": \"%s\"}",
                i ? ", " : "", pubr[i].size, pubr[i].none_p50, pubr[i].four_p50,
                pubr[i].state ? pubr[i].state : "");
    fprintf(f, "]\n}\n");
}

/* gnuplot data: one block per transport (a header line with its name, then "size p50_us
 * p99_us" lines), two blank lines between blocks. */
static void write_dat(FILE *f)
{
    for (unsigned k = 0; k < NROWS; k++) {
        fprintf(f, "\"%s\" p50_us p99_us\n", ROWS[k].label);
        for (int i = 0; i < nrows_done; i++) {
            const struct row *r = &rows[i];
            if (r->spec.t == ROWS[k].t && r->spec.wait == ROWS[k].wait &&
                r->spec.zc == ROWS[k].zc && r->ok)
                fprintf(f, "%" PRIu64 " %.3f %.3f\n", r->size, r->lat.p50 / 1e3, r->lat.p99 / 1e3);
        }
        fprintf(f, "\n\n");
    }
    fprintf(f, "\"memcpy (one copy)\" p50_us p99_us\n");
    for (unsigned i = 0; i < NSIZES; i++)
        if (mem[i].size)
            fprintf(f, "%" PRIu64 " %.3f %.3f\n", mem[i].size, mem[i].ns / 1e3, mem[i].ns / 1e3);
    fprintf(f, "\n\n");
}

/* ----- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fputs("usage: ndshm-bench [--quick] [--json FILE] [--md FILE] [--dat FILE] "
          "[--cpus W,R] [--sizes 64,6220800,...] [--slots N]\n"
          "  Two-process latency harness of ndshm with same-run references (cache line,\n"
          "  memcpy, futex, pipe, UNIX socket, ZeroMQ ipc). Markdown report on stdout unless\n"
          "  --md; --json: machine summary; --dat: gnuplot data for bench/plot.gp.\n"
          "  --quick: fewer samples and sizes. --slots: ring slots of ndshm and the bare\n"
          "  seqlock (default 4). Round trip / 2 rows (iceperf's method) against iceoryx\n"
          "  when built with it and iox-roudi is in PATH.\n",
          stderr);
}

static void pick_cpus(void)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    sched_getaffinity(0, sizeof s, &s);
    int found[2] = {-1, -1}, k = 0;
    for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &s))
            found[k++] = c;
    cfg.cpu_w = found[0] < 0 ? 0 : found[0];
    cfg.cpu_r = found[1] < 0 ? cfg.cpu_w : found[1];
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"quick", no_argument, 0, 'q'},
                                         {"json", required_argument, 0, 'j'},
                                         {"md", required_argument, 0, 'm'},
                                         {"dat", required_argument, 0, 'd'},
                                         {"cpus", required_argument, 0, 'c'},
                                         {"sizes", required_argument, 0, 's'},
                                         {"slots", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    pick_cpus();
    int c;
    while ((c = getopt_long(argc, argv, "qj:m:d:c:s:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            cfg.slots = (uint32_t)strtoul(optarg, NULL, 10);
            if (cfg.slots == 0 || cfg.slots > 1024) {
                usage();
                return 2;
            }
            break;
        case 'q':
            cfg.quick = 1;
            break;
        case 'j':
            cfg.json = optarg;
            break;
        case 'm':
            cfg.md = optarg;
            break;
        case 'd':
            cfg.dat = optarg;
            break;
        case 'c':
            if (sscanf(optarg, "%d,%d", &cfg.cpu_w, &cfg.cpu_r) != 2) {
                usage();
                return 2;
            }
            break;
        case 's': {
            /* a copy: strtok() must not cut argv, which the report quotes as the command */
            char list[256];
            snprintf(list, sizeof list, "%s", optarg);
            for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
                unsigned long long v = strtoull(tok, NULL, 10);
                for (unsigned i = 0; i < NSIZES; i++)
                    if (SIZES[i] == v)
                        cfg.size_mask |= 1u << i;
            }
            break;
        }
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    char cmdline[512] = "ndshm-bench";
    for (int i = 1; i < argc; i++) {
        strncat(cmdline, " ", sizeof cmdline - strlen(cmdline) - 1);
        strncat(cmdline, argv[i], sizeof cmdline - strlen(cmdline) - 1);
    }
    if (cfg.slots == 0)
        cfg.slots = 4;
    cfg.budget_s = cfg.quick ? 0.12 : 1.2;
    cfg.rate_s = cfg.quick ? 0.05 : 0.3;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap", NDSHM_E_SYS);
    signal(SIGPIPE, SIG_IGN);
    uint64_t t_start = now_ns();
    fprintf(stderr, "ndshm-bench %s: writer CPU %d, reader CPU %d%s\n", ndshm_version(), cfg.cpu_w,
            cfg.cpu_r, cfg.quick ? " (quick)" : "");

#ifdef NDSHM_BENCH_IOX
    have_iox = roudi_start() == 0;
    atexit(roudi_stop);
#endif
    machine_info();
    fprintf(stderr, "references:\n");
    futex_measure(&fref);
    syscalls_measure(&sysc);
    for (unsigned si = 0; si < NSIZES; si++) {
        uint64_t size = SIZES[si];
        if (cfg.size_mask ? !(cfg.size_mask & (1u << si))
                          : cfg.quick && size != 64 && size != 1048576 && size != 6220800)
            continue;
        struct memref *m = &mem[si];
        m->size = size;
        m->cl_before = pingpong();
        m->ns = memcpy_ns(size);
        m->cl_after = pingpong();
        int same = (m->cl_before < FAST_LIMIT_NS) == (m->cl_after < FAST_LIMIT_NS);
        m->state = same ? state_of(m->cl_before) : "mixed";
        fprintf(stderr, "size %s: memcpy %s [%s]\n", fmt_size(size), fmt_ns(m->ns), m->state);
        for (unsigned k = 0; k < NROWS && !getenv("NDSHM_BENCH_RTT_ONLY"); k++) {
#ifndef NDSHM_BENCH_ZMQ
            if (ROWS[k].t == T_ZMQ)
                continue;
#endif
            struct row *r = &rows[nrows_done++];
            r->spec = ROWS[k];
            r->size = size;
            run_row(r);
            cl_all[ncl++] = r->cl_before;
            cl_all[ncl++] = r->cl_after;
        }
        for (unsigned k = 0; k < NRT_SIZES; k++) {
            if (RT_SIZES[k] != size)
                continue;
            for (int kind = RT_NDSHM; kind <= RT_IOX; kind++) {
                if (kind == RT_IOX && !have_iox)
                    continue;
                struct rtt *t = &rtts[nrtt++];
                t->kind = (enum rtkind)kind;
                t->size = size;
                rtt_measure(t);
                cl_all[ncl++] = t->cl_before;
                cl_all[ncl++] = t->cl_after;
            }
        }
    }
#ifdef NDSHM_BENCH_IOX
    roudi_stop();
#endif
    fprintf(stderr, "starvation and readers:\n");
    starve_measure(&starve);
    pubr_measure(&pubr[0], 64);
    pubr_measure(&pubr[1], 6220800);
    fprintf(stderr, "waiting on many channels:\n");
    uint32_t room = sysv_headroom();
    ws_many = cfg.quick ? 256 : 4096;
    if (ws_many + 8 > room) /* one wait page per writer, one doorbell per waitset */
        ws_many = room > 8 ? room - 8 : 1;
    if (ws_many < (cfg.quick ? 256u : 4096u))
        fprintf(stderr, "  kernel.shmmni leaves room for %u System V segments: %u channels\n", room,
                ws_many);
    static const struct {
        int many;
        enum wsmode mode;
    } wsplan[] = {{0, WS_WAIT}, {0, WS_FD}, {1, WS_WAIT}, {1, WS_FD}, {1, WS_POLL}};
    for (unsigned i = 0; i < sizeof wsplan / sizeof wsplan[0]; i++) {
        struct wsrow *wr = &wsrows[nws++];
        wr->nchan = wsplan[i].many ? ws_many : 1;
        wr->mode = wsplan[i].mode;
        ws_measure(wr);
    }
    double secs = (double)(now_ns() - t_start) / 1e9;
    eval_targets();

    FILE *f = cfg.md ? fopen(cfg.md, "w") : stdout;
    if (!f)
        die("open --md", NDSHM_E_SYS);
    write_md(f, cmdline, secs);
    if (f != stdout)
        fclose(f);
    if (cfg.json) {
        f = strcmp(cfg.json, "-") == 0 ? stdout : fopen(cfg.json, "w");
        if (!f)
            die("open --json", NDSHM_E_SYS);
        write_json(f, secs);
        if (f != stdout)
            fclose(f);
    }
    if (cfg.dat) {
        f = fopen(cfg.dat, "w");
        if (!f)
            die("open --dat", NDSHM_E_SYS);
        write_dat(f);
        fclose(f);
    }
    fprintf(stderr, "goals of issue 15:\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *t = &targets[i];
        if (t->goal)
            fprintf(stderr, "  %-62s %8.3g %s %-5g %-20s %s\n", t->name, t->value,
                    target_ge(t) ? ">=" : "<=", t->limit, met_text(t), t->detail);
    }
    fprintf(stderr, "done in %.0f s\n", secs);
    int failed = 0;
    for (int i = 0; i < nrows_done; i++)
        failed += !rows[i].ok;
    return failed ? 1 : 0;
}
