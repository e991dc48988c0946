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
#include <pthread.h>
#include <string.h>
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

struct ndshm_reader {
    char name[NDSHM_NAME_MAX + 1];
    uint32_t retries;
    uint32_t spin_ns;
    struct ndshm__map ctl_map;
    struct ndshm__ctl *ctl;
    _Atomic(struct rmap *) cur;  /* RCU-protected: freed only after a grace period */
    _Atomic uint64_t pos;        /* last version handed out (initially head - 1) */
    atomic_int replay;           /* first read_next starts at the oldest version, uncounted */
    _Atomic uint64_t meta_hash;  /* dtype+shape of the last read; 0 = none yet */
    _Atomic uint64_t last_gen;   /* generation of the last read */
    _Atomic uint64_t alive_ns;   /* when writer liveness was last checked */
    _Atomic uint64_t dead_ident; /* writer identity found dead by the last check (0 = none):
                                    a takeover changes the identity, so this never goes stale */
    /* handle-owned buffer of the *_owned calls */
    void *buf;
    uint64_t buf_cap;
    ndshm_info buf_info;
    int buf_valid;
};

#define RETRY          INT32_MAX  /* read_core: not a status, try again */
#define ALIVE_CHECK_NS 100000000u /* liveness of a crashed writer is re-checked every 100 ms */

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

/* call_rcu's worker thread does not survive fork(): liburcu's fork hooks restore it. */
static void fork_prepare(void)
{
    urcu_bp_call_rcu_before_fork();
}
static void fork_parent(void)
{
    urcu_bp_call_rcu_after_fork_parent();
}
static void fork_child(void)
{
    urcu_bp_call_rcu_after_fork_child();
}
static void register_fork_hooks(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static struct rmap *rmap_open(const char *name, uint64_t gen, int *rc)
{
    struct rmap *m = calloc(1, sizeof *m);
    if (!m) {
        *rc = NDSHM_E_NOMEM;
        return NULL;
    }
    /* Read-only: no reader can corrupt what other readers get. */
    *rc = ndshm__map_data(name, gen, 0, &m->map, &m->geom);
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
 * Returns NDSHM_OK with *out set, NDSHM__BUSY-like 1 to retry, or an error. */
static int remap(ndshm_reader *r, struct rmap *seen, uint64_t gen, struct rmap **out)
{
    int rc;
    struct rmap *m = rmap_open(r->name, gen, &rc);
    if (!m)
        return rc == NDSHM_E_NOENT ? 1 : rc; /* NOENT: already replaced again; retry */
    /* Release: a thread that loads the new pointer sees the mapping initialised. Pairs with
     * the acquire load of r->cur in read_core(). (C11 atomics rather than liburcu's pointer
     * macros, so ThreadSanitizer sees the publication.) */
    struct rmap *old = seen;
    if (!atomic_compare_exchange_strong_explicit(
            &r->cur, &old, m, memory_order_acq_rel,
            memory_order_acquire)) { /* another thread swapped first: use its mapping on the next
                                        attempt */
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
    int rc = ndshm__options_read(opts, &o);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    if ((rc = ndshm__name_dir_check(name)) != NDSHM_OK)
        return rc;
    pthread_once(&fork_once, register_fork_hooks);
    ndshm_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NDSHM_E_NOMEM;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->retries = o.retries;
    r->spin_ns = o.spin_ns;
    /* The control segment is mapped read-write only for `waiters` (futex sleepers): without
     * write permission the reader is refused with NDSHM_E_PERM. */
    rc = ndshm__map_ctl_wait(name, 1, &r->ctl_map, NULL);
    if (rc) {
        free(r);
        return rc;
    }
    r->ctl = r->ctl_map.base;
    /* The data segment may be replaced between loading gen and opening it: retry. */
    struct rmap *m = NULL;
    for (int i = 0; i < 1000 && !m; i++) {
        uint64_t gen = atomic_load_explicit(&r->ctl->gen, memory_order_acquire);
        m = rmap_open(name, gen, &rc);
        if (!m && rc != NDSHM_E_NOENT)
            break;
    }
    if (!m) {
        ndshm__unmap(&r->ctl_map);
        free(r);
        return rc;
    }
    atomic_init(&r->cur, m);
    uint64_t head = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
    /* A late joiner gets the last version first (read_latest, read_next and wait agree on
     * that), then everything after it. */
    atomic_init(&r->pos, head ? head - 1 : 0);
    atomic_init(&r->replay, (o.flags & NDSHM_REPLAY) ? 1 : 0);
    *out = r;
    return NDSHM_OK;
}

int ndshm_reader_close(ndshm_reader *r)
{
    if (!r)
        return NDSHM_OK;
    rmap_put(atomic_load_explicit(&r->cur, memory_order_relaxed)); /* views hold their own */
    ndshm__unmap(&r->ctl_map);
    free(r->buf);
    free(r);
    return NDSHM_OK;
}

uint64_t ndshm_reader_version(const ndshm_reader *r)
{
    return r ? atomic_load_explicit(&((ndshm_reader *)r)->pos, memory_order_relaxed) : 0;
}

int ndshm_reader_writer_alive(ndshm_reader *r)
{
    if (!r)
        return 0;
    uint64_t ident = atomic_load_explicit(&r->ctl->writer, memory_order_acquire);
    int alive = ident != 0 && ndshm__identity_alive(ident);
    atomic_store_explicit(&r->dead_ident, alive ? 0 : ident, memory_order_relaxed);
    atomic_store_explicit(&r->alive_ns, ndshm_now_ns(), memory_order_relaxed);
    return alive;
}

/* Writer gone? Cheap (one load) for a clean close; a crash is checked at most every 100 ms
 * (a syscall), so this is fine on the no-data path but is not called on the success path. */
static int gone_cached(ndshm_reader *r)
{
    uint64_t ident = atomic_load_explicit(&r->ctl->writer, memory_order_acquire);
    return ident == 0 || ident == atomic_load_explicit(&r->dead_ident, memory_order_relaxed);
}

static int writer_gone(ndshm_reader *r, uint64_t now)
{
    uint64_t last = atomic_load_explicit(&r->alive_ns, memory_order_relaxed);
    if (now - last >= ALIVE_CHECK_NS)
        return !ndshm_reader_writer_alive(r);
    return gone_cached(r);
}

int ndshm__reader_gone(ndshm_reader *r)
{
    return writer_gone(r, ndshm_now_ns());
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
    info->reserved_ = 0;
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
    uint32_t flags = 0;
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
    /* A handle that never checked liveness (a fresh reader of a dead writer's channel) checks
     * once, so even its first read is flagged; afterwards the cached answer is refreshed on
     * the no-data paths. */
    if (atomic_load_explicit(&r->alive_ns, memory_order_relaxed) == 0)
        (void)ndshm_reader_writer_alive(r);
    if (gone_cached(r))
        flags |= NDSHM_INFO_WRITER_GONE;
    info->flags = flags;
}

/* Meta only (for E_TOO_SMALL): the caller learns the size; the handle does not advance. */
static void fill_meta_only(const struct got *g, ndshm_info *info)
{
    fill_meta(g, info);
    info->read_ns = 0;
    info->latency_ns = 0;
    info->dropped = 0;
    info->flags = 0;
}

/*
 * One read of the latest (next == 0) or next (next == 1) version. dst == NULL with view != 0
 * takes a view (no payload copy, a mapping reference in g->m). Returns an ndshm status.
 * On NDSHM_OK, *dropped is the number of versions skipped since the handle's position.
 */
static int read_core(ndshm_reader *r, int next, void *dst, uint64_t dst_size, int view,
                     struct got *g, uint64_t *dropped)
{
    struct ndshm__ctl *c = r->ctl;
    uint64_t pos = atomic_load_explicit(&r->pos, memory_order_acquire);
    int replay = next && atomic_load_explicit(&r->replay, memory_order_relaxed);
    uint64_t t = replay ? 1 : pos + 1; /* read_next: the version we want */
    for (uint32_t attempt = 0; attempt < r->retries; attempt++) {
        urcu_bp_read_lock();
        /* Pairs with the release store of gen in commit_impl() (W5): if we see generation g,
         * segment g exists (or existed) and head was already inside it. */
        uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
        /* Pairs with the release CAS in remap(); the read-side critical section keeps m
         * mapped until we leave it (call_rcu frees only after a grace period). */
        struct rmap *m = atomic_load_explicit(&r->cur, memory_order_acquire);
        struct ndshm__data *d = m->map.base;
        if (m->geom.generation != gen) {
            /* Pairs with the release store of sealed (W4), made before gen moved. */
            uint64_t sealed = atomic_load_explicit(&d->sealed, memory_order_acquire);
            int keep = next && m->geom.generation < gen && sealed != NDSHM__UNSEALED &&
                       t <= sealed && t >= m->geom.first_version;
            if (!keep) { /* read_next finishes the old segment's versions first */
                int rc = remap(r, m, gen, &m);
                section_end(m);
                if (rc < 0)
                    return rc;
                continue; /* rc == 0: mapped; start over with it. rc == 1: retry */
            }
        }
        /* Pairs with the release store of head (W5). */
        uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
        /* Loaded after head: if head already lives in a newer segment, the seal (W4, before
         * W5) is visible here. */
        uint64_t sealed = atomic_load_explicit(&d->sealed, memory_order_acquire);
        uint64_t want;
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
            want = t;
            if (t > head)
                status = NDSHM_NO_NEW;
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
        enum ndshm__try res =
            ndshm__slot_read(s, &m->geom, want, dst, dst ? dst_size : 0, &g->meta, &g->seq);
        if (res == NDSHM__GOT && view) /* pin the mapping while still inside the section */
            atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
        /* m may be freed once we leave the section: keep what we need of it. (Reading it
         * after section_end() was a use-after-free, found by ThreadSanitizer.) */
        const uint64_t m_gen = m->geom.generation, m_slots = m->geom.slot_count;
        struct rmap *pinned = (res == NDSHM__GOT && view) ? m : NULL;
        section_end(m);
        m = NULL;
        switch (res) {
        case NDSHM__GOT:
            g->gen = m_gen;
            g->slot = s;
            g->m = pinned;
            if (!view && g->meta.nbytes > dst_size)
                return NDSHM_E_TOO_SMALL; /* the handle does not advance */
            if (next) {
                /* Claim the version: with threads sharing the handle each version goes to
                 * exactly one of them, and the gap before it is counted once. */
                uint64_t expect = pos;
                if (!atomic_compare_exchange_strong_explicit(
                        &r->pos, &expect, want, memory_order_acq_rel, memory_order_acquire)) {
                    if (pinned)
                        rmap_put(pinned);
                    pos = expect;
                    t = pos + 1;
                    replay = 0;
                    continue;
                }
                *dropped = replay ? 0 : want - pos - 1;
                if (replay)
                    atomic_store_explicit(&r->replay, 0, memory_order_relaxed);
            } else {
                uint64_t p = pos;
                while (p < want && !atomic_compare_exchange_weak_explicit(&r->pos, &p, want,
                                                                          memory_order_acq_rel,
                                                                          memory_order_acquire))
                    ;
                *dropped = want > pos + 1 ? want - pos - 1 : 0;
            }
            return NDSHM_OK;
        case NDSHM__NEWER:
            /* The slot was reused: every version up to meta.version - N is gone. */
            if (next) {
                uint64_t skip = g->meta.version >= m_slots ? g->meta.version - m_slots + 1 : 1;
                t = skip > want + 1 ? skip : want + 1;
            }
            break;
        case NDSHM__BUSY:
            /* A slot holding a wanted version <= head that is being written is being
             * overwritten (by head + 1, or by a loan): that version is lost. A sealed
             * segment is never written again, so there this is only a torn header. */
            if (next && sealed == NDSHM__UNSEALED)
                t = want + 1;
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

/* Map a no-data status onto what the caller sees, noticing a dead writer (rate-limited). */
static int nothing(ndshm_reader *r, int rc)
{
    if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA)
        (void)writer_gone(r, ndshm_now_ns());
    return rc;
}

static int read_copy(ndshm_reader *r, int next, void *buf, size_t buf_size, ndshm_info *info)
{
    if (!r || !info || (!buf && buf_size))
        return NDSHM_E_INVAL;
    struct got g; /* set by read_core() for NDSHM_OK and NDSHM_E_TOO_SMALL */
    g.m = NULL;
    uint64_t dropped = 0;
    int rc = read_core(r, next, buf, buf_size, 0, &g, &dropped);
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
    return read_copy(r, 0, buf, buf_size, info);
}

int ndshm_read_next(ndshm_reader *r, void *buf, size_t buf_size, ndshm_info *info)
{
    return read_copy(r, 1, buf, buf_size, info);
}

static int read_owned(ndshm_reader *r, int next, const void **data, ndshm_info *info)
{
    if (!r || !data || !info)
        return NDSHM_E_INVAL;
    for (int i = 0; i < 8; i++) {
        ndshm_info tmp;
        int rc = read_copy(r, next, r->buf, r->buf_cap, &tmp);
        if (rc == NDSHM_E_TOO_SMALL) {
            uint64_t cap = tmp.nbytes + 63 - (tmp.nbytes + 63) % 64;
            void *nb = NULL;
            if (cap > SIZE_MAX || posix_memalign(&nb, 64, (size_t)cap))
                return NDSHM_E_NOMEM;
            free(r->buf);
            r->buf = nb;
            r->buf_cap = cap;
            r->buf_valid = 0;
            continue;
        }
        if (rc == NDSHM_OK) {
            r->buf_info = tmp;
            r->buf_valid = 1;
        }
        if (rc == NDSHM_OK || (rc == NDSHM_NO_NEW && r->buf_valid)) {
            if (!r->buf) { /* a zero-byte array: still hand out a valid pointer */
                if (posix_memalign(&r->buf, 64, 64))
                    return NDSHM_E_NOMEM;
                r->buf_cap = 64;
            }
            *data = r->buf;
            *info = r->buf_info;
        } else if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA) {
            *data = NULL;
        }
        return rc;
    }
    return NDSHM_CONTENDED; /* the array kept growing faster than we could allocate */
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
    struct got g; /* set by read_core() for NDSHM_OK and NDSHM_E_TOO_SMALL */
    g.m = NULL;
    uint64_t dropped = 0;
    int rc = read_core(r, next, NULL, 0, 1, &g, &dropped);
    if (rc != NDSHM_OK)
        return nothing(r, rc);
    fill_info(r, &g, dropped, &view->info); /* with the fields below: all of *view */
    view->data = (const char *)g.slot + g.m->geom.payload_offset;
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
