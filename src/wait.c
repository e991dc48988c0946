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
    /* Removed now: the kernel frees the page when the last process detaches (Linux still lets
     * readers attach it by id until then). Nothing to clean up after any crash. */
    ndshm__os->shm_remove(id);
    wk->id = id;
    wk->pg = pg;
    return NDSHM_OK;
}

void ndshm__waker_destroy(struct ndshm__waker *wk)
{
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
