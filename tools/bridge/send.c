/*
 * ndshm-bridge send: channel -> ZeroMQ PUB.
 *
 * Copies: one. Each version is copied once out of shared memory by ndshm_read_next() /
 * ndshm_read_latest() — the copy the seqlock validates — into a pooled buffer that ZeroMQ
 * then sends in place (zmq_msg_init_data; the buffer comes back to the pool through the free
 * callback, from ZeroMQ's I/O thread). Sending straight from a slot (a view) is not safe
 * with ZeroMQ: its I/O thread reads the frame later, asynchronously, possibly after the
 * writer has reused the slot, and the free callback arrives too late to retract a torn frame.
 *
 * Back-pressure: the socket is an XPUB with ZMQ_XPUB_NODROP, so a full queue makes the send
 * fail with EAGAIN instead of ZeroMQ dropping the message silently. Every-version mode then
 * waits (the source writer never waits: versions pile up in the source ring and, if it
 * laps, ndshm counts them as dropped). --latest mode keeps the unsent message only until a
 * newer version exists and then replaces it: stale versions are dropped, and counted.
 * Either way `dropped` counts exactly the versions between the first and the last one sent
 * that were not sent. The slowest subscriber paces the sender (docs/bridge.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "bridge.h"

#define NDSHM_BRIDGE_CHECK(cond)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            bridge_log("invariant failed at %s:%d: %s", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ----- payload buffers handed to ZeroMQ --------------------------------------------------- */
#define POOL_MAX 32
#define BUF_HDR  64 /* capacity and length in front of the data; keeps it 64-byte aligned */

struct pool {
    pthread_mutex_t mu;
    unsigned char *free[POOL_MAX];
    int n;
    _Atomic uint64_t queued; /* payload bytes handed to ZeroMQ and not yet released */
};

static size_t buf_cap(const unsigned char *data)
{
    size_t cap;
    memcpy(&cap, data - BUF_HDR, sizeof cap);
    return cap;
}

static unsigned char *pool_get(struct pool *p, size_t need)
{
    pthread_mutex_lock(&p->mu);
    for (int i = p->n - 1; i >= 0; i--) {
        if (buf_cap(p->free[i]) >= need) {
            unsigned char *b = p->free[i];
            p->free[i] = p->free[--p->n];
            pthread_mutex_unlock(&p->mu);
            return b;
        }
    }
    pthread_mutex_unlock(&p->mu);
    size_t cap = need < 4096 ? 4096 : need;
    if (cap > SIZE_MAX - BUF_HDR - 63)
        return NULL;
    unsigned char *base = aligned_alloc(64, (cap + BUF_HDR + 63) / 64 * 64);
    if (!base)
        return NULL;
    memcpy(base, &cap, sizeof cap);
    return base + BUF_HDR;
}

static void pool_put(struct pool *p, unsigned char *data)
{
    pthread_mutex_lock(&p->mu);
    if (p->n < POOL_MAX) {
        p->free[p->n++] = data;
        data = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(data ? data - BUF_HDR : NULL);
}

/* ZeroMQ's free callback, called from its I/O thread once the frame is sent (or dropped). */
static void pool_release(void *data, void *hint)
{
    struct pool *p = hint;
    uint64_t len;
    memcpy(&len, (unsigned char *)data - BUF_HDR + 8, sizeof len);
    /* Relaxed: a counter for flow control; the buffer itself is handed over by the mutex. */
    atomic_fetch_sub_explicit(&p->queued, len, memory_order_relaxed);
    pool_put(p, data);
}

static void pool_destroy(struct pool *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->free[i] - BUF_HDR);
    p->n = 0;
}

/* ----- the sender ------------------------------------------------------------------------- */
struct sender {
    const struct bridge_opts *o;
    void *sock;
    struct pool pool;
    ndshm_reader *r;
    uint64_t created_ns; /* of the channel the reader is attached to */
    uint64_t session, seq;
    /* counters */
    uint64_t msgs, bytes, dropped, ring_dropped, contended, reopens, eagain, budget_waits;
    uint64_t first_version, last_version;
    uint64_t t0, next_stats;
    struct lat_stats age; /* publish -> handed to ZeroMQ, same host */
};

static void print_stats(struct sender *s, const char *what)
{
    uint64_t now = ndshm_now_ns();
    printf("send %s t=%.3f mode=%s msgs=%llu bytes=%llu dropped=%llu ring_dropped=%llu "
           "contended=%llu eagain=%llu budget_waits=%llu reopens=%llu first_version=%llu "
           "last_version=%llu "
           "age_us_p50=%.1f age_us_p99=%.1f age_us_max=%.1f\n",
           what, (double)(now - s->t0) / 1e9, s->o->latest ? "latest" : "every",
           (unsigned long long)s->msgs, (unsigned long long)s->bytes,
           (unsigned long long)s->dropped, (unsigned long long)s->ring_dropped,
           (unsigned long long)s->contended, (unsigned long long)s->eagain,
           (unsigned long long)s->budget_waits, (unsigned long long)s->reopens,
           (unsigned long long)s->first_version, (unsigned long long)s->last_version,
           (double)lat_pct(&s->age, 50) / 1e3, (double)lat_pct(&s->age, 99) / 1e3,
           (double)s->age.max / 1e3);
    lat_reset(&s->age);
}

static void maybe_stats(struct sender *s)
{
    if (s->o->stats_s <= 0)
        return;
    uint64_t now = ndshm_now_ns();
    if (now >= s->next_stats) {
        print_stats(s, "stats");
        s->next_stats = now + (uint64_t)(s->o->stats_s * 1e9);
    }
}

/* (Re)attach the reader; waits for the channel to exist. 0, or -1 when stopped. */
static int sender_open(struct sender *s)
{
    ndshm_reader_close(s->r);
    s->r = NULL;
    int warned = 0;
    while (!bridge_stop) {
        ndshm_channel_info ci;
        int rc = ndshm_stat(s->o->name, &ci);
        if (rc == NDSHM_OK)
            rc = ndshm_reader_open(s->o->name, NULL, &s->r);
        if (rc == NDSHM_OK) {
            s->created_ns = ci.created_ns;
            return 0;
        }
        if (!warned++)
            bridge_log("waiting for channel %s (%s)", s->o->name, ndshm_strerror(rc));
        maybe_stats(s);
        bridge_sleep_ns(50000000);
    }
    return -1;
}

/* 1 when the channel was removed or re-created since the reader attached. */
static int channel_replaced(struct sender *s)
{
    ndshm_channel_info ci;
    int rc = ndshm_stat(s->o->name, &ci);
    return rc != NDSHM_OK || ci.created_ns != s->created_ns;
}

/* Send one frame, retrying while the queue is full (every-version mode, or a payload frame
 * whose header frame is already out). 0, or -1 when stopped / on a socket error. */
static int send_frame(struct sender *s, zmq_msg_t *m, int flags)
{
    for (;;) {
        if (zmq_msg_send(m, s->sock, flags | ZMQ_DONTWAIT) >= 0)
            return 0;
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
            bridge_log("send: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (bridge_stop)
            return -1;
        s->eagain++;
        bridge_sleep_ns(50000);
    }
}

/* One version read into `data` (owned by the pool) with `info`: header and payload frames.
 * Returns 0 sent, 1 not sent because the queue is full (--latest only; data still ours), -1
 * stop/error (data released). */
static int send_version(struct sender *s, unsigned char *data, const ndshm_info *info)
{
    ndshm_wire_meta meta;
    unsigned char hdr[NDSHM_WIRE_HEADER_MAX];
    size_t hlen;
    if (ndshm_wire_meta_from_info(info, &meta) != NDSHM_OK)
        goto fail;
    meta.session = s->session;
    meta.stream_seq = s->seq + 1;
    int rc = ndshm_wire_encode_header(&meta, hdr, sizeof hdr, &hlen);
    if (rc != NDSHM_OK) {
        bridge_log("encode: %s", ndshm_strerror(rc));
        goto fail;
    }
    /* Byte budget: the high-water mark counts messages, which bounds nothing for 6 MB
     * frames; a full budget is back-pressure exactly like a full queue. */
    uint64_t queued = atomic_load_explicit(&s->pool.queued, memory_order_relaxed);
    if (queued > 0 && queued + info->nbytes > s->o->queue_bytes) {
        s->budget_waits++;
        if (s->o->latest)
            return 1;
        while (!bridge_stop &&
               (queued = atomic_load_explicit(&s->pool.queued, memory_order_relaxed)) > 0 &&
               queued + info->nbytes > s->o->queue_bytes)
            bridge_sleep_ns(50000);
        if (bridge_stop)
            goto fail;
    }
    zmq_msg_t h;
    if (zmq_msg_init_size(&h, hlen) != 0)
        goto fail;
    memcpy(zmq_msg_data(&h), hdr, hlen);
    /* The header frame decides: once it is out, the payload must follow. */
    for (;;) {
        if (zmq_msg_send(&h, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
            break;
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
            bridge_log("send: %s", zmq_strerror(zmq_errno()));
            zmq_msg_close(&h);
            goto fail;
        }
        s->eagain++;
        if (s->o->latest || bridge_stop) {
            zmq_msg_close(&h);
            if (bridge_stop)
                goto fail;
            return 1;
        }
        bridge_sleep_ns(50000);
    }
    zmq_msg_t p;
    if (info->nbytes == 0) {
        zmq_msg_init(&p);
        pool_put(&s->pool, data);
    } else {
        memcpy(data - BUF_HDR + 8, &info->nbytes, sizeof info->nbytes);
        atomic_fetch_add_explicit(&s->pool.queued, info->nbytes, memory_order_relaxed);
        /* cannot fail for a non-NULL buffer */
        NDSHM_BRIDGE_CHECK(zmq_msg_init_data(&p, data, info->nbytes, pool_release, &s->pool) == 0);
    }
    if (send_frame(s, &p, 0) != 0) {
        zmq_msg_close(&p);
        return -1;
    }
    s->seq++;
    s->msgs++;
    s->bytes += hlen + info->nbytes;
    if (s->last_version && info->version > s->last_version + 1)
        s->dropped += info->version - s->last_version - 1;
    if (!s->first_version)
        s->first_version = info->version;
    s->last_version = info->version;
    uint64_t now = ndshm_now_ns();
    lat_add(&s->age, now > info->publish_ns ? now - info->publish_ns : 0);
    return 0;
fail:
    pool_put(&s->pool, data);
    return -1;
}

int bridge_send(const struct bridge_opts *o)
{
    struct sender s;
    memset(&s, 0, sizeof s);
    s.o = o;
    pthread_mutex_init(&s.pool.mu, NULL);
    s.session = bridge_session_id();
    s.t0 = ndshm_now_ns();
    s.next_stats = s.t0 + (uint64_t)(o->stats_s * 1e9);
    int status = 1;
    void *ctx = zmq_ctx_new();
    if (!ctx) {
        bridge_log("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    s.sock = zmq_socket(ctx, ZMQ_XPUB);
    int one = 1;
    if (!s.sock || bridge_socket_setup(s.sock, o->hwm) != 0 ||
        zmq_setsockopt(s.sock, ZMQ_XPUB_NODROP, &one, sizeof one) != 0) {
        bridge_log("socket: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (bridge_attach(s.sock, o) != 0)
        goto done;
    if (sender_open(&s) != 0)
        goto stopped;

    size_t want = 4096;         /* buffer size for the next read */
    unsigned char *held = NULL; /* --latest: read but not yet sent */
    ndshm_info held_info;
    while (!bridge_stop) {
        maybe_stats(&s);
        /* XPUB delivers (un)subscriptions as messages: drain them, they are not needed. */
        char sub[256];
        while (zmq_recv(s.sock, sub, sizeof sub, ZMQ_DONTWAIT) >= 0)
            ;
        unsigned char *data = pool_get(&s.pool, want);
        if (!data) {
            bridge_log("out of memory for a %zu-byte buffer", want);
            break;
        }
        ndshm_info info;
        int rc = o->latest ? ndshm_read_latest(s.r, data, buf_cap(data), &info)
                           : ndshm_read_next(s.r, data, buf_cap(data), &info);
        if (rc == NDSHM_OK) {
            if (!o->latest)
                s.ring_dropped += info.dropped;
            if (held) { /* a newer version replaces the unsent one: it is dropped */
                pool_put(&s.pool, held);
                held = NULL;
            }
            int sent = send_version(&s, data, &info);
            if (sent == 1) {
                held = data;
                held_info = info;
            } else if (sent < 0) {
                break;
            }
            continue;
        }
        pool_put(&s.pool, data);
        if (rc == NDSHM_E_TOO_SMALL) { /* the handle did not advance; info.nbytes is the size */
            want = (size_t)info.nbytes;
            continue;
        }
        if (held) { /* nothing newer: retry the held version once the queue has room */
            int sent = send_version(&s, held, &held_info);
            if (sent < 0) {
                held = NULL;
                break;
            }
            held = sent == 1 ? held : NULL;
            if (sent == 0)
                continue;
        }
        if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA) {
            rc = ndshm_wait(s.r, held ? 1000000 : 100000000);
            if (rc != NDSHM_WRITER_GONE)
                continue;
        }
        if (rc == NDSHM_CONTENDED) {
            s.contended++;
            continue;
        }
        if (rc == NDSHM_WRITER_GONE) {
            /* A writer that takes the channel over continues on the same segments; a channel
             * removed or re-created needs a new reader. */
            bridge_sleep_ns(20000000);
            if (channel_replaced(&s)) {
                bridge_log("channel %s was removed or re-created: re-attaching", o->name);
                s.reopens++;
                s.last_version = 0; /* numbering restarts with a new channel */
                if (sender_open(&s) != 0)
                    break;
            }
            continue;
        }
        if (rc < 0) {
            bridge_log("read %s: %s; re-attaching", o->name, ndshm_strerror(rc));
            bridge_sleep_ns(100000000);
            s.reopens++;
            if (sender_open(&s) != 0)
                break;
        }
    }
    if (held)
        pool_put(&s.pool, held);
stopped:
    status = bridge_stop ? 0 : 1;
    print_stats(&s, "final");
done:
    if (s.sock)
        zmq_close(s.sock);
    if (ctx)
        zmq_ctx_term(ctx);
    bridge_detach(); /* waits for ZeroMQ to release every frame (linger 0) */
    ndshm_reader_close(s.r);
    pool_destroy(&s.pool);
    pthread_mutex_destroy(&s.pool.mu);
    lat_free(&s.age);
    return status;
}
