/*
 * The writer: create or take over a channel, publish by copy or by loan/commit, re-allocate.
 * The steps W1-W6 are those of the protocol comment at the top of ring.c.
 */
#include <string.h>

#include "internal.h"

struct ndshm_writer {
    char name[NDSHM_NAME_MAX + 1];
    uint32_t flags;
    uint32_t mode;
    uint32_t slots;
    struct ndshm__map ctl_map;
    struct ndshm__ctl *ctl;
    struct ndshm__map data; /* the published data segment */
    struct ndshm__geom geom;
    struct ndshm__map pending; /* next generation, created by a loan, published by commit */
    struct ndshm__geom pgeom;
    uint64_t head;            /* last version published */
    uint64_t reserve;         /* capacity asked by ndshm_writer_reserve(), 0 = none */
    uint64_t identity;        /* our identity word in ctl->writer */
    struct ndshm__slot *loan; /* slot of the open loan, NULL = none */
    uint64_t loan_version;
#ifndef NDEBUG
    atomic_int busy; /* detects two threads inside one writer */
#endif
};

static int enter(ndshm_writer *w)
{
#ifndef NDEBUG
    if (atomic_exchange_explicit(&w->busy, 1, memory_order_acquire))
        return NDSHM_E_CONCURRENT;
#else
    (void)w;
#endif
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
        o.capacity = 65536;
    if (o.retries == 0)
        o.retries = 64;
    if (o.spin_ns == 0)
        o.spin_ns = 20000;
    if (o.flags & ~(uint32_t)(NDSHM_UNLINK_ON_CLOSE | NDSHM_OPEN_OR_CREATE | NDSHM_FORCE_TAKEOVER |
                              NDSHM_REPLAY))
        return NDSHM_E_INVAL;
    if (o.mode & ~07777u)
        return NDSHM_E_INVAL;
    if (o.slots > NDSHM_MAX_SLOTS || o.capacity > NDSHM_MAX_CAPACITY || o.retries > 1000000)
        return NDSHM_E_LIMIT;
    *out = o;
    return NDSHM_OK;
}

static void writer_free(ndshm_writer *w)
{
    ndshm__unmap(&w->pending);
    ndshm__unmap(&w->data);
    ndshm__unmap(&w->ctl_map);
    free(w);
}

int ndshm_writer_create(const char *name, const ndshm_options *opts, ndshm_writer **out)
{
    ndshm_options o;
    int rc = ndshm__options_read(opts, &o);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    if ((rc = ndshm__name_dir_check(name)) != NDSHM_OK)
        return rc;
    ndshm_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NDSHM_E_NOMEM;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->flags = o.flags;
    w->mode = o.mode;
    w->slots = o.slots;
    w->geom.generation = 1;
    w->geom.first_version = 1;
    if ((rc = ndshm__geom_plan(o.slots, o.capacity, &w->geom)) != NDSHM_OK) {
        free(w);
        return rc;
    }
    rc = ndshm__create_ctl(name, o.mode, &w->ctl_map);
    if (rc == NDSHM_E_EXISTS && (o.flags & NDSHM_OPEN_OR_CREATE)) {
        free(w);
        return ndshm_writer_open(name, opts, out);
    }
    if (rc) {
        free(w);
        return rc;
    }
    w->ctl = w->ctl_map.base;
    /* Identity first: a creator that dies before `ready` can be recognised as dead. */
    w->identity = ndshm__self_identity();
    atomic_store_explicit(&w->ctl->writer, w->identity, memory_order_release);
    rc = ndshm__create_data(name, &w->geom, o.mode, &w->data);
    if (rc) {
        char seg[NDSHM__SEG_MAX];
        ndshm__ctl_name(seg, name);
        ndshm__os->unlink(seg);
        writer_free(w);
        return rc;
    }
    atomic_store_explicit(&w->ctl->gen, 1, memory_order_relaxed);
    atomic_store_explicit(&w->ctl->head, 0, memory_order_relaxed);
    /* Pairs with the acquire load of `ready` in ndshm__validate_ctl(): a reader that sees the
     * channel ready sees gen and the data segment it names. */
    atomic_store_explicit(&w->ctl->ready, NDSHM__READY, memory_order_release);
    *out = w;
    return NDSHM_OK;
}

/* After a takeover: finish or discard what the dead writer left half done. */
static int writer_repair(ndshm_writer *w)
{
    struct ndshm__ctl *c = w->ctl;
    uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    /* A writer killed between "head := v" and "gen := g + 1" (W5) published v in segment
     * g + 1: complete that re-allocation. */
    struct ndshm__map m = {0};
    struct ndshm__geom g;
    if (ndshm__map_data(w->name, gen + 1, 1, &m, &g) == NDSHM_OK) {
        struct ndshm__meta meta;
        uint64_t seq;
        if (head != 0 && head >= g.first_version &&
            ndshm__slot_read(ndshm__slot_at(m.base, &g, head), &g, head, NULL, 0, &meta, &seq) ==
                NDSHM__GOT) {
            atomic_store_explicit(&c->gen, gen + 1, memory_order_release);
            gen++;
        }
        ndshm__unmap(&m);
    }
    /* Everything but the current generation is stale: unlink it. */
    ndshm__unlink_data_except(w->name, gen);
    int rc = ndshm__map_data(w->name, gen, 1, &w->data, &w->geom);
    if (rc == NDSHM_E_NOENT || rc == NDSHM_E_CORRUPT || rc == NDSHM_E_MAGIC ||
        rc == NDSHM_E_LAYOUT) {
        /* The data segment is gone or broken: start a fresh generation after it. */
        w->geom.generation = gen + 1;
        w->geom.first_version = head + 1;
        if ((rc = ndshm__geom_plan(w->slots, 65536, &w->geom)) != NDSHM_OK)
            return rc;
        if ((rc = ndshm__create_data(w->name, &w->geom, w->mode, &w->data)) != NDSHM_OK)
            return rc;
        atomic_store_explicit(&c->gen, gen + 1, memory_order_release);
        ndshm__unlink_data_except(w->name, gen + 1);
    } else if (rc) {
        return rc;
    }
    struct ndshm__data *d = w->data.base;
    /* The dead writer may have sealed this segment before failing to publish the next one;
     * readers only look at `sealed` after gen moved, which it did not. */
    atomic_store_explicit(&d->sealed, NDSHM__UNSEALED, memory_order_relaxed);
    /* Slots left odd mid-write, or holding a version never published: mark invalid. */
    for (uint32_t i = 0; i < w->geom.slot_count; i++) {
        struct ndshm__slot *s = ndshm__slot_at(w->data.base, &w->geom, i);
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if ((seq & 1) || s->version > head)
            ndshm__slot_invalidate(s);
    }
    w->head = head;
    w->slots = w->geom.slot_count;
    return NDSHM_OK;
}

int ndshm_writer_open(const char *name, const ndshm_options *opts, ndshm_writer **out)
{
    ndshm_options o;
    int rc = ndshm__options_read(opts, &o);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    if ((rc = ndshm__name_dir_check(name)) != NDSHM_OK)
        return rc;
    ndshm_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NDSHM_E_NOMEM;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->flags = o.flags;
    w->slots = o.slots;
    uint32_t mode = 0;
    if ((rc = ndshm__map_ctl_wait(name, 1, &w->ctl_map, &mode)) != NDSHM_OK) {
        free(w);
        return rc;
    }
    w->ctl = w->ctl_map.base;
    w->mode = w->ctl->mode & 07777;
    w->identity = ndshm__self_identity();
    /* Claim the channel with one CAS on the identity word, only from a dead (or absent)
     * writer. A concurrent claimant loses the CAS and re-evaluates. */
    uint64_t cur = atomic_load_explicit(&w->ctl->writer, memory_order_acquire);
    for (;;) {
        if (cur != 0 && ndshm__identity_alive(cur) && !(o.flags & NDSHM_FORCE_TAKEOVER)) {
            writer_free(w);
            return NDSHM_E_WRITER_ALIVE;
        }
        if (atomic_compare_exchange_strong_explicit(&w->ctl->writer, &cur, w->identity,
                                                    memory_order_acq_rel, memory_order_acquire))
            break;
    }
    atomic_fetch_add_explicit(&w->ctl->takeovers, 1, memory_order_relaxed);
    if ((rc = writer_repair(w)) != NDSHM_OK) {
        uint64_t mine = w->identity;
        atomic_compare_exchange_strong_explicit(&w->ctl->writer, &mine, 0, memory_order_release,
                                                memory_order_relaxed);
        writer_free(w);
        return rc;
    }
    /* W6 on behalf of the dead writer: killed between W5 and W6 it published a version but
     * never woke the sleepers; without this they would only see it at their next timeout
     * slice. */
    ndshm__notify(w->ctl);
    *out = w;
    return NDSHM_OK;
}

/* Carry the newest N - 1 versions of the current segment into the next one, so that a reader
 * fewer than N versions behind never loses a version to a re-allocation: it may not get to map
 * a short-lived generation before the writer unlinks it, but it finds the versions again in
 * the one after. The carry stops at the first version that does not fit the new capacity
 * (readers count what is missing as dropped). The new segment is still invisible to readers:
 * plain copies, published by the release store of gen in commit_impl(). Returns the first
 * version the new segment holds. */
static uint64_t carry_versions(ndshm_writer *w, void *nbase, const struct ndshm__geom *ng)
{
    uint64_t first = w->head + 1, n = ng->slot_count;
    uint64_t lo = w->head + 2 > n ? w->head + 2 - n : 1; /* head - (n - 1) + 1 */
    if (lo < w->geom.first_version)
        lo = w->geom.first_version;
    for (uint64_t u = w->head; u >= lo && u > 0; u--) {
        struct ndshm__slot *os = ndshm__slot_at(w->data.base, &w->geom, u);
        uint64_t seq = atomic_load_explicit(&os->seq, memory_order_relaxed);
        if ((seq & 1) || os->version != u || os->nbytes > ng->slot_capacity)
            break;
        struct ndshm__slot *ns = ndshm__slot_at(nbase, ng, u);
        memcpy((char *)ns + sizeof ns->seq, (char *)os + sizeof os->seq,
               sizeof *ns - sizeof ns->seq);
        if (os->nbytes)
            memcpy((char *)ns + ng->payload_offset, (char *)os + w->geom.payload_offset,
                   (size_t)os->nbytes);
        atomic_store_explicit(&ns->seq, 2, memory_order_relaxed); /* even: stable */
        first = u;
    }
    return first;
}

/* Create the next generation's segment, sized for `nbytes` (or the reserved capacity). */
static int make_pending(ndshm_writer *w, uint64_t capacity)
{
    struct ndshm__geom g = {.generation = w->geom.generation + 1, .first_version = w->head + 1};
    int rc = ndshm__geom_plan(w->slots, capacity, &g);
    if (rc)
        return rc;
    rc = ndshm__create_data(w->name, &g, w->mode, &w->pending);
    if (rc)
        return rc;
    g.first_version = carry_versions(w, w->pending.base, &g);
    ((struct ndshm__data *)w->pending.base)->first_version = g.first_version;
    w->pgeom = g;
    return NDSHM_OK;
}

static void drop_pending(ndshm_writer *w)
{
    if (!w->pending.base)
        return;
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, w->name, w->pgeom.generation);
    ndshm__unmap(&w->pending);
    ndshm__os->unlink(seg);
}

static int loan_impl(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape, void **data,
                     uint64_t *nbytes_out)
{
    if (w->loan)
        return NDSHM_E_STATE;
    uint64_t nbytes;
    int rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes);
    if (rc)
        return rc;
    if (w->head == UINT64_MAX - 1)
        return NDSHM_E_LIMIT;
    uint64_t want = w->reserve > nbytes ? w->reserve : nbytes;
    if (nbytes > w->geom.slot_capacity || (w->reserve && w->reserve != w->geom.slot_capacity)) {
        if ((rc = make_pending(w, want)) != NDSHM_OK)
            return rc;
        w->reserve = 0;
    }
    const struct ndshm__geom *g = w->pending.base ? &w->pgeom : &w->geom;
    void *base = w->pending.base ? w->pending.base : w->data.base;
    uint64_t v = w->head + 1;
    struct ndshm__slot *s = ndshm__slot_at(base, g, v);
    ndshm__slot_begin(s);                               /* W1 */
    ndshm__slot_fill(s, v, dtype, ndim, shape, nbytes); /* W2 (header) */
    w->loan = s;
    w->loan_version = v;
    *data = (char *)s + g->payload_offset;
    *nbytes_out = nbytes;
    return NDSHM_OK;
}

static void commit_impl(ndshm_writer *w)
{
    struct ndshm__ctl *c = w->ctl;
    uint64_t v = w->loan_version;
    ndshm__slot_end(w->loan, ndshm_now_ns()); /* W3 */
    w->loan = NULL;
    if (w->pending.base) {
        /* W4: seal the old segment. Pairs with the acquire load of gen by a reader, which
         * then reads `sealed` to know which versions the old mapping still holds. */
        struct ndshm__data *old = w->data.base;
        atomic_store_explicit(&old->sealed, w->head, memory_order_release);
        /* W5: head before gen, so a reader that sees the new gen finds head inside it. */
        atomic_store_explicit(&c->head, v, memory_order_release);
        atomic_store_explicit(&c->gen, w->pgeom.generation, memory_order_release);
        atomic_fetch_add_explicit(&c->reallocs, 1, memory_order_relaxed);
        /* The old segment goes at once: mapped readers keep it until they let go. */
        char seg[NDSHM__SEG_MAX];
        ndshm__data_name(seg, w->name, w->geom.generation);
        ndshm__os->unlink(seg);
        ndshm__unmap(&w->data);
        w->data = w->pending;
        w->geom = w->pgeom;
        w->pending.base = NULL;
        w->pending.size = 0;
    } else {
        /* W5. Pairs with the acquire load of head in the reader. */
        atomic_store_explicit(&c->head, v, memory_order_release);
    }
    w->head = v;
    ndshm__notify(c); /* W6 */
}

static void cancel_impl(ndshm_writer *w)
{
    if (w->pending.base)
        drop_pending(w); /* the loan was in a segment nobody could see */
    else
        ndshm__slot_invalidate(w->loan); /* the slot's old version is gone: mark it invalid */
    w->loan = NULL;
}

int ndshm_publish(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape,
                  const void *data, uint64_t *version)
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
    if (rc == NDSHM_OK && (rc = loan_impl(w, dtype, ndim, shape, &dst, &nbytes)) == NDSHM_OK) {
        ndshm__store_payload(dst, data, nbytes); /* W2 (payload) */
        commit_impl(w);
        if (version)
            *version = w->head;
    }
    leave(w);
    return rc;
}

int ndshm_loan(ndshm_writer *w, int dtype, uint32_t ndim, const uint64_t *shape, void **data)
{
    if (!w || !data)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    void *p;
    uint64_t nbytes;
    rc = loan_impl(w, dtype, ndim, shape, &p, &nbytes);
    if (rc == NDSHM_OK)
        *data = p;
    leave(w);
    return rc;
}

int ndshm_commit(ndshm_writer *w, uint64_t *version)
{
    if (!w)
        return NDSHM_E_INVAL;
    int rc = enter(w);
    if (rc)
        return rc;
    if (!w->loan) {
        rc = NDSHM_E_STATE;
    } else {
        commit_impl(w);
        if (version)
            *version = w->head;
    }
    leave(w);
    return rc;
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
    struct ndshm__geom g;
    int rc = ndshm__geom_plan(w->slots, capacity, &g);
    if (rc)
        return rc;
    if ((rc = enter(w)) != NDSHM_OK)
        return rc;
    w->reserve = g.slot_capacity;
    leave(w);
    return NDSHM_OK;
}

uint64_t ndshm_writer_version(const ndshm_writer *w)
{
    return w ? w->head : 0;
}

int ndshm_writer_close(ndshm_writer *w)
{
    if (!w)
        return NDSHM_OK;
    int rc = enter(w);
    if (rc)
        return rc;
    if (w->loan)
        cancel_impl(w);
    /* Give the channel up only if it is still ours (a forced takeover may have replaced us). */
    uint64_t mine = w->identity;
    atomic_compare_exchange_strong_explicit(&w->ctl->writer, &mine, 0, memory_order_release,
                                            memory_order_relaxed);
    ndshm__notify(w->ctl); /* sleepers wake and see the writer gone */
    if (w->flags & NDSHM_UNLINK_ON_CLOSE)
        ndshm_unlink(w->name);
    writer_free(w);
    return NDSHM_OK;
}
