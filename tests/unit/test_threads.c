/* One reader handle shared by threads while the channel re-allocates under them (run under
 * AddressSanitizer in CI: a thread touching an unmapped page would be caught), read_next on a
 * shared handle handing each version to exactly one thread, and detection of a writer handle
 * used by two threads at once (builds without NDEBUG). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

#define MAXB (1u << 18)
/* Versions the writer publishes at least: every 50th shrinks the channel and the next bigger
 * one grows it again, so 600 versions make at least 12 re-allocations. */
#define MIN_VERSIONS 600

struct shared {
    const char *name;
    ndshm_reader *r;
    atomic_int stop;
    atomic_ulong reads, torn, views;
    /* read_next accounting */
    atomic_ulong claimed; /* sum over claims of (dropped + 1) */
    uint8_t *seen;        /* seen[v]: how many threads got version v */
    uint64_t seen_max;
};

static unsigned seconds(void)
{
    const char *s = getenv("NDSHM_STRESS_SECONDS");
    return s && atoi(s) > 0 ? (unsigned)atoi(s) : 2;
}

static void *writer_main(void *arg)
{
    struct shared *sh = arg;
    ndshm_writer *w;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_OPEN_OR_CREATE;
    o.slots = 3;
    if (ndshm_writer_open(sh->name, &o, &w))
        return (void *)1;
    unsigned char *data = malloc(MAXB);
    /* Runs for the stress time, and then on until enough happened for the checks to mean
     * something (MIN_VERSIONS published, a read by the readers) however slow the machine is
     * (ThreadSanitizer, a loaded CI host); gives up after 300 s more (the checks then fail and
     * say what was missing). */
    uint64_t now = ndshm_now_ns(), end = now + (uint64_t)seconds() * 1000000000u;
    uint64_t give_up = end + 300000000000u;
    while ((now = ndshm_now_ns()) < end ||
           (now < give_up &&
            (ndshm_writer_version(w) < MIN_VERSIONS || atomic_load(&sh->reads) == 0))) {
        uint64_t v = ndshm_writer_version(w) + 1;
        /* sizes spanning 64 B .. 256 KiB: the channel re-allocates every few versions */
        size_t n = tu_size_for(v, 64, MAXB);
        if (v % 50 == 0)
            ndshm_writer_reserve(w, 64); /* and shrinks now and then */
        tu_fill(data, n, v);
        uint64_t shape[1] = {n};
        if (ndshm_publish(w, NDSHM_UINT8, 1, shape, data, NULL))
            break;
        if (v >= sh->seen_max - 1)
            break;
    }
    atomic_store(&sh->stop, 1);
    free(data);
    ndshm_writer_close(w);
    return NULL;
}

static void *reader_main(void *arg)
{
    struct shared *sh = arg;
    unsigned char *buf = malloc(MAXB);
    unsigned i = 0;
    while (!atomic_load(&sh->stop)) {
        ndshm_info info;
        int rc;
        switch (i++ % 3) {
        case 0:
            rc = ndshm_read_latest(sh->r, buf, MAXB, &info);
            if (rc == NDSHM_OK) {
                atomic_fetch_add(&sh->reads, 1);
                if (!tu_check(buf, info.nbytes, info.version))
                    atomic_fetch_add(&sh->torn, 1);
            }
            break;
        case 1: {
            ndshm_view view;
            rc = ndshm_view_latest(sh->r, &view);
            if (rc == NDSHM_OK) {
#ifndef NDSHM_TSAN_COPY /* reading a view races with the writer by design */
                int ok = tu_check(view.data, view.info.nbytes, view.info.version);
                /* a view may be overwritten while read: only an intact one must be right */
                if (ndshm_view_check(&view) == NDSHM_OK && !ok)
                    atomic_fetch_add(&sh->torn, 1);
#endif
                ndshm_view_release(&view);
                atomic_fetch_add(&sh->views, 1);
            }
            break;
        }
        default:
            rc = ndshm_read_next(sh->r, buf, MAXB, &info);
            if (rc == NDSHM_OK) {
                atomic_fetch_add(&sh->reads, 1);
                if (!tu_check(buf, info.nbytes, info.version))
                    atomic_fetch_add(&sh->torn, 1);
                atomic_fetch_add(&sh->claimed, info.dropped + 1);
                if (info.version < sh->seen_max)
                    __atomic_fetch_add(&sh->seen[info.version], 1, __ATOMIC_RELAXED);
            }
            break;
        }
    }
    free(buf);
    return NULL;
}

static void shared_reader_during_reallocations(void **state)
{
    (void)state;
    struct shared sh = {0};
    sh.name = tu_name("threads");
    sh.seen_max = 1u << 22;
    sh.seen = calloc(sh.seen_max, 1);
    ndshm_writer *w0;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 3;
    assert_int_equal(ndshm_writer_create(sh.name, &o, &w0), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(sh.name, NULL, &sh.r), NDSHM_OK);
    ndshm_writer_close(w0); /* the writer thread takes the channel over */
    pthread_t wt, rt[3];
    assert_int_equal(pthread_create(&wt, NULL, writer_main, &sh), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &sh), 0);
    void *wret;
    pthread_join(wt, &wret);
    for (int i = 0; i < 3; i++)
        pthread_join(rt[i], NULL);
    assert_null(wret);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(sh.name, &ci), NDSHM_OK);
    print_message("versions %llu, re-allocations %llu, reads %lu, views %lu, torn %lu\n",
                  (unsigned long long)ci.version, (unsigned long long)ci.reallocs,
                  atomic_load(&sh.reads), atomic_load(&sh.views), atomic_load(&sh.torn));
    assert_int_equal(atomic_load(&sh.torn), 0);
    if (atomic_load(&sh.reads) == 0 || ci.reallocs <= 10)
        fail_msg("expected reads by the shared handle and more than 10 re-allocations under "
                 "them; got %lu reads, %llu re-allocations in %llu versions",
                 atomic_load(&sh.reads), (unsigned long long)ci.reallocs,
                 (unsigned long long)ci.version);
    /* read_next on a shared handle: no version went to two threads, and the claims cover
     * exactly the range the handle advanced over */
    for (uint64_t v = 0; v < sh.seen_max; v++)
        assert_true(sh.seen[v] <= 1);
    uint64_t start = 0; /* the reader was opened before anything was published */
    assert_true(atomic_load(&sh.claimed) <= ndshm_reader_version(sh.r) - start);
    ndshm_reader_close(sh.r);
    ndshm_unlink(sh.name);
    assert_int_equal(tu_count_segments(sh.name), 0);
    free(sh.seen);
}

/* read_next only: the claims (dropped + 1) must add up to the final position exactly. */
static void *next_only(void *arg)
{
    struct shared *sh = arg;
    unsigned char *buf = malloc(MAXB);
    while (!atomic_load(&sh->stop)) {
        ndshm_info info;
        if (ndshm_read_next(sh->r, buf, MAXB, &info) == NDSHM_OK) {
            atomic_fetch_add(&sh->reads, 1);
            if (!tu_check(buf, info.nbytes, info.version))
                atomic_fetch_add(&sh->torn, 1);
            atomic_fetch_add(&sh->claimed, info.dropped + 1);
            if (info.version < sh->seen_max)
                __atomic_fetch_add(&sh->seen[info.version], 1, __ATOMIC_RELAXED);
        }
    }
    free(buf);
    return NULL;
}

static void shared_read_next_accounting(void **state)
{
    (void)state;
    struct shared sh = {0};
    sh.name = tu_name("threads-next");
    sh.seen_max = 1u << 22;
    sh.seen = calloc(sh.seen_max, 1);
    ndshm_writer *w0;
    assert_int_equal(ndshm_writer_create(sh.name, NULL, &w0), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(sh.name, NULL, &sh.r), NDSHM_OK);
    ndshm_writer_close(w0);
    pthread_t wt, rt[2];
    assert_int_equal(pthread_create(&wt, NULL, writer_main, &sh), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, next_only, &sh), 0);
    pthread_join(wt, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    /* drain what is left */
    atomic_store(&sh.stop, 0);
    unsigned char *buf = malloc(MAXB);
    ndshm_info info;
    while (ndshm_read_next(sh.r, buf, MAXB, &info) == NDSHM_OK) {
        atomic_fetch_add(&sh.claimed, info.dropped + 1);
        sh.seen[info.version]++;
    }
    free(buf);
    uint64_t last = ndshm_reader_version(sh.r);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(sh.name, &ci), NDSHM_OK);
    assert_int_equal(last, ci.version);
    assert_int_equal(atomic_load(&sh.claimed), last);
    for (uint64_t v = 0; v < sh.seen_max; v++)
        assert_true(sh.seen[v] <= 1);
    assert_int_equal(atomic_load(&sh.torn), 0);
    ndshm_reader_close(sh.r);
    ndshm_unlink(sh.name);
    free(sh.seen);
}

#ifndef NDEBUG
struct race {
    ndshm_writer *w;
    atomic_int concurrent;
    atomic_int stop;
};

static void *hammer(void *arg)
{
    struct race *rc = arg;
    static unsigned char data[1 << 20];
    uint64_t shape[1] = {sizeof data};
    /* Stops at the first detection; two threads publishing 1 MiB each overlap quickly, the
     * 120 s bound is only for a machine that never runs them at the same time. */
    uint64_t end = ndshm_now_ns() + 120000000000u;
    while (!atomic_load(&rc->stop) && ndshm_now_ns() < end) {
        int st = ndshm_publish(rc->w, NDSHM_UINT8, 1, shape, data, NULL);
        if (st == NDSHM_E_CONCURRENT) {
            atomic_fetch_add(&rc->concurrent, 1);
            atomic_store(&rc->stop, 1);
        } else if (st != NDSHM_OK) {
            atomic_store(&rc->stop, 1);
        }
    }
    return NULL;
}
#endif

static void writer_misuse_detected(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip(); /* the check is compiled into builds without NDEBUG (the sanitizer builds) */
#else
    struct race rc = {0};
    const char *name = tu_name("misuse");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.capacity = 1 << 20;
    assert_int_equal(ndshm_writer_create(name, &o, &rc.w), NDSHM_OK);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, &rc);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&rc.concurrent) == 0)
        fail_msg("expected NDSHM_E_CONCURRENT from two threads publishing on one writer handle "
                 "within 120 s; never seen");
    ndshm_writer_close(rc.w);
    ndshm_unlink(name);
#endif
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_reader_during_reallocations),
        cmocka_unit_test(shared_read_next_accounting),
        cmocka_unit_test(writer_misuse_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
