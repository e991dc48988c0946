/*
 * ndshm-bridge recv: ZeroMQ SUB -> local channel.
 *
 * Each message is checked completely before anything is published: the header frame is
 * decoded with ndshm_wire_decode_header() (it never trusts the bytes), the payload frame must
 * have exactly the length the header implies, and no further frame may follow. Only then is
 * the next local slot loaned (ndshm_loan_ex, with the message's dtype, shape and extras: the
 * local channel re-allocates as the source did), the payload copied into it — the one copy on
 * this side: ZeroMQ owns its receive buffers — and committed. The local version carries the
 * origin's version number and publish time (ndshm_info.origin_version / origin_ns: as the
 * message carried them, or the sending channel's own version and CLOCK_REALTIME publish time)
 * and the source version's user_ns, user_tag and metadata unchanged. A receiver killed in the
 * middle of that copy leaves a slot readers never accept; the next receiver takes the
 * channel over (NDSHM_OPEN_OR_CREATE) and repairs it. No torn version is ever visible.
 *
 * A single-frame message holding a whole wire buffer (header + payload, e.g. from another
 * program using ndshm_wire_encode) is accepted as well.
 *
 * Accounting per sender session: `net_dropped` = gaps in stream_seq (messages the network or
 * ZeroMQ lost), `version_gaps` = gaps in the origin version numbers (everything not
 * republished: source-ring overruns, --latest drops at the sender, network losses).
 * Latency = republish time - origin publish time, on CLOCK_REALTIME (hosts synchronised by
 * PTP/chrony) or with --mono on CLOCK_MONOTONIC (sender on this host).
 *
 * Events on stdout: `connected` / `disconnected` (a ZeroMQ socket monitor: the handshake with
 * a sender succeeded, the connection ended), and `subscribed` at the first message of each
 * sender session, with the first origin version received; at the very first one,
 * `lost_before_subscribe` = the versions the origin had published before it (never carried to
 * this receiver). A version flagged NDSHM_WIRE_RESENT that this receiver already republished
 * (the sender repeats its newest version for each new subscriber) is dropped and counted in
 * `duplicates`.
 *
 * No ZeroMQ heartbeat runs on this side (bridge_socket_setup): a slow consumer fills the
 * socket's queue, libzmq then stops reading the connection, and a heartbeat timeout at that
 * moment made libzmq abort (issue #3937).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "bridge.h"

#define MONITOR_EP "inproc://ndshm-bridge-recv-monitor"

struct receiver {
    const struct bridge_opts *o;
    void *sock, *mon;
    int connected;
    uint64_t connects, disconnects, duplicates, first_version, lost_before_subscribe;
    uint64_t channel;       /* the sending channel's incarnation (wire `channel`), 0 = unknown */
    uint64_t resume_origin; /* origin version of the local channel's newest version when this
                               receiver started (a predecessor republished it), 0 = none */
    ndshm_writer *w, *ow;   /* local channel, origin companion channel */
    uint64_t session, last_seq, last_version;
    uint64_t msgs, bytes, bad, net_dropped, version_gaps, sessions, skipped, errors;
    uint64_t t0, next_stats, next_due;
    struct lat_stats lat;
    int last_bad; /* status of the last bad message, for the log */
    int fatal;    /* the local channel cannot be opened: exit 1 */
};

static void print_stats(struct receiver *s, const char *what)
{
    uint64_t now = ndshm_now_ns();
    struct out_line l;
    out_begin(&l, s->o->json, "recv", what);
    out_num(&l, "t", (double)(now - s->t0) / 1e9, 3);
    out_u64(&l, "connected", (uint64_t)s->connected);
    out_u64(&l, "connects", s->connects);
    out_u64(&l, "msgs", s->msgs);
    out_u64(&l, "bytes", s->bytes);
    out_u64(&l, "net_dropped", s->net_dropped);
    out_u64(&l, "version_gaps", s->version_gaps);
    out_u64(&l, "skipped", s->skipped);
    out_u64(&l, "duplicates", s->duplicates);
    out_u64(&l, "bad", s->bad);
    out_u64(&l, "errors", s->errors);
    out_u64(&l, "sessions", s->sessions);
    out_u64(&l, "first_version", s->first_version);
    out_u64(&l, "lost_before_subscribe", s->lost_before_subscribe);
    out_u64(&l, "last_version", s->last_version);
    out_str(&l, "clock", s->o->mono ? "monotonic" : "realtime");
    out_num(&l, "lat_us_p50", (double)lat_pct(&s->lat, 50) / 1e3, 1);
    out_num(&l, "lat_us_p99", (double)lat_pct(&s->lat, 99) / 1e3, 1);
    out_num(&l, "lat_us_max", (double)s->lat.max / 1e3, 1);
    out_end(&l);
    lat_reset(&s->lat);
}

/* connected / disconnected, from the socket monitor. */
static void read_monitor(struct receiver *s)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        int have_addr = zmq_msg_more(&ev) && zmq_msg_recv(&addr, s->mon, 0) >= 0;
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        char ep[256] = "";
        if (have_addr) {
            size_t n = zmq_msg_size(&addr) < sizeof ep - 1 ? zmq_msg_size(&addr) : sizeof ep - 1;
            memcpy(ep, zmq_msg_data(&addr), n);
            ep[n] = 0;
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
        const char *what = NULL;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            s->connected = 1;
            s->connects++;
            what = "connected";
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            s->connected = 0;
            s->disconnects++;
            what = "disconnected";
        }
        if (what) {
            struct out_line l;
            out_begin(&l, s->o->json, "recv", what);
            out_num(&l, "t", (double)(ndshm_now_ns() - s->t0) / 1e9, 3);
            out_str(&l, "endpoint", ep);
            out_u64(&l, "connects", s->connects);
            out_end(&l);
        }
    }
}

static void maybe_stats(struct receiver *s)
{
    if (s->o->stats_s <= 0)
        return;
    uint64_t now = ndshm_now_ns();
    if (now >= s->next_stats) {
        print_stats(s, "stats");
        s->next_stats = now + (uint64_t)(s->o->stats_s * 1e9);
    }
}

static void count_bad(struct receiver *s, int status, const char *why)
{
    s->bad++;
    if (status != s->last_bad || s->bad <= 3)
        bridge_log("rejected a message: %s (%s)", why, ndshm_status_name(status));
    s->last_bad = status;
}

/* Drops the remaining frames of a message. */
static void drain(void *sock)
{
    int more = 1;
    size_t len = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            return;
        }
        zmq_msg_close(&m);
        len = sizeof more;
    }
}

/* Is another message already queued? (for --latest) */
static int more_queued(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0 && (ev & ZMQ_POLLIN);
}

/* The local channels: an existing one is taken over at start (so a live writer is reported
 * at once); a missing one is created at the first message, with slots sized for it (readers
 * then never see a first re-allocation). */
static int open_channel(const char *name, uint32_t slots, uint64_t capacity, int create,
                        ndshm_writer **w)
{
    ndshm_options opts = NDSHM_OPTIONS_INIT;
    opts.flags = NDSHM_OPEN_OR_CREATE;
    opts.slots = slots;
    opts.capacity = capacity < 64 ? 64 : capacity;
    int rc = create ? ndshm_writer_create(name, &opts, w) : ndshm_writer_open(name, &opts, w);
    if (rc != NDSHM_OK)
        bridge_log("channel %s: %s", name, ndshm_strerror(rc));
    return rc;
}

/* The version's number at its first channel: as carried, or the sending channel's own. */
static uint64_t origin_of(const ndshm_wire_meta *m)
{
    return m->origin_version ? m->origin_version : m->version;
}

/* The origin's publish time on CLOCK_REALTIME: as carried, or the sending channel's own. */
static uint64_t origin_ns_of(const ndshm_wire_meta *m)
{
    if (m->origin_ns)
        return m->origin_ns;
    return (m->flags & NDSHM_WIRE_REALTIME) ? m->publish_real_ns : 0;
}

/* Publish one checked message into the local channel, with the version's extras: user
 * timestamp, tag and metadata as they came, the origin's version number and publish time
 * (those of the first channel of a chain of bridges). */
static int republish(struct receiver *s, const ndshm_wire_meta *m, const void *payload)
{
    int rc;
    if (!s->w && (rc = open_channel(s->o->name, s->o->slots, m->nbytes, 1, &s->w)) != NDSHM_OK)
        return s->fatal = rc;
    if (s->o->origin && !s->ow &&
        (rc = open_channel(s->o->origin, s->o->slots, 48, 1, &s->ow)) != NDSHM_OK)
        return s->fatal = rc;
    ndshm_extra x = NDSHM_EXTRA_INIT;
    x.meta_len = m->meta_len;
    x.meta = m->meta;
    x.user_ns = m->user_ns;
    x.user_tag = m->user_tag;
    x.origin_version = origin_of(m);
    x.origin_ns = origin_ns_of(m);
    void *slot = NULL;
    rc = ndshm_loan_ex(s->w, m->dtype, m->ndim, m->shape, &x, &slot);
    if (rc != NDSHM_OK) {
        s->errors++;
        bridge_log("loan on %s: %s", s->o->name, ndshm_strerror(rc));
        return rc;
    }
    if (m->nbytes)
        memcpy(slot, payload, (size_t)m->nbytes);
    uint64_t local_version = 0;
    rc = ndshm_commit_ex(s->w, NULL, &local_version); /* the loan's extras */
    if (rc != NDSHM_OK) {
        ndshm_cancel(s->w);
        s->errors++;
        bridge_log("commit on %s: %s", s->o->name, ndshm_strerror(rc));
        return rc;
    }
    uint64_t now = s->o->mono ? ndshm_now_ns() : ndshm_wire_realtime_ns();
    uint64_t origin = s->o->mono ? m->publish_ns : m->publish_real_ns;
    if (s->o->mono || (m->flags & NDSHM_WIRE_REALTIME))
        lat_add(&s->lat, now > origin ? now - origin : 0);
    if (s->ow) {
        uint64_t rec[6] = {local_version,      m->version, m->publish_ns,
                           m->publish_real_ns, m->session, m->stream_seq};
        uint64_t shape[1] = {6};
        rc = ndshm_publish(s->ow, NDSHM_UINT64, 1, shape, rec, NULL);
        if (rc != NDSHM_OK)
            s->errors++;
    }
    return NDSHM_OK;
}

/* The origin version of the newest version in local channel `name` (republished by a
 * receiver before this one), 0 if none or unknown. */
static uint64_t local_origin(const char *name)
{
    ndshm_reader *r = NULL;
    uint64_t v = 0;
    if (ndshm_reader_open(name, NULL, &r) == NDSHM_OK) {
        const void *data;
        ndshm_info info;
        if (ndshm_read_latest_owned(r, &data, &info) == NDSHM_OK && (info.flags & NDSHM_INFO_EXTRA))
            v = info.origin_version;
        ndshm_reader_close(r);
    }
    return v;
}

/* Sequence accounting for one decoded message. Returns 1 if it is a repeat (RESENT) of a
 * version this receiver already republished (to drop), 0 otherwise. */
static int account(struct receiver *s, const ndshm_wire_meta *m)
{
    if (m->session != s->session) {
        s->session = m->session;
        s->sessions++;
        s->last_seq = 0;
        if (!s->first_version) {
            s->first_version = m->version;
            s->lost_before_subscribe = m->version ? m->version - 1 : 0;
        }
        struct out_line l;
        out_begin(&l, s->o->json, "recv", "subscribed");
        out_num(&l, "t", (double)(ndshm_now_ns() - s->t0) / 1e9, 3);
        char sid[24];
        snprintf(sid, sizeof sid, "%016llx", (unsigned long long)m->session);
        out_str(&l, "session", sid);
        out_u64(&l, "version", m->version);
        out_u64(&l, "lost_before_subscribe", s->sessions == 1 ? s->lost_before_subscribe : 0);
        out_u64(&l, "version_gaps", s->version_gaps);
        out_end(&l);
    }
    if (s->last_seq && m->stream_seq > s->last_seq + 1)
        s->net_dropped += m->stream_seq - s->last_seq - 1;
    s->last_seq = m->stream_seq;
    /* Another channel under the origin's name (re-created: numbering from 1 again), or one
     * whose identity is unknown (a format-1 sender) going backwards: version accounting
     * starts over. A restarted sender on the same channel continues its numbers: gaps across
     * the restart still count. */
    if ((m->channel && s->channel && m->channel != s->channel) ||
        (!m->channel && m->version < s->last_version)) {
        s->last_version = 0;
        s->resume_origin = 0;
    }
    if (m->channel)
        s->channel = m->channel;
    if (m->flags & NDSHM_WIRE_RESENT) {
        /* a repeat of what this receiver (or the one before it on this local channel) has */
        if ((s->last_version && m->version <= s->last_version) ||
            (!s->last_version && s->resume_origin && origin_of(m) <= s->resume_origin)) {
            s->duplicates++;
            return 1;
        }
    }
    if (s->last_version && m->version > s->last_version + 1)
        s->version_gaps += m->version - s->last_version - 1;
    if (m->version > s->last_version)
        s->last_version = m->version;
    return 0;
}

/* Receive one message (the first frame is ready). */
static void receive_one(struct receiver *s)
{
    zmq_msg_t h, p;
    zmq_msg_init(&h);
    zmq_msg_init(&p);
    if (zmq_msg_recv(&h, s->sock, ZMQ_DONTWAIT) < 0)
        goto out;
    ndshm_wire_meta m;
    const void *payload = NULL;
    int rc;
    if (!zmq_msg_more(&h)) { /* one frame: a whole wire buffer */
        rc = ndshm_wire_decode(zmq_msg_data(&h), zmq_msg_size(&h), &m, &payload);
        if (rc != NDSHM_OK) {
            count_bad(s, rc, "single-frame buffer");
            goto out;
        }
    } else {
        size_t off = 0;
        rc = ndshm_wire_decode_header(zmq_msg_data(&h), zmq_msg_size(&h), &m, &off);
        if (rc == NDSHM_OK && zmq_msg_size(&h) != off)
            rc = NDSHM_E_CORRUPT; /* the header frame is exactly the header part */
        if (rc != NDSHM_OK) {
            drain(s->sock);
            count_bad(s, rc, "header frame");
            goto out;
        }
        if (zmq_msg_recv(&p, s->sock, 0) < 0) { /* parts arrive together: no wait */
            count_bad(s, NDSHM_E_TOO_SMALL, "payload frame missing");
            goto out;
        }
        if (zmq_msg_more(&p)) {
            drain(s->sock);
            count_bad(s, NDSHM_E_LIMIT, "extra frames");
            goto out;
        }
        if (zmq_msg_size(&p) != m.nbytes) {
            count_bad(s, zmq_msg_size(&p) < m.nbytes ? NDSHM_E_TOO_SMALL : NDSHM_E_LIMIT,
                      "payload length differs from the header");
            goto out;
        }
        payload = zmq_msg_data(&p);
    }
    if (account(s, &m))
        goto out;
    if (s->o->latest && more_queued(s->sock)) {
        s->skipped++; /* a newer message is waiting: this one is stale */
        goto out;
    }
    if (republish(s, &m, payload) == NDSHM_OK) {
        s->msgs++;
        s->bytes += zmq_msg_size(&h) + zmq_msg_size(&p);
    }
    if (s->o->max_rate > 0) {
        uint64_t period = (uint64_t)(1e9 / s->o->max_rate), now = ndshm_now_ns();
        if (s->next_due < now)
            s->next_due = now;
        s->next_due += period;
        while (!bridge_stop && (now = ndshm_now_ns()) < s->next_due)
            bridge_sleep_ns(s->next_due - now);
    }
out:
    zmq_msg_close(&p);
    zmq_msg_close(&h);
}

int bridge_recv(const struct bridge_opts *o)
{
    struct receiver s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.t0 = ndshm_now_ns();
    s.next_stats = s.t0 + (uint64_t)(o->stats_s * 1e9);
    int status = 1;
    void *ctx = NULL;

    ndshm_channel_info ci;
    if (ndshm_stat(o->name, &ci) == NDSHM_OK) {
        if (open_channel(o->name, o->slots, ci.capacity, 0, &s.w) != NDSHM_OK)
            goto done;
        /* what the receiver before us republished last: a repeat of it is dropped */
        s.resume_origin = local_origin(o->name);
    }
    if (o->origin && ndshm_stat(o->origin, &ci) == NDSHM_OK &&
        open_channel(o->origin, o->slots, 48, 0, &s.ow) != NDSHM_OK)
        goto done;
    ctx = zmq_ctx_new();
    if (!ctx) {
        bridge_log("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    s.sock = zmq_socket(ctx, ZMQ_SUB);
    if (!s.sock || bridge_socket_setup(s.sock, o->hwm, 0, o->peer_timeout_s) != 0 ||
        zmq_setsockopt(s.sock, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        zmq_socket_monitor(s.sock, MONITOR_EP,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(s.mon = zmq_socket(ctx, ZMQ_PAIR)) || zmq_connect(s.mon, MONITOR_EP) != 0) {
        bridge_log("socket: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (bridge_attach(s.sock, o) != 0)
        goto done;
    while (!bridge_stop && !s.fatal) {
        maybe_stats(&s);
        zmq_pollitem_t it[2] = {{s.sock, 0, ZMQ_POLLIN, 0}, {s.mon, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(it, 2, 100);
        if (n < 0 && zmq_errno() != EINTR) {
            bridge_log("poll: %s", zmq_strerror(zmq_errno()));
            goto done;
        }
        if (n > 0 && (it[1].revents & ZMQ_POLLIN))
            read_monitor(&s);
        if (n > 0 && (it[0].revents & ZMQ_POLLIN))
            receive_one(&s);
    }
    status = s.fatal ? 1 : 0;
done:
    print_stats(&s, "final");
    if (s.sock)
        zmq_socket_monitor(s.sock, NULL, 0);
    if (s.mon)
        zmq_close(s.mon);
    if (s.sock)
        zmq_close(s.sock);
    if (ctx)
        zmq_ctx_term(ctx);
    bridge_detach();
    ndshm_writer_close(s.ow);
    ndshm_writer_close(s.w);
    lat_free(&s.lat);
    return status;
}
