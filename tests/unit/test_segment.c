/* Foreign, truncated and corrupted segments, and OS faults (injected through ndshm__os):
 * every case gets its own status, none crashes, none leaves a segment behind. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

static void seg_path(char *out, size_t cap, const char *seg)
{
    const char *d = getenv("NDSHM_DIR");
    snprintf(out, cap, "%s/%s", d && d[0] == '/' ? d : "/dev/shm", seg);
}

static void write_file(const char *seg, const void *data, size_t n)
{
    char path[512];
    seg_path(path, sizeof path, seg);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

/* Map a segment of channel `name` read-write (generation 0 = control). */
static void *map_rw(const char *name, uint64_t gen, size_t *size)
{
    char seg[NDSHM__SEG_MAX], path[512];
    if (gen)
        assert_true(tu_data_seg(name, gen, seg, sizeof seg));
    else
        ndshm__ctl_name(seg, name);
    seg_path(path, sizeof path, seg);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    close(fd);
    *size = (size_t)st.st_size;
    return p;
}

static int open_status(const char *name)
{
    ndshm_reader *r = NULL;
    int rc = ndshm_reader_open(name, NULL, &r);
    if (rc == NDSHM_OK)
        ndshm_reader_close(r);
    return rc;
}

static void foreign_and_truncated_control(void **state)
{
    (void)state;
    const char *name = tu_name("foreign");
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    unsigned char junk[4096];
    tu_fill(junk, sizeof junk, 42);
    write_file(seg, junk, sizeof junk);
    assert_int_equal(open_status(name), NDSHM_E_MAGIC);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_E_MAGIC);
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_E_MAGIC);
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_EXISTS);
    write_file(seg, junk, 10);
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    /* empty, or sized but all zero: a creator between open(O_EXCL) and writing the header.
     * That is "not ready" (the reader waits 250 ms for it), never "corrupt". */
    write_file(seg, junk, 0);
    assert_int_equal(open_status(name), NDSHM_E_NOT_READY);
    memset(junk, 0, sizeof junk);
    write_file(seg, junk, sizeof junk);
    assert_int_equal(open_status(name), NDSHM_E_NOT_READY);
    /* a gc never touches what is not ours to judge */
    size_t removed = 99;
    assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
    assert_int_equal(tu_count_segments(name), 1);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
    assert_int_equal(tu_count_segments(name), 0);
    assert_int_equal(ndshm_unlink(name), NDSHM_E_NOENT);
    assert_int_equal(open_status(name), NDSHM_E_NOENT);
}

static void corrupted_control_fields(void **state)
{
    (void)state;
    const char *name = tu_name("ctlfields");
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    size_t size;
    struct ndshm__ctl *c = map_rw(name, 0, &size);
    assert_int_equal(open_status(name), NDSHM_OK);
    c->layout = 99;
    assert_int_equal(open_status(name), NDSHM_E_LAYOUT);
    c->layout = NDSHM__LAYOUT;
    atomic_store(&c->ready, 0);
    assert_int_equal(open_status(name), NDSHM_E_NOT_READY); /* after waiting 250 ms */
    /* a channel that becomes ready while a reader opens it: the reader waits for it (here up
     * to 60 s rather than 250 ms, so a slow fork on a loaded machine cannot fail the test) */
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        usleep(30000);
        atomic_store(&c->ready, NDSHM__READY);
        _exit(0);
    }
    uint64_t ready_wait = ndshm__ready_wait_ns;
    ndshm__ready_wait_ns = 60000000000u;
    assert_int_equal(open_status(name), NDSHM_OK);
    ndshm__ready_wait_ns = ready_wait;
    int st;
    waitpid(p, &st, 0);
    assert_int_equal(atomic_load(&c->ready), NDSHM__READY);
    c->name[0] ^= 1; /* a control segment copied under another name */
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    c->name[0] ^= 1;
    c->ctl_size = 12;
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    c->ctl_size = NDSHM__CTL_SIZE;
    /* no such data segment: the channel exists but is broken ("no channel" would be a lie) */
    atomic_store(&c->gen, 77);
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_E_CORRUPT);
    atomic_store(&c->gen, 1);
    uint64_t tok = atomic_load(&c->token[1]);
    atomic_store(&c->token[1], tok ^ 2); /* names a file that is not there */
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    atomic_store(&c->token[1], tok);
    assert_int_equal(open_status(name), NDSHM_OK);
    /* an older layout of ours is recognised as such */
    uint64_t magic = c->magic;
    c->magic = UINT64_C(0x314c54434d48534e); /* "NSHMCTL1" */
    assert_int_equal(open_status(name), NDSHM_E_LAYOUT);
    c->magic = magic;
    munmap(c, size);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

/* Files planted under a channel's name, or made writable by others, are refused without
 * hanging and without harm. */
static void untrusted_files(void **state)
{
    (void)state;
    const char *name = tu_name("untrusted");
    char seg[NDSHM__SEG_MAX], path[512];
    ndshm__ctl_name(seg, name);
    seg_path(path, sizeof path, seg);
    /* a FIFO: every call returns at once (O_NONBLOCK) with E_UNTRUSTED */
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(open_status(name), NDSHM_E_UNTRUSTED);
    ndshm_channel_info ci, *list = NULL;
    size_t n = 0;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_list(&list, &n), NDSHM_OK);
    ndshm_list_free(list);
    assert_int_equal(ndshm_gc(NULL), NDSHM_OK);
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_open(name, NULL, &w), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_EXISTS);
    assert_int_equal(unlink(path), 0);
    /* a directory */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(open_status(name), NDSHM_E_UNTRUSTED);
    assert_int_equal(rmdir(path), 0);
    /* a real channel whose control segment someone made group-writable: refused (a group
     * member could truncate it under its readers) */
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    assert_int_equal(open_status(name), NDSHM_OK);
    assert_int_equal(chmod(path, 0660), 0);
    assert_int_equal(open_status(name), NDSHM_E_UNTRUSTED);
    assert_int_equal(chmod(path, 0600), 0);
    /* a data segment writable by others, or owned by someone else */
    char dseg[NDSHM__SEG_MAX], dpath[512];
    assert_true(tu_data_seg(name, 1, dseg, sizeof dseg));
    seg_path(dpath, sizeof dpath, dseg);
    assert_int_equal(chmod(dpath, 0602), 0);
    assert_int_equal(open_status(name), NDSHM_E_UNTRUSTED);
    assert_int_equal(chmod(dpath, 0600), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(dpath, 65534, 65534), 0);
        assert_int_equal(open_status(name), NDSHM_E_UNTRUSTED);
        assert_int_equal(chown(dpath, 0, 0), 0);
    }
    assert_int_equal(open_status(name), NDSHM_OK);
    /* the writer's own files: no group/other write bits even when asked for */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 022, 0);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

static void corrupted_data_header(void **state)
{
    (void)state;
    const char *name = tu_name("datahdr");
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    size_t size;
    struct ndshm__data *d = map_rw(name, 1, &size);
    struct ndshm__data saved = *d;
#define EXPECT_CORRUPT(field, value, status)                                                       \
    do {                                                                                           \
        d->field = (value);                                                                        \
        assert_int_equal(open_status(name), status);                                               \
        d->field = saved.field;                                                                    \
    } while (0)
    EXPECT_CORRUPT(magic, 1, NDSHM_E_MAGIC);
    EXPECT_CORRUPT(layout, 3, NDSHM_E_LAYOUT);
    EXPECT_CORRUPT(slot_count, 0, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(slot_count, 1000000, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(slot_count, saved.slot_count + 1, NDSHM_E_CORRUPT); /* past the file */
    EXPECT_CORRUPT(slot_stride, UINT64_MAX / 2, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(slot_capacity, saved.slot_stride, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(payload_offset, 8, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(slots_offset, 3, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(seg_size, size + 1, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(generation, 2, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(first_version, 0, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(hdr_size, 1, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(meta_capacity, 100, NDSHM_E_CORRUPT); /* not whole lines */
    EXPECT_CORRUPT(meta_capacity, NDSHM_META_MAX * 2, NDSHM_E_CORRUPT);
    EXPECT_CORRUPT(meta_capacity, saved.payload_offset, NDSHM_E_CORRUPT); /* overlaps payload */
    /* another instance's segment (a removed and re-created namesake, or a planted copy) */
    EXPECT_CORRUPT(nonce, saved.nonce ^ 1, NDSHM_E_UNTRUSTED);
    EXPECT_CORRUPT(token, saved.token ^ 2, NDSHM_E_UNTRUSTED);
    assert_int_equal(open_status(name), NDSHM_OK);
    munmap(d, size);
    /* truncated data segment */
    char seg[NDSHM__SEG_MAX], path[512];
    assert_true(tu_data_seg(name, 1, seg, sizeof seg));
    seg_path(path, sizeof path, seg);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(open_status(name), NDSHM_E_CORRUPT);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

static void corrupted_slot_header(void **state)
{
    (void)state;
    const char *name = tu_name("slothdr");
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    uint64_t shape[1] = {100};
    unsigned char data[100], buf[4096];
    tu_fill(data, sizeof data, 1);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, NULL), NDSHM_OK);
    size_t size;
    uint64_t gen = ndshm_writer_version(w) ? 0 : 0;
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    gen = ci.generation;
    void *base = map_rw(name, gen, &size);
    struct ndshm__geom g;
    const struct ndshm__data *dh = base;
    assert_int_equal(ndshm__validate_data(base, size, gen, dh->nonce, dh->token, &g), NDSHM_OK);
    struct ndshm__slot *s = ndshm__slot_at(base, &g, 1);
    struct ndshm__slot saved = *(struct ndshm__slot *)s;
    ndshm_info info;
    ndshm_view view;
#define SLOT_CORRUPT(field, value)                                                                 \
    do {                                                                                           \
        s->field = (value);                                                                        \
        assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_E_CORRUPT);           \
        assert_int_equal(ndshm_view_latest(r, &view), NDSHM_E_CORRUPT);                            \
        s->field = saved.field;                                                                    \
    } while (0)
    SLOT_CORRUPT(ndim, 33);
    SLOT_CORRUPT(ndim, UINT32_MAX);
    SLOT_CORRUPT(dtype, 0);
    SLOT_CORRUPT(dtype, 1000);
    SLOT_CORRUPT(shape[0], UINT64_MAX);          /* overflows */
    SLOT_CORRUPT(shape[0], g.slot_capacity + 1); /* larger than the slot */
    SLOT_CORRUPT(meta_len, g.meta_capacity + 1); /* more metadata than the slot holds */
    SLOT_CORRUPT(meta_len, UINT32_MAX);
    /* a slot whose version is not the head one: never accepted, reported as contention */
    s->version = 7;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_CONTENDED);
    s->version = saved.version;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_true(tu_check(buf, 100, 1));
    munmap(base, size);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

/* ----- fault injection --------------------------------------------------------------------- */

static struct ndshm__os faulty;
static int fail_fallocate_after; /* fail the n-th fallocate from now (1 = next) */
static int fail_open_errno;

static int bad_fallocate(int fd, uint64_t size)
{
    if (fail_fallocate_after > 0 && --fail_fallocate_after == 0)
        return -ENOSPC;
    return ndshm__os_linux.fallocate(fd, size);
}

static int bad_open(const char *seg, int create, int writable, uint32_t mode)
{
    if (fail_open_errno)
        return -fail_open_errno;
    return ndshm__os_linux.open(seg, create, writable, mode);
}

static pthread_t main_thread;
/* munmaps on threads other than the test's (liburcu's call_rcu thread). Relaxed on purpose: no
 * ordering, so ThreadSanitizer still sees that thread's read of the table as unordered with
 * whatever the test does next. */
static atomic_ulong foreign_unmaps;

static int counting_munmap(void *addr, uint64_t size)
{
    if (!pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add_explicit(&foreign_unmaps, 1, memory_order_relaxed);
    return ndshm__os_linux.munmap(addr, size);
}

/* liburcu's call_rcu thread may be unmapping a reader's old mapping through the current table
 * at any moment. So the tables themselves never change once published (the fault table is
 * built once, before any reader exists): a test swaps only the atomic pointer, and the
 * counters that drive the faults are read by the test's own thread only. (Rewriting the
 * table in each setup was a data race ThreadSanitizer reported.) */
static void build_fault_table(void)
{
    faulty = ndshm__os_linux;
    faulty.fallocate = bad_fallocate;
    faulty.open = bad_open;
    faulty.munmap = counting_munmap;
}

static int install_faults(void **state)
{
    (void)state;
    fail_fallocate_after = 0;
    fail_open_errno = 0;
    ndshm__os_set(&faulty);
    return 0;
}

static int remove_faults(void **state)
{
    (void)state;
    ndshm__os_set(NULL);
    return 0;
}

static void nospc_at_create(void **state)
{
    (void)state;
    const char *name = tu_name("nospc1");
    ndshm_writer *w = NULL;
    fail_fallocate_after = 1; /* the control segment */
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_NOSPC);
    assert_null(w);
    assert_int_equal(tu_count_segments(name), 0);
    fail_fallocate_after = 2; /* the data segment */
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_NOSPC);
    assert_int_equal(tu_count_segments(name), 0);
}

static void nospc_at_reallocation(void **state)
{
    (void)state;
    const char *name = tu_name("nospc2");
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    static unsigned char small[1000], big[200000], buf[200000];
    uint64_t s1[1] = {sizeof small}, s2[1] = {sizeof big}, v = 0;
    tu_fill(small, sizeof small, 1);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, s1, small, &v), NDSHM_OK);
    fail_fallocate_after = 1;
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, s2, big, &v), NDSHM_E_NOSPC);
    assert_int_equal(tu_count_segments(name), 2); /* no half-made generation left */
    assert_int_equal(ndshm_writer_version(w), 1);
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 1);
    assert_true(tu_check(buf, sizeof small, 1));
    /* and the channel carries on once space is back */
    tu_fill(big, sizeof big, 2);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, s2, big, &v), NDSHM_OK);
    assert_int_equal(v, 2);
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 2);
    assert_true(tu_check(buf, sizeof big, 2));
    assert_true(info.flags & NDSHM_INFO_REALLOCATED);
    assert_int_equal(tu_count_segments(name), 2);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

/* A reservation the file system cannot hold is refused at once, changes nothing, and never
 * wedges later publishes; a cancelled loan keeps a reservation that succeeded. */
static void reserve_nospc_and_cancel(void **state)
{
    (void)state;
    const char *name = tu_name("reserve");
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    static unsigned char data[3000], buf[3000];
    uint64_t shape[1] = {sizeof data}, v = 0;
    tu_fill(data, sizeof data, 1);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, &v), NDSHM_OK);
    fail_fallocate_after = 1;
    assert_int_equal(ndshm_writer_reserve(w, 1 << 20), NDSHM_E_NOSPC);
    assert_int_equal(tu_count_segments(name), 2);
    for (uint64_t k = 2; k <= 5; k++) { /* publishes carry on in the current segment */
        tu_fill(data, sizeof data, k);
        assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, &v), NDSHM_OK);
        assert_int_equal(v, k);
    }
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    uint64_t gen = ci.generation;
    /* a reservation that works, then a loan that is cancelled: the reservation stays */
    assert_int_equal(ndshm_writer_reserve(w, 1 << 20), NDSHM_OK);
    void *p;
    assert_int_equal(ndshm_loan(w, NDSHM_UINT8, 1, shape, &p), NDSHM_OK);
    assert_int_equal(ndshm_cancel(w), NDSHM_OK);
    tu_fill(data, sizeof data, 6);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, data, &v), NDSHM_OK);
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.generation, gen + 1);
    assert_true(ci.capacity >= (1 << 20));
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 6);
    assert_true(tu_check(buf, sizeof data, 6));
    assert_int_equal(tu_count_segments(name), 2);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

/* A reader that re-maps under the fault table leaves the old mapping to liburcu's call_rcu
 * thread, which unmaps it through the table; once that has happened, the next test installs
 * faults again. ThreadSanitizer reported the rewrite of the table against that thread's read
 * of it as a race, at random (it depended on when the grace period ended); here the test waits
 * for the deferred unmap, so the race was reported on every run until the table stopped being
 * rewritten. */
static void deferred_unmap_then_swap(void **state)
{
    const char *name = tu_name("deferred");
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    static unsigned char small[100], big[300000], buf[300000];
    uint64_t s1[1] = {sizeof small}, s2[1] = {sizeof big};
    ndshm_info info;
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, s1, small, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    unsigned long before = atomic_load_explicit(&foreign_unmaps, memory_order_relaxed);
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, s2, big, NULL), NDSHM_OK); /* re-alloc */
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);    /* re-map */
    assert_true(info.flags & NDSHM_INFO_REALLOCATED);
    int waited = 0;
    while (atomic_load_explicit(&foreign_unmaps, memory_order_relaxed) == before &&
           waited < 60000) {
        tu_sleep_ms(1);
        waited++;
    }
    if (atomic_load_explicit(&foreign_unmaps, memory_order_relaxed) == before)
        fail_msg("expected liburcu's call_rcu thread to unmap the old mapping through the fault "
                 "table; after %d ms it had not",
                 waited);
    remove_faults(state);
    install_faults(state); /* what the next test's setup does */
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

static void permission_denied(void **state)
{
    (void)state;
    const char *name = tu_name("perm");
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_OK);
    fail_open_errno = EACCES;
    ndshm_reader *r = NULL;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_E_PERM);
    assert_null(r);
    fail_open_errno = EMFILE;
    int st = ndshm_reader_open(name, NULL, &r);
    assert_int_equal(NDSHM_SYS_ERRNO(st), EMFILE);
    fail_open_errno = 0;
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

int main(void)
{
    tu_init();
    main_thread = pthread_self();
    build_fault_table();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(foreign_and_truncated_control),
        cmocka_unit_test(corrupted_control_fields),
        cmocka_unit_test(corrupted_data_header),
        cmocka_unit_test(corrupted_slot_header),
        cmocka_unit_test(untrusted_files),
        cmocka_unit_test_setup_teardown(nospc_at_create, install_faults, remove_faults),
        cmocka_unit_test_setup_teardown(nospc_at_reallocation, install_faults, remove_faults),
        cmocka_unit_test_setup_teardown(reserve_nospc_and_cancel, install_faults, remove_faults),
        cmocka_unit_test_setup_teardown(deferred_unmap_then_swap, install_faults, remove_faults),
        cmocka_unit_test_setup_teardown(permission_denied, install_faults, remove_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
