/*
 * Crash safety and security: writers SIGKILLed mid-publish, takeover rules (pid and start
 * time), repair, readers killed at any point, stale channels, a full tmpfs, permissions and
 * read-only mappings. Every child process is forked from the test and killed or reaped by it;
 * every segment is removed at exit (tu_init), also when an assertion fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "ndshm/ndshm.h"
#include "testutil.h"

#define BIG     (256u * 1024u)       /* large enough that a kill usually lands inside the copy */
#define WAIT_NS INT64_C(10000000000) /* generous bound: a correct library answers in ~100 ms */

static const char *shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return d && d[0] == '/' ? d : "/dev/shm";
}

static void seg_path(char *out, size_t cap, const char *seg)
{
    snprintf(out, cap, "%s/%s", shm_dir(), seg);
}

/* ----- small helpers ------------------------------------------------------------------------ */

/* Every child is recorded so a failing assertion (cmocka jumps out of the test) never leaves
 * one running; children also die with the test process. */

static int setup(void **state)
{
    (void)state;
    tu_kill_strays();
    return 0;
}

static uint64_t publish_v(ndshm_writer *w, size_t n)
{
    uint64_t v = ndshm_writer_version(w) + 1;
    void *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    tu_fill(buf, n, v);
    uint64_t shape[1] = {n};
    uint64_t got = 0;
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, &got), NDSHM_OK);
    assert_int_equal(got, v);
    free(buf);
    return v;
}

static int publish_v_rc(ndshm_writer *w, size_t n)
{
    static unsigned char buf[1u << 16];
    uint64_t shape[1] = {n};
    tu_fill(buf, n, ndshm_writer_version(w) + 1);
    return ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL);
}

/* Read with read_latest and verify the payload is exactly version info.version. */
static int read_check(ndshm_reader *r, int next, ndshm_info *info)
{
    static unsigned char buf[4u << 20];
    int rc = next ? ndshm_read_next(r, buf, sizeof buf, info)
                  : ndshm_read_latest(r, buf, sizeof buf, info);
    if (rc == NDSHM_OK) {
        assert_int_equal(info->dtype, NDSHM_UINT8);
        assert_int_equal(info->ndim, 1);
        assert_int_equal(info->shape[0], info->nbytes);
        assert_true(tu_check(buf, (size_t)info->nbytes, info->version));
    }
    return rc;
}

static void write_all(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static char read_byte(int fd)
{
    char c = 0;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? c : 0;
}

static void reap_killed(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st))
        print_message("child %d exited with status %d\n", (int)pid, WEXITSTATUS(st));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
}

/* Number of odd (mid-write) slots in the current data segment of `name`. */
static int odd_slots(const char *name)
{
    struct ndshm__ctlh h = NDSHM__CTLH_INIT;
    struct ndshm__map dm = {0};
    struct ndshm__geom g;
    if (ndshm__ctl_open(name, 0, 0, &h) != NDSHM_OK)
        return -1;
    struct ndshm__ctl *c = ndshm__ctlh_ctl(&h);
    uint64_t gen = atomic_load(&c->gen);
    int rc = ndshm__map_data(name, gen, atomic_load(&c->token[gen % 2]), &h, 0, &dm, &g);
    ndshm__ctl_close(&h);
    if (rc != NDSHM_OK)
        return -1;
    int odd = 0;
    for (uint32_t i = 0; i < g.slot_count; i++)
        odd += (int)(atomic_load(&ndshm__slot_at(dm.base, &g, i)->seq) & 1);
    ndshm__unmap(&dm);
    return odd;
}

/* The token of a data segment, from its file name ("...@<gen>.<16 hex>"). */
static uint64_t seg_token(const char *name, uint64_t gen)
{
    char seg[NDSHM__SEG_MAX];
    assert_true(tu_data_seg(name, gen, seg, sizeof seg));
    return strtoull(strrchr(seg, '.') + 1, NULL, 16);
}

/* ----- writer killed while a loan is open: the slot is odd ------------------------------------ */

static void test_kill_mid_loan(void **state)
{
    (void)state;
    const char *name = tu_name("loan");
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 3;
    ndshm_writer *w0;
    assert_int_equal(ndshm_writer_create(name, &o, &w0), NDSHM_OK);
    for (int i = 0; i < 5; i++)
        publish_v(w0, 1000);
    assert_int_equal(ndshm_writer_close(w0), NDSHM_OK);

    pid_t pid = tu_spawn();
    if (pid == 0) {
        ndshm_writer *w;
        if (ndshm_writer_open(name, NULL, &w) != NDSHM_OK)
            _exit(1);
        write_all(ready[1], "r", 1);
        read_byte(go[0]);
        uint64_t shape[1] = {1000};
        void *p;
        if (ndshm_loan(w, NDSHM_UINT8, 1, shape, &p) != NDSHM_OK)
            _exit(2);
        tu_fill(p, 500, 6); /* half of version 6, then death */
        raise(SIGKILL);
        _exit(3);
    }
    close(ready[1]); /* a child that dies early gives EOF, not a hang */
    ready[1] = -1;
    assert_int_equal(read_byte(ready[0]), 'r');
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    ndshm_info info;
    assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
    assert_int_equal(info.version, 5);
    write_all(go[1], "g", 1);
    reap_killed(pid);
    assert_int_equal(odd_slots(name), 1);

    /* The half-written version is never handed out, whatever the reader tries. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(read_check(r, i & 1, &info), NDSHM_NO_NEW);
        ndshm_view v;
        assert_int_equal(ndshm_view_latest(r, &v), NDSHM_NO_NEW);
    }
    /* The reader learns the writer is gone, within a bounded time (no hang). */
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_WRITER_GONE);
    assert_int_equal(ndshm_reader_writer_alive(r), 0);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.writer_alive, 0);
    assert_int_equal(ci.writer_pid, pid);
    assert_int_equal(ci.version, 5);

    /* A fresh reader on the dead channel gets version 5 flagged WRITER_GONE. */
    ndshm_reader *r2;
    assert_int_equal(ndshm_reader_open(name, NULL, &r2), NDSHM_OK);
    assert_int_equal(read_check(r2, 0, &info), NDSHM_OK);
    assert_int_equal(info.version, 5);
    assert_true(info.flags & NDSHM_INFO_WRITER_GONE);

    /* Takeover: the odd slot is repaired, numbering continues at 6. */
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(odd_slots(name), 0);
    assert_int_equal(ndshm_writer_version(w), 5);
    assert_int_equal(publish_v(w, 777), 6);
    /* The reader that stayed attached resumes without reopening; the new writer is alive. */
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_OK);
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 6);
    assert_int_equal(info.nbytes, 777);
    assert_int_equal(info.dropped, 0);
    assert_false(info.flags & NDSHM_INFO_WRITER_GONE);
    assert_int_equal(ndshm_reader_writer_alive(r), 1);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_WRITER_GONE);
    ndshm_reader_close(r2);
    ndshm_reader_close(r);
    assert_int_equal(tu_count_segments(name), 2);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
}

/* ----- writer killed mid re-allocation: the unpublished segment goes, nothing leaks ---------- */

static void test_kill_mid_realloc(void **state)
{
    (void)state;
    const char *name = tu_name("realloc");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.capacity = 4096;
    ndshm_writer *w0;
    assert_int_equal(ndshm_writer_create(name, &o, &w0), NDSHM_OK);
    publish_v(w0, 4000);
    publish_v(w0, 4000);
    assert_int_equal(ndshm_writer_close(w0), NDSHM_OK);
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    pid_t pid = tu_spawn();
    if (pid == 0) {
        ndshm_writer *w;
        if (ndshm_writer_open(name, NULL, &w) != NDSHM_OK)
            _exit(1);
        uint64_t shape[1] = {100000}; /* does not fit: creates generation 2 */
        void *p;
        if (ndshm_loan(w, NDSHM_UINT8, 1, shape, &p) != NDSHM_OK)
            _exit(2);
        tu_fill(p, 100000, 3);
        raise(SIGKILL);
        _exit(3);
    }
    reap_killed(pid);
    assert_int_equal(tu_count_segments(name), 3); /* ctl, @1 and the unpublished @2 */
    ndshm_info info;
    assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_int_equal(read_check(r, 1, &info), NDSHM_NO_NEW);
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_WRITER_GONE);

    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(tu_count_segments(name), 2); /* the stale @2 is gone */
    assert_int_equal(ndshm_writer_version(w), 2);
    assert_int_equal(publish_v(w, 200000), 3);
    assert_int_equal(tu_count_segments(name), 2); /* re-allocated: old data segment unlinked */
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 3);
    assert_int_equal(info.dropped, 0);
    assert_true(info.flags & NDSHM_INFO_REALLOCATED);
    assert_false(info.flags & NDSHM_INFO_WRITER_GONE);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    ndshm_reader_close(r);
}

/* ----- writer killed between "head := v" and "gen := g + 1" (W5) ----------------------------- */

static void test_kill_between_head_and_gen(void **state)
{
    (void)state;
    const char *name = tu_name("w5");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.capacity = 4096;
    ndshm_writer *w0;
    assert_int_equal(ndshm_writer_create(name, &o, &w0), NDSHM_OK);
    publish_v(w0, 4000);
    assert_int_equal(ndshm_writer_close(w0), NDSHM_OK);
    pid_t pid = tu_spawn();
    if (pid == 0) {
        /* Replay commit_impl() by hand and die right after W5's first store. */
        ndshm_writer *w;
        if (ndshm_writer_open(name, NULL, &w) != NDSHM_OK)
            _exit(1);
        uint64_t shape[1] = {100000};
        void *p;
        if (ndshm_loan(w, NDSHM_UINT8, 1, shape, &p) != NDSHM_OK)
            _exit(2);
        tu_fill(p, 100000, 2);
        struct ndshm__geom g;
        if (ndshm__geom_plan(4, 100000, 0, &g) != NDSHM_OK)
            _exit(3);
        ndshm__slot_end((struct ndshm__slot *)(void *)((char *)p - g.payload_offset),
                        ndshm_now_ns());
        struct ndshm__ctlh h = NDSHM__CTLH_INIT;
        struct ndshm__map dm = {0};
        struct ndshm__geom g1;
        if (ndshm__ctl_open(name, 1, 0, &h) ||
            ndshm__map_data(name, 1, seg_token(name, 1), &h, 1, &dm, &g1))
            _exit(4);
        struct ndshm__ctl *c = ndshm__ctlh_ctl(&h);
        atomic_store(&((struct ndshm__data *)dm.base)->sealed, 1); /* W4 */
        atomic_store(&c->token[0], seg_token(name, 2));            /* W5: the token, */
        atomic_store(&c->head, 2);                                 /* head, not gen */
        raise(SIGKILL);
        _exit(5);
    }
    reap_killed(pid);
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_writer_version(w), 2);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.generation, 2); /* the re-allocation was completed */
    assert_int_equal(tu_count_segments(name), 2);
    ndshm_options ro = NDSHM_OPTIONS_INIT;
    ro.flags = NDSHM_REPLAY;
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, &ro, &r), NDSHM_OK);
    ndshm_info info;
    /* the new segment carries version 1 (re-allocations keep the newest N - 1 versions) */
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 1);
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.nbytes, 100000);
    assert_int_equal(publish_v(w, 10), 3);
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 3);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    ndshm_reader_close(r);
}

/* ----- writer killed at random moments in a tight publish loop, many times ------------------- */

struct loop_reader {
    const char *name;
    atomic_int stop;
    atomic_ulong reads;
    atomic_int bad;
};

static void *latest_thread(void *arg)
{
    struct loop_reader *lr = arg;
    ndshm_reader *r;
    if (ndshm_reader_open(lr->name, NULL, &r) != NDSHM_OK) {
        atomic_store(&lr->bad, 1);
        return NULL;
    }
    void *buf = malloc(4u << 20);
    uint64_t last = ndshm_reader_version(r);
    while (!atomic_load(&lr->stop) && buf) {
        ndshm_info info;
        int rc = ndshm_read_latest(r, buf, 4u << 20, &info);
        if (rc == NDSHM_OK) {
            if (!tu_check(buf, (size_t)info.nbytes, info.version) || info.version <= last)
                atomic_store(&lr->bad, 1);
            last = info.version;
            atomic_fetch_add(&lr->reads, 1);
        } else if (rc < 0) {
            atomic_store(&lr->bad, 1);
        }
    }
    free(buf);
    ndshm_reader_close(r);
    return NULL;
}

static void test_kill_in_publish_loop(void **state)
{
    (void)state;
    const char *name = tu_name("loop");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 2;
    ndshm_writer *w0;
    assert_int_equal(ndshm_writer_create(name, &o, &w0), NDSHM_OK);
    publish_v(w0, 64);
    assert_int_equal(ndshm_writer_close(w0), NDSHM_OK);

    struct loop_reader lr = {.name = name};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, latest_thread, &lr), 0);
    ndshm_reader *r; /* read_next, stays attached across all the takeovers */
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    uint64_t last = ndshm_reader_version(r), got = 0, lost = 0;
    int rounds = 12, odd_seen = 0;
    for (int round = 0; round < rounds; round++) {
        pid_t pid = tu_spawn();
        if (pid == 0) {
            ndshm_writer *w;
            int rc;
            while ((rc = ndshm_writer_open(name, NULL, &w)) == NDSHM_E_WRITER_ALIVE)
                tu_sleep_ms(1);
            if (rc != NDSHM_OK)
                _exit(1);
            void *buf = malloc(BIG);
            for (;;) {
                uint64_t v = ndshm_writer_version(w) + 1;
                /* sizes vary: every few versions a larger one forces a re-allocation */
                size_t n = (v % 7 == 0) ? BIG : tu_size_for(v, 1, BIG / 4);
                uint64_t shape[1] = {n};
                tu_fill(buf, n, v);
                if (ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL) != NDSHM_OK)
                    _exit(2);
            }
        }
        /* Kill once the writer has made progress: a few versions past where we are. */
        ndshm_info info;
        int seen = 0;
        while (seen < 3 + round) {
            /* WRITER_GONE until the new writer has claimed the channel */
            int rc, tries = 0;
            while ((rc = ndshm_wait(r, WAIT_NS)) == NDSHM_WRITER_GONE && tries++ < 10000)
                tu_sleep_ms(1);
            assert_int_equal(rc, NDSHM_OK);
            while ((rc = read_check(r, 1, &info)) == NDSHM_OK) {
                assert_int_equal(info.version, last + info.dropped + 1);
                lost += info.dropped;
                last = info.version;
                got++;
                seen++;
            }
            assert_true(rc == NDSHM_NO_NEW || rc == NDSHM_CONTENDED);
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        reap_killed(pid);
        odd_seen += odd_slots(name) > 0;
        /* Drain; then the reader learns that the writer is gone. */
        int rc;
        while ((rc = read_check(r, 1, &info)) == NDSHM_OK || rc == NDSHM_CONTENDED) {
            if (rc != NDSHM_OK)
                continue;
            assert_int_equal(info.version, last + info.dropped + 1);
            lost += info.dropped;
            last = info.version;
            got++;
        }
        assert_int_equal(rc, NDSHM_NO_NEW);
        assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_WRITER_GONE);
    }
    /* Last takeover: numbering continues after the last version any reader could see. */
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_writer_version(w), last);
    assert_int_equal(odd_slots(name), 0);
    assert_int_equal(publish_v(w, 100), last + 1);
    ndshm_info info;
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, last + 1);
    assert_int_equal(info.dropped, 0);
    assert_int_equal(tu_count_segments(name), 2);
    atomic_store(&lr.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&lr.bad), 0);
    assert_true(atomic_load(&lr.reads) > 0);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    ndshm_reader_close(r);
    print_message("publish-loop kills: %d rounds, %llu versions read in order, %llu counted as "
                  "dropped, %d kills left a slot mid-write, %lu concurrent latest reads\n",
                  rounds, (unsigned long long)got, (unsigned long long)lost, odd_seen,
                  (unsigned long)atomic_load(&lr.reads));
}

/* ----- takeover only from a dead writer: the kernel's lock, across pid namespaces ---------- */

/* A writer that just sits there, in this pid namespace or (other_ns) a new one, where its pid
 * is 1 and means nothing to us. Returns the pid to kill (the namespace's init for other_ns:
 * killing it kills the writer). -1 if a new pid namespace cannot be made here. */
static pid_t sitting_writer(const char *name, int other_ns, int *ready_fd)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = tu_spawn();
    if (pid == 0) {
        close(ready[0]);
        if (other_ns) {
            if (unshare(CLONE_NEWPID) != 0) {
                write_all(ready[1], "u", 1);
                _exit(0);
            }
            pid_t inner = fork(); /* pid 1 of the new namespace */
            if (inner < 0)
                _exit(1);
            if (inner == 0)
                prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (inner > 0) {
                int st;
                waitpid(inner, &st, 0);
                _exit(0);
            }
        }
        ndshm_writer *w;
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.flags = NDSHM_OPEN_OR_CREATE;
        if (ndshm_writer_create(name, &o, &w) != NDSHM_OK || publish_v_rc(w, 10) != NDSHM_OK)
            _exit(1);
        write_all(ready[1], "r", 1);
        pause();
        _exit(0);
    }
    close(ready[1]); /* a child that dies early gives EOF, not a hang */
    char c = read_byte(ready[0]);
    *ready_fd = ready[0];
    if (c == 'u') {
        tu_child_status(pid);
        close(ready[0]);
        return -1;
    }
    assert_int_equal(c, 'r');
    return pid;
}

static void test_takeover_rules(void **state)
{
    (void)state;
    const char *name = tu_name("rules");
    int rfd;
    pid_t pid = sitting_writer(name, 0, &rfd);
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_E_WRITER_ALIVE);
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_EXISTS);
    ndshm_options oc = NDSHM_OPTIONS_INIT;
    oc.flags = NDSHM_OPEN_OR_CREATE;
    assert_int_equal(ndshm_writer_create(name, &oc, &w), NDSHM_E_WRITER_ALIVE);
    /* Forcing changes nothing: a live writer is never taken over (two writers would interleave
     * their versions). */
    ndshm_options of = NDSHM_OPTIONS_INIT;
    of.flags = NDSHM_FORCE_TAKEOVER;
    assert_int_equal(ndshm_writer_open(name, &of, &w), NDSHM_E_WRITER_ALIVE);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.writer_alive, 1);
    assert_int_equal(ci.writer_pid, pid);
    assert_false(ci.flags & NDSHM_ENTRY_OTHER_PIDNS);
    assert_int_equal(ndshm_gc(NULL), NDSHM_OK);
    assert_int_equal(tu_count_segments(name), 2); /* (other tests' dead channels may go) */
    /* Dead: taken over at once, numbering continues. */
    kill(pid, SIGKILL);
    reap_killed(pid);
    close(rfd);
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_writer_version(w), 1);
    assert_int_equal(publish_v(w, 10), 2);
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.writer_pid, getpid());
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
}

/* A live writer in another pid namespace (containers sharing /dev/shm): its pid means nothing
 * here, but its kernel lock does. It looks alive to readers, gc and would-be successors, and
 * dead the moment it is killed. */
static void test_writer_in_other_pid_namespace(void **state)
{
    (void)state;
    const char *name = tu_name("pidns");
    int rfd;
    pid_t pid = sitting_writer(name, 1, &rfd);
    if (pid < 0) {
        print_message("unshare(CLONE_NEWPID) not permitted here: skipped\n");
        skip();
    }
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.writer_alive, 1);
    assert_int_equal(ci.writer_pid, 1); /* its pid in its own namespace */
    assert_true(ci.flags & NDSHM_ENTRY_OTHER_PIDNS);
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_E_WRITER_ALIVE);
    assert_int_equal(ndshm_gc(NULL), NDSHM_OK);
    assert_int_equal(tu_count_segments(name), 2);
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    assert_int_equal(ndshm_reader_writer_alive(r), 1);
    ndshm_info info;
    assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
    assert_false(info.flags & NDSHM_INFO_WRITER_GONE);
    assert_int_equal(ndshm_wait(r, 50000000), NDSHM_TIMEOUT); /* not WRITER_GONE */
    kill(pid, SIGKILL);
    reap_killed(pid);
    close(rfd);
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_WRITER_GONE);
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_OK);
    assert_int_equal(publish_v(w, 10), 2);
    assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_OK);
    assert_int_equal(read_check(r, 1, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    ndshm_reader_close(r);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
}

/* ----- readers killed at any point harm nothing ---------------------------------------------- */

static void test_reader_killed(void **state)
{
    (void)state;
    const char *name = tu_name("rkill");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 3;
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
    publish_v(w, 1000);
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    uint64_t last = ndshm_reader_version(r);
    int nkids = 4;
    for (int round = 0; round < 6; round++) {
        pid_t kids[4];
        for (int k = 0; k < nkids; k++) {
            kids[k] = tu_spawn();
            if (kids[k] == 0) {
                ndshm_reader *cr;
                if (ndshm_reader_open(name, NULL, &cr) != NDSHM_OK)
                    _exit(1);
                static unsigned char buf[1u << 20];
                for (unsigned i = 0;; i++) {
                    ndshm_info info;
                    ndshm_view v;
                    switch ((i + (unsigned)k) % 4) {
                    case 0: /* asleep in the futex, waiters raised */
                        ndshm_wait(cr, -1);
                        break;
                    case 1: /* holding a view */
                        if (ndshm_view_latest(cr, &v) == NDSHM_OK) {
                            if (k == 1)
                                pause(); /* die with the view held */
                            ndshm_view_release(&v);
                        }
                        break;
                    case 2:
                        ndshm_read_next(cr, buf, sizeof buf, &info);
                        break;
                    default:
                        ndshm_read_latest(cr, buf, sizeof buf, &info);
                    }
                }
            }
        }
        /* Publish while the readers run, then kill them wherever they are. */
        for (int i = 0; i < 200; i++)
            publish_v(w, tu_size_for((uint64_t)i, 1, 300000));
        for (int k = 0; k < nkids; k++) {
            kill(kids[k], SIGKILL);
            reap_killed(kids[k]);
        }
        /* Writer and the surviving reader are unaffected. */
        uint64_t v = publish_v(w, 5000);
        ndshm_info info;
        assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_true(info.version > last);
        last = info.version;
        assert_int_equal(ndshm_reader_writer_alive(r), 1);
    }
    /* Readers killed asleep left their announcement: it costs at most one wake-up. */
    for (int i = 0; i < 100; i++)
        publish_v(w, 64);
    assert_int_equal(tu_count_segments(name), 2);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    ndshm_reader_close(r);
}

/* ----- stale channels: gc removes only channels whose writer is dead or gone ----------------- */

static char private_dir[128];
static char saved_dir[256];

static int mounted;
static void private_dir_leave(void);

static void private_dir_enter(const char *tag)
{
    private_dir_leave(); /* a previous test may have failed inside its private directory */
    const char *prev = getenv("NDSHM_DIR"); /* tu_init() may have set a per-process one */
    snprintf(saved_dir, sizeof saved_dir, "%s", prev ? prev : "");
    snprintf(private_dir, sizeof private_dir, "/dev/shm/ndt-%d-%s-XXXXXX", (int)getpid(), tag);
    assert_non_null(mkdtemp(private_dir));
    setenv("NDSHM_DIR", private_dir, 1);
}

static int dir_entries(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void private_dir_leave(void)
{
    if (mounted && private_dir[0])
        umount2(private_dir, MNT_DETACH);
    mounted = 0;
    if (!private_dir[0])
        return;
    tu_cleanup();
    if (saved_dir[0])
        setenv("NDSHM_DIR", saved_dir, 1);
    else
        unsetenv("NDSHM_DIR");
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", private_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", private_dir);
        private_dir[0] = 0;
    }
}

static void test_gc_only_dead(void **state)
{
    (void)state;
    private_dir_enter("gc");
    const char *dead = tu_name("gc-dead"), *closed = tu_name("gc-closed"),
               *live = tu_name("gc-live");
    pid_t pid = tu_spawn();
    if (pid == 0) {
        ndshm_writer *w;
        if (ndshm_writer_create(dead, NULL, &w) != NDSHM_OK)
            _exit(1);
        raise(SIGKILL);
    }
    reap_killed(pid);
    ndshm_writer *wl, *wc;
    assert_int_equal(ndshm_writer_create(closed, NULL, &wc), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(wc), NDSHM_OK);
    assert_int_equal(ndshm_writer_create(live, NULL, &wl), NDSHM_OK);
    publish_v(wl, 10);

    ndshm_channel_info *list;
    size_t n;
    assert_int_equal(ndshm_list(&list, &n), NDSHM_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i].status, NDSHM_OK);
        assert_int_equal(list[i].writer_alive, strcmp(list[i].name, live) == 0);
    }
    ndshm_list_free(list);
    size_t removed = 0;
    assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(tu_count_segments(dead), 0);
    assert_int_equal(tu_count_segments(closed), 0);
    assert_int_equal(tu_count_segments(live), 2);
    assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(publish_v(wl, 10), 2); /* the live channel still works */
    assert_int_equal(ndshm_writer_close(wl), NDSHM_OK);
    assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(dir_entries(private_dir), 0);
    private_dir_leave();
}

/* ----- tmpfs full ----------------------------------------------------------------------------- */

static void nospc_checks(const char *dir)
{
    const char *name = tu_name("nospc");
    ndshm_writer *w;
    ndshm_options big = NDSHM_OPTIONS_INIT;
    big.capacity = 8u << 20; /* 4 slots x 8 MiB cannot be backed */
    assert_int_equal(ndshm_writer_create(name, &big, &w), NDSHM_E_NOSPC);
    assert_int_equal(dir_entries(dir), 0); /* nothing left behind */
    ndshm_options small = NDSHM_OPTIONS_INIT;
    small.capacity = 4096;
    assert_int_equal(ndshm_writer_create(name, &small, &w), NDSHM_OK);
    uint64_t v = publish_v(w, 4000);
    /* Re-allocation that cannot be backed: fails now, with a clear status, not SIGBUS later. */
    void *buf = calloc(1, 4u << 20);
    assert_non_null(buf);
    uint64_t shape[1] = {4u << 20};
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL), NDSHM_E_NOSPC);
    void *p;
    assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &p), NDSHM_E_NOSPC);
    /* A reservation that cannot be backed fails at once and changes nothing. */
    assert_int_equal(ndshm_writer_reserve(w, 16u << 20), NDSHM_E_NOSPC);
    assert_int_equal(tu_count_segments(name), 2);
    assert_int_equal(dir_entries(dir), 2);
    free(buf);
    /* The channel keeps working at its current size. */
    assert_int_equal(publish_v(w, 4000), v + 1);
    assert_int_equal(ndshm_writer_reserve(w, 8192), NDSHM_OK);
    assert_int_equal(publish_v(w, 4000), v + 2);
    v++;
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    ndshm_info info;
    assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
    assert_int_equal(info.version, v + 1);
    ndshm_reader_close(r);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
    assert_int_equal(dir_entries(dir), 0);
}

static void test_tmpfs_full(void **state)
{
    (void)state;
    private_dir_enter("tmpfs");
    if (mount("tmpfs", private_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0700") != 0) {
        print_message("mount -t tmpfs not permitted (%s): fault injection only\n", strerror(errno));
        private_dir_leave();
        skip();
    }
    mounted = 1;
    nospc_checks(private_dir);
    assert_int_equal(umount(private_dir), 0);
    mounted = 0;
    private_dir_leave();
}

/* The same checks with ENOSPC injected through the platform interface (always runs). */
static uint64_t quota_used, quota_max;
static int quota_fallocate(int fd, uint64_t size)
{
    if (quota_used + size > quota_max)
        return -ENOSPC;
    int rc = ndshm__os_linux.fallocate(fd, size);
    if (rc == 0)
        quota_used += size;
    return rc;
}
static int quota_unlink(const char *seg)
{
    return ndshm__os_linux.unlink(seg); /* the quota is a bound, not an exact account */
}

static void test_nospc_injected(void **state)
{
    (void)state;
    private_dir_enter("inj");
    /* static and never rewritten while published: liburcu's call_rcu thread may still use it
     * (to unmap) after the test switches back */
    static struct ndshm__os os;
    static int built;
    if (!built) {
        os = ndshm__os_linux;
        os.fallocate = quota_fallocate;
        os.unlink = quota_unlink;
        built = 1;
    }
    quota_used = 0;
    quota_max = 2u << 20;
    ndshm__os_set(&os);
    nospc_checks(private_dir);
    ndshm__os_set(NULL);
    private_dir_leave();
}

/* ----- permissions ---------------------------------------------------------------------------- */

static int maps_mentioning(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static int mapped_for(const char *name)
{
    char needle[256];
    snprintf(needle, sizeof needle, "ndshm.%s", name);
    return maps_mentioning(needle);
}

/* In a child that dropped to (uid, gid): every check of another user's view of the channels.
 * Returns 0 when all hold, else the number of the check that failed. */
static int as_other_user(const char *priv, const char *p644, const char *p640, int in_group)
{
    ndshm_reader *r = NULL;
    ndshm_channel_info ci;
    ndshm_writer *cw = NULL;
    ndshm_info info;
    static unsigned char buf[1 << 20];
    /* 0600: nothing at all, and nothing left mapped */
    if (ndshm_reader_open(priv, NULL, &r) != NDSHM_E_PERM || r)
        return 11;
    if (ndshm_stat(priv, &ci) != NDSHM_E_PERM)
        return 12;
    if (ndshm_writer_open(priv, NULL, &cw) != NDSHM_E_PERM)
        return 13;
    if (mapped_for(priv) != 0)
        return 14;
    /* 0644: a reader with read permission only reads, waits, and cannot take over */
    if (ndshm_reader_open(p644, NULL, &r) != NDSHM_OK)
        return 15;
    if (ndshm_read_latest(r, buf, sizeof buf, &info) != NDSHM_OK ||
        !tu_check(buf, (size_t)info.nbytes, info.version))
        return 16;
    if (ndshm_wait(r, 20000000) != NDSHM_TIMEOUT)
        return 17;
    if (ndshm_writer_open(p644, NULL, &cw) != NDSHM_E_PERM)
        return 18;
    ndshm_reader_close(r);
    /* no file of the channel can be opened for writing (so none can be truncated) */
    char seg[NDSHM__SEG_MAX], path[512];
    ndshm__ctl_name(seg, p644);
    seg_path(path, sizeof path, seg);
    if (open(path, O_RDWR) >= 0 || truncate(path, 0) == 0)
        return 19;
    if (ndshm_stat(p644, &ci) != NDSHM_OK || !tu_data_seg(p644, ci.generation, seg, sizeof seg))
        return 20;
    seg_path(path, sizeof path, seg);
    if (open(path, O_RDWR) >= 0 || truncate(path, 0) == 0)
        return 21;
    /* 0640, group-shared */
    int rc = ndshm_reader_open(p640, NULL, &r);
    if (in_group ? rc != NDSHM_OK : rc != NDSHM_E_PERM)
        return 22;
    if (rc == NDSHM_OK) {
        if (ndshm_read_latest(r, buf, sizeof buf, &info) != NDSHM_OK ||
            !tu_check(buf, (size_t)info.nbytes, info.version))
            return 23;
        ndshm_reader_close(r);
    }
    return 0;
}

static pid_t run_as(uid_t uid, gid_t gid, const char *a, const char *b, const char *c, int in_group)
{
    pid_t pid = tu_spawn();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
            _exit(10);
        _exit(as_other_user(a, b, c, in_group));
    }
    return pid;
}

/* Another user as a reader: needs read permission only, gets nothing without it, can open
 * nothing for writing. A group member reads a 0640 channel; others do not. */
static void test_other_users(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* dropping to another uid needs root */
    private_dir_enter("users");
    assert_int_equal(chmod(private_dir, 01777), 0); /* like /dev/shm */
    const char *priv = tu_name("perm"), *p644 = tu_name("perm644"), *p640 = tu_name("perm640");
    ndshm_writer *w, *w2, *w3;
    assert_int_equal(ndshm_writer_create(priv, NULL, &w), NDSHM_OK); /* default mode 0600 */
    publish_v(w, 100);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.mode = 0644;
    assert_int_equal(ndshm_writer_create(p644, &o, &w2), NDSHM_OK);
    publish_v(w2, 100);
    o.mode = 0660; /* group write is dropped: readers need none */
    assert_int_equal(ndshm_writer_create(p640, &o, &w3), NDSHM_OK);
    char seg[NDSHM__SEG_MAX], path[512];
    ndshm__ctl_name(seg, p640);
    seg_path(path, sizeof path, seg);
    assert_int_equal(chown(path, 0, 4242), 0); /* share with group 4242 */
    publish_v(w3, 70000); /* re-allocates: the new data segment follows the group */
    assert_int_equal(tu_data_seg(p640, 2, seg, sizeof seg), 1);
    seg_path(path, sizeof path, seg);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_gid, 4242);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(tu_child_status(run_as(65534, 4242, priv, p644, p640, 1)), 0);
    assert_int_equal(tu_child_status(run_as(65533, 65533, priv, p644, p640, 0)), 0);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(w2), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(w3), NDSHM_OK);
    private_dir_leave();
}

/* What a hostile reader can write is the wait page only. Scribbling over all of it (as a
 * reader with access would) never faults the writer, never changes what readers read, and
 * costs sleepers at most their sleep slice. */
static void test_hostile_wait_page(void **state)
{
    (void)state;
    const char *name = tu_name("hostile");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.mode = 0644;
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
    publish_v(w, 100);
    struct ndshm__ctlh h = NDSHM__CTLH_INIT;
    assert_int_equal(ndshm__ctl_open(name, 0, 0, &h), NDSHM_OK);
    int id = atomic_load(&ndshm__ctlh_ctl(&h)->wait_id);
    ndshm__ctl_close(&h);
    assert_true(id >= 0);
    pid_t pid = tu_spawn();
    if (pid == 0) {
        if (geteuid() == 0 && (setgroups(0, NULL) || setgid(65534) || setuid(65534)))
            _exit(10);
        void *pg = shmat(id, NULL, 0); /* 0644 channel: others may announce sleeps */
        if (pg == (void *)-1)
            _exit(11);
        for (int i = 0; i < 2000; i++) {
            memset(pg, i & 1 ? 0xff : 0, NDSHM__PAGE);
            if (shmctl(id, IPC_RMID, NULL) == 0) /* not theirs to remove */
                _exit(12);
        }
        _exit(0);
    }
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    ndshm_info info;
    for (int i = 0; i < 200; i++) {
        uint64_t v = publish_v(w, tu_size_for((uint64_t)i, 1, 5000));
        assert_int_equal(ndshm_wait(r, WAIT_NS), NDSHM_OK);
        assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
    }
    assert_int_equal(tu_child_status(pid), 0);
    ndshm_reader_close(r);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
}

static void assert_mode(const char *seg, unsigned mode)
{
    char path[512];
    seg_path(path, sizeof path, seg);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
}

static void test_modes(void **state)
{
    (void)state;
    mode_t old = umask(077); /* the chosen mode is exact, not masked by the umask */
    const char *name = tu_name("mode660");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.mode = 0660; /* asked for group write: readers need none, so the files get 0640 */
    o.capacity = 4096;
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    assert_mode(seg, 0640);
    assert_true(tu_data_seg(name, 1, seg, sizeof seg));
    assert_mode(seg, 0640);
    publish_v(w, 100000); /* re-allocation keeps the mode */
    assert_true(tu_data_seg(name, 2, seg, sizeof seg));
    assert_mode(seg, 0640);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.mode, 0640);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);

    const char *def = tu_name("mode600");
    assert_int_equal(ndshm_writer_create(def, NULL, &w), NDSHM_OK);
    ndshm__ctl_name(seg, def);
    assert_mode(seg, 0600);
    assert_true(tu_data_seg(def, 1, seg, sizeof seg));
    assert_mode(seg, 0600);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    umask(old);

    /* O_NOFOLLOW|O_EXCL: a symlink planted under a channel's name is neither followed nor
     * overwritten. */
    const char *planted = tu_name("planted");
    char path[512];
    ndshm__ctl_name(seg, planted);
    seg_path(path, sizeof path, seg);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    ndshm_reader *r;
    assert_true(ndshm_reader_open(planted, NULL, &r) < 0);
    assert_int_equal(ndshm_writer_create(planted, NULL, &w), NDSHM_E_EXISTS);
    assert_int_equal(unlink(path), 0);
}

/* ----- readers map data read-only ---------------------------------------------------------------
 */

static void on_segv(int sig)
{
    (void)sig;
    _exit(77);
}

static void test_reader_mapping_readonly(void **state)
{
    (void)state;
    const char *name = tu_name("ro");
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    publish_v(w, 4096);
    pid_t pid = tu_spawn();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        ndshm_reader *r;
        ndshm_view v;
        if (ndshm_reader_open(name, NULL, &r) != NDSHM_OK || ndshm_view_latest(r, &v))
            _exit(1);
        volatile unsigned char *p = (volatile unsigned char *)v.data;
        p[0] = (unsigned char)(p[0] + 1); /* must fault */
        _exit(2);
    }
    assert_int_equal(tu_child_status(pid), 77);
    /* ... and the published data is intact. */
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    ndshm_info info;
    assert_int_equal(read_check(r, 0, &info), NDSHM_OK);
    ndshm_reader_close(r);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
}

static void cleanup_all(void)
{
    tu_kill_strays();
    private_dir_leave();
}

int main(void)
{
    tu_init();
    atexit(cleanup_all);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_kill_mid_loan, setup),
        cmocka_unit_test_setup(test_kill_mid_realloc, setup),
        cmocka_unit_test_setup(test_kill_between_head_and_gen, setup),
        cmocka_unit_test_setup(test_kill_in_publish_loop, setup),
        cmocka_unit_test_setup(test_takeover_rules, setup),
        cmocka_unit_test_setup(test_writer_in_other_pid_namespace, setup),
        cmocka_unit_test_setup(test_reader_killed, setup),
        cmocka_unit_test_setup(test_gc_only_dead, setup),
        cmocka_unit_test_setup(test_tmpfs_full, setup),
        cmocka_unit_test_setup(test_nospc_injected, setup),
        cmocka_unit_test_setup(test_other_users, setup),
        cmocka_unit_test_setup(test_hostile_wait_page, setup),
        cmocka_unit_test_setup(test_modes, setup),
        cmocka_unit_test_setup(test_reader_mapping_readonly, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
