/*
 * Waitsets (src/waitset.c): one wait for many channels, across processes. Nothing here
 * asserts a time: "woken", "which channel" and the payloads are what is checked; every wait
 * has a generous timeout whose expiry is a failure that says what was expected.
 *   - arguments and membership;
 *   - nothing new: TIMEOUT with no key;
 *   - which: a writer process publishes on one of 64 channels at a time, chosen by a fixed
 *     sequence; the waitset reports exactly that channel, whose payload checks out;
 *   - level-triggered: a member stays reported until it is read;
 *   - the descriptor: poll() on ndshm_waitset_fd() becomes readable for a publish in another
 *     process;
 *   - forged registrations: wait-page entries naming a page that is not a doorbell, a page
 *     of the wrong size and a bit out of range are never written; the genuine one still rings;
 *   - a waitset killed without closing: its registration is dropped by the writer (nbells
 *     back to 0) after 4096 rings of a bit nobody takes;
 *   - writer takeover: the waitset re-registers in the new writer's wait page;
 *   - stress: 4 writer processes x 16 channels publishing checksummed versions at random;
 *     the waiting process reads every reported member with read_next and checks every
 *     payload; got + dropped adds up to what each channel published.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

#define WAIT_NS INT64_C(20000000000) /* 20 s: expiry is a failure, never a measurement */

struct shared {
    atomic_int ready, stop;
    _Atomic uint32_t cmd;  /* parent -> child: channel to publish on + 1, 0 = none */
    _Atomic uint32_t done; /* child -> parent: commands executed */
    _Atomic uint64_t published[64];
    atomic_int failed;
};
static struct shared *sh;

static pid_t kids[8];
static int nkids;

static int kill_kids(void **state)
{
    (void)state;
    for (int i = 0; i < nkids; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    nkids = 0;
    memset(sh, 0, sizeof *sh);
    tu_cleanup();
    return 0;
}

static pid_t spawn(void)
{
    fflush(NULL);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    else
        kids[nkids++] = p;
    return p;
}

static void await_flag(atomic_int *f, int v)
{
    for (int i = 0; i < 20000 && atomic_load(f) < v; i++)
        usleep(1000);
    if (atomic_load(f) < v)
        fail_msg("child did not get ready within 20 s (flag %d, expected %d)", atomic_load(f), v);
}

static uint64_t seed_of(uint32_t chan, uint64_t v)
{
    return (uint64_t)chan << 40 | v;
}

static size_t size_of(uint64_t v)
{
    return 256 + (size_t)(v % 5) * 100;
}

static int publish(ndshm_writer *w, uint32_t chan)
{
    unsigned char buf[1024];
    uint64_t v = ndshm_writer_version(w) + 1;
    size_t n = size_of(v);
    tu_fill(buf, n, seed_of(chan, v));
    uint64_t shape[1] = {n};
    return ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL);
}

static const char *chan_name(uint32_t i)
{
    char b[32];
    snprintf(b, sizeof b, "ws%u", i);
    return tu_name(b);
}

/* Child: create n channels, then publish on the channel the parent names, one command at a
 * time, until told to stop. */
static void commanded_writer(uint32_t n)
{
    ndshm_writer *w[64];
    for (uint32_t i = 0; i < n; i++)
        if (ndshm_writer_create(chan_name(i), NULL, &w[i]))
            _exit(2);
    atomic_store(&sh->ready, 1);
    uint32_t done = 0;
    while (!atomic_load(&sh->stop)) {
        uint32_t c = atomic_load(&sh->cmd);
        if (c == 0) {
            usleep(100);
            continue;
        }
        if (publish(w[c - 1], c - 1))
            atomic_store(&sh->failed, 1);
        atomic_store(&sh->cmd, 0);
        atomic_store(&sh->done, ++done);
    }
    for (uint32_t i = 0; i < n; i++)
        ndshm_writer_close(w[i]);
    _exit(0);
}

static void command(uint32_t chan)
{
    uint32_t before = atomic_load(&sh->done);
    atomic_store(&sh->cmd, chan + 1);
    for (int i = 0; i < 20000 && atomic_load(&sh->done) == before; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&sh->done), before + 1);
}

static void open_members(ndshm_waitset *ws, ndshm_reader **r, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(ndshm_reader_open(chan_name(i), NULL, &r[i]), NDSHM_OK);
        assert_int_equal(ndshm_waitset_add(ws, r[i], 1000 + i), NDSHM_OK);
    }
}

static void arguments(void **state)
{
    (void)state;
    ndshm_waitset *ws;
    size_t n;
    uint64_t k;
    assert_int_equal(ndshm_waitset_create(NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(chan_name(0), NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(chan_name(0), NULL, &r), NDSHM_OK);
    assert_int_equal(ndshm_waitset_add(NULL, r, 1), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_add(ws, NULL, 1), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_add(ws, r, 1), NDSHM_OK);
    assert_int_equal(ndshm_waitset_add(ws, r, 2), NDSHM_E_EXISTS);
    assert_int_equal(ndshm_waitset_size(ws), 1);
    assert_int_equal(ndshm_waitset_wait(ws, 0, NULL, 1, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_wait(ws, 0, &k, 1, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_wait(NULL, 0, &k, 1, &n), NDSHM_E_INVAL);
    assert_int_equal(ndshm_waitset_fd(ws, NULL), NDSHM_E_INVAL);
    /* the registration is in the channel's wait page */
    struct ndshm__waitpg *pg = ndshm__reader_waitpg(r);
    assert_non_null(pg);
    assert_int_equal(atomic_load(&pg->nbells), 1);
    assert_int_equal(ndshm_waitset_remove(ws, r), NDSHM_OK);
    assert_int_equal(atomic_load(&pg->nbells), 0);
    assert_int_equal(ndshm_waitset_remove(ws, r), NDSHM_E_NOENT);
    assert_int_equal(ndshm_waitset_size(ws), 0);
    assert_int_equal(ndshm_waitset_close(ws), NDSHM_OK);
    assert_int_equal(ndshm_waitset_close(NULL), NDSHM_OK);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
}

static void nothing_new_times_out(void **state)
{
    (void)state;
    ndshm_writer *w[3];
    ndshm_reader *r[3];
    ndshm_waitset *ws;
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(ndshm_writer_create(chan_name(i), NULL, &w[i]), NDSHM_OK);
        assert_int_equal(publish(w[i], i), NDSHM_OK);
    }
    open_members(ws, r, 3);
    uint64_t keys[4];
    size_t n = 99;
    /* a new handle starts before the newest version: all three are ready at first */
    assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 4, &n), NDSHM_OK);
    assert_int_equal(n, 3);
    unsigned char buf[1024];
    ndshm_info info;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ndshm_read_latest(r[i], buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 4, &n), NDSHM_TIMEOUT);
    assert_int_equal(n, 0);
    assert_int_equal(ndshm_waitset_wait(ws, 20000000, keys, 4, &n), NDSHM_TIMEOUT);
    assert_int_equal(n, 0);
    ndshm_waitset_close(ws);
    for (int i = 0; i < 3; i++) {
        ndshm_reader_close(r[i]);
        ndshm_writer_close(w[i]);
    }
}

static void which_channel(void **state)
{
    (void)state;
    const uint32_t N = 64;
    if (spawn() == 0)
        commanded_writer(N);
    await_flag(&sh->ready, 1);
    ndshm_waitset *ws;
    ndshm_reader *r[64];
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    open_members(ws, r, N);
    uint64_t keys[64];
    size_t n;
    unsigned char buf[1024];
    ndshm_info info;
    uint64_t x = 12345;
    for (int round = 0; round < 300; round++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint32_t c = (uint32_t)(x >> 33) % N;
        command(c);
        int rc = ndshm_waitset_wait(ws, WAIT_NS, keys, 64, &n);
        if (rc != NDSHM_OK)
            fail_msg("round %d: publish on channel %u, wait gave %s", round, c,
                     ndshm_status_name(rc));
        if (n != 1 || keys[0] != 1000 + c)
            fail_msg("round %d: published on channel %u (key %u), waitset reported %zu keys, "
                     "first %llu",
                     round, c, 1000 + c, n, (unsigned long long)keys[0]);
        assert_int_equal(ndshm_read_latest(r[c], buf, sizeof buf, &info), NDSHM_OK);
        assert_true(tu_check(buf, info.nbytes, seed_of(c, info.version)));
        assert_int_equal(info.nbytes, size_of(info.version));
    }
    assert_int_equal(atomic_load(&sh->failed), 0);
    atomic_store(&sh->stop, 1);
    ndshm_waitset_close(ws);
    for (uint32_t i = 0; i < N; i++)
        ndshm_reader_close(r[i]);
}

static void level_triggered(void **state)
{
    (void)state;
    ndshm_writer *w[3];
    ndshm_reader *r[3];
    ndshm_waitset *ws;
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(ndshm_writer_create(chan_name(i), NULL, &w[i]), NDSHM_OK);
    open_members(ws, r, 3);
    uint64_t keys[4];
    size_t n;
    assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 4, &n), NDSHM_TIMEOUT);
    assert_int_equal(publish(w[0], 0), NDSHM_OK);
    assert_int_equal(publish(w[2], 2), NDSHM_OK);
    for (int twice = 0; twice < 2; twice++) {
        assert_int_equal(ndshm_waitset_wait(ws, WAIT_NS, keys, 4, &n), NDSHM_OK);
        assert_int_equal(n, 2);
        assert_true((keys[0] == 1000 && keys[1] == 1002) || (keys[0] == 1002 && keys[1] == 1000));
    }
    /* max 1: one now, the other still pending */
    assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 1, &n), NDSHM_OK);
    assert_int_equal(n, 1);
    unsigned char buf[1024];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r[0], buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(ndshm_waitset_wait(ws, WAIT_NS, keys, 4, &n), NDSHM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(keys[0], 1002);
    ndshm_waitset_close(ws);
    for (int i = 0; i < 3; i++) {
        ndshm_reader_close(r[i]);
        ndshm_writer_close(w[i]);
    }
}

static void descriptor_polls(void **state)
{
    (void)state;
    const uint32_t N = 8;
    if (spawn() == 0)
        commanded_writer(N);
    await_flag(&sh->ready, 1);
    ndshm_waitset *ws;
    ndshm_reader *r[8];
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    open_members(ws, r, N);
    int fd = -1;
    assert_int_equal(ndshm_waitset_fd(ws, &fd), NDSHM_OK);
    assert_true(fd >= 0);
    int fd2;
    assert_int_equal(ndshm_waitset_fd(ws, &fd2), NDSHM_OK);
    assert_int_equal(fd, fd2);
    uint64_t keys[8];
    size_t n;
    unsigned char buf[1024];
    ndshm_info info;
    for (uint32_t round = 0; round < 50; round++) {
        uint32_t c = (round * 5) % N;
        command(c);
        struct pollfd p = {fd, POLLIN, 0};
        int k = poll(&p, 1, 20000);
        if (k != 1 || !(p.revents & POLLIN))
            fail_msg("round %u: published on channel %u, poll gave %d (revents %#x) within 20 s",
                     round, c, k, p.revents);
        assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 8, &n), NDSHM_OK);
        assert_int_equal(n, 1);
        assert_int_equal(keys[0], 1000 + c);
        assert_int_equal(ndshm_read_latest(r[c], buf, sizeof buf, &info), NDSHM_OK);
        assert_true(tu_check(buf, info.nbytes, seed_of(c, info.version)));
        /* consumed: the next wait finds nothing */
        assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 8, &n), NDSHM_TIMEOUT);
    }
    atomic_store(&sh->stop, 1);
    ndshm_waitset_close(ws);
    for (uint32_t i = 0; i < N; i++)
        ndshm_reader_close(r[i]);
}

static void forged_registrations(void **state)
{
    (void)state;
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(chan_name(0), NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(chan_name(0), NULL, &r), NDSHM_OK);
    struct ndshm__waitpg *pg = ndshm__reader_waitpg(r);
    assert_non_null(pg);
    /* a page that is not a doorbell, and one of the wrong size that carries the magic */
    int id1 = shmget(IPC_PRIVATE, NDSHM__PAGE, IPC_CREAT | 0600);
    int id2 = shmget(IPC_PRIVATE, 2 * NDSHM__PAGE, IPC_CREAT | 0600);
    assert_true(id1 >= 0 && id2 >= 0);
    unsigned char *p1 = shmat(id1, NULL, 0), *p2 = shmat(id2, NULL, 0);
    shmctl(id1, IPC_RMID, NULL);
    shmctl(id2, IPC_RMID, NULL);
    assert_true(p1 != (void *)-1 && p2 != (void *)-1);
    memset(p1, 0xa5, NDSHM__PAGE);
    memset(p2, 0, 2 * NDSHM__PAGE);
    struct ndshm__bell *fake = (struct ndshm__bell *)(void *)p2;
    fake->magic = NDSHM__BELL_MAGIC;
    fake->layout = NDSHM__LAYOUT;
    fake->size = NDSHM__BELL_SIZE;
    fake->nbits = NDSHM__BELL_BITS;
    unsigned char copy2[2 * NDSHM__PAGE];
    memcpy(copy2, p2, sizeof copy2);
    /* and a genuine waitset */
    ndshm_waitset *ws;
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    assert_int_equal(ndshm_waitset_add(ws, r, 7), NDSHM_OK);
    int k = 0;
    while (atomic_load(&pg->bells[k]))
        k++;
    atomic_store(&pg->bells[k], NDSHM__BELL_ENTRY(id1, 3));
    atomic_store(&pg->bells[k + 1], NDSHM__BELL_ENTRY(id2, 3));
    atomic_store(&pg->bells[k + 2], NDSHM__BELL_ENTRY(ndshm__waitset_bell_id(ws), 0x7fffffff));
    atomic_store(&pg->bells[k + 3], NDSHM__BELL_ENTRY(-5, 1));
    atomic_fetch_add(&pg->nbells, 4);
    uint64_t keys[2];
    size_t n;
    unsigned char buf[1024];
    ndshm_info info;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(publish(w, 0), NDSHM_OK);
        assert_int_equal(ndshm_waitset_wait(ws, WAIT_NS, keys, 2, &n), NDSHM_OK);
        assert_int_equal(n, 1);
        assert_int_equal(keys[0], 7);
        assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    }
    /* bits of no member, set by anyone (the doorbell is writable by all), are dropped by the
     * next look, so they cannot keep the owner awake */
    struct ndshm__bell *bell = shmat(ndshm__waitset_bell_id(ws), NULL, 0);
    assert_true(bell != (void *)-1);
    atomic_fetch_or(&bell->bits[200], UINT64_C(1) << 5);
    assert_int_equal(ndshm_waitset_wait(ws, 0, keys, 2, &n), NDSHM_TIMEOUT);
    assert_int_equal(atomic_load(&bell->bits[200]), 0);
    shmdt(bell);
    for (unsigned i = 0; i < NDSHM__PAGE; i++)
        if (p1[i] != 0xa5)
            fail_msg("the writer wrote into a page that is not a doorbell (byte %u)", i);
    assert_memory_equal(p2, copy2, sizeof copy2);
    shmdt(p1);
    shmdt(p2);
    ndshm_waitset_close(ws);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
}

/* A waitset that registers, then dies without closing: its registration is dropped by the
 * writer whether the writer had rung it before (the doorbell then lives on, attached by the
 * writer only: the IPC_STAT check after 4096 rings of a bit nobody takes) or never (the
 * segment is gone at once). */
static void dead_waitset_is_dropped(void **state)
{
    (void)state;
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(chan_name(0), NULL, &w), NDSHM_OK);
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(chan_name(0), NULL, &r), NDSHM_OK);
    struct ndshm__waitpg *pg = ndshm__reader_waitpg(r);
    assert_non_null(pg);
    for (int rung = 0; rung < 2; rung++) {
        atomic_store(&sh->ready, 0);
        pid_t p = spawn();
        if (p == 0) {
            ndshm_reader *cr;
            ndshm_waitset *ws;
            if (ndshm_reader_open(chan_name(0), NULL, &cr) || ndshm_waitset_create(&ws) ||
                ndshm_waitset_add(ws, cr, 1))
                _exit(2);
            atomic_store(&sh->ready, 1);
            pause();
            _exit(0);
        }
        await_flag(&sh->ready, 1);
        assert_int_equal(atomic_load(&pg->nbells), 1);
        if (rung) /* the writer attaches the doorbell */
            assert_int_equal(publish(w, 0), NDSHM_OK);
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        nkids = 0;
        for (int i = 0; i < 4200; i++)
            assert_int_equal(publish(w, 0), NDSHM_OK);
        if (atomic_load(&pg->nbells) != 0)
            fail_msg("a dead waitset's registration (%s) is still there after 4200 publishes",
                     rung ? "rung before it died" : "never rung");
    }
    ndshm_reader_close(r);
    ndshm_writer_close(w);
}

static void takeover_reregisters(void **state)
{
    (void)state;
    if (spawn() == 0) { /* first writer: creates, then is killed */
        ndshm_writer *w;
        if (ndshm_writer_create(chan_name(0), NULL, &w))
            _exit(2);
        atomic_store(&sh->ready, 1);
        pause();
        _exit(0);
    }
    await_flag(&sh->ready, 1);
    ndshm_reader *r;
    ndshm_waitset *ws;
    assert_int_equal(ndshm_reader_open(chan_name(0), NULL, &r), NDSHM_OK);
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    assert_int_equal(ndshm_waitset_add(ws, r, 9), NDSHM_OK);
    kill(kids[0], SIGKILL);
    waitpid(kids[0], NULL, 0);
    nkids = 0;
    if (spawn() == 0) { /* the successor: takes over, publishes once the parent waits */
        ndshm_writer *w;
        if (ndshm_writer_open(chan_name(0), NULL, &w))
            _exit(2);
        atomic_store(&sh->ready, 2);
        while (!atomic_load(&sh->stop))
            usleep(1000);
        if (publish(w, 0))
            _exit(3);
        atomic_store(&sh->ready, 3);
        pause();
        _exit(0);
    }
    await_flag(&sh->ready, 2);
    uint64_t keys[2];
    size_t n;
    atomic_store(&sh->stop, 1);
    int rc = ndshm_waitset_wait(ws, WAIT_NS, keys, 2, &n);
    if (rc != NDSHM_OK || n != 1 || keys[0] != 9)
        fail_msg("after a takeover the new writer's publish was not reported: %s, %zu keys",
                 ndshm_status_name(rc), n);
    unsigned char buf[1024];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_true(tu_check(buf, info.nbytes, seed_of(0, info.version)));
    /* registered in the successor's page by now (the wait re-checked on its way) */
    struct ndshm__waitpg *pg = ndshm__reader_waitpg(r);
    assert_non_null(pg);
    assert_int_equal(atomic_load(&pg->nbells), 1);
    ndshm_waitset_close(ws);
    ndshm_reader_close(r);
}

/* ----- stress ------------------------------------------------------------------------------ */

#define SW 4  /* writer processes */
#define SC 16 /* channels each */

static void stress_writer(int k, unsigned seconds)
{
    ndshm_writer *w[SC];
    for (int i = 0; i < SC; i++)
        if (ndshm_writer_create(chan_name((uint32_t)(k * SC + i)), NULL, &w[i]))
            _exit(2);
    atomic_fetch_add(&sh->ready, 1);
    while (atomic_load(&sh->ready) < SW + 1)
        usleep(1000);
    uint64_t end = ndshm_now_ns() + seconds * 1000000000ull, x = (uint64_t)k + 1;
    while (ndshm_now_ns() < end) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint32_t c = (uint32_t)(x >> 33) % SC;
        if (publish(w[c], (uint32_t)(k * SC) + c))
            atomic_store(&sh->failed, 1);
        atomic_store(&sh->published[k * SC + c], ndshm_writer_version(w[c]));
        if ((x >> 20) % 4 == 0)
            usleep((useconds_t)((x >> 40) % 300));
    }
    atomic_fetch_add(&sh->stop, 1);
    pause(); /* keep the channels until the parent is done */
    _exit(0);
}

static void stress_many_writers(void **state)
{
    (void)state;
    const char *s = getenv("NDSHM_STRESS_SECONDS");
    unsigned secs = s && atoi(s) > 0 ? (unsigned)atoi(s) : 4;
    for (int k = 0; k < SW; k++)
        if (spawn() == 0)
            stress_writer(k, secs);
    await_flag(&sh->ready, SW);
    ndshm_waitset *ws;
    ndshm_reader *r[SW * SC];
    assert_int_equal(ndshm_waitset_create(&ws), NDSHM_OK);
    open_members(ws, r, SW * SC);
    atomic_store(&sh->ready, SW + 1);
    uint64_t got[SW * SC] = {0}, dropped[SW * SC] = {0}, last[SW * SC] = {0}, wakes = 0, bad = 0;
    unsigned char buf[1024];
    ndshm_info info;
    for (;;) {
        uint64_t keys[SW * SC];
        size_t n;
        int finished = atomic_load(&sh->stop) == SW;
        int rc = ndshm_waitset_wait(ws, finished ? 0 : WAIT_NS, keys, SW * SC, &n);
        if (rc == NDSHM_TIMEOUT && finished)
            break;
        if (rc == NDSHM_TIMEOUT && atomic_load(&sh->stop) == SW)
            continue; /* the writers finished while we waited: look once more */
        if (rc != NDSHM_OK)
            fail_msg("wait gave %s while the writers were still publishing", ndshm_status_name(rc));
        wakes++;
        for (size_t j = 0; j < n; j++) {
            uint32_t c = (uint32_t)(keys[j] - 1000);
            while ((rc = ndshm_read_next(r[c], buf, sizeof buf, &info)) == NDSHM_OK) {
                got[c]++;
                dropped[c] += info.dropped;
                bad += !tu_check(buf, info.nbytes, seed_of(c, info.version)) ||
                       info.nbytes != size_of(info.version) || info.version <= last[c];
                last[c] = info.version;
            }
            assert_int_equal(rc, NDSHM_NO_NEW);
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(atomic_load(&sh->failed), 0);
    uint64_t total = 0;
    for (int c = 0; c < SW * SC; c++) {
        uint64_t p = atomic_load(&sh->published[c]);
        /* handles opened before the first publish: every version is got or dropped */
        if (got[c] + dropped[c] != p || last[c] != p)
            fail_msg("channel %d: published %llu, got %llu + dropped %llu, last %llu", c,
                     (unsigned long long)p, (unsigned long long)got[c],
                     (unsigned long long)dropped[c], (unsigned long long)last[c]);
        total += got[c];
    }
    assert_true(total > 0 && wakes > 0);
    print_message("stress: %llu versions read in %llu wakes across %d channels\n",
                  (unsigned long long)total, (unsigned long long)wakes, SW * SC);
    ndshm_waitset_close(ws);
    for (int c = 0; c < SW * SC; c++)
        ndshm_reader_close(r[c]);
}

int main(void)
{
    tu_init();
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(arguments, kill_kids),
        cmocka_unit_test_teardown(nothing_new_times_out, kill_kids),
        cmocka_unit_test_teardown(which_channel, kill_kids),
        cmocka_unit_test_teardown(level_triggered, kill_kids),
        cmocka_unit_test_teardown(descriptor_polls, kill_kids),
        cmocka_unit_test_teardown(forged_registrations, kill_kids),
        cmocka_unit_test_teardown(dead_waitset_is_dropped, kill_kids),
        cmocka_unit_test_teardown(takeover_reregisters, kill_kids),
        cmocka_unit_test_teardown(stress_many_writers, kill_kids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
