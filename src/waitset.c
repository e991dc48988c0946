/*
 * Waitsets: one wait for many channels, and a pollable descriptor.
 *
 * THE DOORBELL
 *   A waitset owns a System V page (struct ndshm__bell: IPC_PRIVATE, mode 0666 so writers of
 *   any user can ring it, IPC_RMID at once so the kernel frees it when the last process
 *   detaches) holding a futex word, a count of its owner's sleeping threads and a bitmap, one
 *   bit per member. Adding reader r as member number `bit` writes NDSHM__BELL_ENTRY(doorbell
 *   id, bit) into a free entry of the wait page of r's channel (CAS 0 -> entry) and increments
 *   the page's `nbells`. A writer whose page has nbells != 0 rings every doorbell named there
 *   in W6 (wait.c: sets the bit, wakes the owner if it sleeps). A writer with no registration
 *   does what it did before: one more load, in the line it already reads for `sleepers`.
 *
 * THE PROTOCOL (all seq_cst)
 *   register:  CAS(entry, 0 -> e); nbells += 1; n := notify; mark the member "to check".
 *   writer W6: head := v (release); ++notify; nb := nbells; if nb: for each entry:
 *              old := fetch_or(bits, b); if !(old & b) and sleeping != 0: ++futex; FUTEX_WAKE.
 *   wait:      take the bitmap (exchange each non-zero word with 0) into `pending`; check each
 *              pending member (head > its handle's position); report those; if none:
 *              f0 := futex; sleeping += 1; if any bit is set: sleeping -= 1, look again;
 *              FUTEX_WAIT(futex, f0, slice); sleeping -= 1.
 *   No lost wake-up: in the total order of the seq_cst operations, either the writer's
 *   fetch_or precedes the owner's last look at the bits (the owner sees the bit and does not
 *   sleep) or the owner's increment of `sleeping` precedes the writer's load of it (the writer
 *   bumps the futex and wakes; FUTEX_WAIT returns at once if the word moved before it
 *   queued). A registration that the writer's load of nbells missed precedes, in that order,
 *   the registrant's load of notify, which therefore reads the writer's increment and, being
 *   an acquire of a release RMW, makes the new head visible to the check that follows.
 *   Level-triggered: a member stays pending while it has something new.
 *
 * WHAT IS PERIODIC
 *   Every slice (100 ms; 2 ms while some member is polled) the waitset re-checks its
 *   registrations: a writer takeover brings a new wait page (re-registered there), an entry
 *   that a reader with write access to the page cleared or changed is written again, and
 *   members that could not register (no wait page, every entry taken) are polled.
 *
 * TRUST. The doorbell is writable by every local user: anyone can set bits or bump the futex
 * (spurious wake-ups: each reported member is checked against its channel's head before it
 * is reported, so never a false "ready") or clear bits (that wake-up comes at the end of the
 * slice instead). A reader with write access to a wait page can remove or forge entries: a
 * forged entry makes the writer attach that id, but it writes only into a segment of exactly
 * one page carrying the doorbell magic (wait.c), so the worst it can cause is spurious or late
 * (<= one slice) wake-ups, and writer work bounded by the 256 entries of a page.
 *
 * THE DESCRIPTOR. ndshm_waitset_fd() starts a helper thread that sleeps on the doorbell the
 * same way and writes the eventfd when a member has something new; it then waits until the
 * owner has called ndshm_waitset_wait() before it looks again, so the descriptor is level-
 * triggered like the call and the thread does not spin while the owner is busy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SLICE_NS      100000000 /* registrations are re-checked at least this often */
#define POLL_SLICE_NS 2000000   /* while some member is polled */
#define WORDS         (NDSHM__BELL_BITS / 64)

struct member {
    ndshm_reader *r; /* NULL = free */
    uint64_t key;
    struct ndshm__waitpg *pg; /* where registered; NULL = polled */
    int32_t wait_id;          /* the channel's wait_id when registered */
    int slot;                 /* entry index in pg->bells */
};

struct ndshm_waitset {
    struct ndshm__bell *bell;
    int bell_id;
    struct member *m; /* indexed by bit */
    uint32_t cap;     /* entries of m */
    uint32_t n;       /* members */
    uint32_t npolled;
    uint64_t pending[WORDS]; /* members to check (owner only, under mu) */
    uint64_t refresh_ns;     /* last re-check of registrations */
    pthread_mutex_t mu;      /* members and pending, against the helper thread */
    /* the descriptor */
    int efd;
    int th_started;
    pthread_t th;
    atomic_int stop;
    _Atomic uint32_t consumed; /* bumped by every ndshm_waitset_wait; futex of the helper */
};

static int has_new(ndshm_reader *r)
{
    /* Pairs with the release store of head (W5). */
    struct ndshm__ctl *c = ndshm__reader_ctl(r);
    return atomic_load_explicit(&c->head, memory_order_acquire) > ndshm__reader_pos(r);
}

static void unregister(struct member *m, uint32_t bit, int bell_id)
{
    if (m->pg) {
        uint64_t e = NDSHM__BELL_ENTRY(bell_id, bit);
        if (atomic_compare_exchange_strong_explicit(&m->pg->bells[m->slot], &e, 0,
                                                    memory_order_seq_cst, memory_order_relaxed))
            atomic_fetch_sub_explicit(&m->pg->nbells, 1, memory_order_seq_cst);
    }
    m->pg = NULL;
    m->slot = -1;
}

/* Register member `bit` in its channel's current wait page; polled if that is impossible. */
static void do_register(ndshm_waitset *ws, uint32_t bit)
{
    struct member *m = &ws->m[bit];
    struct ndshm__ctl *c = ndshm__reader_ctl(m->r);
    int was_polled = m->pg == NULL;
    unregister(m, bit, ws->bell_id);
    m->wait_id = atomic_load_explicit(&c->wait_id, memory_order_acquire);
    struct ndshm__waitpg *pg = ndshm__reader_waitpg(m->r);
    if (pg) {
        uint64_t e = NDSHM__BELL_ENTRY(ws->bell_id, bit);
        for (int k = 0; k < NDSHM__BELLS; k++) {
            uint64_t z = 0;
            if (atomic_load_explicit(&pg->bells[k], memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong_explicit(&pg->bells[k], &z, e, memory_order_seq_cst,
                                                        memory_order_relaxed)) {
                atomic_fetch_add_explicit(&pg->nbells, 1, memory_order_seq_cst);
                m->pg = pg;
                m->slot = k;
                break;
            }
        }
    }
    if (was_polled && m->pg)
        ws->npolled--;
    else if (!was_polled && !m->pg)
        ws->npolled++;
    /* Pairs with the writer's seq_cst ++notify and load of nbells (wait.c): a publish whose
     * W6 missed the registration is visible from here on. */
    (void)atomic_load_explicit(&c->notify, memory_order_seq_cst);
    ws->pending[bit / 64] |= UINT64_C(1) << (bit % 64);
}

/* The periodic re-check (see the top of the file). Under mu. */
static void refresh(ndshm_waitset *ws)
{
    for (uint32_t b = 0; b < ws->cap; b++) {
        struct member *m = &ws->m[b];
        if (!m->r)
            continue;
        struct ndshm__ctl *c = ndshm__reader_ctl(m->r);
        int32_t id = atomic_load_explicit(&c->wait_id, memory_order_acquire);
        if (!m->pg || id != m->wait_id ||
            atomic_load_explicit(&m->pg->bells[m->slot], memory_order_relaxed) !=
                NDSHM__BELL_ENTRY(ws->bell_id, b))
            do_register(ws, b);
    }
}

int ndshm__waitset_bell_id(const ndshm_waitset *ws)
{
    return ws->bell_id;
}

int ndshm_waitset_create(ndshm_waitset **out)
{
    if (!out)
        return NDSHM_E_INVAL;
    ndshm_waitset *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NDSHM_E_NOMEM;
    int id = ndshm__os->shm_create(0666);
    if (id < 0) {
        free(ws);
        return ndshm__errno_status(id);
    }
    int err = 0;
    struct ndshm__bell *b = ndshm__os->shm_attach(id, 1, &err);
    ndshm__os->shm_remove(id); /* freed by the kernel when the last process detaches */
    if (!b) {
        free(ws);
        return ndshm__errno_status(err);
    }
    b->magic = NDSHM__BELL_MAGIC;
    b->layout = NDSHM__LAYOUT;
    b->size = NDSHM__BELL_SIZE;
    b->nbits = NDSHM__BELL_BITS;
    atomic_store_explicit(&b->futex, 0, memory_order_relaxed);
    atomic_store_explicit(&b->sleeping, 0, memory_order_relaxed);
    ws->bell = b;
    ws->bell_id = id;
    ws->efd = -1;
    pthread_mutex_init(&ws->mu, NULL);
    ws->refresh_ns = ndshm_now_ns();
    *out = ws;
    return NDSHM_OK;
}

int ndshm_waitset_add(ndshm_waitset *ws, ndshm_reader *r, uint64_t key)
{
    if (!ws || !r)
        return NDSHM_E_INVAL;
    int rc = NDSHM_OK;
    pthread_mutex_lock(&ws->mu);
    uint32_t free_bit = UINT32_MAX;
    for (uint32_t b = 0; b < ws->cap; b++) {
        if (ws->m[b].r == r) {
            rc = NDSHM_E_EXISTS;
            break;
        }
        if (!ws->m[b].r && free_bit == UINT32_MAX)
            free_bit = b;
    }
    if (rc == NDSHM_OK && free_bit == UINT32_MAX) {
        if (ws->cap >= NDSHM_WAITSET_MAX) {
            rc = NDSHM_E_LIMIT;
        } else {
            uint32_t ncap = ws->cap ? ws->cap * 2 : 64;
            if (ncap > NDSHM_WAITSET_MAX)
                ncap = NDSHM_WAITSET_MAX;
            struct member *nm = realloc(ws->m, ncap * sizeof *nm);
            if (!nm) {
                rc = NDSHM_E_NOMEM;
            } else {
                memset(nm + ws->cap, 0, (ncap - ws->cap) * sizeof *nm);
                free_bit = ws->cap;
                ws->m = nm;
                ws->cap = ncap;
            }
        }
    }
    if (rc == NDSHM_OK) {
        struct member *m = &ws->m[free_bit];
        m->r = r;
        m->key = key;
        m->pg = NULL;
        m->slot = -1;
        ws->n++;
        ws->npolled++; /* until registered */
        do_register(ws, free_bit);
    }
    pthread_mutex_unlock(&ws->mu);
    if (rc == NDSHM_OK && ws->th_started) { /* the helper may sleep in a long slice */
        atomic_fetch_add_explicit(&ws->bell->futex, 1, memory_order_seq_cst);
        ndshm__os->futex_wake(&ws->bell->futex);
    }
    return rc;
}

int ndshm_waitset_remove(ndshm_waitset *ws, ndshm_reader *r)
{
    if (!ws || !r)
        return NDSHM_E_INVAL;
    int rc = NDSHM_E_NOENT;
    pthread_mutex_lock(&ws->mu);
    for (uint32_t b = 0; b < ws->cap; b++) {
        struct member *m = &ws->m[b];
        if (m->r != r)
            continue;
        if (!m->pg)
            ws->npolled--;
        unregister(m, b, ws->bell_id);
        m->r = NULL;
        ws->n--;
        ws->pending[b / 64] &= ~(UINT64_C(1) << (b % 64));
        /* a bit a writer sets from now on is dropped by the next wait (no member) */
        rc = NDSHM_OK;
        break;
    }
    pthread_mutex_unlock(&ws->mu);
    return rc;
}

size_t ndshm_waitset_size(const ndshm_waitset *ws)
{
    return ws ? ws->n : 0;
}

/* Take the doorbell's bits into pending; bits of no member (set by anyone: the page is
 * writable by all) are dropped, so they cannot keep the owner from sleeping. */
static void take_bits(ndshm_waitset *ws)
{
    uint32_t words = (ws->cap + 63) / 64;
    for (uint32_t w = 0; w < WORDS; w++) {
        if (!atomic_load_explicit(&ws->bell->bits[w], memory_order_relaxed))
            continue;
        uint64_t b = atomic_exchange_explicit(&ws->bell->bits[w], 0, memory_order_seq_cst);
        if (w < words)
            ws->pending[w] |= b;
    }
}

/* Outside mu (the helper thread sleeps while the owner adds members): every word, not just
 * those of the current members (2 KiB of loads, once per sleep). */
static int any_bits(const ndshm_waitset *ws)
{
    for (uint32_t w = 0; w < WORDS; w++)
        if (atomic_load_explicit(&ws->bell->bits[w], memory_order_seq_cst))
            return 1;
    return 0;
}

/* Check the pending and the polled members; report up to max keys (all of them when keys
 * is NULL: only count). Under mu. */
static size_t collect(ndshm_waitset *ws, uint64_t *keys, size_t max)
{
    size_t n = 0;
    uint32_t words = (ws->cap + 63) / 64;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t p = ws->pending[w];
        if (ws->npolled) /* polled members are checked every time */
            for (uint32_t i = 0; i < 64 && w * 64 + i < ws->cap; i++)
                if (ws->m[w * 64 + i].r && !ws->m[w * 64 + i].pg)
                    p |= UINT64_C(1) << i;
        while (p) {
            uint32_t i = (uint32_t)__builtin_ctzll(p);
            p &= p - 1;
            uint32_t b = w * 64 + i;
            struct member *m = &ws->m[b];
            if (m->r && has_new(m->r)) {
                ws->pending[w] |= UINT64_C(1) << i; /* level-triggered: looked at again */
                if (keys && n < max)
                    keys[n] = m->key;
                n++;
            } else {
                ws->pending[w] &= ~(UINT64_C(1) << i);
            }
        }
    }
    return n;
}

/* Sleep on the doorbell for up to slice_ns unless a bit is set (protocol at the top). */
static int bell_sleep(ndshm_waitset *ws, int64_t slice_ns)
{
    struct ndshm__bell *b = ws->bell;
    uint32_t f0 = atomic_load_explicit(&b->futex, memory_order_seq_cst);
    atomic_fetch_add_explicit(&b->sleeping, 1, memory_order_seq_cst);
    int rc = 0;
    if (!any_bits(ws) && !atomic_load_explicit(&ws->stop, memory_order_relaxed))
        rc = ndshm__os->futex_wait(&b->futex, f0, slice_ns);
    atomic_fetch_sub_explicit(&b->sleeping, 1, memory_order_seq_cst);
    if (rc && rc != -EAGAIN && rc != -EINTR && rc != -ETIMEDOUT)
        return ndshm__errno_status(rc);
    return NDSHM_OK;
}

int ndshm_waitset_wait(ndshm_waitset *ws, int64_t timeout_ns, uint64_t *keys, size_t max,
                       size_t *count)
{
    if (!ws || !count || (!keys && max))
        return NDSHM_E_INVAL;
    if (ws->efd >= 0) { /* reset the descriptor: we look now */
        uint64_t v;
        ssize_t k = read(ws->efd, &v, sizeof v);
        (void)k;
    }
    uint64_t start = ndshm_now_ns();
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    int rc = NDSHM_TIMEOUT;
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&ws->mu);
        uint64_t now = ndshm_now_ns();
        if (now - ws->refresh_ns >= SLICE_NS) {
            refresh(ws);
            ws->refresh_ns = now;
        }
        take_bits(ws);
        n = collect(ws, keys, max);
        int64_t slice = ws->npolled ? POLL_SLICE_NS : SLICE_NS;
        pthread_mutex_unlock(&ws->mu);
        if (n) {
            rc = NDSHM_OK;
            break;
        }
        now = ndshm_now_ns();
        if (now >= deadline)
            break;
        uint64_t rem = deadline - now;
        if (rem < (uint64_t)slice)
            slice = (int64_t)rem;
        if ((rc = bell_sleep(ws, slice)) != NDSHM_OK)
            break;
        rc = NDSHM_TIMEOUT;
    }
    /* the helper thread may look again */
    atomic_fetch_add_explicit(&ws->consumed, 1, memory_order_seq_cst);
    if (ws->th_started)
        ndshm__os->futex_wake(&ws->consumed);
    if (rc == NDSHM_OK || rc == NDSHM_TIMEOUT)
        *count = n < max ? n : max;
    return rc;
}

/* ----- the descriptor ------------------------------------------------------------------------ */

static void *helper(void *arg)
{
    ndshm_waitset *ws = arg;
    while (!atomic_load_explicit(&ws->stop, memory_order_acquire)) {
        uint32_t seen = atomic_load_explicit(&ws->consumed, memory_order_seq_cst);
        pthread_mutex_lock(&ws->mu);
        uint64_t now = ndshm_now_ns();
        if (now - ws->refresh_ns >= SLICE_NS) {
            refresh(ws);
            ws->refresh_ns = now;
        }
        int ready = any_bits(ws) || collect(ws, NULL, 0) > 0;
        int64_t slice = ws->npolled ? POLL_SLICE_NS : SLICE_NS;
        pthread_mutex_unlock(&ws->mu);
        if (ready) {
            uint64_t one = 1;
            ssize_t k = write(ws->efd, &one, sizeof one);
            (void)k;
            /* until the owner has looked (or a slice passed: a member re-checked) */
            ndshm__os->futex_wait(&ws->consumed, seen, SLICE_NS);
        } else {
            (void)bell_sleep(ws, slice);
        }
    }
    return NULL;
}

int ndshm_waitset_fd(ndshm_waitset *ws, int *fd)
{
    if (!ws || !fd)
        return NDSHM_E_INVAL;
    if (!ws->th_started) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0) {
            *fd = -1;
            return ndshm__errno_status(-errno);
        }
        ws->efd = efd;
        int rc = pthread_create(&ws->th, NULL, helper, ws);
        if (rc) {
            close(efd);
            ws->efd = -1;
            *fd = -1;
            return ndshm__errno_status(-rc);
        }
        ws->th_started = 1;
    }
    *fd = ws->efd;
    return NDSHM_OK;
}

int ndshm_waitset_close(ndshm_waitset *ws)
{
    if (!ws)
        return NDSHM_OK;
    if (ws->th_started) {
        atomic_store_explicit(&ws->stop, 1, memory_order_release);
        atomic_fetch_add_explicit(&ws->bell->futex, 1, memory_order_seq_cst);
        ndshm__os->futex_wake(&ws->bell->futex);
        atomic_fetch_add_explicit(&ws->consumed, 1, memory_order_seq_cst);
        ndshm__os->futex_wake(&ws->consumed);
        pthread_join(ws->th, NULL);
        close(ws->efd);
    }
    for (uint32_t b = 0; b < ws->cap; b++)
        if (ws->m[b].r)
            unregister(&ws->m[b], b, ws->bell_id);
    ndshm__os->shm_detach(ws->bell);
    pthread_mutex_destroy(&ws->mu);
    free(ws->m);
    free(ws);
    return NDSHM_OK;
}
