/*
 * Waiting for a new version: spin briefly, then sleep on the control segment's futex word.
 *
 * The writer (W6): notify += 1 (seq_cst RMW, after the release store of head), then loads
 * waiters (seq_cst) and issues FUTEX_WAKE only if it is non-zero: no syscall while nobody
 * sleeps.
 * A sleeper: n0 := notify (seq_cst); re-check for a new version; waiters += 1 (seq_cst);
 * if notify != n0, do not sleep; else FUTEX_WAIT(notify, n0) — the kernel re-checks the word
 * atomically with queueing.
 * No lost wake-up: if the writer's load of waiters returned 0, it precedes our increment in
 * the single total order of seq_cst operations, so its notify += 1 precedes our second load of
 * notify, which then differs from n0 (or n0 already had it, and then the re-check of head,
 * ordered after that acquire, sees the new version). Otherwise the writer wakes us, or the
 * word differs and FUTEX_WAIT returns at once. A reader that dies asleep leaves waiters
 * raised: the writer then pays a FUTEX_WAKE per publish, which costs time, never correctness.
 */
#include <errno.h>

#include "internal.h"

#define SLEEP_SLICE_NS 100000000 /* liveness of the writer is re-checked between slices */

void ndshm__notify(struct ndshm__ctl *ctl)
{
    /* W6. The RMW is sequenced after the release store of head, and is itself a release:
     * a sleeper whose seq_cst load reads it sees the new head. */
    atomic_fetch_add_explicit(&ctl->notify, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ctl->waiters, memory_order_seq_cst) != 0)
        ndshm__os->futex_wake(&ctl->notify);
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
    for (;;) {
        uint32_t n0 = atomic_load_explicit(&c->notify, memory_order_seq_cst);
        if (has_new(c, pos))
            return NDSHM_OK;
        if (ndshm__reader_gone(r))
            return has_new(c, pos) ? NDSHM_OK : NDSHM_WRITER_GONE;
        uint64_t now = ndshm_now_ns();
        if (now >= deadline)
            return NDSHM_TIMEOUT;
        /* In unsigned arithmetic: with no deadline (UINT64_MAX) a signed difference would be
         * negative, which futex_wait takes as "no timeout", and a dead writer would never be
         * noticed. */
        uint64_t rem = deadline - now;
        int64_t slice = rem > SLEEP_SLICE_NS ? SLEEP_SLICE_NS : (int64_t)rem;
        atomic_fetch_add_explicit(&c->waiters, 1, memory_order_seq_cst);
        int rc = 0;
        if (atomic_load_explicit(&c->notify, memory_order_seq_cst) == n0)
            rc = ndshm__os->futex_wait(&c->notify, n0, slice);
        atomic_fetch_sub_explicit(&c->waiters, 1, memory_order_seq_cst);
        if (rc && rc != -EAGAIN && rc != -EINTR && rc != -ETIMEDOUT)
            return ndshm__errno_status(rc);
    }
}
