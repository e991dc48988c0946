/*
 * The writer: create or take over a channel, publish by copy or by loan/commit, re-allocate.
 * The steps W1-W6 are those of the protocol comment at the top of ring.c.
 *
 * OWNERSHIP (who may write a channel, and how everyone else knows whether it lives)
 *   The writer holds an OFD write lock on byte NDSHM__LOCK_WRITER of the control file for its
 *   whole life. The kernel releases it when the last descriptor of that open file closes,
 *   however the process ends (SIGKILL, crash, exit), and the lock is the same object seen from
 *   every pid namespace. So:
 *   - a reader, ndshm_gc or a would-be successor tests the lock (F_OFD_GETLK) to know whether
 *     the writer lives: exact, across containers, immune to pid reuse;
 *   - creating a channel takes the lock before the file gets its name (O_TMPFILE + linkat),
 *     so a channel is never visible without its writer's lock;
 *   - taking over IS acquiring the lock (F_OFD_SETLK): the kernel serialises competing
 *     claimants, and exactly one wins; the winner then checks that the name still refers to
 *     the file it locked (ndshm_gc may have removed it in between);
 *   - ndshm_gc and close-with-unlink remove a channel only while holding the lock, after the
 *     same check, so neither can remove a channel a successor has taken over;
 *   - ctl.owner (a new number at every takeover, 0 after a clean close) tells readers cheaply,
 *     with one load, that the writer closed or changed; pid and pid namespace are recorded
 *     for display only.
 *   A writer that finds its channel's memory in a state only another writer could have made
 *   (a slot already odd at W1, not odd at W3, ctl.owner changed) has been superseded: the
 *   call returns NDSHM_E_SUPERSEDED, and so does every later call; it never aborts.
 *
 * FORK. The handle belongs to the process that opened it. In a child every call returns
 * NDSHM_E_FORKED, and the child's copy of the lock descriptor is closed at fork (pthread_atfork),
 * so a child outliving its parent never keeps a dead parent's channel "alive".
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct ndshm_writer {
    char name[NDSHM_NAME_MAX + 1];
    uint32_t flags;
    uint32_t mode; /* of the channel's files */
    uint32_t slots;
    uint32_t growth;
    struct ndshm__ctlh ctlh; /* the control file: its descriptor holds the writer lock */
    struct ndshm__ctl *ctl;
    struct ndshm__waker waker;
    struct ndshm__map data; /* the published data segment */
    struct ndshm__geom geom;
    struct ndshm__map pending; /* next generation, created by a loan or a reserve */
    struct ndshm__geom pgeom;
    int pending_reserved;     /* pending was made by ndshm_writer_reserve() */
    uint64_t head;            /* last version published */
    uint64_t owner;           /* our ownership number in ctl.owner */
    uint64_t fork_gen;        /* ndshm__fork_gen() at open */
    int superseded;           /* another writer was seen at work: refuse everything */
    struct ndshm__slot *loan; /* slot of the open loan, NULL = none */
    struct ndshm__meta loan_meta;
    struct ndshm_writer *next_; /* registry of open writers (fork handling) */
#ifndef NDEBUG
    atomic_int busy; /* detects two threads inside one writer */
#endif
};

/* ----- registry: close each writer's lock descriptor in a forked child ---------------------- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ndshm_writer *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_prepare(void)
{
    pthread_mutex_lock(&reg_mu);
}
static void reg_parent(void)
{
    pthread_mutex_unlock(&reg_mu);
}
static void reg_child(void)
{
    /* The child shares the parent's open file (and so its lock) through the inherited
     * descriptor: close the child's copy, leaving the parent's lock intact. */
    for (struct ndshm_writer *w = reg_head; w; w = w->next_) {
        if (w->ctlh.fd >= 0)
            ndshm__os->close(w->ctlh.fd);
        w->ctlh.fd = -1;
    }
    pthread_mutex_unlock(&reg_mu);
}
static void reg_init(void)
{
    pthread_atfork(reg_prepare, reg_parent, reg_child);
}

static void reg_add(ndshm_writer *w)
{
    pthread_once(&reg_once, reg_init);
    pthread_mutex_lock(&reg_mu);
    w->next_ = reg_head;
    reg_head = w;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(ndshm_writer *w)
{
    pthread_mutex_lock(&reg_mu);
    for (struct ndshm_writer **p = &reg_head; *p; p = &(*p)->next_) {
        if (*p == w) {
            *p = w->next_;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ----- entering a call ----------------------------------------------------------------------- */

static int enter(ndshm_writer *w)
{
    if (w->fork_gen != ndshm__fork_gen())
        return NDSHM_E_FORKED;
#ifndef NDEBUG
    if (atomic_exchange_explicit(&w->busy, 1, memory_order_acquire))
        return NDSHM_E_CONCURRENT;
#endif
    if (w->superseded) {
#ifndef NDEBUG
        atomic_store_explicit(&w->busy, 0, memory_order_release);
#endif
        return NDSHM_E_SUPERSEDED;
    }
    return NDSHM_OK;
}

static void leave(ndshm_writer *w)
{
#ifndef NDEBUG
    atomic_store_explicit(&w->busy, 0, memory_order_release);
#else
    (void)w;
#endif
}

/* Stop writing for good (another writer is at work). */
static int supersede(ndshm_writer *w)
{
    w->superseded = 1;
    w->loan = NULL;
    return NDSHM_E_SUPERSEDED;
}

int ndshm__options_read(const ndshm_options *opts, ndshm_options *out)
{
    ndshm_options o = NDSHM_OPTIONS_INIT;
    if (opts) {
        /* size-versioned: accept older (smaller) structs, take only the fields they have */
        if (opts->size < offsetof(ndshm_options, capacity) || opts->size > 4096)
            return NDSHM_E_INVAL;
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
    }
    if (o.slots == 0)
        o.slots = 4;
    if (o.mode == 0)
        o.mode = 0600;
    if (o.capacity == 0)
        o.capacity = 64;
    if (o.retries == 0)
        o.retries = 64;
    if (o.spin_ns == 0)
        o.spin_ns = 20000;
    if (o.flags & ~(uint32_t)(NDSHM_UNLINK_ON_CLOSE | NDSHM_OPEN_OR_CREATE | NDSHM_FORCE_TAKEOVER |
                              NDSHM_REPLAY | NDSHM_PERSISTENT | NDSHM_AWAIT_WRITER))
        return NDSHM_E_INVAL;
    if (o.mode & ~07777u || o.growth > NDSHM_GROW_FIXED)
        return NDSHM_E_INVAL;
    if (o.slots > NDSHM_MAX_SLOTS || o.capacity > NDSHM_MAX_CAPACITY || o.retries > 1000000)
        return NDSHM_E_LIMIT;
    *out = o;
    return NDSHM_OK;
}

int ndshm__entry_check(const char *name, const ndshm_options *opts, const void *out,
                       ndshm_options *o)
{
    int rc = ndshm__options_read(opts, o);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    return ndshm__name_dir_check(name);
}

static ndshm_writer *writer_new(const char *name, const ndshm_options *o)
{
    ndshm_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->flags = o->flags;
    w->slots = o->slots;
    w->growth = o->growth;
    w->ctlh = (struct ndshm__ctlh)NDSHM__CTLH_INIT;
    w->waker.id = -1;
    w->fork_gen = ndshm__fork_gen();
    return w;
}

/* Free what this process holds. Closing the descriptor drops the writer lock. */
static void writer_free(ndshm_writer *w)
{
    ndshm__unmap(&w->pending);
    ndshm__unmap(&w->data);
    ndshm__waker_destroy(&w->waker);
    ndshm__ctl_close(&w->ctlh);
    free(w);
}

/* Record ourselves as the channel's writer (display and the readers' cheap checks). */
static void claim(ndshm_writer *w)
{
    struct ndshm__ctl *c = w->ctl;
    atomic_store_explicit(&c->wait_id, w->waker.id, memory_order_relaxed);
    atomic_store_explicit(&c->writer_pid, ndshm__self_pid(), memory_order_relaxed);
    atomic_store_explicit(&c->writer_pidns, ndshm__os->pidns(), memory_order_relaxed);
    /* Release: a reader that sees the new owner sees the wait page id and pid. The caller's
     * seq_cst notify bump (ndshm__notify_all) comes after these stores too, so a sleeper
     * whose seq_cst load sees that bump also finds the new wait page. */
    atomic_store_explicit(&c->owner, w->owner, memory_order_release);
}

/* Owner and group new data segments get: the control file's, as it is now (its group may
 * have been changed to share the channel). */
static void ctl_owner(const ndshm_writer *w, uint32_t *uid, uint32_t *gid)
{
    struct ndshm__fstat st;
    if (ndshm__os->fstat(w->ctlh.fd, &st) != 0)
        st = w->ctlh.st;
    *uid = st.uid;
    *gid = st.gid;
}

static int unlink_data_seg(const char *name, const struct ndshm__geom *g)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, name, g->generation, g->token);
    return ndshm__os->unlink(seg);
}

/* ----- create ----------------------------------------------------------------------------------
 */

int ndshm_writer_create(const char *name, const ndshm_options *opts, ndshm_writer **out)
{
    ndshm_options o;
    int rc = ndshm__entry_check(name, opts, out, &o);
    if (rc)
        return rc;
    ndshm_writer *w = writer_new(name, &o);
    if (!w)
        return NDSHM_E_NOMEM;
    w->mode = ndshm__seg_mode(o.mode);
    w->geom.generation = 1;
    w->geom.first_version = 1;
    if ((rc = ndshm__geom_plan(o.slots, o.capacity, 0, &w->geom)) != NDSHM_OK) {
        free(w);
        return rc;
    }
    int named = 0;
    uint32_t cflags = (o.flags & NDSHM_PERSISTENT) ? NDSHM__CTL_PERSISTENT : 0;
    rc = ndshm__ctl_prepare(name, w->mode, cflags, &w->ctlh, &named);
    if (rc == NDSHM_OK) {
        w->ctl = ndshm__ctlh_ctl(&w->ctlh);
        w->geom.nonce = w->ctl->nonce;
        /* Without a wait page readers are woken on every publish: slower, still correct. */
        (void)ndshm__waker_create(&w->waker, w->ctl->nonce, w->mode);
        w->owner = 1;
        claim(w);
        rc = ndshm__create_data(name, &w->geom, w->mode, w->ctlh.st.uid, w->ctlh.st.gid, &w->data);
    }
    if (rc == NDSHM_OK) {
        atomic_store_explicit(&w->ctl->token[1], w->geom.token, memory_order_relaxed);
        atomic_store_explicit(&w->ctl->gen, 1, memory_order_relaxed);
        atomic_store_explicit(&w->ctl->head, 0, memory_order_relaxed);
        /* Pairs with the acquire load of `ready` in ndshm__validate_ctl(): a reader that sees
         * the channel ready sees gen and the data segment it names. */
        atomic_store_explicit(&w->ctl->ready, NDSHM__READY, memory_order_release);
        rc = ndshm__ctl_link(&w->ctlh, named, name);
        if (rc != NDSHM_OK)
            unlink_data_seg(name, &w->geom);
    }
    if (rc != NDSHM_OK) {
        if (named && w->ctl) { /* the O_EXCL fallback named it: it is ours to remove */
            char seg[NDSHM__SEG_MAX];
            ndshm__ctl_name(seg, name);
            ndshm__os->unlink(seg);
        }
        writer_free(w);
        if (rc == NDSHM_E_EXISTS && (o.flags & NDSHM_OPEN_OR_CREATE))
            return ndshm_writer_open(name, opts, out);
        return rc;
    }
    reg_add(w);
    *out = w;
    return NDSHM_OK;
}

/* ----- takeover --------------------------------------------------------------------------------
 */

/* Mark a slot invalid if the previous writer left it mid-write or holding a version it never
 * published. Reads seq and version like a reader would (atomically, checked). */
static void repair_slot(struct ndshm__slot *s, const struct ndshm__geom *g, uint64_t head)
{
    struct ndshm__meta m;
    uint64_t seq;
    enum ndshm__try t = ndshm__slot_read(s, g, 0, NULL, &m, &seq);
    if (t == NDSHM__BUSY || (t != NDSHM__GOT && m.version > head))
        ndshm__slot_invalidate(s);
}

/* After a takeover: finish or discard what the previous writer left half done. */
static int writer_repair(ndshm_writer *w)
{
    struct ndshm__ctl *c = w->ctl;
    uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    uint64_t token = atomic_load_explicit(&c->token[gen % 2], memory_order_acquire);
    uint64_t next_token = atomic_load_explicit(&c->token[(gen + 1) % 2], memory_order_acquire);
    /* A writer killed between "head := v" and "gen := g + 1" (W5) published v in segment
     * g + 1: complete that re-allocation. */
    struct ndshm__map m = {0};
    struct ndshm__geom g;
    if (next_token &&
        ndshm__map_data(w->name, gen + 1, next_token, &w->ctlh, 1, &m, &g) == NDSHM_OK) {
        struct ndshm__meta meta;
        uint64_t seq;
        if (head != 0 && head >= g.first_version &&
            ndshm__slot_read(ndshm__slot_at(m.base, &g, head), &g, head, NULL, &meta, &seq) ==
                NDSHM__GOT) {
            atomic_store_explicit(&c->gen, gen + 1, memory_order_release);
            gen++;
            token = next_token;
        }
        ndshm__unmap(&m);
    }
    /* Every other segment of this channel instance is stale: unlink it. */
    ndshm__unlink_data(w->name, c->nonce, gen, token);
    int rc = ndshm__map_data(w->name, gen, token, &w->ctlh, 1, &w->data, &w->geom);
    if (rc == NDSHM_E_NOENT || rc == NDSHM_E_CORRUPT || rc == NDSHM_E_MAGIC ||
        rc == NDSHM_E_LAYOUT || rc == NDSHM_E_UNTRUSTED) {
        /* The data segment is gone or broken: start a fresh generation after it. */
        struct ndshm__geom ng = {
            .generation = gen + 1, .first_version = head + 1, .nonce = c->nonce};
        if ((rc = ndshm__geom_plan(w->slots, 64, 0, &ng)) != NDSHM_OK)
            return rc;
        uint32_t uid, gid;
        ctl_owner(w, &uid, &gid);
        if ((rc = ndshm__create_data(w->name, &ng, w->mode, uid, gid, &w->data)) != NDSHM_OK)
            return rc;
        w->geom = ng;
        atomic_store_explicit(&c->token[(gen + 1) % 2], ng.token, memory_order_relaxed);
        atomic_store_explicit(&c->gen, gen + 1, memory_order_release);
        ndshm__unlink_data(w->name, c->nonce, ng.generation, ng.token);
    } else if (rc) {
        return rc;
    }
    struct ndshm__data *d = w->data.base;
    /* The dead writer may have sealed this segment before failing to publish the next one;
     * readers only look at `sealed` after gen moved, which it did not. */
    atomic_store_explicit(&d->sealed, NDSHM__UNSEALED, memory_order_relaxed);
    for (uint32_t i = 0; i < w->geom.slot_count; i++)
        repair_slot(ndshm__slot_at(w->data.base, &w->geom, i), &w->geom, head);
    w->head = head;
    w->slots = w->geom.slot_count;
    return NDSHM_OK;
}

/* Acquire the writer lock of an open control file. A holder may be ndshm_gc, for the
 * moment it takes to remove a dead channel: try a few times before calling it alive. */
static int acquire_writer_lock(const struct ndshm__ctlh *h)
{
    for (int i = 0;; i++) {
        int rc = ndshm__os->lock(h->fd, NDSHM__LOCK_WRITER, NDSHM__WRLOCK);
        if (rc != -EAGAIN)
            return ndshm__errno_status(rc);
        if (i == 3)
            return NDSHM_E_WRITER_ALIVE;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int ndshm_writer_open(const char *name, const ndshm_options *opts, ndshm_writer **out)
{
    ndshm_options o;
    int rc = ndshm__entry_check(name, opts, out, &o);
    if (rc)
        return rc;
    ndshm_writer *w = writer_new(name, &o);
    if (!w)
        return NDSHM_E_NOMEM;
    if ((rc = ndshm__ctl_open(name, 1, 1, &w->ctlh)) != NDSHM_OK) {
        free(w);
        return rc;
    }
    w->ctl = ndshm__ctlh_ctl(&w->ctlh);
    /* The mode of new segments from the file itself, never from the shared page. */
    w->mode = ndshm__seg_mode(w->ctlh.st.mode);
    rc = acquire_writer_lock(&w->ctlh);
    /* Locked (or not): does the name still refer to this file? ndshm_gc may have removed it
     * while we opened it. */
    if ((rc == NDSHM_OK || rc == NDSHM_E_WRITER_ALIVE) && !ndshm__ctl_same_file(&w->ctlh, name))
        rc = NDSHM_E_NOENT;
    if (rc != NDSHM_OK) {
        writer_free(w);
        if (rc == NDSHM_E_NOENT && (o.flags & NDSHM_OPEN_OR_CREATE)) {
            ndshm_options o2 = o;
            o2.flags &= ~(uint32_t)NDSHM_OPEN_OR_CREATE; /* no endless ping-pong */
            return ndshm_writer_create(name, &o2, out);
        }
        return rc;
    }
    struct ndshm__ctl *c = w->ctl;
    w->owner = atomic_fetch_add_explicit(&c->takeovers, 1, memory_order_relaxed) + 2;
    (void)ndshm__waker_create(&w->waker, c->nonce, w->mode);
    if (o.flags & NDSHM_PERSISTENT)
        atomic_fetch_or_explicit(&c->flags, NDSHM__CTL_PERSISTENT, memory_order_relaxed);
    if ((rc = writer_repair(w)) != NDSHM_OK) {
        writer_free(w);
        return rc;
    }
    claim(w);
    /* W6 on behalf of the dead writer (killed between W5 and W6 it published a version but
     * never woke the sleepers), and for readers waiting for a writer to come back. */
    ndshm__notify_all(c);
    reg_add(w);
    *out = w;
    return NDSHM_OK;
}

/* ----- publishing ------------------------------------------------------------------------------
 */

/* Carry the newest N - 1 versions of the current segment into the next one, so that a reader
 * fewer than N versions behind never loses a version to a re-allocation: it may not get to map
 * a short-lived generation before the writer unlinks it, but it finds the versions again in
 * the one after. Versions are read back with the checked reader path (the writer trusts its
 * own shared memory no more than a reader does). The carry stops at the first version that
 * cannot be read or does not fit the new capacity (readers count what is missing as
 * dropped). The new segment is still invisible to readers: published by the release store of
 * gen in commit_impl(). Returns the first version the new segment holds. */
static uint64_t carry_versions(ndshm_writer *w, void *nbase, const struct ndshm__geom *ng)
{
    uint64_t first = w->head + 1, n = ng->slot_count;
    uint64_t lo = w->head + 2 > n ? w->head + 2 - n : 1; /* head - (n - 1) + 1 */
    if (lo < w->geom.first_version)
        lo = w->geom.first_version;
    for (uint64_t u = w->head; u >= lo && u > 0; u--) {
        struct ndshm__slot *os = ndshm__slot_at(w->data.base, &w->geom, u);
        struct ndshm__slot *ns = ndshm__slot_at(nbase, ng, u);
        struct ndshm__meta m;
        uint64_t seq;
        struct ndshm__dest d = {(char *)ns + ng->payload_offset, ng->slot_capacity,
                                (char *)ns + NDSHM__SLOT_HDR, ng->meta_capacity};
        if (ndshm__slot_read(os, &w->geom, u, &d, &m, &seq) != NDSHM__GOT ||
            m.nbytes > ng->slot_capacity || m.meta_len > ng->meta_capacity)
            break;
        ndshm__slot_fill(ns, &m, NULL); /* metadata bytes already copied */
        ndshm__slot_seed(ns, m.publish_ns);
        first = u;
    }
    return first;
}

static uint64_t grow(uint32_t policy, uint64_t cur, uint64_t need)
{
    if (policy == NDSHM_GROW_EXACT)
        return need;
    uint64_t dbl = cur > NDSHM_MAX_CAPACITY / 2 ? NDSHM_MAX_CAPACITY : 2 * cur;
    uint64_t c = dbl > need ? dbl : need;
    uint64_t cap = need + (UINT64_C(1) << 30);
    return c > cap ? cap : c;
}

static void drop_pending(ndshm_writer *w)
{
    if (!w->pending.base)
        return;
    ndshm__unmap(&w->pending);
    unlink_data_seg(w->name, &w->pgeom);
    w->pending_reserved = 0;
}

/* Create the next generation's segment with these capacities. */
static int make_pending(ndshm_writer *w, uint64_t capacity, uint32_t meta_capacity)
{
    struct ndshm__geom g = {
        .generation = w->geom.generation + 1, .first_version = w->head + 1, .nonce = w->ctl->nonce};
    int rc = ndshm__geom_plan(w->slots, capacity, meta_capacity, &g);
    if (rc)
        return rc;
    struct ndshm__map m = {0};
    uint32_t uid, gid;
    ctl_owner(w, &uid, &gid);
    rc = ndshm__create_data(w->name, &g, w->mode, uid, gid, &m);
    if (rc)
        return rc;
    drop_pending(w);
    w->pending = m;
    g.first_version = carry_versions(w, m.base, &g);
    ((struct ndshm__data *)m.base)->first_version = g.first_version;
    w->pgeom = g;
    return NDSHM_OK;
}

static int extra_check(const ndshm_extra *x)
{
    if (!x)
        return NDSHM_OK;
    if (x->size < offsetof(ndshm_extra, origin_ns) + sizeof x->origin_ns || x->size > 4096)
        return NDSHM_E_INVAL;
    if (x->meta_len > NDSHM_META_MAX)
        return NDSHM_E_LIMIT;
    if (x->meta_len && !x->meta)
        return NDSHM_E_INVAL;
    return NDSHM_OK;
}

static void extra_into(struct ndshm__meta *m, const ndshm_extra *x)
{
    m->xflags = 0;
    m->meta_len = 0;
    m->user_ns = m->user_tag = m->origin_version = m->origin_ns = 0;
    if (!x)
        return;
    m->meta_len = x->meta_len;
    if (x->user_ns || x->user_tag || x->origin_version || x->origin_ns) {
        m->xflags |= NDSHM__X_EXTRA;
        m->user_ns = x->user_ns;
        m->user_tag = x->user_tag;
        m->origin_version = x->origin_version;
        m->origin_ns = x->origin_ns;
    }
}

static int loan_impl(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                     const ndshm_extra *x, void **data, uint64_t *nbytes_out)
{
    if (w->loan)
        return NDSHM_E_STATE;
    uint64_t nbytes;
    int rc = NDSHM_OK;
    /* The inlined check first; the public one only to name what is wrong. */
    if ((ndim && !shape) || !ndshm__nbytes(dtype, ndim, shape, &nbytes))
        rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc == NDSHM_OK)
        rc = extra_check(x);
    if (rc)
        return rc;
    if (w->head == UINT64_MAX - 1)
        return NDSHM_E_LIMIT;
    /* Only another writer changes the owner number: we were superseded. */
    if (atomic_load_explicit(&w->ctl->owner, memory_order_relaxed) != w->owner)
        return supersede(w);
    uint32_t meta_need = x ? x->meta_len : 0;
    const struct ndshm__geom *cur = w->pending.base ? &w->pgeom : &w->geom;
    if (nbytes > cur->slot_capacity || meta_need > cur->meta_capacity) {
        uint64_t cap = cur->slot_capacity;
        if (nbytes > cap) {
            if (w->growth == NDSHM_GROW_FIXED)
                return NDSHM_E_LIMIT;
            cap = grow(w->growth, cap, nbytes);
        }
        uint32_t mcap = cur->meta_capacity;
        if (meta_need > mcap) {
            uint64_t mc = grow(NDSHM_GROW_DOUBLE, mcap, meta_need);
            mcap = mc > NDSHM_META_MAX ? NDSHM_META_MAX : (uint32_t)mc;
        }
        if ((rc = make_pending(w, cap, mcap)) != NDSHM_OK)
            return rc;
    }
    const struct ndshm__geom *g = w->pending.base ? &w->pgeom : &w->geom;
    void *base = w->pending.base ? w->pending.base : w->data.base;
    uint64_t v = w->head + 1;
    struct ndshm__slot *s = ndshm__slot_at(base, g, v);
    if (ndshm__slot_begin(s) != NDSHM_OK) /* W1 */
        return supersede(w);
    struct ndshm__meta *m = &w->loan_meta;
    m->version = v;
    m->publish_ns = 0;
    m->nbytes = nbytes;
    m->dtype = dtype;
    m->ndim = ndim;
    if (ndim) /* shape may be NULL for a 0-d array */
        memcpy(m->shape, shape, ndim * sizeof shape[0]);
    extra_into(m, x);
    ndshm__slot_fill(s, m, x ? x->meta : NULL); /* W2 (header) */
    w->loan = s;
    *data = (char *)s + g->payload_offset;
    *nbytes_out = nbytes;
    return NDSHM_OK;
}

static int commit_impl(ndshm_writer *w)
{
    struct ndshm__ctl *c = w->ctl;
    uint64_t v = w->loan_meta.version;
    struct ndshm__slot *s = w->loan;
    w->loan = NULL;
    if (ndshm__slot_end(s, ndshm_now_ns()) != NDSHM_OK) /* W3 */
        return supersede(w);
    if (w->pending.base) {
        /* W4: seal the old segment. Pairs with the acquire load of gen by a reader, which
         * then reads `sealed` to know which versions the old mapping still holds. */
        struct ndshm__data *old = w->data.base;
        atomic_store_explicit(&old->sealed, w->head, memory_order_release);
        /* W5: the new segment's token (in the slot of its generation's parity), head, then
         * gen, so a reader that sees the new gen finds head inside it and can name it. */
        uint64_t ngen = w->pgeom.generation;
        atomic_store_explicit(&c->token[ngen % 2], w->pgeom.token, memory_order_release);
        atomic_store_explicit(&c->head, v, memory_order_release);
        atomic_store_explicit(&c->gen, ngen, memory_order_release);
        atomic_fetch_add_explicit(&c->reallocs, 1, memory_order_relaxed);
        /* The old segment goes at once: mapped readers keep it until they let go. */
        unlink_data_seg(w->name, &w->geom);
        ndshm__unmap(&w->data);
        w->data = w->pending;
        w->geom = w->pgeom;
        w->pending.base = NULL;
        w->pending.size = 0;
        w->pending_reserved = 0;
    } else {
        /* W5. Pairs with the acquire load of head in the reader. */
        atomic_store_explicit(&c->head, v, memory_order_release);
    }
    w->head = v;
    ndshm__notify(c, &w->waker); /* W6 */
    return NDSHM_OK;
}

static void cancel_impl(ndshm_writer *w)
{
    if (w->pending.base && !w->pending_reserved)
        drop_pending(w); /* the loan was in a segment nobody could see */
    else
        ndshm__slot_invalidate(w->loan); /* the slot's old version is gone: mark it invalid */
    w->loan = NULL;
}

/* ----- non-temporal stores ---------------------------------------------------------------------
 * Off unless asked for. A ring whose slots do not fit the last-level cache is written through
 * it to memory anyway: streaming stores then save the read-for-ownership of every line and
 * the eviction of what the cache held, and a 1080p publish is faster. But the payload then
 * sits in memory, not in the shared cache, so each reader's copy is slower too, and a reader
 * copying while the writer publishes back to back loses most races against the ring: measured
 * (docs/benchmarks.md, "Changes that did not pay"), 1080p, 4 slots, 32 MiB L3: one-way copy
 * latency 2.02 -> 1.69 ms, but the back-to-back reader's rate 953 -> 320 frames/s (ratio to a
 * paced writer 1.94 -> 0.33). NDSHM_NT in the environment: 1 = streaming stores for every
 * payload of 256 KiB and more; auto = only when (slot_count + 2) x the payload (the ring, the
 * writer's source and a reader's destination) exceeds the largest cache the platform reports;
 * unset or anything else = never. Read once, at the first publish. */
static uint64_t llc_bytes(void)
{
    static _Atomic uint64_t cached; /* 0 = not yet looked, 1 = unknown */
    uint64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v)
        return v;
    v = ndshm__os->llc_bytes();
    if (v < 2)
        v = 1;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return v;
}

static int use_nt(const ndshm_writer *w, uint64_t nbytes)
{
    static atomic_int mode = -1; /* -1 not read, 0 off, 1 on, 2 auto */
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m < 0) {
        const char *e = getenv("NDSHM_NT");
        m = !e ? 0 : strcmp(e, "1") == 0 ? 1 : strcmp(e, "auto") == 0 ? 2 : 0;
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    if (m == 0 || nbytes < (UINT64_C(256) << 10))
        return 0;
    if (m == 1)
        return 1;
    const struct ndshm__geom *g = w->pending.base ? &w->pgeom : &w->geom;
    uint64_t llc = llc_bytes();
    /* the ring, the writer's source and a reader's destination */
    return llc > 1 && ((uint64_t)g->slot_count + 2) * nbytes > llc;
}

int ndshm_publish_ex(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                     const void *data, const ndshm_extra *extra, uint64_t *version)
{
    if (!w)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    void *dst;
    uint64_t nbytes;
    if (!data) { /* NULL data is fine only for a zero-element array */
        rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
        if (rc == NDSHM_OK && nbytes != 0)
            rc = NDSHM_E_INVAL;
    }
    if (rc == NDSHM_OK &&
        (rc = loan_impl(w, dtype, ndim, shape, extra, &dst, &nbytes)) == NDSHM_OK) {
        if (use_nt(w, nbytes))
            ndshm__store_payload_nt(dst, data, nbytes); /* W2 (payload) */
        else
            ndshm__store_payload(dst, data, nbytes); /* W2 (payload) */
        rc = commit_impl(w);
        if (rc == NDSHM_OK && version)
            *version = w->head;
    }
    leave(w);
    return rc;
}

int ndshm_publish(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                  const void *data, uint64_t *version)
{
    return ndshm_publish_ex(w, dtype, ndim, shape, data, NULL, version);
}

int ndshm_loan_ex(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                  const ndshm_extra *extra, void **data)
{
    if (!w || !data)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    void *p;
    uint64_t nbytes;
    rc = loan_impl(w, dtype, ndim, shape, extra, &p, &nbytes);
    if (rc == NDSHM_OK)
        *data = p;
    leave(w);
    return rc;
}

int ndshm_loan(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape, void **data)
{
    return ndshm_loan_ex(w, dtype, ndim, shape, NULL, data);
}

int ndshm_commit_ex(ndshm_writer *w, const ndshm_extra *extra, uint64_t *version)
{
    if (!w)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    if (!w->loan) {
        rc = NDSHM_E_STATE;
    } else if ((rc = extra_check(extra)) == NDSHM_OK && extra) {
        const struct ndshm__geom *g = w->pending.base ? &w->pgeom : &w->geom;
        if (extra->meta_len > g->meta_capacity) {
            rc = NDSHM_E_TOO_SMALL; /* the loan stays open */
        } else {
            extra_into(&w->loan_meta, extra);
            ndshm__slot_fill(w->loan, &w->loan_meta, extra->meta); /* still odd: W2 */
        }
    }
    if (rc == NDSHM_OK) {
        rc = commit_impl(w);
        if (rc == NDSHM_OK && version)
            *version = w->head;
    }
    leave(w);
    return rc;
}

int ndshm_commit(ndshm_writer *w, uint64_t *version)
{
    return ndshm_commit_ex(w, NULL, version);
}

int ndshm_cancel(ndshm_writer *w)
{
    if (!w)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    if (!w->loan)
        rc = NDSHM_E_STATE;
    else
        cancel_impl(w);
    leave(w);
    return rc;
}

int ndshm_writer_reserve(ndshm_writer *w, uint64_t capacity)
{
    if (!w)
        return NDSHM_E_INVAL;
    if (capacity == 0 || capacity > NDSHM_MAX_CAPACITY)
        return NDSHM_E_LIMIT;
    int rc = enter(w);
    if (rc)
        return rc;
    if (w->loan) {
        rc = NDSHM_E_STATE;
    } else {
        /* Made now, so that a file system that cannot hold it says so here (and nothing
         * changes), not at some later publish. */
        rc = make_pending(w, capacity, w->geom.meta_capacity);
        if (rc == NDSHM_OK)
            w->pending_reserved = 1;
    }
    leave(w);
    return rc;
}

uint64_t ndshm_writer_version(const ndshm_writer *w)
{
    return w ? w->head : 0;
}

/* Unlink the channel, only while we own it and only if its name still refers to our file
 * (it may have been removed and re-created by someone else). */
static void unlink_own(ndshm_writer *w)
{
    if (!ndshm__ctl_same_file(&w->ctlh, w->name))
        return;
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, w->name);
    ndshm__os->unlink(seg);
    ndshm__unlink_data(w->name, w->ctl->nonce, 0, 0);
}

int ndshm_writer_close(ndshm_writer *w)
{
    if (!w)
        return NDSHM_OK;
    reg_remove(w);
    if (w->fork_gen != ndshm__fork_gen()) {
        /* Inherited over fork: the channel is the parent's. Free our copies only (the lock
         * descriptor was already closed at fork). */
        ndshm__unmap(&w->pending);
        ndshm__unmap(&w->data);
        ndshm__waker_drop_bells(&w->waker);
        if (w->waker.pg)
            ndshm__os->shm_detach(w->waker.pg);
        ndshm__unmap(&w->ctlh.map);
        free(w);
        return NDSHM_OK;
    }
#ifndef NDEBUG
    if (atomic_exchange_explicit(&w->busy, 1, memory_order_acquire)) {
        reg_add(w);
        return NDSHM_E_CONCURRENT;
    }
#endif
    int owned =
        !w->superseded && atomic_load_explicit(&w->ctl->owner, memory_order_relaxed) == w->owner;
    if (w->loan)
        cancel_impl(w);
    if (owned) {
        if (w->pending.base)
            drop_pending(w);
        atomic_store_explicit(&w->ctl->writer_pid, 0, memory_order_relaxed);
        atomic_store_explicit(&w->ctl->wait_id, -1, memory_order_relaxed);
        /* Release: pairs with the readers' acquire load of owner; 0 = closed cleanly. */
        atomic_store_explicit(&w->ctl->owner, 0, memory_order_release);
        if (w->flags & NDSHM_UNLINK_ON_CLOSE)
            unlink_own(w);
        ndshm__notify_all(w->ctl); /* sleepers wake and see the writer gone */
    }
    writer_free(w); /* closing the descriptor releases the writer lock */
    return NDSHM_OK;
}
