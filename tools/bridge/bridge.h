/* ndshm-bridge: carries ndshm channels between hosts over ZeroMQ (docs/bridge.md). */
#ifndef NDSHM_BRIDGE_H
#define NDSHM_BRIDGE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ndshm/ndshm.h"

struct bridge_opts {
    const char *name;      /* local channel */
    const char *endpoint;  /* ZeroMQ endpoint */
    int latest;            /* send: newest only, drop stale; recv: republish newest only */
    int bind;              /* 1 bind, 0 connect (send binds, recv connects by default) */
    int hwm;               /* ZeroMQ high-water mark, messages */
    uint64_t queue_bytes;  /* send: payload bytes queued in ZeroMQ before back-pressure */
    double stats_s;        /* seconds between stats lines; 0 = final line only */
    uint32_t slots;        /* recv: ring slots of the local channel (0 = default) */
    double max_rate;       /* recv: republish at most this many versions per second */
    const char *origin;    /* recv: companion channel for origin metadata, or NULL */
    int mono;              /* recv: latency on CLOCK_MONOTONIC (sender on the same host) */
    int json;              /* stats and events as one JSON object per line */
    double peer_timeout_s; /* send: drop a receiver silent this long (ZMTP heartbeat); 0 never */
    int wait_subscriber;   /* send: read the channel only once a first receiver subscribed */
};

/* Set by SIGINT/SIGTERM: finish the current message, print the final stats, exit 0. */
extern volatile sig_atomic_t bridge_stop;

int bridge_send(const struct bridge_opts *o);
int bridge_recv(const struct bridge_opts *o);

/* Helpers (main.c) */
void bridge_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bridge_sleep_ns(uint64_t ns);
/* ZeroMQ socket options: linger 0, high-water marks, TCP keepalive, and on the sending side
 * only, ZMTP heartbeats without a TTL (docs/bridge.md, "Dead peers and slow receivers": a
 * receiver's engine stops reading while its queue is full, so no heartbeat timer may run on
 * the receiving side — libzmq issue #3937). Returns 0 or -1 (errno set). */
int bridge_socket_setup(void *sock, int hwm, int sending, double peer_timeout_s);
int bridge_attach(void *sock, const struct bridge_opts *o);
/* At exit: remove the ipc:// socket file this process bound, if it is still its own. */
void bridge_detach(void);
uint64_t bridge_session_id(void);

/* One stats or event line on stdout: `SIDE WHAT key=value ...`, or with --json one object
 * {"side":SIDE,"what":WHAT,key:value,...}. Built with out_begin, out_u64/out_num/out_str, then
 * printed by out_end. */
struct out_line {
    char buf[2048];
    size_t n;
    int json;
};
void out_begin(struct out_line *l, int json, const char *side, const char *what);
void out_u64(struct out_line *l, const char *key, uint64_t v);
void out_num(struct out_line *l, const char *key, double v, int decimals);
void out_str(struct out_line *l, const char *key, const char *v);
void out_end(struct out_line *l);

/* Latency samples of one stats interval, in ns; percentiles by sorting at report time. */
struct lat_stats {
    uint64_t *v;
    size_t n, cap;
    uint64_t max;
};
void lat_add(struct lat_stats *s, uint64_t ns);
/* p in [0, 100]; 0 when empty. Sorts the samples. */
uint64_t lat_pct(struct lat_stats *s, double p);
void lat_reset(struct lat_stats *s);
void lat_free(struct lat_stats *s);

#endif
