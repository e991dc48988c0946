/* ndshm-bridge: carries ndshm channels between hosts over ZeroMQ (docs/bridge.md). */
#ifndef NDSHM_BRIDGE_H
#define NDSHM_BRIDGE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ndshm/ndshm.h"

struct bridge_opts {
    const char *name;     /* local channel */
    const char *endpoint; /* ZeroMQ endpoint */
    int latest;           /* send: newest only, drop stale; recv: republish newest only */
    int bind;             /* 1 bind, 0 connect (send binds, recv connects by default) */
    int hwm;              /* ZeroMQ high-water mark, messages */
    uint64_t queue_bytes; /* send: payload bytes queued in ZeroMQ before back-pressure */
    double stats_s;       /* seconds between stats lines; 0 = final line only */
    uint32_t slots;       /* recv: ring slots of the local channel (0 = default) */
    double max_rate;      /* recv: republish at most this many versions per second */
    const char *origin;   /* recv: companion channel for origin metadata, or NULL */
    int mono;             /* recv: latency on CLOCK_MONOTONIC (sender on the same host) */
};

/* Set by SIGINT/SIGTERM: finish the current message, print the final stats, exit 0. */
extern volatile sig_atomic_t bridge_stop;

int bridge_send(const struct bridge_opts *o);
int bridge_recv(const struct bridge_opts *o);

/* Helpers (main.c) */
void bridge_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bridge_sleep_ns(uint64_t ns);
/* ZeroMQ socket options shared by both sides: linger 0, heartbeats (a dead peer is dropped
 * after 3 s), high-water marks. Returns 0 or -1 (errno set). */
int bridge_socket_setup(void *sock, int hwm);
int bridge_attach(void *sock, const struct bridge_opts *o);
/* At exit: remove the ipc:// socket file this process bound, if it is still its own. */
void bridge_detach(void);
uint64_t bridge_session_id(void);

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
