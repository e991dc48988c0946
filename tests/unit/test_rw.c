/* Publish and read in one process: statuses, buffers, flags, read_next accounting across
 * lapping and re-allocation, loans, views, wait, and every bad argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

struct fx {
    const char *name;
    ndshm_writer *w;
    ndshm_reader *r;
};

static int setup_n(void **state, uint32_t slots, uint64_t capacity)
{
    static struct fx f;
    static unsigned counter;
    char base[32];
    snprintf(base, sizeof base, "rw%u", counter++);
    f.name = tu_name(base);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = slots;
    o.capacity = capacity;
    if (ndshm_writer_create(f.name, &o, &f.w) || ndshm_reader_open(f.name, NULL, &f.r))
        return -1;
    *state = &f;
    return 0;
}

static int setup4(void **state)
{
    return setup_n(state, 4, 4096);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ndshm_reader_close(f->r);
    ndshm_writer_close(f->w);
    ndshm_unlink(f->name);
    return 0;
}

/* publish `n` bytes of version-derived payload as a 1-d uint8 array */
static uint64_t pub(ndshm_writer *w, size_t n)
{
    static unsigned char data[1 << 20];
    uint64_t v = ndshm_writer_version(w) + 1, got = 0;
    tu_fill(data, n, v);
    uint64_t shape[1] = {n};
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, &got), NDSHM_OK);
    assert_int_equal(got, v);
    return v;
}

static void statuses_and_late_joiner(void **state)
{
    struct fx *f = *state;
    unsigned char buf[4096];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_NO_DATA);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_NO_DATA);
    assert_int_equal(ndshm_wait(f->r, 1000000), NDSHM_TIMEOUT);
    pub(f->w, 100);
    pub(f->w, 100);
    /* a reader opened now gets the last version first */
    ndshm_reader *late;
    assert_int_equal(ndshm_reader_open(f->name, NULL, &late), NDSHM_OK);
    assert_int_equal(ndshm_wait(late, 0), NDSHM_OK);
    assert_int_equal(ndshm_read_next(late, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.dropped, 0);
    assert_int_equal(ndshm_read_next(late, buf, sizeof buf, &info), NDSHM_NO_NEW);
    assert_int_equal(ndshm_read_latest(late, buf, sizeof buf, &info), NDSHM_NO_NEW);
    ndshm_reader_close(late);
    /* the first reader has read nothing: latest is 2, and 1 counts as skipped */
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.dropped, 1);
    assert_true(tu_check(buf, 100, 2));
    assert_int_equal(info.nbytes, 100);
    assert_int_equal(info.dtype, NDSHM_UINT8);
    assert_int_equal(info.ndim, 1);
    assert_int_equal(info.shape[0], 100);
    assert_true(info.publish_ns > 0 && info.read_ns >= info.publish_ns);
    assert_int_equal(info.latency_ns, info.read_ns - info.publish_ns);
    assert_int_equal(info.generation, 1);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_NO_NEW);
    assert_int_equal(ndshm_reader_version(f->r), 2);
}

static void too_small_buffer(void **state)
{
    struct fx *f = *state;
    pub(f->w, 1000);
    unsigned char buf[1000];
    memset(buf, 0xee, sizeof buf);
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(f->r, buf, 999, &info), NDSHM_E_TOO_SMALL);
    assert_int_equal(info.nbytes, 1000);
    assert_int_equal(info.version, 1);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xee); /* nothing copied */
    assert_int_equal(ndshm_read_next(f->r, buf, 10, &info), NDSHM_E_TOO_SMALL);
    /* the handle did not advance: the same version comes with a big enough buffer */
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 1);
    assert_true(tu_check(buf, 1000, 1));
    assert_int_equal(ndshm_read_latest(f->r, NULL, 0, &info), NDSHM_NO_NEW);
}

static void read_next_counts_every_loss(void **state)
{
    struct fx *f = *state; /* 4 slots */
    unsigned char buf[4096];
    ndshm_info info;
    uint64_t got = 0, dropped = 0, last = 0;
    /* keeping up: every version, in order */
    for (int i = 0; i < 20; i++) {
        uint64_t v = pub(f->w, 64 + (size_t)i);
        assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_int_equal(info.dropped, 0);
        assert_true(tu_check(buf, info.nbytes, v));
    }
    last = 20;
    /* lapped: 10 versions with 4 slots; the reader skips to the oldest still present */
    for (int i = 0; i < 10; i++)
        pub(f->w, 64);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 27); /* 30 - 4 + 1 */
    assert_int_equal(info.dropped, 6);
    /* irregular pattern: totals must add up exactly */
    last = info.version;
    for (int round = 0; round < 50; round++) {
        int k = (round * 7) % 11;
        for (int i = 0; i < k; i++)
            pub(f->w, 64);
        int rc;
        while ((rc = ndshm_read_next(f->r, buf, sizeof buf, &info)) == NDSHM_OK) {
            assert_int_equal(info.version, last + info.dropped + 1);
            assert_true(tu_check(buf, info.nbytes, info.version));
            last = info.version;
            got++;
            dropped += info.dropped;
            if (round % 3 == 0)
                break;
        }
    }
    while (ndshm_read_next(f->r, buf, sizeof buf, &info) == NDSHM_OK) {
        assert_int_equal(info.version, last + info.dropped + 1);
        last = info.version;
        got++;
        dropped += info.dropped;
    }
    assert_int_equal(last, ndshm_writer_version(f->w));
    assert_int_equal(27 + got + dropped, last);
}

static void read_next_across_reallocations(void **state)
{
    struct fx *f = *state; /* 4 slots, 4 KiB */
    unsigned char *buf = malloc(1 << 20);
    ndshm_info info;
    pub(f->w, 100); /* 1 */
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    pub(f->w, 100);   /* 2 */
    pub(f->w, 100);   /* 3 */
    pub(f->w, 10000); /* 4: new generation */
    /* the old mapping still holds 2 and 3: nothing is lost */
    for (uint64_t v = 2; v <= 4; v++) {
        assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_int_equal(info.dropped, 0);
        assert_true(tu_check(buf, info.nbytes, v));
        assert_int_equal(info.generation, v == 4 ? 2 : 1);
        assert_int_equal(!!(info.flags & NDSHM_INFO_REALLOCATED), v == 4);
    }
    /* several generations pass while the reader sleeps: each new segment carries the newest
     * N - 1 versions of the previous one, so nothing is lost */
    pub(f->w, 20000); /* 5: gen 3 */
    pub(f->w, 40000); /* 6: gen 4 (carries 3..5) */
    pub(f->w, 80000); /* 7: gen 5 (carries 4..6) */
    pub(f->w, 100);   /* 8: gen 5 */
    for (uint64_t v = 5; v <= 8; v++) {
        assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_int_equal(info.dropped, 0);
        assert_true(tu_check(buf, info.nbytes, v));
        assert_int_equal(info.generation, 5);
    }
    /* a version that does not fit the shrunk segments that follow is lost, and counted */
    pub(f->w, 20000); /* 9: gen 5 (the reader is mapped here, sealed at 9 later) */
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    pub(f->w, 20000); /* 10: gen 5 */
    assert_int_equal(ndshm_writer_reserve(f->w, 1000), NDSHM_OK);
    pub(f->w, 100); /* 11: gen 6, 10 does not fit: first version 11 */
    assert_int_equal(ndshm_writer_reserve(f->w, 2000), NDSHM_OK);
    pub(f->w, 100); /* 12: gen 7, carries 11; gen 6 is gone */
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    assert_int_equal(info.version, 10); /* still in the mapping the reader holds (gen 5) */
    assert_int_equal(info.dropped, 0);
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    assert_int_equal(info.version, 11);
    assert_int_equal(info.dropped, 0);
    assert_int_equal(info.generation, 7);
    pub(f->w, 20000); /* 13: gen 8 (20000 > 2000), carries 12, 11 */
    assert_int_equal(ndshm_writer_reserve(f->w, 1000), NDSHM_OK);
    pub(f->w, 100); /* 14: gen 9, 13 does not fit */
    assert_int_equal(ndshm_writer_reserve(f->w, 1500), NDSHM_OK);
    pub(f->w, 100); /* 15: gen 10 carries 14 */
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    assert_int_equal(info.version, 12); /* the reader's gen 7 mapping, sealed at 12 */
    assert_int_equal(ndshm_read_next(f->r, buf, 1 << 20, &info), NDSHM_OK);
    assert_int_equal(info.version, 14);
    assert_int_equal(info.dropped, 1); /* 13 lived only in gen 8 and 9 did not take it */
    assert_true(tu_check(buf, info.nbytes, 14));
    assert_int_equal(tu_count_segments(f->name), 2);
    free(buf);
}

static void flags_follow_meta(void **state)
{
    struct fx *f = *state;
    float a[24] = {0};
    unsigned char buf[4096];
    ndshm_info info;
    uint64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s6[1] = {6};
    assert_int_equal(ndshm_publish(f->w, NDSHM_FLOAT32, 2, s23, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_true(info.flags & NDSHM_INFO_META_CHANGED); /* first read */
    assert_int_equal(ndshm_publish(f->w, NDSHM_FLOAT32, 2, s23, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.flags, 0);
    assert_int_equal(ndshm_publish(f->w, NDSHM_FLOAT32, 2, s32, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.flags, NDSHM_INFO_META_CHANGED); /* shape, same size */
    assert_int_equal(ndshm_publish(f->w, NDSHM_INT32, 2, s32, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.flags, NDSHM_INFO_META_CHANGED); /* dtype */
    assert_int_equal(ndshm_publish(f->w, NDSHM_INT32, 1, s6, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.flags, NDSHM_INFO_META_CHANGED); /* ndim */
    assert_int_equal(info.dtype, NDSHM_INT32);
}

static void shapes_from_0d_to_32d(void **state)
{
    struct fx *f = *state;
    unsigned char buf[4096];
    ndshm_info info;
    double x = 3.25;
    assert_int_equal(ndshm_publish(f->w, NDSHM_FLOAT64, 0, NULL, &x, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.ndim, 0);
    assert_int_equal(info.nbytes, 8);
    assert_memory_equal(buf, &x, 8);
    uint64_t shape[NDSHM_MAX_DIMS];
    for (int i = 0; i < NDSHM_MAX_DIMS; i++)
        shape[i] = (i % 5 == 0) ? 2 : 1;
    unsigned char data[128];
    tu_fill(data, sizeof data, 9);
    assert_int_equal(ndshm_publish(f->w, NDSHM_INT8, NDSHM_MAX_DIMS, shape, data, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.ndim, 32);
    assert_int_equal(info.nbytes, 128);
    assert_memory_equal(info.shape, shape, sizeof shape);
    assert_memory_equal(buf, data, 128);
    /* zero-element arrays: data may be NULL */
    uint64_t z[3] = {4, 0, 7};
    assert_int_equal(ndshm_publish(f->w, NDSHM_COMPLEX128, 3, z, NULL, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_next(f->r, NULL, 0, &info), NDSHM_OK);
    assert_int_equal(info.nbytes, 0);
    assert_int_equal(info.shape[2], 7);
    const void *p = NULL;
    assert_int_equal(ndshm_read_latest_owned(f->r, &p, &info), NDSHM_NO_NEW);
}

static void owned_buffer(void **state)
{
    struct fx *f = *state;
    const void *p = (void *)1;
    ndshm_info info;
    assert_int_equal(ndshm_read_latest_owned(f->r, &p, &info), NDSHM_NO_DATA);
    assert_null(p);
    pub(f->w, 100);
    assert_int_equal(ndshm_read_latest_owned(f->r, &p, &info), NDSHM_OK);
    assert_true(tu_check(p, 100, 1));
    pub(f->w, 300000); /* grows the buffer (and re-allocates the channel) */
    assert_int_equal(ndshm_read_next_owned(f->r, &p, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_true(tu_check(p, 300000, 2));
    /* nothing new: the last version is still there */
    const void *q = NULL;
    ndshm_info again;
    assert_int_equal(ndshm_read_latest_owned(f->r, &q, &again), NDSHM_NO_NEW);
    assert_ptr_equal(q, p);
    assert_int_equal(again.version, 2);
    assert_true(tu_check(q, 300000, 2));
}

static void loans(void **state)
{
    struct fx *f = *state;
    unsigned char buf[4096];
    ndshm_info info;
    uint64_t shape[1] = {256}, v = 0;
    void *p = NULL;
    assert_int_equal(ndshm_commit(f->w, &v), NDSHM_E_STATE);
    assert_int_equal(ndshm_cancel(f->w), NDSHM_E_STATE);
    pub(f->w, 256); /* 1 */
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    void *p2;
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, &p2), NDSHM_E_STATE);
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 1, shape, buf, NULL), NDSHM_E_STATE);
    tu_fill(p, 256, 2);
    /* not visible before commit */
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 1);
    assert_int_equal(ndshm_commit(f->w, &v), NDSHM_OK);
    assert_int_equal(v, 2);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_true(tu_check(buf, 256, 2));
    /* cancelled: never visible, the number is used by the next publish */
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
    memset(p, 0xab, 256);
    assert_int_equal(ndshm_cancel(f->w), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_NO_NEW);
    assert_int_equal(ndshm_writer_version(f->w), 2);
    /* a loan that forces a re-allocation, cancelled: the new segment disappears */
    uint64_t big[1] = {100000};
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, big, &p), NDSHM_OK);
    assert_int_equal(tu_count_segments(f->name), 3);
    assert_int_equal(ndshm_cancel(f->w), NDSHM_OK);
    assert_int_equal(tu_count_segments(f->name), 2);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_NO_NEW);
    /* and committed */
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, big, &p), NDSHM_OK);
    tu_fill(p, 100000, 3);
    assert_int_equal(ndshm_commit(f->w, &v), NDSHM_OK);
    assert_int_equal(v, 3);
    const void *q;
    assert_int_equal(ndshm_read_latest_owned(f->r, &q, &info), NDSHM_OK);
    assert_true(tu_check(q, 100000, 3));
    assert_int_equal(tu_count_segments(f->name), 2);
    /* closing with an open loan publishes nothing */
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
}

static void views(void **state)
{
    struct fx *f = *state; /* 4 slots */
    ndshm_view view;
    ndshm_info info;
    assert_int_equal(ndshm_view_latest(f->r, &view), NDSHM_NO_DATA);
    uint64_t v = pub(f->w, 512);
    assert_int_equal(ndshm_view_latest(f->r, &view), NDSHM_OK);
    assert_int_equal(view.info.version, v);
    assert_true(tu_check(view.data, 512, v));
    assert_int_equal(ndshm_view_check(&view), NDSHM_OK);
    /* the writer may publish N - 1 more versions before it touches the viewed slot */
    for (int i = 0; i < 3; i++) {
        pub(f->w, 512);
        assert_int_equal(ndshm_view_check(&view), NDSHM_OK);
        assert_true(tu_check(view.data, 512, v));
    }
    void *p;
    uint64_t shape[1] = {512};
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
    assert_int_equal(ndshm_view_check(&view), NDSHM_OVERWRITTEN); /* reuse has begun */
    assert_int_equal(ndshm_cancel(f->w), NDSHM_OK);
    assert_int_equal(ndshm_view_release(&view), NDSHM_OVERWRITTEN);
    assert_null(view.data);
    assert_int_equal(ndshm_view_check(&view), NDSHM_E_INVAL);
    /* view_next walks versions like read_next: 2..4 are unread */
    for (uint64_t want = 2; want <= 4; want++) {
        assert_int_equal(ndshm_view_next(f->r, &view), NDSHM_OK);
        assert_int_equal(view.info.version, want);
        assert_int_equal(view.info.dropped, 0);
        assert_true(tu_check(view.data, 512, want));
        assert_int_equal(ndshm_view_release(&view), NDSHM_OK);
    }
    assert_int_equal(ndshm_view_next(f->r, &view), NDSHM_NO_NEW);
    uint64_t v2 = pub(f->w, 512);
    assert_int_equal(ndshm_view_next(f->r, &view), NDSHM_OK);
    assert_int_equal(view.info.version, v2);
    /* a view outlives a re-allocation and even the reader handle */
    pub(f->w, 500000);
    assert_int_equal(ndshm_read_latest(f->r, NULL, 0, &info), NDSHM_E_TOO_SMALL);
    ndshm_reader_close(f->r);
    f->r = NULL;
    assert_true(tu_check(view.data, 512, v2));
    assert_int_equal(ndshm_view_release(&view), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(f->name, NULL, &f->r), NDSHM_OK);
}

static void bad_arguments(void **state)
{
    struct fx *f = *state;
    unsigned char buf[64] = {0};
    ndshm_info info;
    ndshm_view view;
    uint64_t shape[2] = {2, 2}, v = 77;
    void *p = NULL;
    assert_int_equal(ndshm_publish(NULL, NDSHM_UINT8, 1, shape, buf, &v), NDSHM_E_INVAL);
    assert_int_equal(ndshm_publish(f->w, 0, 1, shape, buf, &v), NDSHM_E_DTYPE);
    assert_int_equal(ndshm_publish(f->w, 15, 1, shape, buf, &v), NDSHM_E_DTYPE);
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 33, shape, buf, &v), NDSHM_E_NDIM);
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 1, NULL, buf, &v), NDSHM_E_INVAL);
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 2, shape, NULL, &v), NDSHM_E_INVAL);
    uint64_t huge[2] = {UINT64_MAX, 2};
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 2, huge, buf, &v), NDSHM_E_OVERFLOW);
    uint64_t toobig[1] = {NDSHM_MAX_CAPACITY + 1};
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 1, toobig, buf, &v), NDSHM_E_OVERFLOW);
    assert_int_equal(v, 77);
    assert_int_equal(ndshm_writer_version(f->w), 0); /* nothing was published */
    assert_int_equal(ndshm_loan(NULL, NDSHM_UINT8, 1, shape, &p), NDSHM_E_INVAL);
    assert_int_equal(ndshm_loan(f->w, NDSHM_UINT8, 1, shape, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_loan(f->w, 99, 1, shape, &p), NDSHM_E_DTYPE);
    assert_null(p);
    assert_int_equal(ndshm_commit(NULL, &v), NDSHM_E_INVAL);
    assert_int_equal(ndshm_cancel(NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_writer_reserve(NULL, 10), NDSHM_E_INVAL);
    assert_int_equal(ndshm_writer_reserve(f->w, 0), NDSHM_E_LIMIT);
    assert_int_equal(ndshm_writer_reserve(f->w, NDSHM_MAX_CAPACITY + 1), NDSHM_E_LIMIT);
    assert_int_equal(ndshm_writer_version(NULL), 0);
    assert_int_equal(ndshm_read_latest(NULL, buf, sizeof buf, &info), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_latest(f->r, NULL, 10, &info), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_next(NULL, buf, sizeof buf, &info), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_latest_owned(f->r, NULL, &info), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_next_owned(NULL, (const void **)&p, &info), NDSHM_E_INVAL);
    assert_int_equal(ndshm_view_latest(NULL, &view), NDSHM_E_INVAL);
    assert_int_equal(ndshm_view_next(f->r, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_view_check(NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_view_release(NULL), NDSHM_E_INVAL);
    memset(&view, 0, sizeof view);
    assert_int_equal(ndshm_view_release(&view), NDSHM_E_INVAL);
    assert_int_equal(ndshm_wait(NULL, 0), NDSHM_E_INVAL);
    assert_int_equal(ndshm_reader_writer_alive(NULL), 0);
    assert_int_equal(ndshm_reader_version(NULL), 0);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = NDSHM_MAX_SLOTS + 1;
    ndshm_writer *w2 = NULL;
    assert_int_equal(ndshm_writer_create(tu_name("badopt"), &o, &w2), NDSHM_E_LIMIT);
    o.slots = NDSHM_MAX_SLOTS;
    o.capacity = NDSHM_MAX_CAPACITY;
    assert_int_equal(ndshm_writer_create(tu_name("badopt"), &o, &w2), NDSHM_E_LIMIT);
    assert_null(w2);
    assert_int_equal(tu_count_segments(tu_name("badopt")), 0);
}

static void wait_statuses(void **state)
{
    struct fx *f = *state;
    uint64_t t0 = ndshm_now_ns();
    assert_int_equal(ndshm_wait(f->r, 30000000), NDSHM_TIMEOUT);
    uint64_t dt = ndshm_now_ns() - t0;
    assert_true(dt >= 30000000); /* never early */
    pub(f->w, 10);
    assert_int_equal(ndshm_wait(f->r, -1), NDSHM_OK);
    ndshm_info info;
    unsigned char buf[64];
    assert_int_equal(ndshm_read_next(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(ndshm_wait(f->r, 0), NDSHM_TIMEOUT);
}

/* ----- per-version extras -------------------------------------------------------------------- */

static void extras_travel_with_their_version(void **state)
{
    struct fx *f = *state;
    static unsigned char data[3000], buf[3000];
    char meta[512], mbuf[512];
    uint64_t shape[1] = {sizeof data}, v = 0;
    tu_fill(data, sizeof data, 1);
    snprintf(meta, sizeof meta, "video/x-raw, format=(string)RGB, width=(int)1920");
    ndshm_extra x = NDSHM_EXTRA_INIT;
    x.meta = meta;
    x.meta_len = (uint32_t)strlen(meta) + 1;
    x.user_ns = 123456789;
    x.user_tag = 42;
    x.origin_version = 7000;
    x.origin_ns = 99;
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, data, &x, &v), NDSHM_OK);
    assert_int_equal(v, 1);
    ndshm_info info;
    /* too small a metadata buffer: the sizes, nothing consumed */
    assert_int_equal(ndshm_read_ex(f->r, NDSHM_READ_NEXT, buf, sizeof buf, mbuf, 10, &info),
                     NDSHM_E_TOO_SMALL);
    assert_int_equal(info.meta_len, x.meta_len);
    assert_int_equal(info.nbytes, sizeof data);
    assert_int_equal(ndshm_read_ex(f->r, NDSHM_READ_NEXT, buf, sizeof buf, NULL, 0, &info),
                     NDSHM_E_TOO_SMALL);
    memset(mbuf, 0, sizeof mbuf);
    assert_int_equal(
        ndshm_read_ex(f->r, NDSHM_READ_NEXT, buf, sizeof buf, mbuf, sizeof mbuf, &info), NDSHM_OK);
    assert_int_equal(info.version, 1);
    assert_string_equal(mbuf, meta);
    assert_true(tu_check(buf, sizeof data, 1));
    assert_true(info.flags & NDSHM_INFO_EXTRA);
    assert_int_equal(info.user_ns, 123456789);
    assert_int_equal(info.user_tag, 42);
    assert_int_equal(info.origin_version, 7000);
    assert_int_equal(info.origin_ns, 99);
    /* plain reads see the fields (not the bytes); a version without extras has none */
    tu_fill(data, sizeof data, 2);
    assert_int_equal(ndshm_publish(f->w, NDSHM_UINT8, 1, shape, data, &v), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(f->r, buf, sizeof buf, &info), NDSHM_OK);
    assert_false(info.flags & NDSHM_INFO_EXTRA);
    assert_int_equal(info.user_ns, 0);
    assert_int_equal(info.meta_len, 0);
    /* a view points at the metadata in place */
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, data, &x, &v), NDSHM_OK);
    ndshm_view view;
    assert_int_equal(ndshm_view_latest(f->r, &view), NDSHM_OK);
    assert_int_equal(view.info.meta_len, x.meta_len);
    assert_memory_equal(view.meta, meta, x.meta_len);
    assert_int_equal(view.info.user_tag, 42);
    assert_int_equal(ndshm_view_release(&view), NDSHM_OK);
    /* bad extras */
    ndshm_extra bad = x;
    bad.size = 4;
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, data, &bad, &v), NDSHM_E_INVAL);
    bad = x;
    bad.meta_len = NDSHM_META_MAX + 1;
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, data, &bad, &v), NDSHM_E_LIMIT);
    bad = x;
    bad.meta = NULL;
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, data, &bad, &v), NDSHM_E_INVAL);
    assert_int_equal(ndshm_read_ex(f->r, 2, buf, sizeof buf, NULL, 0, &info), NDSHM_E_INVAL);
}

static void extras_through_loans_and_reallocations(void **state)
{
    struct fx *f = *state;
    static unsigned char buf[200000];
    char meta[NDSHM_META_MAX], mbuf[NDSHM_META_MAX];
    for (size_t i = 0; i < sizeof meta; i++)
        meta[i] = (char)('a' + i % 26);
    uint64_t shape[1] = {1000}, v = 0;
    ndshm_extra x = NDSHM_EXTRA_INIT;
    x.meta = meta;
    x.meta_len = 100; /* the loan reserves room for 100 bytes */
    void *p;
    assert_int_equal(ndshm_loan_ex(f->w, NDSHM_UINT8, 1, shape, &x, &p), NDSHM_OK);
    tu_fill(p, 1000, 1);
    ndshm_extra y = NDSHM_EXTRA_INIT;
    y.meta = meta;
    y.meta_len = 5000; /* more than the loan's segment holds: refused, loan still open */
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(f->name, &ci), NDSHM_OK);
    y.meta_len = 100000;
    assert_int_equal(ndshm_commit_ex(f->w, &y, &v), NDSHM_E_LIMIT);
    y.meta_len = 4096;
    int rc = ndshm_commit_ex(f->w, &y, &v);
    assert_true(rc == NDSHM_E_TOO_SMALL || rc == NDSHM_OK);
    if (rc == NDSHM_E_TOO_SMALL) {
        y.meta_len = 60; /* fits: replaces the loan's */
        y.user_ns = 5;
        assert_int_equal(ndshm_commit_ex(f->w, &y, &v), NDSHM_OK);
    }
    assert_int_equal(v, 1);
    ndshm_info info;
    assert_int_equal(
        ndshm_read_ex(f->r, NDSHM_READ_NEXT, buf, sizeof buf, mbuf, sizeof mbuf, &info), NDSHM_OK);
    assert_int_equal(info.meta_len, y.meta_len);
    assert_memory_equal(mbuf, meta, y.meta_len);
    assert_true(tu_check(buf, 1000, 1));
    /* growing metadata re-allocates, and carried versions keep theirs */
    x.meta_len = 20000;
    tu_fill(buf, 1000, 2);
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, shape, buf, &x, &v), NDSHM_OK);
    x.meta_len = NDSHM_META_MAX;
    uint64_t big[1] = {150000};
    tu_fill(buf, 150000, 3);
    assert_int_equal(ndshm_publish_ex(f->w, NDSHM_UINT8, 1, big, buf, &x, &v), NDSHM_OK);
    ndshm_options ro = NDSHM_OPTIONS_INIT;
    ro.flags = NDSHM_REPLAY;
    ndshm_reader *r2;
    assert_int_equal(ndshm_reader_open(f->name, &ro, &r2), NDSHM_OK);
    for (uint64_t want = 1; want <= 3; want++) {
        memset(mbuf, 0, sizeof mbuf);
        assert_int_equal(
            ndshm_read_ex(r2, NDSHM_READ_NEXT, buf, sizeof buf, mbuf, sizeof mbuf, &info),
            NDSHM_OK);
        assert_int_equal(info.version, want);
        assert_true(tu_check(buf, (size_t)info.nbytes, want));
        assert_memory_equal(mbuf, meta, info.meta_len);
    }
    assert_int_equal(info.meta_len, NDSHM_META_MAX);
    ndshm_reader_close(r2);
}

/* ----- growth, replay, sizes ------------------------------------------------------------------ */

static uint64_t reallocs(const char *name)
{
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    return ci.reallocs;
}

/* Frames growing by 5,000 B re-allocated on 199 of 200 publishes (~2 ms each). */
static void capacity_grows_geometrically(void **state)
{
    (void)state;
    static unsigned char data[1 << 20];
    const uint32_t policies[] = {NDSHM_GROW_DOUBLE, NDSHM_GROW_EXACT, NDSHM_GROW_FIXED};
    for (int k = 0; k < 3; k++) {
        const char *name = tu_name(k == 0 ? "grow2" : k == 1 ? "grow1" : "grow0");
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.growth = policies[k];
        o.capacity = 5000;
        ndshm_writer *w;
        assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
        int refused = 0;
        for (uint64_t i = 1; i <= 200; i++) {
            uint64_t shape[1] = {i * 5000};
            int rc = ndshm_publish(w, NDSHM_UINT8, 1, shape, data, NULL);
            if (policies[k] == NDSHM_GROW_FIXED && i > 1)
                refused += rc == NDSHM_E_LIMIT;
            else
                assert_int_equal(rc, NDSHM_OK);
        }
        uint64_t n = reallocs(name);
        print_message("growth policy %u: %llu re-allocations for 200 versions growing by 5 kB\n",
                      policies[k], (unsigned long long)n);
        if (policies[k] == NDSHM_GROW_DOUBLE)
            assert_true(n <= 10);
        else if (policies[k] == NDSHM_GROW_EXACT)
            assert_true(n >= 190);
        else {
            assert_int_equal(n, 0);
            assert_int_equal(refused, 199);
        }
        ndshm_writer_close(w);
        ndshm_unlink(name);
    }
}

/* A pose or a parameter costs a few KiB of /dev/shm, not 280 KiB. */
static void small_channels_are_small(void **state)
{
    (void)state;
    const char *name = tu_name("small");
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    double pose[3] = {1, 2, 3};
    uint64_t shape[1] = {3};
    assert_int_equal(ndshm_publish(w, NDSHM_FLOAT64, 1, shape, pose, NULL), NDSHM_OK);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    print_message("a float64 (3,) channel uses %llu bytes of shared memory\n",
                  (unsigned long long)ci.bytes);
    assert_true(ci.bytes <= 4096 + 4096);
    assert_int_equal(ci.reallocs, 0);
    ndshm_writer_close(w);
    ndshm_unlink(name);
}

/* NDSHM_REPLAY then read_latest then read_next moved the handle backwards and re-delivered
 * versions with dropped = 0. */
static void replay_never_goes_backwards(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 3; i++)
        pub(f->w, 10);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_REPLAY;
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(f->name, &o, &r), NDSHM_OK);
    unsigned char buf[64];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 3);
    assert_int_equal(ndshm_read_next(r, buf, sizeof buf, &info), NDSHM_NO_NEW);
    pub(f->w, 10);
    assert_int_equal(ndshm_read_next(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 4);
    assert_int_equal(info.dropped, 0);
    ndshm_reader_close(r);
}

/* A reader still on an old generation when the writer re-allocated and then closed with
 * NDSHM_UNLINK_ON_CLOSE (a GStreamer consumer lagging behind a producer that stopped): the
 * current segment no longer exists. Reads say NO_NEW, read by read, and wait says
 * WRITER_GONE. Before: every read retried the open until CONTENDED and wait said OK at once,
 * forever (ndshmsrc spun at 100 % CPU and never sent EOS). Same after gc of a dead writer's
 * channel, and for views. */
static void vanished_segment_ends_reading(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) { /* read_next, read_latest, view_next */
        const char *name = tu_name(how == 0 ? "vanish0" : how == 1 ? "vanish1" : "vanish2");
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.slots = 4;
        o.capacity = 64;
        o.flags = NDSHM_UNLINK_ON_CLOSE;
        ndshm_writer *w;
        ndshm_reader *r;
        assert_int_equal(ndshm_writer_create(name, &o, &w), NDSHM_OK);
        assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
        pub(w, 16);
        static unsigned char buf[1 << 16];
        ndshm_info info;
        assert_int_equal(ndshm_read_next(r, buf, sizeof buf, &info), NDSHM_OK);
        uint64_t gen0 = info.generation;
        pub(w, 4000); /* re-allocates: a new segment the reader has not mapped */
        pub(w, 30000);
        assert_int_equal(ndshm_writer_close(w), NDSHM_OK); /* unlinks every file */
        for (int i = 0; i < 3; i++) {
            int rc;
            if (how == 2) {
                ndshm_view v;
                rc = ndshm_view_next(r, &v);
                if (rc == NDSHM_OK)
                    ndshm_view_release(&v);
            } else {
                rc = how == 0 ? ndshm_read_next(r, buf, sizeof buf, &info)
                              : ndshm_read_latest(r, buf, sizeof buf, &info);
            }
            if (rc != NDSHM_NO_NEW)
                fail_msg("read kind %d, call %d after the close: expected NO_NEW (the versions "
                         "past generation %llu are in removed files), got %s",
                         how, i, (unsigned long long)gen0, ndshm_status_name(rc));
        }
        int rc = ndshm_wait(r, 2000000000);
        if (rc != NDSHM_WRITER_GONE)
            fail_msg("wait after the close: expected WRITER_GONE, got %s", ndshm_status_name(rc));
        ndshm_reader_close(r);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup4, teardown)
int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        T(statuses_and_late_joiner),
        T(too_small_buffer),
        T(read_next_counts_every_loss),
        T(read_next_across_reallocations),
        T(flags_follow_meta),
        T(shapes_from_0d_to_32d),
        T(owned_buffer),
        T(loans),
        T(views),
        T(bad_arguments),
        T(wait_statuses),
        T(extras_travel_with_their_version),
        T(extras_through_loans_and_reallocations),
        cmocka_unit_test(capacity_grows_geometrically),
        cmocka_unit_test(small_channels_are_small),
        T(replay_never_goes_backwards),
        cmocka_unit_test(vanished_segment_ends_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
