/* Zero-copy paths across processes: a view reports overwrites exactly when the writer starts
 * to reuse its slot (checked against the writer's actual progress, for loans and copies), the
 * slot-count rule for views held while the writer keeps publishing, cancelled loans never
 * become visible (also when the loan forced a re-allocation), loan misuse statuses, and
 * loan+commit under concurrent readers with checksummed payloads.
 *
 * The reader runs in a forked child driven by commands over a socketpair, so the order of
 * every writer step and reader step is exact: nothing here depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

#define PAYLOAD 4096

/* ----- a reader in a child process, driven by commands ----------------------------------- */

enum cmd { C_VIEW_LATEST = 1, C_VIEW_NEXT, C_CHECK, C_RELEASE, C_READ_LATEST, C_READ_NEXT, C_QUIT };

struct reply {
    int32_t status;
    uint32_t intact; /* the viewed/read payload passed tu_check for its version */
    uint64_t version;
    uint64_t nbytes;
};

struct child {
    pid_t pid;
    int fd;
};

static void child_loop(const char *name, int fd)
{
    ndshm_reader *r = NULL;
    if (ndshm_reader_open(name, NULL, &r) != NDSHM_OK)
        _exit(10);
    ndshm_view view;
    int have_view = 0;
    static unsigned char buf[1 << 20];
    for (;;) {
        int32_t c;
        if (read(fd, &c, sizeof c) != (ssize_t)sizeof c)
            _exit(11);
        struct reply rep = {0};
        ndshm_info info;
        switch (c) {
        case C_VIEW_LATEST:
        case C_VIEW_NEXT:
            if (have_view)
                ndshm_view_release(&view);
            rep.status =
                c == C_VIEW_LATEST ? ndshm_view_latest(r, &view) : ndshm_view_next(r, &view);
            have_view = rep.status == NDSHM_OK;
            if (have_view) {
                rep.version = view.info.version;
                rep.nbytes = view.info.nbytes;
                rep.intact = (uint32_t)tu_check(view.data, view.info.nbytes, view.info.version);
            }
            break;
        case C_CHECK:
            /* Read the payload first, then ask: OK must mean everything read was intact. */
            rep.intact =
                have_view && (uint32_t)tu_check(view.data, view.info.nbytes, view.info.version);
            rep.status = have_view ? ndshm_view_check(&view) : NDSHM_E_INVAL;
            rep.version = have_view ? view.info.version : 0;
            break;
        case C_RELEASE:
            rep.status = have_view ? ndshm_view_release(&view) : NDSHM_E_INVAL;
            have_view = 0;
            break;
        case C_READ_LATEST:
        case C_READ_NEXT:
            rep.status = c == C_READ_LATEST ? ndshm_read_latest(r, buf, sizeof buf, &info)
                                            : ndshm_read_next(r, buf, sizeof buf, &info);
            if (rep.status == NDSHM_OK) {
                rep.version = info.version;
                rep.nbytes = info.nbytes;
                rep.intact = (uint32_t)tu_check(buf, info.nbytes, info.version);
            }
            break;
        case C_QUIT:
            if (have_view)
                ndshm_view_release(&view);
            ndshm_reader_close(r);
            _exit(0);
        default:
            _exit(12);
        }
        if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
            _exit(13);
    }
}

static struct child child_start(const char *name)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        child_loop(name, sv[1]);
    }
    close(sv[1]);
    struct child c = {pid, sv[0]};
    return c;
}

static struct reply ask(struct child *c, enum cmd cmd)
{
    int32_t v = (int32_t)cmd;
    struct reply rep;
    assert_int_equal(write(c->fd, &v, sizeof v), (ssize_t)sizeof v);
    assert_int_equal(read(c->fd, &rep, sizeof rep), (ssize_t)sizeof rep);
    return rep;
}

static void child_stop(struct child *c)
{
    int32_t v = C_QUIT;
    assert_int_equal(write(c->fd, &v, sizeof v), (ssize_t)sizeof v);
    int st = 0;
    assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(c->fd);
}

/* ----- writer helpers ---------------------------------------------------------------------- */

static ndshm_writer *make_writer(const char *name, uint32_t slots, uint64_t capacity)
{
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = slots;
    o.capacity = capacity;
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
    return w;
}

static uint64_t publish(ndshm_writer *w, size_t n)
{
    static unsigned char data[1 << 20];
    uint64_t v = ndshm_writer_version(w) + 1, got = 0;
    tu_fill(data, n, v);
    uint64_t shape[1] = {n};
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, &got), NDSHM_OK);
    assert_int_equal(got, v);
    return v;
}

/* loan + fill in place; the caller commits or cancels */
static void *loan_fill(ndshm_writer *w, size_t n)
{
    uint64_t shape[1] = {n};
    void *p = NULL;
    assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
    assert_non_null(p);
    tu_fill(p, n, ndshm_writer_version(w) + 1);
    return p;
}

/* ----- a view reports an overwrite exactly when the slot is reused ------------------------- */

/* Hold a view of version v0 while the writer publishes v0+1, v0+2, ...: the check says OK for
 * exactly N-1 more versions and OVERWRITTEN from the moment the writer starts v0+N (its loan,
 * before any commit), whatever the writer's path (copy publish or loan). */
static void overwrite_exact(uint32_t slots, int use_loan, int next)
{
    const char *name = tu_name(next ? "ovn" : "ovl");
    ndshm_writer *w = make_writer(name, slots, PAYLOAD);
    for (int i = 0; i < 5; i++) /* wrap the ring at least once first */
        publish(w, PAYLOAD);
    struct child c = child_start(name);
    /* read_next / view_next start at the last version for a late joiner */
    struct reply rep = ask(&c, next ? C_VIEW_NEXT : C_VIEW_LATEST);
    assert_int_equal(rep.status, NDSHM_OK);
    uint64_t v0 = rep.version;
    assert_int_equal(v0, ndshm_writer_version(w));
    assert_true(rep.intact);
    for (uint32_t k = 1; k <= slots + 1; k++) {
        /* The writer starts v0 + k. */
        uint64_t shape[1] = {PAYLOAD};
        void *p = NULL;
        assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
        rep = ask(&c, C_CHECK);
        int reused = k >= slots; /* v0 + k goes to slot (v0 + k) % N == v0 % N iff k % N == 0 */
        assert_int_equal(rep.status, reused ? NDSHM_OVERWRITTEN : NDSHM_OK);
        if (rep.status == NDSHM_OK)
            assert_true(rep.intact); /* OK means every byte read was version v0 */
        tu_fill(p, PAYLOAD, v0 + k);
        if (use_loan) {
            assert_int_equal(ndshm_commit(w, NULL), NDSHM_OK);
        } else { /* the same progress by copy: cancel the probe loan, publish by copy */
            assert_int_equal(ndshm_cancel(w), NDSHM_OK);
            publish(w, PAYLOAD);
        }
        assert_int_equal(ndshm_writer_version(w), v0 + k);
        rep = ask(&c, C_CHECK);
        assert_int_equal(rep.status, reused ? NDSHM_OVERWRITTEN : NDSHM_OK);
    }
    rep = ask(&c, C_RELEASE);
    assert_int_equal(rep.status, NDSHM_OVERWRITTEN);
    child_stop(&c);
    ndshm_writer_close(w);
    ndshm_unlink(name);
}

static void test_view_overwritten_exactly(void **state)
{
    (void)state;
    static const uint32_t slots[] = {1, 2, 3, 4, 8};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        overwrite_exact(slots[i], 1, 0);
        overwrite_exact(slots[i], 0, 0);
        overwrite_exact(slots[i], 1, 1);
    }
}

/* ----- the slot-count rule: N >= ceil(rate x (hold + write)) + 1 -------------------------- */

/* Simulated clock in 1/20 of the writer's period: version k is begun (loaned) at 20k - w and
 * committed at 20k. The reader takes a view of the newest committed version at time a and
 * checks it at a + h. Events run in time order across the two processes. Returns the check's
 * status. */
static int hold_schedule(const char *name, uint32_t slots, int a, int h, int w)
{
    ndshm_writer *wr = make_writer(name, slots, PAYLOAD);
    struct child c = child_start(name);
    int viewed = 0, checked = 0, result = -1;
    uint64_t shape[1] = {PAYLOAD};
    /* versions 1, 2, ...: begin at 20k - w, commit at 20k */
    for (int t = 0; !checked; t++) {
        uint64_t next = ndshm_writer_version(wr) + 1;
        if (t == (int)(20 * next) - w && w > 0) {
            void *p;
            assert_int_equal(ndshm_loan(wr, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
            tu_fill(p, PAYLOAD, next);
        }
        if (t == (int)(20 * next)) {
            if (w > 0) {
                assert_int_equal(ndshm_commit(wr, NULL), NDSHM_OK);
            } else {
                publish(wr, PAYLOAD);
            }
        }
        if (t == a && !viewed) {
            struct reply rep = ask(&c, C_VIEW_LATEST);
            assert_int_equal(rep.status, NDSHM_OK);
            assert_int_equal(rep.version, (uint64_t)(a / 20));
            viewed = 1;
        }
        if (t == a + h) {
            struct reply rep = ask(&c, C_CHECK);
            result = rep.status;
            if (result == NDSHM_OK)
                assert_true(rep.intact);
            checked = 1;
        }
    }
    ask(&c, C_RELEASE);
    child_stop(&c);
    ndshm_writer_close(wr);
    ndshm_unlink(name);
    return result;
}

static void test_slots_for_hold_time(void **state)
{
    (void)state;
    const char *name = tu_name("hold");
    /* hold and write times in 1/20 period; phases a strictly between commits (no ties) */
    static const int holds[] = {6, 20, 27, 45, 58};
    static const int writes[] = {0, 10};
    static const int phases[] = {21, 30, 39};
    for (size_t i = 0; i < sizeof holds / sizeof holds[0]; i++) {
        for (size_t j = 0; j < sizeof writes / sizeof writes[0]; j++) {
            int h = holds[i], wt = writes[j];
            /* N = ceil(rate x (hold + write)) + 1 */
            uint32_t n = (uint32_t)((h + wt + 19) / 20) + 1;
            int failed_with_fewer = 0;
            for (size_t k = 0; k < sizeof phases / sizeof phases[0]; k++) {
                int a = phases[k];
                if ((a + h) % 20 == 0 || (a + h + wt) % 20 == 0 || (a + wt) % 20 == 0)
                    continue; /* avoid ties between a reader step and a writer step */
                /* expected from first principles: overwritten iff v0 + N begins by a + h */
                int v0 = a / 20;
                for (uint32_t s = n - 1; s <= n; s++) {
                    if (s == 0)
                        continue;
                    int begins = 20 * (v0 + (int)s) - wt;
                    if (begins <= a) { /* v0's slot is already being rewritten: no view at all */
                        assert_true(s < n);
                        failed_with_fewer = 1;
                        continue;
                    }
                    int expect = begins <= a + h ? NDSHM_OVERWRITTEN : NDSHM_OK;
                    int got = hold_schedule(name, s, a, h, wt);
                    assert_int_equal(got, expect);
                    if (s == n)
                        assert_int_equal(got, NDSHM_OK); /* the rule is sufficient */
                    else if (got == NDSHM_OVERWRITTEN)
                        failed_with_fewer = 1;
                }
            }
            /* ... and tight: one slot fewer loses the view for some phase (the late one) */
            assert_true(failed_with_fewer || n == 1);
        }
    }
}

/* ----- a cancelled loan never becomes visible ---------------------------------------------- */

static void cancel_case(int realloc)
{
    const char *name = tu_name(realloc ? "cnr" : "cnc");
    ndshm_writer *w = make_writer(name, 4, PAYLOAD);
    uint64_t v1 = publish(w, PAYLOAD);
    struct child c = child_start(name);
    struct reply rep = ask(&c, C_READ_NEXT);
    assert_int_equal(rep.status, NDSHM_OK);
    assert_int_equal(rep.version, v1);
    for (int round = 0; round < 6; round++) {
        /* A loan (bigger than the slots: a re-allocation) filled with garbage, then cancelled */
        size_t n = realloc ? PAYLOAD * 4 * (size_t)(round + 1) : PAYLOAD;
        uint64_t shape[1] = {n};
        void *p;
        assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
        memset(p, 0xEE, n);
        /* while the loan is open, and after it is cancelled: nothing new for anyone */
        for (int phase = 0; phase < 2; phase++) {
            rep = ask(&c, C_READ_LATEST);
            assert_int_equal(rep.status, NDSHM_NO_NEW);
            rep = ask(&c, C_READ_NEXT);
            assert_int_equal(rep.status, NDSHM_NO_NEW);
            rep = ask(&c, C_VIEW_NEXT);
            assert_int_equal(rep.status, NDSHM_NO_NEW);
            if (phase == 0)
                assert_int_equal(ndshm_cancel(w), NDSHM_OK);
        }
        assert_int_equal(ndshm_writer_version(w), v1);
        /* the cancelled re-allocation left no segment behind */
        assert_int_equal(tu_count_segments(name), 2);
        /* the next real version is read intact, never the garbage */
        v1 = publish(w, PAYLOAD);
        rep = ask(&c, C_READ_NEXT);
        assert_int_equal(rep.status, NDSHM_OK);
        assert_int_equal(rep.version, v1);
        assert_int_equal(rep.nbytes, PAYLOAD);
        assert_true(rep.intact);
        rep = ask(&c, C_VIEW_LATEST);
        assert_int_equal(rep.status, NDSHM_NO_NEW);
    }
    /* Closing the writer with a loan open cancels it: the reader never sees it either. */
    loan_fill(w, realloc ? PAYLOAD * 8 : PAYLOAD);
    ndshm_writer_close(w);
    rep = ask(&c, C_READ_NEXT);
    assert_true(rep.status == NDSHM_NO_NEW || rep.status == NDSHM_WRITER_GONE);
    rep = ask(&c, C_READ_LATEST);
    assert_true(rep.status == NDSHM_NO_NEW || rep.status == NDSHM_WRITER_GONE);
    child_stop(&c);
    ndshm_unlink(name);
}

static void test_cancel_never_visible(void **state)
{
    (void)state;
    cancel_case(0);
    cancel_case(1);
}

/* ----- loan misuse ------------------------------------------------------------------------- */

static void test_loan_misuse(void **state)
{
    (void)state;
    const char *name = tu_name("mis");
    ndshm_writer *w = make_writer(name, 4, PAYLOAD);
    uint64_t v1 = publish(w, PAYLOAD);
    struct child c = child_start(name);
    assert_int_equal(ask(&c, C_READ_NEXT).status, NDSHM_OK);
    uint64_t shape[1] = {PAYLOAD};
    unsigned char data[PAYLOAD] = {0};
    void *p, *q;
    uint64_t ver = 0;
    assert_int_equal(ndshm_commit(w, &ver), NDSHM_E_STATE); /* commit without loan */
    assert_int_equal(ver, 0u);                              /* out-param untouched */
    assert_int_equal(ndshm_cancel(w), NDSHM_E_STATE);       /* cancel without loan */
    p = loan_fill(w, PAYLOAD);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, NULL), NDSHM_E_STATE);
    q = NULL;
    assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &q), NDSHM_E_STATE); /* second */
    assert_null(q);
    assert_int_equal(ndshm_writer_version(w), v1);
    /* the misuse changed nothing visible */
    assert_int_equal(ask(&c, C_READ_NEXT).status, NDSHM_NO_NEW);
    /* and the open loan is still good */
    (void)p;
    assert_int_equal(ndshm_commit(w, &ver), NDSHM_OK);
    assert_int_equal(ver, v1 + 1);
    struct reply rep = ask(&c, C_READ_NEXT);
    assert_int_equal(rep.status, NDSHM_OK);
    assert_int_equal(rep.version, v1 + 1);
    assert_true(rep.intact);
    assert_int_equal(ndshm_commit(w, NULL), NDSHM_E_STATE); /* the loan is gone */
    child_stop(&c);
    ndshm_writer_close(w);
    ndshm_unlink(name);
}

/* ----- loan + commit under concurrent readers ---------------------------------------------- */

static int reader_torture(const char *name, int kind, unsigned seconds)
{
    ndshm_reader *r;
    if (ndshm_reader_open(name, NULL, &r))
        return 20;
    static unsigned char buf[1 << 20];
    /* For `seconds`, and on until one read succeeded (at the latest once the writer stops
     * publishing, any read does), at most 300 s more: on a slow machine a reader may get no
     * intact copy while the writer runs, which says nothing about correctness. */
    uint64_t end = ndshm_now_ns() + (uint64_t)seconds * 1000000000u, ok = 0, last = 0;
    uint64_t give_up = end + 300000000000u, now;
    int bad = 0;
    while ((now = ndshm_now_ns()) < end || (ok == 0 && now < give_up)) {
        ndshm_info info;
        ndshm_view v;
        int rc;
        if (kind < 2) {
            rc = kind ? ndshm_read_next(r, buf, sizeof buf, &info)
                      : ndshm_read_latest(r, buf, sizeof buf, &info);
            if (rc == NDSHM_OK) {
                ok++;
                if (!tu_check(buf, info.nbytes, info.version) || info.version <= last)
                    bad = 21;
                last = info.version;
            }
        } else {
            rc = kind == 2 ? ndshm_view_latest(r, &v) : ndshm_view_next(r, &v);
            if (rc == NDSHM_OK) {
                int intact = tu_check(v.data, v.info.nbytes, v.info.version);
                uint64_t ver = v.info.version;
                rc = ndshm_view_release(&v);
                if (rc == NDSHM_OK) {
                    ok++;
                    if (!intact || ver <= last)
                        bad = 22; /* OK must mean the whole view was that version */
                    last = ver;
                } else if (rc != NDSHM_OVERWRITTEN) {
                    bad = 23;
                }
            }
        }
        if (rc < 0)
            bad = 24;
        if (bad)
            break;
        if (rc == NDSHM_WRITER_GONE)
            break;
    }
    ndshm_reader_close(r);
    return bad ? bad : ok > 0 ? 0 : 25;
}

static void test_loan_commit_concurrent_readers(void **state)
{
    (void)state;
    const char *name = tu_name("conc");
    ndshm_writer *w = make_writer(name, 4, 1024);
    publish(w, 1024);
    const unsigned seconds = 2;
    pid_t pids[4];
    for (int k = 0; k < 4; k++) {
        fflush(NULL);
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0)
            _exit(reader_torture(name, k, seconds));
    }
    uint64_t end = ndshm_now_ns() + (seconds + 1) * 1000000000ull;
    uint64_t n = 0;
    while (ndshm_now_ns() < end) {
        /* sizes grow and shrink across the capacity: loans re-allocate now and then */
        size_t size = tu_size_for(n, 16, 200000);
        void *p = loan_fill(w, size);
        (void)p;
        if (n % 7 == 3) {
            memset(p, 0xEE, size);
            assert_int_equal(ndshm_cancel(w), NDSHM_OK);
        } else {
            assert_int_equal(ndshm_commit(w, NULL), NDSHM_OK);
        }
        if (n % 64 == 0)
            assert_int_equal(ndshm_writer_reserve(w, 1024), NDSHM_OK); /* shrink again */
        n++;
    }
    for (int k = 0; k < 4; k++) {
        int st = 0;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) != 0)
            fail_msg("expected reader %d to exit 0; it exited %d (21/22: torn or out of order, "
                     "23/24: an error status, 25: no intact read in %u s + 300 s)",
                     k, WEXITSTATUS(st), seconds);
    }
    ndshm_writer_close(w);
    ndshm_unlink(name);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_overwritten_exactly),
        cmocka_unit_test(test_slots_for_hold_time),
        cmocka_unit_test(test_cancel_never_visible),
        cmocka_unit_test(test_loan_misuse),
        cmocka_unit_test(test_loan_commit_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
