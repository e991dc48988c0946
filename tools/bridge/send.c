/*
 * ndshm-bridge send: channel -> ZeroMQ PUB.
 *
 * Copies: one. Each version is copied once out of shared memory by ndshm_read_ex() (next or
 * latest, with the version's extras and metadata, which go into the header frame as they
 * are) — the copy the seqlock validates — into a pooled buffer that ZeroMQ
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
 *
 * New subscribers. The XPUB is verbose (ZMQ_XPUB_VERBOSER), so every subscription and every
 * unsubscription (ZeroMQ makes one when a subscriber disconnects) reaches this program:
 * `subscribers` counts them, and each new one is announced on stdout. A new subscriber then
 * gets the newest version sent so far at once, flagged NDSHM_WIRE_RESENT (receivers that have
 * it drop it), unless a newer version goes out first: a receiver never waits for the source's
 * next publish, and nobody has to guess when a subscription has arrived. The sender keeps a
 * reference to that last payload frame (ZeroMQ frames are reference-counted: no copy); it is
 * not counted in the --queue-mb budget. The versions the channel already had when the sender
 * attached go out flagged RESENT too: a sender that replaces a killed one may repeat the
 * newest version its predecessor sent. Each header carries the channel's creation time
 * (`channel`), so receivers tell a re-created channel (numbering from 1 again) from a repeat.
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
    uint64_t created_ns;  /* of the channel the reader is attached to: the wire's `channel` */
    uint64_t attach_head; /* its newest version when the reader attached */
    uint64_t session, seq;
    /* counters */
    uint64_t msgs, bytes, dropped, ring_dropped, contended, reopens, eagain, budget_waits;
    uint64_t first_version, last_version;
    uint64_t subscribers, joins, resent;
    int resend_pending; /* a subscriber joined and has not got a version yet */
    /* the newest version sent: its info and a reference to its payload frame */
    int last_valid;
    ndshm_info last_info;
    zmq_msg_t last_payload;
    /* metadata bytes (NDSHM_META_MAX each): of the version just read, of the one held back
     * (--latest), of the newest one sent */
    unsigned char *meta_rd, *meta_held, *meta_last;
    uint64_t last_bytes; /* its payload bytes, still counted in pool.queued */
    uint64_t t0, next_stats;
    struct lat_stats age; /* publish -> handed to ZeroMQ, same host */
};

static void print_stats(struct sender *s, const char *what)
{
    uint64_t now = ndshm_now_ns();
    struct out_line l;
    out_begin(&l, s->o->json, "send", what);
    out_num(&l, "t", (double)(now - s->t0) / 1e9, 3);
    out_str(&l, "mode", s->o->latest ? "latest" : "every");
    out_u64(&l, "msgs", s->msgs);
    out_u64(&l, "bytes", s->bytes);
    out_u64(&l, "dropped", s->dropped);
    out_u64(&l, "ring_dropped", s->ring_dropped);
    out_u64(&l, "contended", s->contended);
    out_u64(&l, "eagain", s->eagain);
    out_u64(&l, "budget_waits", s->budget_waits);
    out_u64(&l, "reopens", s->reopens);
    out_u64(&l, "first_version", s->first_version);
    out_u64(&l, "last_version", s->last_version);
    out_u64(&l, "subscribers", s->subscribers);
    out_u64(&l, "joins", s->joins);
    out_u64(&l, "resent", s->resent);
    out_num(&l, "age_us_p50", (double)lat_pct(&s->age, 50) / 1e3, 1);
    out_num(&l, "age_us_p99", (double)lat_pct(&s->age, 99) / 1e3, 1);
    out_num(&l, "age_us_max", (double)s->age.max / 1e3, 1);
    out_end(&l);
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
            s->attach_head = ci.version;
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

/* Payload bytes in ZeroMQ's queues, not counting the frame kept for new subscribers. */
static uint64_t queued_bytes(struct sender *s)
{
    uint64_t q = atomic_load_explicit(&s->pool.queued, memory_order_relaxed);
    return q > s->last_bytes ? q - s->last_bytes : 0;
}

/* Releases the kept frame; last_payload stays an initialised (empty) message. */
static void forget_last(struct sender *s)
{
    zmq_msg_close(&s->last_payload);
    zmq_msg_init(&s->last_payload);
    s->last_valid = 0;
    s->last_bytes = 0;
}

/* Header frame for `info` (with its metadata bytes), the next stream_seq, `flags` added: 0, or
 * -1 (logged). */
static int header_msg(struct sender *s, const ndshm_info *info, const void *meta_bytes,
                      uint32_t flags, zmq_msg_t *h)
{
    ndshm_wire_meta meta;
    uint64_t total;
    size_t hlen;
    if (ndshm_wire_meta_from_info(info, &meta) != NDSHM_OK)
        return -1;
    meta.meta = meta.meta_len ? meta_bytes : NULL; /* the version's extras travel as they are */
    meta.session = s->session;
    meta.stream_seq = s->seq + 1;
    meta.channel = s->created_ns;
    /* A version the channel had when this sender attached may have gone out already, from
     * the sender before this one: a repeat (receivers that have it drop it). */
    if (info->version <= s->attach_head)
        flags |= NDSHM_WIRE_RESENT;
    meta.flags |= flags;
    int rc = ndshm_wire_size(&meta, &total);
    if (rc == NDSHM_OK && zmq_msg_init_size(h, (size_t)(total - meta.nbytes)) != 0)
        rc = NDSHM_E_NOMEM;
    if (rc == NDSHM_OK &&
        (rc = ndshm_wire_encode_header(&meta, zmq_msg_data(h), zmq_msg_size(h), &hlen)) != 0)
        zmq_msg_close(h);
    if (rc != NDSHM_OK) {
        bridge_log("encode: %s", ndshm_strerror(rc));
        return -1;
    }
    return 0;
}

/* The newest version sent, again, for a subscriber that just joined. 0 sent (or nothing to
 * send), 1 the queue is full (try again later), -1 stop/error. */
static int resend_last(struct sender *s)
{
    if (!s->last_valid)
        return 0;
    zmq_msg_t h, p;
    if (header_msg(s, &s->last_info, s->meta_last, NDSHM_WIRE_RESENT, &h) != 0)
        return -1;
    if (zmq_msg_send(&h, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&h);
        if (e == EAGAIN || e == EINTR) {
            s->eagain++;
            return 1;
        }
        bridge_log("send: %s", zmq_strerror(e));
        return -1;
    }
    zmq_msg_init(&p);
    if (zmq_msg_copy(&p, &s->last_payload) != 0 || send_frame(s, &p, 0) != 0) {
        zmq_msg_close(&p);
        return -1;
    }
    s->seq++;
    s->resent++;
    return 0;
}

/* Subscriptions and unsubscriptions (ZMQ_XPUB_VERBOSER: one message per subscriber). */
static void read_subscriptions(struct sender *s)
{
    unsigned char sub[256];
    int n;
    while ((n = zmq_recv(s->sock, sub, sizeof sub, ZMQ_DONTWAIT)) >= 0) {
        if (n < 1 || sub[0] > 1)
            continue; /* not a (un)subscription: XSUB peers may send anything */
        if (sub[0] == 1) {
            s->subscribers++;
            s->joins++;
            s->resend_pending = 1;
        } else if (s->subscribers > 0) {
            s->subscribers--;
        }
        struct out_line l;
        out_begin(&l, s->o->json, "send", sub[0] == 1 ? "subscribed" : "unsubscribed");
        out_num(&l, "t", (double)(ndshm_now_ns() - s->t0) / 1e9, 3);
        out_u64(&l, "subscribers", s->subscribers);
        out_u64(&l, "last_version", s->last_version);
        out_end(&l);
    }
}

/* One version read into `data` (owned by the pool) with `info`: header and payload frames.
 * Returns 0 sent, 1 not sent because the queue is full (--latest only; data still ours), -1
 * stop/error (data released). */
static int send_version(struct sender *s, unsigned char *data, const ndshm_info *info,
                        const unsigned char *meta)
{
    /* Byte budget: the high-water mark counts messages, which bounds nothing for 6 MB
     * frames; a full budget is back-pressure exactly like a full queue. */
    uint64_t queued = queued_bytes(s);
    if (queued > 0 && queued + info->nbytes > s->o->queue_bytes) {
        s->budget_waits++;
        if (s->o->latest)
            return 1;
        while (!bridge_stop && (queued = queued_bytes(s)) > 0 &&
               queued + info->nbytes > s->o->queue_bytes)
            bridge_sleep_ns(50000);
        if (bridge_stop)
            goto fail;
    }
    zmq_msg_t h;
    if (header_msg(s, info, meta, 0, &h) != 0)
        goto fail;
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
    size_t hlen = zmq_msg_size(&h);
    zmq_msg_t p, keep;
    if (info->nbytes == 0) {
        zmq_msg_init(&p);
        pool_put(&s->pool, data);
    } else {
        memcpy(data - BUF_HDR + 8, &info->nbytes, sizeof info->nbytes);
        atomic_fetch_add_explicit(&s->pool.queued, info->nbytes, memory_order_relaxed);
        /* cannot fail for a non-NULL buffer */
        NDSHM_BRIDGE_CHECK(zmq_msg_init_data(&p, data, info->nbytes, pool_release, &s->pool) == 0);
    }
    /* a second reference to the payload, for subscribers that join later */
    zmq_msg_init(&keep);
    NDSHM_BRIDGE_CHECK(zmq_msg_copy(&keep, &p) == 0);
    if (send_frame(s, &p, 0) != 0) {
        zmq_msg_close(&p);
        zmq_msg_close(&keep);
        return -1;
    }
    forget_last(s);
    NDSHM_BRIDGE_CHECK(zmq_msg_move(&s->last_payload, &keep) == 0);
    zmq_msg_close(&keep);
    s->last_valid = 1;
    s->last_info = *info;
    s->last_bytes = info->nbytes;
    if (info->meta_len)
        memcpy(s->meta_last, meta, info->meta_len);
    s->resend_pending = 0; /* every subscriber has the newest version now */
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
    zmq_msg_init(&s.last_payload);
    s.meta_rd = malloc(NDSHM_META_MAX);
    s.meta_held = malloc(NDSHM_META_MAX);
    s.meta_last = malloc(NDSHM_META_MAX);
    s.session = bridge_session_id();
    s.t0 = ndshm_now_ns();
    s.next_stats = s.t0 + (uint64_t)(o->stats_s * 1e9);
    int status = 1;
    void *ctx = NULL;
    if (!s.meta_rd || !s.meta_held || !s.meta_last) {
        bridge_log("out of memory");
        goto done;
    }
    ctx = zmq_ctx_new();
    if (!ctx) {
        bridge_log("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    s.sock = zmq_socket(ctx, ZMQ_XPUB);
    int one = 1;
    if (!s.sock || bridge_socket_setup(s.sock, o->hwm, 1, o->peer_timeout_s) != 0 ||
        zmq_setsockopt(s.sock, ZMQ_XPUB_NODROP, &one, sizeof one) != 0 ||
        zmq_setsockopt(s.sock, ZMQ_XPUB_VERBOSER, &one, sizeof one) != 0) {
        bridge_log("socket: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (bridge_attach(s.sock, o) != 0)
        goto done;
    while (o->wait_subscriber && !s.subscribers && !bridge_stop) {
        zmq_pollitem_t it = {s.sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 100);
        read_subscriptions(&s);
        maybe_stats(&s);
    }
    if (sender_open(&s) != 0)
        goto stopped;

    size_t want = 4096;         /* buffer size for the next read */
    unsigned char *held = NULL; /* --latest: read but not yet sent */
    ndshm_info held_info;
    while (!bridge_stop) {
        maybe_stats(&s);
        read_subscriptions(&s);
        if (s.resend_pending) {
            int sent = resend_last(&s);
            if (sent < 0)
                break;
            if (sent == 0)
                s.resend_pending = 0;
        }
        unsigned char *data = pool_get(&s.pool, want);
        if (!data) {
            bridge_log("out of memory for a %zu-byte buffer", want);
            break;
        }
        ndshm_info info;
        /* with the version's extras and metadata, which travel in the header */
        int rc = ndshm_read_ex(s.r, o->latest ? NDSHM_READ_LATEST : NDSHM_READ_NEXT, data,
                               buf_cap(data), s.meta_rd, NDSHM_META_MAX, &info);
        if (rc == NDSHM_OK) {
            if (!o->latest)
                s.ring_dropped += info.dropped;
            if (held) { /* a newer version replaces the unsent one: it is dropped */
                pool_put(&s.pool, held);
                held = NULL;
            }
            int sent = send_version(&s, data, &info, s.meta_rd);
            if (sent == 1) {
                held = data;
                held_info = info;
                if (info.meta_len)
                    memcpy(s.meta_held, s.meta_rd, info.meta_len);
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
            int sent = send_version(&s, held, &held_info, s.meta_held);
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
                forget_last(&s);    /* and its versions are not the newest any more */
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
    zmq_msg_close(&s.last_payload);
    if (s.sock)
        zmq_close(s.sock);
    if (ctx)
        zmq_ctx_term(ctx);
    bridge_detach(); /* waits for ZeroMQ to release every frame (linger 0) */
    ndshm_reader_close(s.r);
    pool_destroy(&s.pool);
    pthread_mutex_destroy(&s.pool.mu);
    free(s.meta_rd);
    free(s.meta_held);
    free(s.meta_last);
    lat_free(&s.age);
    return status;
}
