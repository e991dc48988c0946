/*
 * The reader: attach, read latest / next (copy, owned buffer, view), follow re-allocations.
 *
 * Threads. A reader handle may be shared by threads. Its current data-segment mapping
 * (struct rmap) is published through an RCU-protected pointer (liburcu, bulletproof flavour,
 * so the library's users need not register their threads). A thread that sees a new
 * generation maps it and swaps the pointer with a compare-and-swap; the old mapping is
 * released by call_rcu() after a grace period, so no thread ever touches an unmapped page.
 * Views pin a mapping with a reference count taken inside the read-side critical section.
 * The handle's position (last version handed out) advances with a CAS, so with several
 * threads on one handle each version of read_next goes to exactly one of them.
 */
#define _GNU_SOURCE
/* liburcu-bp's read lock is called, not inlined: its static inline version (_LGPL_SOURCE)
 * saved 56 instructions per read but reads struct urcu_bp_reader, which liburcu 0.13's arena
 * places at 32-byte offsets although the header declares it 128-byte aligned (UBSan:
 * misaligned member access), ties the library to liburcu's internal layout, and would put LGPL
 * code into ndshm's object code (docs/benchmarks.md, "Changes that did not pay"). */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <urcu/urcu-bp.h>

#include "internal.h"

/* liburcu is not built with ThreadSanitizer: tell it that call_rcu() hands the mapping from
 * the thread that retired it to the thread that frees it. */
#if defined(__SANITIZE_THREAD__)
#define NDSHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NDSHM_TSAN 1
#endif
#endif
#ifdef NDSHM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

struct rmap {
    struct ndshm__map map;
    struct ndshm__geom geom; /* validated private copy */
    atomic_long refs;        /* 1 while published in reader->cur, +1 per view */
    struct rcu_head rcu;
};

/* A handle-owned buffer of the *_owned calls. */
struct obuf {
    void *p;
    uint64_t cap;
};

struct ndshm_reader {
    char name[NDSHM_NAME_MAX + 1];
    uint32_t retries;
    uint32_t spin_ns;
    uint32_t flags;          /* NDSHM_REPLAY, NDSHM_AWAIT_WRITER */
    struct ndshm__ctlh ctlh; /* read-only; its descriptor holds the reader-count lock */
    struct ndshm__ctl *ctl;
    _Atomic(struct rmap *) cur; /* RCU-protected: freed only after a grace period */
    _Atomic uint64_t pos;       /* last version handed out (initially head - 1) */
    _Atomic uint64_t lost;      /* versions skipped unread (vanished segment), not yet counted */
    atomic_int replay;          /* first read_next starts at the oldest version, uncounted */
    _Atomic uint64_t meta_hash; /* dtype+shape of the last read; 0 = none yet */
    _Atomic uint64_t last_gen;  /* generation of the last read */
    /* the writer's state as last checked (syscalls, at most every 100 ms) */
    _Atomic uint64_t state_ns;    /* when it was checked, 0 = never */
    _Atomic uint64_t state_owner; /* ctl.owner at that check */
    atomic_int state;             /* NDSHM_OK, NDSHM_WRITER_GONE or NDSHM_REPLACED */
    /* the wait page (attached on the first sleep, one thread at a time) */
    pthread_mutex_t wait_mu;
    struct ndshm__waitpg *waitpg;
    int32_t wait_id;
    struct ndshm__waitpg **retired; /* pages of earlier writers: another thread may still be
                                       announcing itself in one, so detached only at close */
    size_t nretired;
    /* handle-owned buffers: front holds exactly the version of front_info; reads go into
     * back, and the two swap on success, so no failed attempt ever touches what the last
     * successful call handed out */
    struct obuf front, back;
    ndshm_info front_info;
    int front_valid;
};

#define RETRY INT32_MAX /* read_core: not a status, try again */

/* CLOCK_MONOTONIC at tick resolution (a few ms), for rate limits only: a vDSO read of the
 * kernel's last tick, without the TSC read and scaling of a precise one (on a KVM guest the
 * precise clock costs ~20 ns, a large share of a 64-byte read). Same time base as
 * ndshm_now_ns(), at most one tick behind it. */
static inline uint64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define ALIVE_CHECK_NS 100000000u /* a crashed writer is noticed within 100 ms */

/* ----- mappings ---------------------------------------------------------------------------- */

static void rmap_put(struct rmap *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        ndshm__unmap(&m->map);
        free(m);
    }
}

static void rmap_rcu_free(struct rcu_head *head)
{
    /* container_of through void *: clang's -Wcast-align rejects liburcu's char * cast. */
    struct rmap *m = (struct rmap *)(void *)((char *)head - offsetof(struct rmap, rcu));
    TSAN_ACQUIRE(m); /* pairs with TSAN_RELEASE in remap() */
    rmap_put(m);
}

/* Leave a read-side critical section in which m was used. Under ThreadSanitizer, also
 * publish this thread's accesses to m to the call_rcu thread that will free it (the grace
 * period itself is invisible to the sanitizer). */
static inline void section_end(struct rmap *m)
{
    TSAN_RELEASE(m);
    urcu_bp_read_unlock();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* liburcu-bp's reader registry and call_rcu's worker thread do not survive fork() as they
 * are: its fork hooks make them (a child forked while another thread was inside a read-side
 * section could otherwise never complete a grace period, and never unmap anything). */
static void fork_prepare(void)
{
    urcu_bp_call_rcu_before_fork();
    urcu_bp_before_fork();
}
static void fork_parent(void)
{
    urcu_bp_after_fork_parent();
    urcu_bp_call_rcu_after_fork_parent();
}
static void fork_child(void)
{
    urcu_bp_after_fork_child();
    urcu_bp_call_rcu_after_fork_child();
}
static void register_fork_hooks(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The token of generation gen's data segment. Loaded after gen (acquire): pairs with the
 * release store of the token before gen moved (W5). A token of a later generation of the same
 * parity names no file: the open fails and the caller retries. */
static uint64_t gen_token(const struct ndshm__ctl *c, uint64_t gen)
{
    return atomic_load_explicit(&((struct ndshm__ctl *)c)->token[gen % 2], memory_order_acquire);
}

static struct rmap *rmap_open(ndshm_reader *r, uint64_t gen, int *rc)
{
    struct rmap *m = calloc(1, sizeof *m);
    if (!m) {
        *rc = NDSHM_E_NOMEM;
        return NULL;
    }
    /* Read-only: no reader can corrupt what other readers get. */
    *rc = ndshm__map_data(r->name, gen, gen_token(r->ctl, gen), &r->ctlh, 0, &m->map, &m->geom);
    if (*rc) {
        free(m);
        return NULL;
    }
    /* Release: pairs with the acq_rel decrement in rmap_put(), which may run on liburcu's
     * call_rcu thread; makes the mapping's initialisation visible there in C11 terms rather
     * than only through liburcu's internal barriers (which ThreadSanitizer cannot see). */
    atomic_store_explicit(&m->refs, 1, memory_order_release);
    return m;
}

/* Inside the read-side critical section: make r->cur the mapping of generation `gen`.
 * Returns NDSHM_OK with *out set, 1 to retry, 2 when generation gen's segment does not exist
 * (retry: already replaced again, or the token was a later one's; or it was removed), or an
 * error. */
static int remap(ndshm_reader *r, struct rmap *seen, uint64_t gen, struct rmap **out)
{
    int rc;
    struct rmap *m = rmap_open(r, gen, &rc);
    if (!m)
        return rc == NDSHM_E_NOENT ? 2 : rc;
    /* Release: a thread that loads the new pointer sees the mapping initialised. Pairs with
     * the acquire load of r->cur in read_core(). (C11 atomics rather than liburcu's pointer
     * macros, so ThreadSanitizer sees the publication.) */
    struct rmap *old = seen;
    if (!atomic_compare_exchange_strong_explicit(&r->cur, &old, m, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        /* another thread swapped first: use its mapping on the next attempt */
        rmap_put(m);
        return 1;
    }
    /* Nobody can find `seen` any more; threads still inside a critical section may use it
     * until the grace period ends. */
    TSAN_RELEASE(seen);
    urcu_bp_call_rcu(&seen->rcu, rmap_rcu_free);
    *out = m;
    return NDSHM_OK;
}

/* ----- open / close ------------------------------------------------------------------------ */

int ndshm_reader_open(const char *name, const ndshm_options *opts, ndshm_reader **out)
{
    ndshm_options o;
    int rc = ndshm__entry_check(name, opts, out, &o);
    if (rc)
        return rc;
    pthread_once(&fork_once, register_fork_hooks);
    ndshm_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NDSHM_E_NOMEM;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->retries = o.retries;
    r->spin_ns = o.spin_ns;
    r->flags = o.flags & (NDSHM_REPLAY | NDSHM_AWAIT_WRITER);
    r->wait_id = -1;
    pthread_mutex_init(&r->wait_mu, NULL);
    /* Read-only: a reader needs (and uses) no write permission on anything. */
    r->ctlh = (struct ndshm__ctlh)NDSHM__CTLH_INIT;
    rc = ndshm__ctl_open(name, 0, 1, &r->ctlh);
    if (rc) {
        pthread_mutex_destroy(&r->wait_mu);
        free(r);
        return rc;
    }
    r->ctl = ndshm__ctlh_ctl(&r->ctlh);
    /* Counted as a reader while this descriptor is open (best-effort: a read lock). */
    (void)ndshm__os->lock(r->ctlh.fd, NDSHM__LOCK_READERS, NDSHM__RDLOCK);
    /* The data segment may be replaced between loading gen and opening it: retry. */
    struct rmap *m = NULL;
    for (int i = 0; i < 1000 && !m; i++) {
        uint64_t gen = atomic_load_explicit(&r->ctl->gen, memory_order_acquire);
        m = rmap_open(r, gen, &rc);
        if (!m && rc != NDSHM_E_NOENT)
            break;
    }
    if (!m) {
        /* A control segment whose data segment stays missing: removed meanwhile (then "no
         * channel") or broken. */
        if (rc == NDSHM_E_NOENT && ndshm__ctl_same_file(&r->ctlh, name))
            rc = NDSHM_E_CORRUPT;
        ndshm__ctl_close(&r->ctlh);
        pthread_mutex_destroy(&r->wait_mu);
        free(r);
        return rc;
    }
    atomic_init(&r->cur, m);
    uint64_t head = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
    /* A late joiner gets the last version first (read_latest, read_next and wait agree on
     * that), then everything after it. */
    atomic_init(&r->pos, head ? head - 1 : 0);
    atomic_init(&r->replay, (o.flags & NDSHM_REPLAY) ? 1 : 0);
    atomic_init(&r->state, NDSHM_OK);
    *out = r;
    return NDSHM_OK;
}

int ndshm_reader_close(ndshm_reader *r)
{
    if (!r)
        return NDSHM_OK;
    rmap_put(atomic_load_explicit(&r->cur, memory_order_relaxed)); /* views hold their own */
    ndshm__waitpg_detach(r->waitpg);
    for (size_t i = 0; i < r->nretired; i++)
        ndshm__waitpg_detach(r->retired[i]);
    free(r->retired);
    ndshm__ctl_close(&r->ctlh);
    pthread_mutex_destroy(&r->wait_mu);
    free(r->front.p);
    free(r->back.p);
    free(r);
    return NDSHM_OK;
}

uint64_t ndshm_reader_version(const ndshm_reader *r)
{
    return r ? atomic_load_explicit(&((ndshm_reader *)r)->pos, memory_order_relaxed) : 0;
}

/* ----- the writer's state, as seen from here ---------------------------------------------- */

/* Check with syscalls: the kernel lock says whether a writer lives; the name says whether
 * this is still the channel it refers to. */
static int state_check(ndshm_reader *r, uint64_t now)
{
    uint64_t owner = atomic_load_explicit(&r->ctl->owner, memory_order_acquire);
    int st = NDSHM_OK;
    int locked = ndshm__ctl_writer_locked(&r->ctlh);
    if (locked <= 0)
        st = NDSHM_WRITER_GONE;
    if (st != NDSHM_OK) {
        char seg[NDSHM__SEG_MAX];
        struct ndshm__fstat fs;
        ndshm__ctl_name(seg, r->name);
        /* Our file is no longer the one under the name, and something is: a new channel. */
        if (!ndshm__ctl_same_file(&r->ctlh, r->name) && ndshm__os->stat(seg, &fs) == 0)
            st = NDSHM_REPLACED;
    }
    atomic_store_explicit(&r->state, st, memory_order_relaxed);
    atomic_store_explicit(&r->state_owner, owner, memory_order_relaxed);
    atomic_store_explicit(&r->state_ns, now ? now : 1, memory_order_relaxed);
    return st;
}

/* NDSHM_OK, NDSHM_WRITER_GONE or NDSHM_REPLACED. One load while nothing changed: a clean
 * close (owner 0) or a takeover (a new owner) shows in ctl.owner at once; a crash is found by
 * the lock check, at most every 100 ms (a syscall, never on the success path). */
static int reader_state(ndshm_reader *r, uint64_t now, int refresh)
{
    uint64_t owner = atomic_load_explicit(&r->ctl->owner, memory_order_acquire);
    uint64_t last = atomic_load_explicit(&r->state_ns, memory_order_relaxed);
    /* Signed: `now` may come from the coarse clock, up to a tick behind a precise `last`. */
    if (last == 0 || owner != atomic_load_explicit(&r->state_owner, memory_order_relaxed) ||
        (refresh && (int64_t)(now - last) >= (int64_t)ALIVE_CHECK_NS))
        return state_check(r, now);
    int st = atomic_load_explicit(&r->state, memory_order_relaxed);
    if (owner == 0 && st == NDSHM_OK)
        st = NDSHM_WRITER_GONE;
    return st;
}

int ndshm__reader_state(ndshm_reader *r)
{
    return reader_state(r, ndshm_now_ns(), 1);
}

int ndshm_reader_writer_alive(ndshm_reader *r)
{
    if (!r)
        return 0;
    return state_check(r, ndshm_now_ns()) == NDSHM_OK;
}

/* ----- the read core ----------------------------------------------------------------------- */

/* dtype, ndim and shape[0..ndim) a word at a time (a 64-bit multiply-xorshift per word). */
static uint64_t meta_hash(const struct ndshm__meta *m)
{
    const uint64_t k = UINT64_C(0x9e3779b97f4a7c15);
    uint64_t h = ((uint64_t)(uint32_t)m->dtype << 32 | m->ndim) * k;
    h ^= h >> 32;
    for (uint32_t i = 0; i < m->ndim; i++) {
        h = (h ^ m->shape[i]) * k;
        h ^= h >> 32;
    }
    return h | 1; /* never 0, which means "none yet" */
}

struct got {
    struct ndshm__meta meta;
    uint64_t seq;
    uint64_t gen;
    struct rmap *m; /* with a reference, for views */
    const struct ndshm__slot *slot;
    uint32_t payload_offset;
};

/* The fields of info that describe the version itself; shape entries past ndim are zero. */
static void fill_meta(const struct got *g, ndshm_info *info)
{
    info->version = g->meta.version;
    info->publish_ns = g->meta.publish_ns;
    info->nbytes = g->meta.nbytes;
    info->generation = g->gen;
    info->dtype = g->meta.dtype;
    info->ndim = g->meta.ndim;
    info->meta_len = g->meta.meta_len;
    info->user_ns = g->meta.user_ns;
    info->user_tag = g->meta.user_tag;
    info->origin_version = g->meta.origin_version;
    info->origin_ns = g->meta.origin_ns;
    memcpy(info->shape, g->meta.shape, g->meta.ndim * sizeof(uint64_t));
    memset(info->shape + g->meta.ndim, 0, (NDSHM_MAX_DIMS - g->meta.ndim) * sizeof(uint64_t));
}

static void fill_info(ndshm_reader *r, const struct got *g, uint64_t dropped, ndshm_info *info)
{
    uint64_t now = ndshm_now_ns();
    fill_meta(g, info);
    info->read_ns = now;
    info->latency_ns = now > g->meta.publish_ns ? now - g->meta.publish_ns : 0;
    info->dropped = dropped;
    uint32_t flags = (g->meta.xflags & NDSHM__X_EXTRA) ? NDSHM_INFO_EXTRA : 0;
    /* Plain load, compare, store only on a change: no locked RMW on the read path. With
     * several threads on one handle the two flags are best-effort (ndshm.h, Threads). */
    uint64_t h = meta_hash(&g->meta);
    if (atomic_load_explicit(&r->meta_hash, memory_order_relaxed) != h) {
        atomic_store_explicit(&r->meta_hash, h, memory_order_relaxed);
        flags |= NDSHM_INFO_META_CHANGED;
    }
    uint64_t lg = atomic_load_explicit(&r->last_gen, memory_order_relaxed);
    if (lg != g->gen) {
        atomic_store_explicit(&r->last_gen, g->gen, memory_order_relaxed);
        if (lg != 0)
            flags |= NDSHM_INFO_REALLOCATED;
    }
    /* The cached state, refreshed on the no-data paths; a handle that never checked (a fresh
     * reader of a dead writer's channel) checks once, so even its first read is flagged. */
    if (reader_state(r, now, 0) != NDSHM_OK)
        flags |= NDSHM_INFO_WRITER_GONE;
    info->flags = flags;
}

/* Meta only (for E_TOO_SMALL): the caller learns the sizes; the handle does not advance. */
static void fill_meta_only(const struct got *g, ndshm_info *info)
{
    fill_meta(g, info);
    info->read_ns = 0;
    info->latency_ns = 0;
    info->dropped = 0;
    info->flags = (g->meta.xflags & NDSHM__X_EXTRA) ? NDSHM_INFO_EXTRA : 0;
}

/* Claim version `want` for this handle. read_next: with threads sharing the handle each
 * version goes to exactly one of them, and the gap before it is counted once (returns 0 if
 * another thread moved the position: *pos gets the new one). read_latest: move forward only. */
static int claim_version(ndshm_reader *r, int next, int replay, uint64_t *pos, uint64_t want,
                         uint64_t *dropped)
{
    if (next) {
        uint64_t expect = *pos;
        if (!atomic_compare_exchange_strong_explicit(&r->pos, &expect, want, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            *pos = expect;
            return 0;
        }
        *dropped = replay ? 0 : want - *pos - 1;
    } else {
        uint64_t p = *pos;
        while (p < want && !atomic_compare_exchange_weak_explicit(
                               &r->pos, &p, want, memory_order_acq_rel, memory_order_acquire))
            ;
        *dropped = want > *pos + 1 ? want - *pos - 1 : 0;
    }
    if (atomic_load_explicit(&r->lost, memory_order_relaxed))
        *dropped += atomic_exchange_explicit(&r->lost, 0, memory_order_relaxed);
    /* Any read ends a pending replay: read_next never goes back behind a read_latest. */
    if (atomic_load_explicit(&r->replay, memory_order_relaxed))
        atomic_store_explicit(&r->replay, 0, memory_order_relaxed);
    return 1;
}

/*
 * The current generation's data segment could not be opened: normally the writer has moved
 * on again (gen changed) and the caller retries. If gen is still the same and no writer is
 * alive, the segment was removed with the channel (a close with NDSHM_UNLINK_ON_CLOSE, `ndshm
 * rm`, gc) before this reader mapped it: its versions can never be read. The handle then
 * moves to head and counts them as lost (added to the next read's `dropped`, should one ever
 * succeed), so reads say NO_NEW (or REPLACED) and ndshm_wait says WRITER_GONE instead of a
 * retry loop that never ends. Returns 1 in that case, 0 to retry.
 */
static int segment_vanished(ndshm_reader *r, uint64_t gen, uint64_t *pos)
{
    struct ndshm__ctl *c = r->ctl;
    if (atomic_load_explicit(&c->gen, memory_order_acquire) != gen)
        return 0;
    if (state_check(r, ndshm_now_ns()) == NDSHM_OK)
        return 0; /* a live writer: it re-allocates or takes over; retry */
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    uint64_t p = *pos;
    while (p < head && !atomic_compare_exchange_weak_explicit(
                           &r->pos, &p, head, memory_order_acq_rel, memory_order_acquire))
        ;
    if (p < head)
        atomic_fetch_add_explicit(&r->lost, head - p, memory_order_relaxed);
    *pos = p > head ? p : head;
    if (atomic_load_explicit(&r->replay, memory_order_relaxed))
        atomic_store_explicit(&r->replay, 0, memory_order_relaxed);
    return 1;
}

/*
 * One read of the latest (next == 0) or next (next == 1) version into d (d == NULL with
 * view != 0 takes a view: no copy, a mapping reference in g->m). Returns an ndshm status.
 * On NDSHM_OK, *dropped is the number of versions skipped since the handle's position.
 */
static int read_core(ndshm_reader *r, int next, const struct ndshm__dest *d, int view,
                     struct got *g, uint64_t *dropped)
{
    struct ndshm__ctl *c = r->ctl;
    uint64_t pos = atomic_load_explicit(&r->pos, memory_order_acquire);
    int replay = next && atomic_load_explicit(&r->replay, memory_order_relaxed);
    /* Nothing newer than the handle's position: the answer of the loop below whatever the
     * generation, found with one load (the polling path: no RCU section, no mapping).
     * Pairs with the release store of head (W5). */
    uint64_t head0 = atomic_load_explicit(&c->head, memory_order_acquire);
    if (head0 == 0)
        return NDSHM_NO_DATA;
    if (head0 <= pos && !replay)
        return NDSHM_NO_NEW;
    uint64_t t = replay ? 1 : pos + 1; /* read_next: the version we want */
    /* read_next found a slot already holding a version past head: the writer is publishing
     * it, so what it skipped over is lost but something newer is coming at once */
    int ahead = 0;
    /* read_next lost a wanted version to the writer in this call (overwritten under us) */
    int chased = 0;
    for (uint32_t attempt = 0; attempt < r->retries; attempt++) {
        urcu_bp_read_lock();
        /* Pairs with the release store of gen in commit_impl() (W5): if we see generation g,
         * segment g exists (or existed) and head was already inside it. */
        uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
        /* Pairs with the release CAS in remap(); the read-side critical section keeps m
         * mapped until we leave it (call_rcu frees only after a grace period). */
        struct rmap *m = atomic_load_explicit(&r->cur, memory_order_acquire);
        struct ndshm__data *dseg = m->map.base;
        if (m->geom.generation != gen) {
            /* Pairs with the release store of sealed (W4), made before gen moved. */
            uint64_t sealed = atomic_load_explicit(&dseg->sealed, memory_order_acquire);
            int keep = next && m->geom.generation < gen && sealed != NDSHM__UNSEALED &&
                       t <= sealed && t >= m->geom.first_version;
            if (!keep) { /* read_next finishes the old segment's versions first */
                int rc = remap(r, m, gen, &m);
                section_end(m);
                if (rc < 0)
                    return rc;
                if (rc == 2 && segment_vanished(r, gen, &pos))
                    return NDSHM_NO_NEW;
                continue; /* rc == 0: mapped; start over with it. Else: retry */
            }
        }
        /* Pairs with the release store of head (W5). */
        uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
        /* Loaded after head: if head already lives in a newer segment, the seal (W4, before
         * W5) is visible here. */
        uint64_t sealed = atomic_load_explicit(&dseg->sealed, memory_order_acquire);
        uint64_t want = 0;
        int status = NDSHM_OK;
        if (head == 0) {
            status = NDSHM_NO_DATA;
        } else if (!next) {
            want = head;
            if (head <= pos)
                status = NDSHM_NO_NEW;
            else if (sealed != NDSHM__UNSEALED && head > sealed)
                status = RETRY; /* head is in the next generation: retry */
        } else {
            uint64_t n = m->geom.slot_count;
            uint64_t oldest = m->geom.first_version;
            if (sealed == NDSHM__UNSEALED && head >= n && head - n + 1 > oldest)
                oldest = head - n + 1;
            if (t < oldest)
                t = oldest; /* lapped, or versions in segments nobody can map any more */
            /* An attempt of this call lost its version to the writer: the oldest versions
             * are the next ones it overwrites, and a reader whose copy takes longer than a
             * publish period would chase it slot after slot. Aim half a ring ahead. */
            if (chased && sealed == NDSHM__UNSEALED && head >= n && t < head - (n - 1) / 2)
                t = head - (n - 1) / 2;
            want = t;
            if (t > head) /* never "nothing new" while a newer version is being published */
                status = (ahead && head > pos) ? RETRY : NDSHM_NO_NEW;
            else if (sealed != NDSHM__UNSEALED && t > sealed)
                status = RETRY; /* t is in the next generation: retry */
        }
        if (status != NDSHM_OK) {
            section_end(m);
            if (status == RETRY)
                continue;
            return status;
        }
        const struct ndshm__slot *s = ndshm__slot_at(m->map.base, &m->geom, want);
        enum ndshm__try res = ndshm__slot_read(s, &m->geom, want, d, &g->meta, &g->seq);
        if (res == NDSHM__GOT && view) /* pin the mapping while still inside the section */
            atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
        /* m may be freed once we leave the section: keep what we need of it. (Reading it
         * after section_end() was a use-after-free, found by ThreadSanitizer.) */
        const uint64_t m_gen = m->geom.generation, m_slots = m->geom.slot_count;
        const uint32_t m_payload = m->geom.payload_offset;
        struct rmap *pinned = (res == NDSHM__GOT && view) ? m : NULL;
        section_end(m);
        m = NULL;
        switch (res) {
        case NDSHM__GOT:
            g->gen = m_gen;
            g->slot = s;
            g->m = pinned;
            g->payload_offset = m_payload;
            if (!view && (g->meta.nbytes > (d ? d->dst_size : 0) ||
                          g->meta.meta_len > (d && d->meta ? d->meta_size : UINT64_MAX)))
                return NDSHM_E_TOO_SMALL; /* the handle does not advance */
            if (!claim_version(r, next, replay, &pos, want, dropped)) {
                if (pinned)
                    rmap_put(pinned);
                t = pos + 1;
                replay = 0;
                continue;
            }
            return NDSHM_OK;
        case NDSHM__NEWER:
            /* The slot was reused: every version up to meta.version - N is gone. */
            if (next) {
                uint64_t skip = g->meta.version >= m_slots ? g->meta.version - m_slots + 1 : 1;
                t = skip > want + 1 ? skip : want + 1;
                ahead = 1;
                chased = 1;
            }
            break;
        case NDSHM__BUSY:
            /* A slot holding a wanted version < head that is being written is being
             * overwritten: that version is lost. The newest one (want == head) is only being
             * followed by head + 1: retry, never report "nothing new" while it exists. A
             * sealed segment is never written again, so there this is only a torn header. */
            if (next && sealed == NDSHM__UNSEALED && want < head) {
                t = want + 1;
                chased = 1;
            }
            break;
        case NDSHM__OLDER:
            /* version <= head not in its slot: invalidated (cancelled loan, repair) */
            if (next)
                t = want + 1;
            break;
        case NDSHM__BAD:
            return NDSHM_E_CORRUPT;
        }
    }
    return NDSHM_CONTENDED;
}

/* Map a no-data status onto what the caller sees: nothing new, and the name now belongs to a
 * new channel -> NDSHM_REPLACED (rate-limited check). */
static int nothing(ndshm_reader *r, int rc)
{
    if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA) {
        if (reader_state(r, coarse_ns(), 1) == NDSHM_REPLACED)
            return NDSHM_REPLACED;
    }
    return rc;
}

static int read_copy(ndshm_reader *r, int next, void *buf, size_t buf_size, void *meta,
                     size_t meta_size, int want_meta, ndshm_info *info)
{
    if (!r || !info || (!buf && buf_size) || (!meta && meta_size))
        return NDSHM_E_INVAL;
    struct got g; /* set by read_core() for NDSHM_OK and NDSHM_E_TOO_SMALL */
    g.m = NULL;
    uint64_t dropped = 0;
    /* With want_meta and no buffer, a dummy pointer with room 0: a version that carries
     * metadata then gives NDSHM_E_TOO_SMALL, as documented. */
    static char no_meta;
    struct ndshm__dest d = {buf, buf_size, want_meta ? (meta ? meta : (void *)&no_meta) : NULL,
                            want_meta ? meta_size : 0};
    int rc = read_core(r, next, &d, 0, &g, &dropped);
    if (rc == NDSHM_OK)
        fill_info(r, &g, dropped, info);
    else if (rc == NDSHM_E_TOO_SMALL)
        fill_meta_only(&g, info);
    else
        return nothing(r, rc);
    return rc;
}

int ndshm_read_latest(ndshm_reader *r, void *buf, size_t buf_size, ndshm_info *info)
{
    return read_copy(r, 0, buf, buf_size, NULL, 0, 0, info);
}

int ndshm_read_next(ndshm_reader *r, void *buf, size_t buf_size, ndshm_info *info)
{
    return read_copy(r, 1, buf, buf_size, NULL, 0, 0, info);
}

int ndshm_read_ex(ndshm_reader *r, uint32_t how, void *buf, size_t buf_size, void *meta,
                  size_t meta_size, ndshm_info *info)
{
    if (how > NDSHM_READ_NEXT)
        return NDSHM_E_INVAL;
    return read_copy(r, (int)how, buf, buf_size, meta, meta_size, 1, info);
}

static int obuf_grow(struct obuf *b, uint64_t need)
{
    if (b->p && b->cap >= need)
        return NDSHM_OK;
    uint64_t cap = need + 63 - (need + 63) % 64;
    if (cap == 0)
        cap = 64; /* a zero-byte array still gets a valid pointer */
    void *nb = NULL;
    if (cap > SIZE_MAX || posix_memalign(&nb, 64, (size_t)cap))
        return NDSHM_E_NOMEM;
    free(b->p);
    b->p = nb;
    b->cap = cap;
    return NDSHM_OK;
}

static int read_owned(ndshm_reader *r, int next, const void **data, ndshm_info *info)
{
    if (!r || !data || !info)
        return NDSHM_E_INVAL;
    int rc = NDSHM_CONTENDED; /* if the array kept growing faster than we could allocate */
    for (int i = 0; i < 8; i++) {
        ndshm_info tmp;
        if (obuf_grow(&r->back, r->back.cap ? r->back.cap : 64) != NDSHM_OK)
            return NDSHM_E_NOMEM;
        /* Into the back buffer: whatever a failed attempt copies, the front buffer still
         * holds exactly the version front_info describes. */
        rc = read_copy(r, next, r->back.p, r->back.cap, NULL, 0, 0, &tmp);
        if (rc == NDSHM_E_TOO_SMALL) {
            if (obuf_grow(&r->back, tmp.nbytes) != NDSHM_OK)
                return NDSHM_E_NOMEM;
            continue;
        }
        if (rc == NDSHM_OK) {
            struct obuf t = r->front;
            r->front = r->back;
            r->back = t;
            r->front_info = tmp;
            r->front_valid = 1;
        }
        break;
    }
    if (rc == NDSHM_OK || (rc > 0 && r->front_valid)) {
        *data = r->front.p;
        *info = r->front_info;
    } else if (rc > 0) {
        *data = NULL;
    }
    return rc;
}

int ndshm_read_latest_owned(ndshm_reader *r, const void **data, ndshm_info *info)
{
    return read_owned(r, 0, data, info);
}

int ndshm_read_next_owned(ndshm_reader *r, const void **data, ndshm_info *info)
{
    return read_owned(r, 1, data, info);
}

/* ----- views --------------------------------------------------------------------------------- */

static int view_get(ndshm_reader *r, int next, ndshm_view *view)
{
    if (!r || !view)
        return NDSHM_E_INVAL;
    struct got g; /* set by read_core() for NDSHM_OK */
    g.m = NULL;
    uint64_t dropped = 0;
    int rc = read_core(r, next, NULL, 1, &g, &dropped);
    if (rc != NDSHM_OK)
        return nothing(r, rc);
    fill_info(r, &g, dropped, &view->info); /* with the fields below: all of *view */
    view->data = (const char *)g.slot + g.payload_offset;
    view->meta = (const char *)g.slot + NDSHM__SLOT_HDR;
    view->priv_[0] = g.m;
    view->priv_[1] = (void *)g.slot;
    view->seq_ = g.seq;
    return NDSHM_OK;
}

int ndshm_view_latest(ndshm_reader *r, ndshm_view *view)
{
    return view_get(r, 0, view);
}

int ndshm_view_next(ndshm_reader *r, ndshm_view *view)
{
    return view_get(r, 1, view);
}

int ndshm_view_check(const ndshm_view *view)
{
    if (!view || !view->priv_[0] || !view->priv_[1])
        return NDSHM_E_INVAL;
    return ndshm__slot_still(view->priv_[1], view->seq_) ? NDSHM_OK : NDSHM_OVERWRITTEN;
}

int ndshm_view_release(ndshm_view *view)
{
    int rc = ndshm_view_check(view);
    if (rc < 0)
        return rc;
    rmap_put(view->priv_[0]);
    memset(view, 0, sizeof *view);
    return rc;
}

/* ----- for wait.c ---------------------------------------------------------------------------- */

struct ndshm__ctl *ndshm__reader_ctl(ndshm_reader *r)
{
    return r->ctl;
}

uint64_t ndshm__reader_pos(ndshm_reader *r)
{
    return atomic_load_explicit(&r->pos, memory_order_acquire);
}

uint32_t ndshm__reader_spin_ns(ndshm_reader *r)
{
    return r->spin_ns;
}

uint32_t ndshm__reader_flags(ndshm_reader *r)
{
    return r->flags;
}

struct ndshm__waitpg *ndshm__reader_waitpg(ndshm_reader *r)
{
    /* The writer of the moment names its page; a takeover brings a new one. */
    int32_t id = atomic_load_explicit(&r->ctl->wait_id, memory_order_acquire);
    pthread_mutex_lock(&r->wait_mu);
    if (id != r->wait_id) {
        if (r->waitpg) {
            void *p = realloc(r->retired, (r->nretired + 1) * sizeof *r->retired);
            if (!p) { /* keep the old page: sleep in short slices instead */
                pthread_mutex_unlock(&r->wait_mu);
                return NULL;
            }
            r->retired = p;
            r->retired[r->nretired++] = r->waitpg;
        }
        r->waitpg = ndshm__waitpg_attach(id, r->ctlh.st.uid, r->ctl->nonce);
        r->wait_id = id;
    }
    struct ndshm__waitpg *pg = r->waitpg;
    pthread_mutex_unlock(&r->wait_mu);
    return pg;
}
