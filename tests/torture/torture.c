/*
 * ndshm torture test: one command, a given time, everything at once.
 *
 *   ndshm-torture [seconds]        (or NDSHM_TORTURE_SECONDS; default 60; NDSHM_SOAK=1: 4 h)
 *
 * A supervisor forks
 *   - a writer process publishing checksummed payloads whose dtype, shape and size follow from
 *     the version number (random-looking, 1 B .. 1 MiB, forcing re-allocations up and down),
 *     by copy and by loan/commit, sometimes cancelling a loan;
 *   - READERS reader processes mixing read_latest, read_next, views, the *_owned calls and
 *     waits, sometimes falling behind so that read_next is lapped;
 *   - a reader process whose THREADS threads share one handle (read_next, view_next, wait);
 * and SIGKILLs one of them at random moments (every 20-400 ms), then restarts it. A restarted
 * writer takes the channel over (ndshm_writer_create with NDSHM_OPEN_OR_CREATE) and must
 * continue the numbering; readers stay attached across writer deaths and re-allocations.
 *
 * Checked, counted and printed: reads (each payload, dtype, shape and size checked against
 * its version), torn arrays accepted, versions out of order, losses in read_next not counted
 * in info.dropped, numbering errors after takeover, unexpected statuses, hangs (a heartbeat
 * older than HANG_S seconds, or a child that does not stop), kills survived, and segments of
 * the channel left in the shm directory after the run beyond the live channel (which must be
 * exactly its control segment and one data segment). Exit status 0 only if every error count
 * is 0 and something was read and killed.
 *
 * Version bookkeeping. A writer records each version it published (last_published) after
 * ndshm_publish/commit returns, so a writer SIGKILLed between the two leaves the channel one
 * version ahead of the record. The takeover rule (takeover_ok) therefore allows the new
 * writer to find head == recorded or recorded + 1, and the new writer then records the head
 * it found. From then on the record is exact again, so the final check (final_ok) demands
 * final version == recorded: one version lost (final < recorded) or one that no writer
 * published (final > recorded) fails the run.
 *
 *   ndshm-torture --scenario NAME [seconds]
 * runs the same processes without random kills and ends with one deterministic event:
 *   unrecorded      the writer publishes a version it never records and is SIGKILLed; the
 *                   stop comes before its successor publishes anything (passes)
 *   mutate-lost     as unrecorded, then the last writer's record claims one version more than
 *                   it published: a lost version (the final check must fail)
 *   mutate-phantom  as unrecorded, then the last writer publishes one version after the stop
 *                   without recording it: a version nobody accounts for (must fail)
 * The last line says which checks failed ("failed checks: final"), so the mutation tests can
 * require that exactly the final check caught them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

#define READERS   3
#define THREADS   3
#define NCHILD    (2 + READERS) /* 0 writer, 1..READERS readers, READERS+1 threaded */
#define MAX_BYTES (1u << 20)
#define HANG_S    20 /* far beyond any bounded operation (waits use 200 ms timeouts) */
#define WAIT_NS   200000000

enum scenario { RANDOM_KILLS, UNRECORDED, MUTATE_LOST, MUTATE_PHANTOM };

struct stats {
    atomic_int stop;
    atomic_int scenario;   /* enum scenario */
    atomic_int hold;       /* set by the supervisor: publish one version, do not record it */
    _Atomic uint64_t held; /* the writer's answer: the version it published and did not record */
    atomic_ulong published, takeovers, cancels, reallocs_seen;
    atomic_ulong reads, latest, next, views, owned, waits, gone_seen, contended, overwritten;
    atomic_ulong dropped;
    atomic_ulong torn, out_of_order, uncounted, numbering, bad_status, hangs, child_fail;
    atomic_ulong kills, kills_writer, kills_reader;
    _Atomic uint64_t last_published; /* stored by the writer after each publish returns */
    _Atomic uint64_t heartbeat[NCHILD];
};

static struct stats *st;
static const char *chan;

/* ----- deterministic payloads ---------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    return x ^ (x >> 33);
}

struct spec {
    int dtype;
    uint32_t ndim;
    uint64_t shape[3];
    uint64_t nbytes;
};

/* dtype, shape and size of version v: a pure function, so readers can check all of it. */
static struct spec spec_of(uint64_t v)
{
    struct spec s;
    uint64_t h = mix(v);
    s.dtype = 1 + (int)(h % NDSHM_DTYPE_COUNT);
    uint64_t isz = ndshm_dtype_size(s.dtype);
    uint64_t cls = (h >> 8) % 32;
    uint64_t bytes = cls == 0   ? MAX_BYTES / 2 + (h >> 20) % (MAX_BYTES / 2) /* big */
                     : cls < 4  ? (h >> 20) % 200000                          /* medium */
                     : cls == 4 ? 0                                           /* empty */
                                : (h >> 20) % 4096;                           /* small */
    uint64_t n = bytes / isz;
    s.ndim = 1 + (uint32_t)((h >> 16) % 3);
    uint64_t rest = 1;
    for (uint32_t d = 1; d < s.ndim; d++) {
        s.shape[d] = 1 + (h >> (40 + 4 * d)) % 5;
        rest *= s.shape[d];
    }
    s.shape[0] = n / rest;
    s.nbytes = s.shape[0] * rest * isz;
    return s;
}

/* 1 if (info, payload) is exactly version info->version. */
static int valid(const ndshm_info *info, const void *data)
{
    struct spec s = spec_of(info->version);
    if (info->dtype != s.dtype || info->ndim != s.ndim || info->nbytes != s.nbytes)
        return 0;
    for (uint32_t d = 0; d < s.ndim; d++)
        if (info->shape[d] != s.shape[d])
            return 0;
    return tu_check(data, (size_t)s.nbytes, info->version);
}

/* ----- the version bookkeeping rules ---------------------------------------------------------
 */

/* A writer taking the channel over finds `head`; the record says `recorded`. The killed writer
 * may have published one version it could not record (killed between its publish returning and
 * the record), never more, and never fewer than it recorded. */
static int takeover_ok(uint64_t head, uint64_t recorded)
{
    return head == recorded || head == recorded + 1;
}

/* After the stop: the last writer recorded its takeover head and every version it published,
 * then closed cleanly, so the channel's final version is exactly the record. */
static int final_ok(uint64_t final, uint64_t recorded)
{
    return final == recorded;
}

/* ----- helpers ------------------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state += UINT64_C(0x9e3779b97f4a7c15);
    return mix(rng_state);
}

static void beat(int idx)
{
    atomic_store(&st->heartbeat[idx], ndshm_now_ns());
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static void child_init(int idx)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rng_state = mix((uint64_t)getpid() ^ ndshm_now_ns());
    beat(idx);
}

/* A read of version `v` with `dropped` after this handle's last version `last`. */
static void account(uint64_t *last, const ndshm_info *info, int ok_data)
{
    if (!ok_data)
        atomic_fetch_add(&st->torn, 1);
    if (info->version <= *last)
        atomic_fetch_add(&st->out_of_order, 1);
    else if (info->version != *last + info->dropped + 1)
        atomic_fetch_add(&st->uncounted, 1);
    if (info->flags & NDSHM_INFO_REALLOCATED)
        atomic_fetch_add(&st->reallocs_seen, 1);
    atomic_fetch_add(&st->dropped, info->dropped);
    atomic_fetch_add(&st->reads, 1);
    *last = info->version;
}

static void other_status(int rc)
{
    if (rc == NDSHM_CONTENDED)
        atomic_fetch_add(&st->contended, 1);
    else if (rc != NDSHM_NO_NEW && rc != NDSHM_NO_DATA)
        atomic_fetch_add(&st->bad_status, 1);
}

/* ----- the writer ----------------------------------------------------------------------------- */

static void writer_main(void)
{
    child_init(0);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_OPEN_OR_CREATE;
    o.capacity = 4096;
    ndshm_writer *w = NULL;
    int rc;
    for (int i = 0; (rc = ndshm_writer_create(chan, &o, &w)) == NDSHM_E_WRITER_ALIVE && i < 5000;
         i++)
        sleep_us(1000); /* the killed writer is reaped before we start: never expected */
    if (rc != NDSHM_OK) {
        fprintf(stderr, "torture writer: open: %s\n", ndshm_strerror(rc));
        _exit(1);
    }
    uint64_t head = ndshm_writer_version(w), before = atomic_load(&st->last_published);
    if (head != 0 || before != 0) {
        atomic_fetch_add(&st->takeovers, 1);
        if (!takeover_ok(head, before)) {
            atomic_fetch_add(&st->numbering, 1);
            fprintf(stderr, "torture writer: takeover found version %llu, recorded %llu\n",
                    (unsigned long long)head, (unsigned long long)before);
        }
        /* The record follows the channel: a version the dead writer published but could not
         * record is accounted for from here on (and a killed successor that never got here
         * leaves the same head to the next one). */
        atomic_store(&st->last_published, head);
    }
    unsigned char *buf = malloc(MAX_BYTES);
    if (!buf)
        _exit(1);
    while (!atomic_load(&st->stop)) {
        uint64_t v = ndshm_writer_version(w) + 1, got = 0;
        struct spec s = spec_of(v);
        uint64_t r = rnd();
        if (r % 4 == 0) { /* zero-copy */
            void *p;
            if ((rc = ndshm_loan(w, s.dtype, s.ndim, s.shape, &p)) == NDSHM_OK) {
                tu_fill(p, (size_t)s.nbytes, v);
                if ((r >> 8) % 16 == 0) {
                    rc = ndshm_cancel(w);
                    atomic_fetch_add(&st->cancels, 1);
                    got = v = 0;
                } else {
                    rc = ndshm_commit(w, &got);
                }
            }
        } else {
            tu_fill(buf, (size_t)s.nbytes, v);
            rc = ndshm_publish(w, s.dtype, s.ndim, s.shape, buf, &got);
        }
        if (rc != NDSHM_OK) {
            fprintf(stderr, "torture writer: publish: %s\n", ndshm_strerror(rc));
            _exit(2);
        }
        if (got != v)
            atomic_fetch_add(&st->numbering, 1);
        if (v && atomic_load(&st->hold)) { /* scenario: killed before the record */
            atomic_store(&st->held, v);
            for (;;)
                sleep_us(100000);
        }
        if (v) {
            atomic_store(&st->last_published, v);
            atomic_fetch_add(&st->published, 1);
        }
        if ((r >> 16) % 64 == 0) /* give memory back: re-allocate down */
            ndshm_writer_reserve(w, 4096);
        beat(0);
        /* Pace: bursts and pauses, so readers sometimes keep up and sometimes are lapped. */
        if ((r >> 24) % 4 == 0)
            sleep_us((unsigned)((r >> 32) % 400));
    }
    int sc = atomic_load(&st->scenario);
    if (sc == MUTATE_LOST) { /* the record claims a version the channel does not have */
        atomic_fetch_add(&st->last_published, 1);
    } else if (sc == MUTATE_PHANTOM) { /* a version nobody records */
        uint64_t v = ndshm_writer_version(w) + 1;
        struct spec s = spec_of(v);
        tu_fill(buf, (size_t)s.nbytes, v);
        if (ndshm_publish(w, s.dtype, s.ndim, s.shape, buf, NULL) != NDSHM_OK)
            _exit(2);
    }
    ndshm_writer_close(w);
    free(buf);
    _exit(0);
}

/* ----- a reader process ------------------------------------------------------------------------
 */

static ndshm_reader *open_reader(int idx)
{
    ndshm_reader *r = NULL;
    int rc;
    for (int i = 0; i < 10000; i++) {
        rc = ndshm_reader_open(chan, NULL, &r);
        if (rc == NDSHM_OK)
            return r;
        if (rc != NDSHM_E_NOENT && rc != NDSHM_E_NOT_READY)
            break;
        beat(idx);
        sleep_us(1000);
    }
    fprintf(stderr, "torture reader: open: %s\n", ndshm_strerror(rc));
    _exit(1);
}

static void reader_main(int idx)
{
    child_init(idx);
    ndshm_reader *r = open_reader(idx);
    unsigned char *buf = malloc(MAX_BYTES);
    if (!buf)
        _exit(1);
    uint64_t last = ndshm_reader_version(r);
    while (!atomic_load(&st->stop)) {
        uint64_t x = rnd();
        ndshm_info info;
        ndshm_view v;
        const void *p;
        int rc;
        switch (x % 10) {
        case 0:
        case 1:
            rc = ndshm_read_latest(r, buf, MAX_BYTES, &info);
            if (rc == NDSHM_OK) {
                atomic_fetch_add(&st->latest, 1);
                account(&last, &info, valid(&info, buf));
            } else {
                other_status(rc);
            }
            break;
        case 2:
        case 3:
        case 4:
            rc = ndshm_read_next(r, buf, MAX_BYTES, &info);
            if (rc == NDSHM_OK) {
                atomic_fetch_add(&st->next, 1);
                account(&last, &info, valid(&info, buf));
            } else {
                other_status(rc);
            }
            break;
        case 5:
            rc = (x >> 8) & 1 ? ndshm_view_next(r, &v) : ndshm_view_latest(r, &v);
            if (rc == NDSHM_OK) {
                int ok = valid(&v.info, v.data);
                ndshm_info vi = v.info;
                if (ndshm_view_release(&v) == NDSHM_OVERWRITTEN) {
                    atomic_fetch_add(&st->overwritten, 1); /* discarded, position moved */
                    ok = 1;
                }
                atomic_fetch_add(&st->views, 1);
                account(&last, &vi, ok);
            } else {
                other_status(rc);
            }
            break;
        case 6:
            rc = (x >> 8) & 1 ? ndshm_read_next_owned(r, &p, &info)
                              : ndshm_read_latest_owned(r, &p, &info);
            if (rc == NDSHM_OK) {
                atomic_fetch_add(&st->owned, 1);
                account(&last, &info, valid(&info, p));
            } else {
                other_status(rc);
            }
            break;
        case 7:
        case 8:
            rc = ndshm_wait(r, WAIT_NS);
            atomic_fetch_add(&st->waits, 1);
            if (rc == NDSHM_WRITER_GONE)
                atomic_fetch_add(&st->gone_seen, 1);
            else if (rc != NDSHM_OK && rc != NDSHM_TIMEOUT)
                atomic_fetch_add(&st->bad_status, 1);
            break;
        default: /* fall behind */
            sleep_us((unsigned)((x >> 8) % 3000));
        }
        beat(idx);
    }
    ndshm_reader_close(r);
    free(buf);
    _exit(0);
}

/* ----- several threads on one handle -----------------------------------------------------------
 */

struct tshared {
    ndshm_reader *r;
    int idx;
    atomic_ulong claimed; /* sum over OK reads of 1 + dropped */
    atomic_int round_stop;
};

static void *reader_thread(void *arg)
{
    struct tshared *t = arg;
    unsigned char *buf = malloc(MAX_BYTES);
    uint64_t mine = 0; /* versions one thread gets are increasing */
    uint64_t seed = rnd();
    while (buf && !atomic_load(&t->round_stop)) {
        seed = mix(seed + 1);
        ndshm_info info;
        ndshm_view v;
        int rc;
        if (seed % 3 == 0) {
            rc = ndshm_view_next(t->r, &v);
            if (rc == NDSHM_OK) {
                int ok = valid(&v.info, v.data);
                info = v.info;
                if (ndshm_view_release(&v) == NDSHM_OVERWRITTEN)
                    ok = 1;
                if (!ok)
                    atomic_fetch_add(&st->torn, 1);
            }
        } else if (seed % 3 == 1) {
            rc = ndshm_read_next(t->r, buf, MAX_BYTES, &info);
            if (rc == NDSHM_OK && !valid(&info, buf))
                atomic_fetch_add(&st->torn, 1);
        } else {
            rc = ndshm_wait(t->r, WAIT_NS);
            if (rc != NDSHM_OK && rc != NDSHM_TIMEOUT && rc != NDSHM_WRITER_GONE)
                atomic_fetch_add(&st->bad_status, 1);
            continue;
        }
        if (rc == NDSHM_OK) {
            if (info.version <= mine)
                atomic_fetch_add(&st->out_of_order, 1);
            mine = info.version;
            atomic_fetch_add(&t->claimed, 1 + info.dropped);
            atomic_fetch_add(&st->dropped, info.dropped);
            atomic_fetch_add(&st->reads, 1);
            atomic_fetch_add(&st->next, 1);
        } else {
            other_status(rc);
        }
    }
    free(buf);
    return NULL;
}

static void threaded_main(int idx)
{
    child_init(idx);
    struct tshared t = {.r = open_reader(idx), .idx = idx};
    while (!atomic_load(&st->stop)) {
        /* One round: the threads share the handle; afterwards every version between the
         * handle's old and new position was either handed to exactly one thread or counted
         * as dropped. */
        uint64_t start = ndshm_reader_version(t.r);
        atomic_store(&t.claimed, 0);
        atomic_store(&t.round_stop, 0);
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&th[i], NULL, reader_thread, &t))
                _exit(1);
        uint64_t end = ndshm_now_ns() + 300000000u + rnd() % 700000000u;
        while (ndshm_now_ns() < end && !atomic_load(&st->stop)) {
            beat(idx);
            sleep_us(10000);
        }
        atomic_store(&t.round_stop, 1);
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        if (atomic_load(&t.claimed) != ndshm_reader_version(t.r) - start)
            atomic_fetch_add(&st->uncounted, 1);
        beat(idx);
    }
    ndshm_reader_close(t.r);
    _exit(0);
}

/* ----- the supervisor --------------------------------------------------------------------------
 */

static pid_t kids[NCHILD];

static pid_t start_child(int idx)
{
    atomic_store(&st->heartbeat[idx], ndshm_now_ns());
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        if (idx == 0)
            writer_main();
        else if (idx <= READERS)
            reader_main(idx);
        else
            threaded_main(idx);
        _exit(0);
    }
    return pid;
}

static void kill_and_reap(int idx)
{
    kill(kids[idx], SIGKILL);
    while (waitpid(kids[idx], NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Reap children that exited on their own (a failure: they only stop when told) and restart
 * them; restart children whose heartbeat is stale (a hang). */
static void supervise(void)
{
    for (int i = 0; i < NCHILD; i++) {
        int status;
        pid_t p = waitpid(kids[i], &status, WNOHANG);
        if (p == kids[i]) {
            atomic_fetch_add(&st->child_fail, 1);
            fprintf(stderr, "torture: child %d exited (status %d)\n", i, status);
            kids[i] = start_child(i);
            continue;
        }
        uint64_t hb = atomic_load(&st->heartbeat[i]);
        if (ndshm_now_ns() - hb > (uint64_t)HANG_S * 1000000000u) {
            atomic_fetch_add(&st->hangs, 1);
            fprintf(stderr, "torture: child %d hangs (no heartbeat for %d s)\n", i, HANG_S);
            kill_and_reap(i);
            kids[i] = start_child(i);
        }
    }
}

static double seconds_from_env(const char *arg)
{
    if (arg)
        return atof(arg);
    const char *s = getenv("NDSHM_TORTURE_SECONDS");
    if (s && *s)
        return atof(s);
    s = getenv("NDSHM_SOAK");
    if (s && *s && strcmp(s, "0") != 0)
        return 4 * 3600;
    return 60;
}

/* Random kills until the deadline (the normal run). */
static void random_kills(uint64_t t0, uint64_t deadline)
{
    uint64_t next_report = t0 + 600000000000u;
    while (ndshm_now_ns() < deadline) {
        uint64_t pause_ms = 20 + rnd() % 380;
        for (uint64_t slept = 0; slept < pause_ms; slept += 10) {
            sleep_us(10000);
            supervise();
        }
        /* The first victim is always the writer, so even a short run exercises takeover. */
        int victim =
            atomic_load(&st->kills) == 0 || rnd() % 3 == 0 ? 0 : 1 + (int)(rnd() % (NCHILD - 1));
        kill_and_reap(victim);
        atomic_fetch_add(&st->kills, 1);
        atomic_fetch_add(victim == 0 ? &st->kills_writer : &st->kills_reader, 1);
        kids[victim] = start_child(victim);
        if (ndshm_now_ns() > next_report) { /* soak runs: a line every 10 minutes */
            next_report += 600000000000u;
            fprintf(stderr, "torture: %.0f s, %lu reads, %lu kills\n", (ndshm_now_ns() - t0) / 1e9,
                    (unsigned long)atomic_load(&st->reads), (unsigned long)atomic_load(&st->kills));
        }
    }
}

/* The scenarios: no random kills until the deadline; then the writer publishes a version it
 * never records, is SIGKILLed, and the stop is set before its successor starts, so the
 * successor takes over and publishes nothing. 0, or -1 if the writer never held. */
static int unrecorded_then_stop(uint64_t deadline)
{
    while (ndshm_now_ns() < deadline) {
        sleep_us(10000);
        supervise();
    }
    atomic_store(&st->hold, 1);
    /* The writer publishes continuously: it holds within a few ms (60 s is far beyond). */
    for (int i = 0; i < 6000 && atomic_load(&st->held) == 0; i++) {
        sleep_us(10000);
        supervise();
    }
    if (atomic_load(&st->held) == 0) {
        fprintf(stderr, "torture: the writer did not publish an unrecorded version in 60 s\n");
        return -1;
    }
    kill_and_reap(0);
    atomic_fetch_add(&st->kills, 1);
    atomic_fetch_add(&st->kills_writer, 1);
    atomic_store(&st->stop, 1);
    atomic_store(&st->hold, 0);
    kids[0] = start_child(0);
    return 0;
}

int main(int argc, char **argv)
{
    tu_init();
    const char *sname = NULL, *secs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scenario") && i + 1 < argc)
            sname = argv[++i];
        else if (!secs && argv[i][0] != '-')
            secs = argv[i];
        else
            secs = "";
    }
    enum scenario sc = RANDOM_KILLS;
    if (sname) {
        sc = !strcmp(sname, "unrecorded")       ? UNRECORDED
             : !strcmp(sname, "mutate-lost")    ? MUTATE_LOST
             : !strcmp(sname, "mutate-phantom") ? MUTATE_PHANTOM
                                                : RANDOM_KILLS;
        if (!secs)
            secs = "2";
    }
    double seconds = seconds_from_env(secs);
    if (!(seconds > 0) || (sname && sc == RANDOM_KILLS)) {
        fprintf(stderr,
                "usage: %s [seconds]\n"
                "       %s --scenario unrecorded|mutate-lost|mutate-phantom [seconds]\n",
                argv[0], argv[0]);
        return 2;
    }
    chan = tu_name("torture");
    st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED)
        return 2;
    memset(st, 0, sizeof *st);
    atomic_store(&st->scenario, (int)sc);
    rng_state = mix((uint64_t)getpid());
    signal(SIGPIPE, SIG_IGN);

    kids[0] = start_child(0);
    for (int i = 0; i < 1000 && atomic_load(&st->last_published) == 0; i++)
        sleep_us(10000);
    for (int i = 1; i < NCHILD; i++)
        kids[i] = start_child(i);

    uint64_t t0 = ndshm_now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
    int scenario_failed = 0;
    if (sc == RANDOM_KILLS)
        random_kills(t0, deadline);
    else
        scenario_failed = unrecorded_then_stop(deadline) != 0;

    /* Stop: every child must finish by itself within HANG_S seconds. */
    atomic_store(&st->stop, 1);
    for (int i = 0; i < NCHILD; i++) {
        int status = 0, done = 0;
        for (int k = 0; k < HANG_S * 100 && !done; k++) {
            pid_t p = waitpid(kids[i], &status, WNOHANG);
            if (p == kids[i])
                done = 1;
            else
                sleep_us(10000);
        }
        if (!done) {
            atomic_fetch_add(&st->hangs, 1);
            fprintf(stderr, "torture: child %d does not stop\n", i);
            kill_and_reap(i);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            atomic_fetch_add(&st->child_fail, 1);
        }
    }

    /* The live channel is its control segment and exactly one data segment. */
    int segs = tu_count_segments(chan);
    int leftover = segs > 2 ? segs - 2 : 0;
    /* ... and it still reads back, as exactly the last version recorded. */
    ndshm_reader *r;
    int final = 0;
    uint64_t recorded = atomic_load(&st->last_published), final_version = 0;
    if (ndshm_reader_open(chan, NULL, &r) == NDSHM_OK) {
        void *buf = malloc(MAX_BYTES);
        ndshm_info info;
        if (buf && ndshm_read_latest(r, buf, MAX_BYTES, &info) == NDSHM_OK) {
            final_version = info.version;
            final = valid(&info, buf) && final_ok(info.version, recorded) &&
                    (info.flags & NDSHM_INFO_WRITER_GONE);
        }
        free(buf);
        ndshm_reader_close(r);
    }
    ndshm_unlink(chan);
    leftover += tu_count_segments(chan);

    printf("ndshm torture: %.0f s%s%s, %d reader processes + %d threads on one handle\n", seconds,
           sname ? ", scenario " : "", sname ? sname : "", READERS, THREADS);
    printf("  writer: %lu versions published (last recorded %lu), %lu loans cancelled, %lu "
           "takeovers\n",
           (unsigned long)atomic_load(&st->published), (unsigned long)recorded,
           (unsigned long)atomic_load(&st->cancels), (unsigned long)atomic_load(&st->takeovers));
    printf("  reads checked: %lu (latest %lu, next %lu, views %lu, owned %lu); waits %lu "
           "(writer gone %lu); contended %lu; views overwritten %lu; re-allocations seen %lu; "
           "versions counted as dropped %lu\n",
           (unsigned long)atomic_load(&st->reads), (unsigned long)atomic_load(&st->latest),
           (unsigned long)atomic_load(&st->next), (unsigned long)atomic_load(&st->views),
           (unsigned long)atomic_load(&st->owned), (unsigned long)atomic_load(&st->waits),
           (unsigned long)atomic_load(&st->gone_seen), (unsigned long)atomic_load(&st->contended),
           (unsigned long)atomic_load(&st->overwritten),
           (unsigned long)atomic_load(&st->reallocs_seen),
           (unsigned long)atomic_load(&st->dropped));
    printf("  kills survived: %lu (writer %lu, readers %lu)\n",
           (unsigned long)atomic_load(&st->kills), (unsigned long)atomic_load(&st->kills_writer),
           (unsigned long)atomic_load(&st->kills_reader));
    printf("  torn arrays accepted: %lu\n  versions out of order: %lu\n"
           "  uncounted losses in read_next: %lu\n  numbering errors after takeover: %lu\n"
           "  unexpected statuses: %lu\n  hangs: %lu\n  children failed: %lu\n"
           "  segments left beyond the live channel: %d\n"
           "  final read of the last version: %s (channel at version %llu, last recorded %llu)\n",
           (unsigned long)atomic_load(&st->torn), (unsigned long)atomic_load(&st->out_of_order),
           (unsigned long)atomic_load(&st->uncounted), (unsigned long)atomic_load(&st->numbering),
           (unsigned long)atomic_load(&st->bad_status), (unsigned long)atomic_load(&st->hangs),
           (unsigned long)atomic_load(&st->child_fail), leftover, final ? "ok" : "FAILED",
           (unsigned long long)final_version, (unsigned long long)recorded);
    /* Every check by name, so a test can require that exactly one of them caught a fault. */
    struct {
        const char *name;
        int failed;
    } checks[] = {
        {"torn", atomic_load(&st->torn) != 0},
        {"order", atomic_load(&st->out_of_order) != 0},
        {"uncounted", atomic_load(&st->uncounted) != 0},
        {"numbering", atomic_load(&st->numbering) != 0},
        {"status", atomic_load(&st->bad_status) != 0},
        {"hangs", atomic_load(&st->hangs) != 0},
        {"children", atomic_load(&st->child_fail) != 0},
        {"segments", leftover != 0},
        {"final", !final},
        {"nothing-read", atomic_load(&st->reads) == 0},
        {"nothing-killed", atomic_load(&st->kills) == 0 || atomic_load(&st->takeovers) == 0},
        {"scenario", scenario_failed},
    };
    char failed[256] = "";
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].failed)
            snprintf(failed + strlen(failed), sizeof failed - strlen(failed), "%s%s",
                     failed[0] ? " " : "", checks[i].name);
    if (failed[0])
        printf("ndshm torture: FAILED (failed checks: %s)\n", failed);
    else
        printf("ndshm torture: passed\n");
    return failed[0] ? 1 : 0;
}
