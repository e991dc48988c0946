/*
 * Multi-process test of shared arrays: 4 processes each write their own rows of one array
 * (attached by name) over and over while a fifth process, attached read-only, sweeps the whole
 * array. Every element encodes (row, column, pass), so the reader checks that each value it
 * sees is one a writer actually stored there and that, element by element, the passes it sees
 * never go backwards; at the end the contents are exactly the last pass of every writer
 * (element-wise, and as checksums computed independently by the writers, the reader and the
 * parent). Two variants: per-element relaxed atomic stores (checked by the reader while they
 * run), and plain memcpy of whole rows (checked at the end). The attach count (kernel locks)
 * must be exactly the six attachments while all are attached.
 * NDSHM_STRESS_SECONDS (default 4) sets how long the writers run.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

#define NWRITERS 4
#define ROWS     64 /* row r belongs to writer r % NWRITERS */
#define COLS     8192
#define NELEMS   ((size_t)ROWS * COLS)

/* Results the children report through an anonymous shared mapping. */
struct stats {
    atomic_int ready, go, writers_done;
    struct {
        uint64_t last_pass, checksum;
        int failed;
    } w[NWRITERS];
    struct {
        uint64_t sweeps, values_seen, bad_value, went_back, checksum;
        int failed;
    } r;
};
static struct stats *st;

static pid_t kids[NWRITERS + 1];
static int nkids;

static unsigned seconds(void)
{
    const char *s = getenv("NDSHM_STRESS_SECONDS");
    return s && atoi(s) > 0 ? (unsigned)atoi(s) : 4;
}

static uint64_t value(uint64_t row, uint64_t col, uint64_t pass)
{
    return pass << 40 | row << 20 | col;
}

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Order-independent checksum of a set of (index, value) pairs. */
static uint64_t term(size_t i, uint64_t v)
{
    return mix(v * 31 + i);
}

static void wait_go(void)
{
    atomic_fetch_add(&st->ready, 1);
    while (!atomic_load(&st->go))
        usleep(1000);
}

static void writer(const char *name, int id, int atomics)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    ndshm_array *a;
    if (ndshm_array_attach(name, NULL, &a) != NDSHM_OK) {
        st->w[id].failed = 1;
        _exit(1);
    }
    uint64_t *d = ndshm_array_data(a);
    static uint64_t row_buf[COLS];
    wait_go();
    uint64_t end = ndshm_now_ns() + (uint64_t)seconds() * 1000000000u;
    uint64_t pass = 0;
    do {
        pass++;
        for (uint64_t r = (uint64_t)id; r < ROWS; r += NWRITERS) {
            uint64_t *row = d + r * COLS;
            if (atomics) {
                for (uint64_t c = 0; c < COLS; c++)
                    __atomic_store_n(&row[c], value(r, c, pass), __ATOMIC_RELAXED);
            } else {
                for (uint64_t c = 0; c < COLS; c++)
                    row_buf[c] = value(r, c, pass);
                memcpy(row, row_buf, sizeof row_buf);
            }
        }
    } while (ndshm_now_ns() < end && pass < (UINT64_C(1) << 23));
    uint64_t sum = 0;
    for (uint64_t r = (uint64_t)id; r < ROWS; r += NWRITERS)
        for (uint64_t c = 0; c < COLS; c++)
            sum += term(r * COLS + c, value(r, c, pass));
    st->w[id].last_pass = pass;
    st->w[id].checksum = sum;
    ndshm_array_detach(a);
    atomic_fetch_add(&st->writers_done, 1);
    _exit(0);
}

static void reader(const char *name, int check)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = NDSHM_ARRAY_READONLY;
    ndshm_array *a;
    if (ndshm_array_attach(name, &o, &a) != NDSHM_OK) {
        st->r.failed = 1;
        _exit(1);
    }
    const uint64_t *d = ndshm_array_cdata(a);
    uint32_t *seen = calloc(NELEMS, sizeof *seen); /* last pass seen, per element */
    if (!seen)
        _exit(2);
    wait_go();
    for (int last = 0;;) {
        /* the final sweep starts after every writer has finished */
        if (atomic_load(&st->writers_done) == NWRITERS)
            last = 1;
        uint64_t sum = 0;
        for (size_t i = 0; i < NELEMS; i++) {
            uint64_t v = __atomic_load_n(&d[i], __ATOMIC_RELAXED);
            sum += term(i, v);
            if (!check || v == 0)
                continue;
            uint64_t row = i / COLS, col = i % COLS, pass = v >> 40;
            st->r.values_seen++;
            if (v != value(row, col, pass) || pass == 0) {
                st->r.bad_value++;
                continue;
            }
            if (pass < seen[i])
                st->r.went_back++;
            seen[i] = (uint32_t)pass;
        }
        st->r.sweeps++;
        if (last) {
            st->r.checksum = sum;
            break;
        }
    }
    free(seen);
    ndshm_array_detach(a);
    _exit(0);
}

static int kill_kids(void **state)
{
    (void)state;
    for (int i = 0; i < nkids; i++) {
        int s;
        kill(kids[i], SIGKILL);
        waitpid(kids[i], &s, 0);
    }
    nkids = 0;
    tu_cleanup();
    return 0;
}

static void run(int atomics)
{
    const char *name = tu_name(atomics ? "rows-atomic" : "rows-memcpy");
    uint64_t shape[2] = {ROWS, COLS};
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT64, 2, shape, NULL, &a), NDSHM_OK);
    memset(st, 0, sizeof *st);
    for (int i = 0; i < NWRITERS; i++) {
        pid_t p = fork();
        assert_true(p >= 0);
        if (p == 0)
            writer(name, i, atomics);
        kids[nkids++] = p;
    }
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        reader(name, atomics);
    kids[nkids++] = p;
    while (atomic_load(&st->ready) < NWRITERS + 1) {
        for (int i = 0; i < nkids; i++) {
            int s;
            if (waitpid(kids[i], &s, WNOHANG) == kids[i])
                fail_msg("child %d exited before attaching (status %d)", i, s);
        }
        usleep(1000);
    }
    /* six attachments: the creator (us), four writers, the reader; counted by the kernel */
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_OK);
    if (ai.attached != NWRITERS + 2)
        fail_msg("attach count: expected %d, /proc/locks says %d", NWRITERS + 2, ai.attached);
    atomic_store(&st->go, 1);
    for (int i = 0; i < nkids; i++) {
        int s;
        assert_int_equal(waitpid(kids[i], &s, 0), kids[i]);
        if (!WIFEXITED(s) || WEXITSTATUS(s) != 0)
            fail_msg("child %d: status %d", i, s);
    }
    nkids = 0;
    /* The children's attachments go when the kernel releases their files: normally before
     * waitpid returns, later while another process holds a dead child's memory map (a `ps`
     * reading its /proc entry): up to 10 s (seen under load: expected 1, saw 2). */
    assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    for (int i = 0; i < 1000 && ai.attached != 1; i++) {
        usleep(10000);
        assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    }
    if (ai.attached != 1)
        fail_msg("attach count after the children exited: expected 1 (ours), saw %d after 10 s",
                 ai.attached);

    /* exactly what was written: element by element, and as checksums three ways */
    const uint64_t *d = ndshm_array_cdata(a);
    uint64_t sum = 0, expect = 0, wrong = 0;
    for (size_t i = 0; i < NELEMS; i++) {
        uint64_t row = i / COLS, col = i % COLS;
        uint64_t want = value(row, col, st->w[row % NWRITERS].last_pass);
        if (d[i] != want && wrong++ < 5)
            print_message("element %zu: 0x%llx, expected 0x%llx\n", i, (unsigned long long)d[i],
                          (unsigned long long)want);
        sum += term(i, d[i]);
    }
    for (int i = 0; i < NWRITERS; i++) {
        assert_int_equal(st->w[i].failed, 0);
        assert_true(st->w[i].last_pass >= 1);
        expect += st->w[i].checksum;
    }
    print_message("%s: passes %llu %llu %llu %llu; reader %llu sweeps, %llu values checked, "
                  "%llu bad, %llu went back\n",
                  atomics ? "atomic stores" : "memcpy rows", (unsigned long long)st->w[0].last_pass,
                  (unsigned long long)st->w[1].last_pass, (unsigned long long)st->w[2].last_pass,
                  (unsigned long long)st->w[3].last_pass, (unsigned long long)st->r.sweeps,
                  (unsigned long long)st->r.values_seen, (unsigned long long)st->r.bad_value,
                  (unsigned long long)st->r.went_back);
    assert_int_equal(wrong, 0);
    assert_int_equal(sum, expect);
    assert_int_equal(st->r.failed, 0);
    assert_int_equal(st->r.checksum, expect);
    assert_true(st->r.sweeps >= 1);
    if (atomics) {
        assert_int_equal(st->r.bad_value, 0);
        assert_int_equal(st->r.went_back, 0);
        assert_true(st->r.values_seen >= NELEMS); /* at least the final sweep */
    }
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

static void rows_atomic(void **state)
{
    (void)state;
    run(1);
}

static void rows_memcpy(void **state)
{
    (void)state;
    run(0);
}

int main(void)
{
    tu_init();
    st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(rows_atomic, kill_kids),
        cmocka_unit_test_teardown(rows_memcpy, kill_kids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
