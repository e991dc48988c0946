/*
 * Waiting for a new version: spin briefly, then sleep on the control segment's futex word.
 *
 * WHERE THINGS LIVE
 *   ctl.notify    the futex word, in the control segment: written only by the writer, which
 *                 bumps it on every publish; readers FUTEX_WAIT on their read-only mapping of
 *                 it (the kernel keys a shared futex by file and offset, so the writer's wake
 *                 reaches them).
 *   wait page     a System V page (struct ndshm__waitpg) the writer creates and names in
 *                 ctl.wait_id: the only memory a reader ever writes. Its `sleepers` word is
 *                 0, or SLEEPER | n0 for a reader asleep until notify differs from n0.
 *
 * THE PROTOCOL (liburcu's "waker clears the flag" futex pattern, for many sleepers)
 *   Writer, W6 of every publish (after the release store of head):
 *     N := ++notify (seq_cst);  w := sleepers (seq_cst);
 *     if w != 0: FUTEX_WAKE(notify, all); if low32(w) != N: CAS(sleepers, w -> 0)
 *   Sleeper:
 *     n0 := notify (seq_cst); if a version newer than ours exists: done;
 *     sleepers := max(sleepers, SLEEPER | n0) (seq_cst CAS loop; "max" in the serial order of
 *     the 32-bit values, and 0 or a word without SLEEPER counts as oldest);
 *     if notify != n0 (seq_cst): do not sleep;
 *     FUTEX_WAIT(notify, n0, slice)  -- the kernel re-checks the word as it queues us.
 *   No lost wake-up: if the writer's load of sleepers read a value older than our store, then
 *   in the single total order of seq_cst operations its ++notify precedes our store, which
 *   precedes our second load of notify: that load sees the change and we do not sleep (or n0
 *   already had it, and the re-check of head, ordered after n0's load, sees the version).
 *   If we found a newer announcement and stored nothing, whoever made it loaded notify after
 *   our n0, so our second load sees the change too. Otherwise the writer saw our announcement
 *   (or a newer one) and wakes us; FUTEX_WAIT returns at once if the word moved before we
 *   queued. The writer clears only an announcement for an older value than the one it just
 *   published (low32(w) != N): a sleeper that announced N has already seen this publish and
 *   waits for the next one, and keeps its flag; a sleeper that announced an older value and
 *   lost its flag to that CAS finds notify != n0 and does not sleep.
 *   Why a max and not a plain store: all readers share the word. With a plain store a reader
 *   whose n0 is stale can bring back the very value the writer loaded, over a newer sleeper's
 *   announcement, and the writer's CAS (ABA) then erases it: that sleeper misses the next
 *   publish and wakes only at the end of its slice (found by the spin model, tests/model,
 *   and replayed on this code by tests/model/test_wait_replay.c). With the max the word only
 *   grows between two clears, so the CAS succeeds only if every announcement since the
 *   writer's load was for that same old value, whose sleepers cannot sleep.
 *   A reader that dies asleep costs the writer one FUTEX_WAKE (the next publish clears its
 *   flag), not one per publish forever. While nobody sleeps the writer makes no syscall.
 *   A channel whose writer could not create a wait page (ctl.wait_id = -1: System V shared
 *   memory unavailable or exhausted) is woken on every publish; a reader that cannot attach
 *   an existing wait page (no permission, another IPC namespace) sleeps in short slices.
 *   Readers sleep in slices of at most 100 ms and re-check the writer's liveness between
 *   them, so a writer that dies without a wake is noticed.
 *
 * TRUST. A reader with write access to the wait page can make the writer wake on every
 * publish (a syscall each: cost, not correctness) or clear other sleepers' announcements
 * (they then wake at the end of their slice, at most 100 ms late). It cannot shrink the page
 * (System V segments have a fixed size) nor touch the control segment, so it can neither
 * fault the writer nor change what any reader reads.
 */
#include <errno.h>

#include "internal.h"

#define SLEEP_SLICE_NS 100000000 /* liveness of the writer is re-checked between slices */
#define POLL_SLICE_NS  2000000   /* a sleeper the writer cannot know about polls */

int ndshm__waker_create(struct ndshm__waker *wk, uint64_t nonce, uint32_t mode)
{
    wk->id = -1;
    wk->pg = NULL;
    /* Whoever may read the channel may announce a sleep. */
    uint32_t m = 0600 | ((mode & 040) ? 060u : 0u) | ((mode & 004) ? 006u : 0u);
    int id = ndshm__os->shm_create(m);
    if (id < 0)
        return ndshm__errno_status(id);
    int err = 0;
    struct ndshm__waitpg *pg = ndshm__os->shm_attach(id, 1, &err);
    if (!pg) {
        ndshm__os->shm_remove(id);
        return ndshm__errno_status(err);
    }
    pg->magic = NDSHM__WAIT_MAGIC;
    pg->nonce = nonce;
    pg->layout = NDSHM__LAYOUT;
    pg->size = NDSHM__PAGE;
    atomic_store_explicit(&pg->sleepers, 0, memory_order_relaxed);
    atomic_store_explicit(&pg->nbells, 0, memory_order_relaxed);
    /* Removed now: the kernel frees the page when the last process detaches (Linux still lets
     * readers attach it by id until then). Nothing to clean up after any crash. */
    ndshm__os->shm_remove(id);
    wk->id = id;
    wk->pg = pg;
    return NDSHM_OK;
}

void ndshm__waker_destroy(struct ndshm__waker *wk)
{
    ndshm__waker_drop_bells(wk);
    if (wk->pg)
        ndshm__os->shm_detach(wk->pg);
    wk->pg = NULL;
    wk->id = -1;
}

struct ndshm__waitpg *ndshm__waitpg_attach(int id, uint32_t uid, uint64_t nonce)
{
    if (id < 0)
        return NULL;
    /* The id comes from the writer-only control segment, but ids are reused once a page is
     * freed: check the owner and size before attaching and the contents after. */
    uint32_t owner = 0;
    uint64_t size = 0;
    if (ndshm__os->shm_stat(id, &owner, &size) != 0 || owner != uid || size < NDSHM__PAGE)
        return NULL;
    int err = 0;
    struct ndshm__waitpg *pg = ndshm__os->shm_attach(id, 1, &err);
    if (!pg)
        return NULL;
    if (pg->magic != NDSHM__WAIT_MAGIC || pg->nonce != nonce || pg->layout != NDSHM__LAYOUT) {
        ndshm__os->shm_detach(pg);
        return NULL;
    }
    return pg;
}

void ndshm__waitpg_detach(struct ndshm__waitpg *pg)
{
    if (pg)
        ndshm__os->shm_detach(pg);
}

/* ----- doorbells of waitsets (the writer's side of waitset.c) -------------------------------
 * W6, when the wait page's `nbells` is not 0: for each registration (id, bit) in the page,
 * attach the doorbell once (cached; checked: a segment of exactly NDSHM__BELL_SIZE bytes with
 * the doorbell magic, layout, size and bit count, else cached as bad and never written), then
 *   old := fetch_or(bits[bit / 64], 1 << bit % 64)           (seq_cst)
 *   if the bit was clear and sleeping != 0 (seq_cst):  futex += 1; FUTEX_WAKE(futex, all)
 * A bit already set means the owner has not taken it yet: it will (see waitset.c), so no wake
 * is needed; a dead owner therefore costs one wake, then one atomic OR per publish. Every
 * 4096 such rings of a bit that stays set, the writer asks the kernel how many processes have
 * the doorbell attached (IPC_STAT): 1 (only itself) means the owner is gone, and the
 * registration is removed; so is one whose segment no longer exists at all (its owner died
 * before this writer first rang it: a removed System V segment is freed with its last
 * attachment). A doorbell no registration names any more is detached at the next
 * publish that scans registrations. */
#define BELL_CACHE 64
struct ndshm__bellc {
    int n;
    uint64_t scan; /* scans so far, to tell which attachments the last scan used */
    struct {
        int id;
        int bad; /* not a doorbell: never written */
        uint32_t stale;
        uint64_t used; /* scan number */
        struct ndshm__bell *b;
    } e[BELL_CACHE];
};

void ndshm__waker_drop_bells(struct ndshm__waker *wk)
{
    struct ndshm__bellc *c = wk->bells;
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].b)
            ndshm__os->shm_detach(c->e[i].b);
    free(c);
    wk->bells = NULL;
}

/* The doorbell `id`, attached and checked; NULL if it is not one (*gone: no such segment at
 * all, so the registration can only be a dead waitset's). */
static struct ndshm__bell *bell_attach(int id, int *gone)
{
    uint32_t owner;
    uint64_t size = 0;
    *gone = 0;
    int rc = id < 0 ? -EINVAL : ndshm__os->shm_stat(id, &owner, &size);
    if (rc == -EINVAL || rc == -EIDRM)
        *gone = 1;
    if (rc != 0 || size != NDSHM__BELL_SIZE)
        return NULL;
    int err = 0;
    struct ndshm__bell *b = ndshm__os->shm_attach(id, 1, &err);
    if (!b)
        return NULL;
    /* Read once into private copies, then checked: the page is writable by everyone. */
    uint64_t magic = b->magic;
    uint32_t layout = b->layout, bsize = b->size, nbits = b->nbits;
    if (magic != NDSHM__BELL_MAGIC || layout != NDSHM__LAYOUT || bsize != NDSHM__BELL_SIZE ||
        nbits != NDSHM__BELL_BITS) {
        ndshm__os->shm_detach(b);
        return NULL;
    }
    return b;
}

/* The cache entry for doorbell `id` (attached now if new); -1 when the cache is full, -2
 * when no such segment exists. */
static int bell_get(struct ndshm__bellc *c, int id)
{
    for (int i = 0; i < c->n; i++)
        if (c->e[i].id == id)
            return i;
    if (c->n == BELL_CACHE)
        return -1;
    int gone;
    struct ndshm__bell *b = bell_attach(id, &gone);
    if (gone)
        return -2;
    int i = c->n++;
    c->e[i].id = id;
    c->e[i].b = b;
    c->e[i].bad = c->e[i].b == NULL;
    c->e[i].stale = 0;
    c->e[i].used = 0;
    return i;
}

/* 1 if nobody but us has the doorbell attached (its owner is gone), 0 if not or unknown. */
static int bell_orphaned(int id)
{
    int n = ndshm__os->shm_nattch(id);
    return n >= 0 && n <= 1;
}

__attribute__((noinline)) static void ring(struct ndshm__waitpg *pg, struct ndshm__waker *wk,
                                           uint32_t nbells)
{
    struct ndshm__bellc *c = wk->bells;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return; /* the members' waitsets fall back to their sleep slice */
        wk->bells = c;
    }
    c->scan++;
    uint32_t found = 0;
    for (uint32_t k = 0; k < NDSHM__BELLS && found < nbells; k++) {
        uint64_t e = atomic_load_explicit(&pg->bells[k], memory_order_relaxed);
        if (!e)
            continue;
        found++;
        int i = bell_get(c, NDSHM__BELL_ID(e));
        uint32_t bit = NDSHM__BELL_BIT(e);
        if (i == -2) { /* its waitset died before we ever rang it: drop the registration */
            if (atomic_compare_exchange_strong_explicit(&pg->bells[k], &e, 0, memory_order_relaxed,
                                                        memory_order_relaxed))
                atomic_fetch_sub_explicit(&pg->nbells, 1, memory_order_relaxed);
            continue;
        }
        if (i < 0 || bit >= NDSHM__BELL_BITS)
            continue;
        c->e[i].used = c->scan;
        if (c->e[i].bad)
            continue;
        struct ndshm__bell *b = c->e[i].b;
        uint64_t mask = UINT64_C(1) << (bit % 64);
        uint64_t old = atomic_fetch_or_explicit(&b->bits[bit / 64], mask, memory_order_seq_cst);
        if (old & mask) {
            if (++c->e[i].stale % 4096 == 0 && bell_orphaned(c->e[i].id) &&
                atomic_compare_exchange_strong_explicit(&pg->bells[k], &e, 0, memory_order_relaxed,
                                                        memory_order_relaxed))
                atomic_fetch_sub_explicit(&pg->nbells, 1, memory_order_relaxed);
            continue;
        }
        c->e[i].stale = 0;
        /* Pairs with the owner's seq_cst store of `sleeping` before its last look at the
         * bits: either it sees our bit, or we see it asleep. */
        if (atomic_load_explicit(&b->sleeping, memory_order_seq_cst) != 0) {
            atomic_fetch_add_explicit(&b->futex, 1, memory_order_seq_cst);
            ndshm__os->futex_wake(&b->futex);
        }
    }
    /* Doorbells no registration names any more: detach (their segments are freed once
     * their owners are gone too). */
    for (int i = 0; i < c->n;) {
        if (c->e[i].used != c->scan) {
            if (c->e[i].b)
                ndshm__os->shm_detach(c->e[i].b);
            c->e[i] = c->e[--c->n];
        } else {
            i++;
        }
    }
}

void ndshm__notify(struct ndshm__ctl *ctl, struct ndshm__waker *wk)
{
    /* W6. The RMW is sequenced after the release store of head, and is itself a release:
     * a sleeper whose seq_cst load reads it sees the new head. */
    uint32_t n = atomic_fetch_add_explicit(&ctl->notify, 1, memory_order_seq_cst) + 1;
    if (!wk->pg) { /* nobody can announce a sleep: always wake */
        ndshm__os->futex_wake(&ctl->notify);
        return;
    }
    uint64_t w = atomic_load_explicit(&wk->pg->sleepers, memory_order_seq_cst);
    /* Same line as sleepers. seq_cst: pairs with the registering waitset's seq_cst increment
     * and its later load of notify (waitset.c): either we see the registration, or it sees
     * this publish. */
    uint32_t nb = atomic_load_explicit(&wk->pg->nbells, memory_order_seq_cst);
    if (nb)
        ring(wk->pg, wk, nb);
    if (w == 0)
        return; /* the fast path: no syscall */
    ndshm__os->futex_wake(&ctl->notify);
    if ((uint32_t)w != n)
        atomic_compare_exchange_strong_explicit(&wk->pg->sleepers, &w, 0, memory_order_relaxed,
                                                memory_order_relaxed);
}

void ndshm__notify_all(struct ndshm__ctl *ctl)
{
    atomic_fetch_add_explicit(&ctl->notify, 1, memory_order_seq_cst);
    ndshm__os->futex_wake(&ctl->notify);
}

/* sleepers := max(sleepers, SLEEPER | n0), see THE PROTOCOL above. Bounded: a hostile reader
 * that keeps changing the word cannot hold us here (we then sleep one slice unannounced). */
static void announce(struct ndshm__waitpg *pg, uint32_t n0)
{
    uint64_t want = NDSHM__SLEEPER | n0;
    uint64_t cur = atomic_load_explicit(&pg->sleepers, memory_order_seq_cst);
    for (int i = 0; i < 64 && (!(cur & NDSHM__SLEEPER) || (int32_t)(n0 - (uint32_t)cur) > 0); i++) {
        if (atomic_compare_exchange_weak_explicit(&pg->sleepers, &cur, want, memory_order_seq_cst,
                                                  memory_order_seq_cst))
            return;
    }
}

static int has_new(struct ndshm__ctl *c, uint64_t pos)
{
    /* Pairs with the release store of head (W5). */
    return atomic_load_explicit(&c->head, memory_order_acquire) > pos;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int ndshm_wait(ndshm_reader *r, int64_t timeout_ns)
{
    if (!r)
        return NDSHM_E_INVAL;
    struct ndshm__ctl *c = ndshm__reader_ctl(r);
    uint64_t pos = ndshm__reader_pos(r);
    if (has_new(c, pos))
        return NDSHM_OK;
    uint64_t start = ndshm_now_ns();
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    uint64_t spin_end = start + ndshm__reader_spin_ns(r);
    if (spin_end > deadline)
        spin_end = deadline;
    /* Spin: the cheapest wake-up when the next version is microseconds away. */
    for (unsigned i = 0;; i++) {
        if (has_new(c, pos))
            return NDSHM_OK;
        cpu_relax();
        if ((i & 63) == 0 && ndshm_now_ns() >= spin_end)
            break;
    }
    int await = (ndshm__reader_flags(r) & NDSHM_AWAIT_WRITER) != 0;
    for (;;) {
        uint32_t n0 = atomic_load_explicit(&c->notify, memory_order_seq_cst);
        if (has_new(c, pos))
            return NDSHM_OK;
        int st = ndshm__reader_state(r);
        if (st == NDSHM_REPLACED || (st == NDSHM_WRITER_GONE && !await) || st < 0)
            return has_new(c, pos) ? NDSHM_OK : st;
        uint64_t now = ndshm_now_ns();
        if (now >= deadline)
            return NDSHM_TIMEOUT;
        /* In unsigned arithmetic: with no deadline (UINT64_MAX) a signed difference would be
         * negative, which futex_wait takes as "no timeout", and a dead writer would never be
         * noticed. */
        uint64_t rem = deadline - now;
        int64_t slice = rem > SLEEP_SLICE_NS ? SLEEP_SLICE_NS : (int64_t)rem;
        struct ndshm__waitpg *pg = ndshm__reader_waitpg(r);
        if (pg)
            announce(pg, n0);
        else if (atomic_load_explicit(&c->wait_id, memory_order_relaxed) >= 0 &&
                 slice > POLL_SLICE_NS)
            slice = POLL_SLICE_NS; /* the writer wakes only announced sleepers */
        int rc = 0;
        if (atomic_load_explicit(&c->notify, memory_order_seq_cst) == n0)
            rc = ndshm__os->futex_wait(&c->notify, n0, slice);
        if (rc && rc != -EAGAIN && rc != -EINTR && rc != -ETIMEDOUT)
            return ndshm__errno_status(rc);
    }
}
