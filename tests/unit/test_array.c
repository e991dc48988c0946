/*
 * Shared arrays (src/array.c): life cycle, read-only attachments, every bad input, corrupted
 * and truncated headers, planted files, a creator killed mid-create, ENOSPC (injected, and on
 * a real 2 MiB tmpfs when mounting is permitted), 0-d / 32-d / zero-element / Fortran-order
 * arrays, all 14 dtypes, the attach count from kernel locks, the namespace rules shared with
 * channels (list / stat / unlink / gc / E_KIND), snapshots through a channel, and the
 * Fortran-order .npy functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "array_internal.h"
#include "testutil.h"

static void seg_path(char *out, size_t cap, const char *name)
{
    const char *d = getenv("NDSHM_DIR");
    snprintf(out, cap, "%s/ndshm.%s", d && d[0] == '/' ? d : "/dev/shm", name);
}

static int file_exists(const char *name)
{
    char path[512];
    seg_path(path, sizeof path, name);
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Map an array's file read-write behind the library's back (to corrupt it). */
static void *map_file(const char *name, size_t *size)
{
    char path[512];
    seg_path(path, sizeof path, name);
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

static int attach_status(const char *name, uint32_t flags)
{
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = flags;
    ndshm_array *a = NULL;
    int rc = ndshm_array_attach(name, &o, &a);
    if (rc == NDSHM_OK)
        ndshm_array_detach(a);
    else
        assert_null(a);
    return rc;
}

static int child_status(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static int32_t attached(const char *name)
{
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_OK);
    return ai.attached;
}

/* attached() after a child process died or exited: the kernel drops a dead process's lock
 * when the last reference to its open file goes, which is normally before its parent can reap
 * it, but later when another process briefly holds the dead one's memory map (a `ps` reading
 * its /proc entry holds the mapping, and the mapping holds the file). Waits up to 10 s. */
static int32_t attached_after_exit(const char *name, int32_t want)
{
    int32_t n = attached(name);
    for (int i = 0; i < 1000 && n != want; i++) {
        usleep(10000);
        n = attached(name);
    }
    if (n != want)
        fail_msg("%s: expected %d attachments once the child's were released, saw %d after 10 s",
                 name, want, n);
    return n;
}

/* ----- life cycle -------------------------------------------------------------------------- */

static void life_cycle(void **state)
{
    (void)state;
    const char *name = tu_name("life");
    uint64_t shape[2] = {3, 4};
    ndshm_array *a = NULL, *b = NULL, *r = NULL;
    assert_int_equal(ndshm_array_create(name, NDSHM_FLOAT64, 2, shape, NULL, &a), NDSHM_OK);
    assert_non_null(a);
    double *d = ndshm_array_data(a);
    assert_non_null(d);
    assert_true(((uintptr_t)d % 4096) == 0); /* page aligned */
    assert_ptr_equal(ndshm_array_cdata(a), d);
    for (int i = 0; i < 12; i++)
        assert_true(d[i] == 0.0); /* zero-filled */
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    assert_string_equal(ai.name, name);
    assert_int_equal(ai.dtype, NDSHM_FLOAT64);
    assert_int_equal(ai.ndim, 2);
    assert_int_equal(ai.order, NDSHM_ORDER_C);
    assert_int_equal(ai.shape[0], 3);
    assert_int_equal(ai.shape[1], 4);
    assert_int_equal(ai.shape[2], 0);
    assert_int_equal(ai.nbytes, 96);
    assert_int_equal(ai.mode, 0600);
    assert_int_equal(ai.readonly, 0);
    assert_int_equal(ai.attached, 1);
    assert_true(ai.created_ns > UINT64_C(1600000000) * 1000000000u); /* realtime */

    /* a second attachment sees the first one's stores at once, and the reverse */
    assert_int_equal(ndshm_array_attach(name, NULL, &b), NDSHM_OK);
    double *e = ndshm_array_data(b);
    assert_true(e != d); /* its own mapping */
    d[5] = 42.0;
    assert_true(e[5] == 42.0);
    e[11] = -1.5;
    assert_true(d[11] == -1.5);
    ndshm_array_options ro = NDSHM_ARRAY_OPTIONS_INIT;
    ro.flags = NDSHM_ARRAY_READONLY;
    assert_int_equal(ndshm_array_attach(name, &ro, &r), NDSHM_OK);
    assert_null(ndshm_array_data(r));
    const double *c = ndshm_array_cdata(r);
    assert_true(c[5] == 42.0 && c[11] == -1.5);
    assert_int_equal(ndshm_array_info_get(r, &ai), NDSHM_OK);
    assert_int_equal(ai.readonly, 1);
    assert_int_equal(ai.attached, 3);
    assert_int_equal(attached(name), 3);

    /* delete: the name goes, the attachments keep working */
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
    assert_false(file_exists(name));
    assert_int_equal(attach_status(name, 0), NDSHM_E_NOENT);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_NOENT);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_NOENT);
    d[0] = 7.0;
    assert_true(e[0] == 7.0 && c[0] == 7.0);
    assert_int_equal(ndshm_array_info_get(b, &ai), NDSHM_OK);
    assert_int_equal(ai.nbytes, 96);
    /* the name is free again: a new, independent array */
    ndshm_array *n = NULL;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &n), NDSHM_OK);
    assert_int_equal(((unsigned char *)ndshm_array_data(n))[0], 0);
    assert_true(d[0] == 7.0);
    assert_int_equal(ndshm_array_detach(n), NDSHM_OK);
    assert_int_equal(ndshm_array_detach(r), NDSHM_OK);
    assert_int_equal(ndshm_array_detach(b), NDSHM_OK);
    assert_int_equal(ndshm_array_detach(a), NDSHM_OK);
    assert_int_equal(ndshm_array_detach(NULL), NDSHM_OK);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
}

/* The array outlives the process that created it, with its contents. */
static void outlives_creator(void **state)
{
    (void)state;
    const char *name = tu_name("outlive");
    uint64_t shape[1] = {1000};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ndshm_array *a;
        if (ndshm_array_create(name, NDSHM_UINT32, 1, shape, NULL, &a) != NDSHM_OK)
            _exit(1);
        uint32_t *p = ndshm_array_data(a);
        for (uint32_t i = 0; i < 1000; i++)
            p[i] = i * 2654435761u;
        _exit(0); /* no detach: the process just ends */
    }
    assert_int_equal(child_status(pid), 0);
    ndshm_array *a;
    assert_int_equal(ndshm_array_attach(name, NULL, &a), NDSHM_OK);
    const uint32_t *p = ndshm_array_cdata(a);
    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(p[i], i * 2654435761u);
    attached_after_exit(name, 1); /* the dead creator's lock is gone */
    ndshm_array_detach(a);
    assert_int_equal(attached(name), 0);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

static void exists(void **state)
{
    (void)state;
    const char *name = tu_name("exists"), *chan = tu_name("exists-chan");
    uint64_t shape[1] = {10};
    ndshm_array *a = NULL, *b = (ndshm_array *)&shape; /* out untouched on failure */
    assert_int_equal(ndshm_array_create(name, NDSHM_INT8, 1, shape, NULL, &a), NDSHM_OK);
    assert_int_equal(ndshm_array_create(name, NDSHM_INT8, 1, shape, NULL, &b), NDSHM_E_EXISTS);
    assert_ptr_equal(b, (ndshm_array *)&shape);
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(name, NULL, &w), NDSHM_E_EXISTS);
    assert_null(w);
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_array_create(chan, NDSHM_INT8, 1, shape, NULL, &b), NDSHM_E_EXISTS);
    assert_ptr_equal(b, (ndshm_array *)&shape);
    ndshm_writer_close(w);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* ----- one namespace with channels --------------------------------------------------------- */

static void kinds(void **state)
{
    (void)state;
    const char *arr = tu_name("kind-arr"), *chan = tu_name("kind-chan");
    uint64_t shape[3] = {2, 3, 5};
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.order = NDSHM_ORDER_F;
    o.mode = 0640;
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(arr, NDSHM_INT16, 3, shape, &o, &a), NDSHM_OK);
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    uint64_t ver;
    assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, "abcde", &ver), NDSHM_OK);

    /* channel calls on an array: E_KIND; array calls on a channel: E_KIND */
    ndshm_reader *r = NULL;
    assert_int_equal(ndshm_reader_open(arr, NULL, &r), NDSHM_E_KIND);
    assert_null(r);
    ndshm_writer *w2 = NULL;
    assert_int_equal(ndshm_writer_open(arr, NULL, &w2), NDSHM_E_KIND);
    assert_null(w2);
    assert_int_equal(attach_status(chan, 0), NDSHM_E_KIND);
    assert_int_equal(attach_status(chan, NDSHM_ARRAY_READONLY), NDSHM_E_KIND);
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_stat(chan, &ai), NDSHM_E_KIND);
    assert_int_equal(ndshm_array_delete(chan), NDSHM_E_KIND);
    assert_int_equal(tu_count_segments(chan), 2); /* untouched */

    /* ndshm_stat / ndshm_list describe both kinds */
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(arr, &ci), NDSHM_OK);
    assert_int_equal(ci.kind, NDSHM_KIND_ARRAY);
    assert_string_equal(ci.name, arr);
    assert_int_equal(ci.dtype, NDSHM_INT16);
    assert_int_equal(ci.ndim, 3);
    assert_int_equal(ci.order, NDSHM_ORDER_F);
    assert_int_equal(ci.shape[0], 2);
    assert_int_equal(ci.shape[1], 3);
    assert_int_equal(ci.shape[2], 5);
    assert_int_equal(ci.nbytes, 60);
    assert_int_equal(ci.bytes, 8192); /* header page + one data page */
    assert_int_equal(ci.mode, 0640);
    assert_int_equal(ci.attached, 1);
    assert_int_equal(ci.status, NDSHM_OK);
    assert_int_equal(ci.version, 0);
    assert_int_equal(ci.writer_pid, 0);
    assert_true(ci.created_ns > 0);
    assert_int_equal(ndshm_stat(chan, &ci), NDSHM_OK);
    assert_int_equal(ci.kind, NDSHM_KIND_CHANNEL);
    ndshm_channel_info *list;
    size_t n;
    assert_int_equal(ndshm_list(&list, &n), NDSHM_OK);
    int seen_arr = 0, seen_chan = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, arr) == 0) {
            seen_arr++;
            assert_int_equal(list[i].kind, NDSHM_KIND_ARRAY);
            assert_int_equal(list[i].status, NDSHM_OK);
            assert_int_equal(list[i].nbytes, 60);
            assert_int_equal(list[i].order, NDSHM_ORDER_F);
        } else if (strcmp(list[i].name, chan) == 0) {
            seen_chan++;
            assert_int_equal(list[i].kind, NDSHM_KIND_CHANNEL);
            assert_int_equal(list[i].version, 1);
        }
    }
    ndshm_list_free(list);
    assert_int_equal(seen_arr, 1);
    assert_int_equal(seen_chan, 1);

    /* gc never removes an array, attached or not, whatever happened to its creator */
    ndshm_array_detach(a);
    assert_int_equal(attached(arr), 0);
    ndshm_writer_close(w);
    size_t removed = 0;
    assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
    assert_int_equal(removed, 1); /* the closed channel */
    assert_true(file_exists(arr));
    assert_int_equal(tu_count_segments(chan), 0);
    assert_int_equal(attach_status(arr, 0), NDSHM_OK);

    /* ndshm_unlink removes an array too */
    assert_int_equal(ndshm_unlink(arr), NDSHM_OK);
    assert_false(file_exists(arr));
    assert_int_equal(ndshm_unlink(arr), NDSHM_E_NOENT);
}

/* ----- bad input --------------------------------------------------------------------------- */

static void bad_input(void **state)
{
    (void)state;
    const char *name = tu_name("bad");
    uint64_t shape[NDSHM_MAX_DIMS + 1];
    for (int i = 0; i <= NDSHM_MAX_DIMS; i++)
        shape[i] = 2;
    ndshm_array *sentinel = (ndshm_array *)&shape, *a = sentinel;
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
#define CREATE_FAILS(status, nm, dt, nd, sh, opts)                                                 \
    do {                                                                                           \
        assert_int_equal(ndshm_array_create(nm, dt, nd, sh, opts, &a), status);                    \
        assert_ptr_equal(a, sentinel);                                                             \
    } while (0)
    CREATE_FAILS(NDSHM_E_INVAL, NULL, NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, "", NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, "a/b", NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, "..", NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, ".hidden", NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, "sp ace", NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NAME, "x@1", NDSHM_UINT8, 1, shape, NULL);
    char longname[NDSHM_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CREATE_FAILS(NDSHM_E_NAME, longname, NDSHM_UINT8, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_DTYPE, name, 0, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_DTYPE, name, 15, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_DTYPE, name, -1, 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_NDIM, name, NDSHM_UINT8, NDSHM_MAX_DIMS + 1, shape, NULL);
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, NULL, NULL);
    uint64_t huge[2] = {UINT64_C(1) << 40, UINT64_C(1) << 40};
    CREATE_FAILS(NDSHM_E_OVERFLOW, name, NDSHM_UINT8, 2, huge, NULL);
    uint64_t too_big[1] = {(UINT64_C(1) << 40) + 1}; /* over NDSHM_MAX_CAPACITY */
    CREATE_FAILS(NDSHM_E_OVERFLOW, name, NDSHM_UINT8, 1, too_big, NULL);
    o.size = 4;
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.size = 100000;
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.size = sizeof o;
    o.flags = 1u << 7;
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.flags = NDSHM_ARRAY_READONLY; /* meaningless for create */
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.flags = 0;
    o.mode = 010000;
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.mode = 0;
    o.order = 2;
    CREATE_FAILS(NDSHM_E_INVAL, name, NDSHM_UINT8, 1, shape, &o);
    o.order = 0;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, NULL), NDSHM_E_INVAL);
    assert_false(file_exists(name)); /* none of these created anything */

    /* an older, smaller options struct (size, flags only) is accepted */
    o.size = offsetof(ndshm_array_options, mode);
    o.mode = 0777; /* not part of that struct: ignored */
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, &o, &a), NDSHM_OK);
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    assert_int_equal(ai.mode, 0600);
    ndshm_array_detach(a);
    a = sentinel;

#define ATTACH_FAILS(status, nm, opts)                                                             \
    do {                                                                                           \
        assert_int_equal(ndshm_array_attach(nm, opts, &a), status);                                \
        assert_ptr_equal(a, sentinel);                                                             \
    } while (0)
    ATTACH_FAILS(NDSHM_E_INVAL, NULL, NULL);
    ATTACH_FAILS(NDSHM_E_NAME, "a/../b", NULL);
    ATTACH_FAILS(NDSHM_E_NOENT, tu_name("absent"), NULL);
    o = (ndshm_array_options)NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = 0x80;
    ATTACH_FAILS(NDSHM_E_INVAL, name, &o);
    assert_int_equal(ndshm_array_attach(name, NULL, NULL), NDSHM_E_INVAL);

    ndshm_array_info before;
    memset(&before, 0x5a, sizeof before);
    ai = before;
    assert_int_equal(ndshm_array_info_get(NULL, &ai), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_stat(NULL, &ai), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_stat("bad/name", &ai), NDSHM_E_NAME);
    assert_int_equal(ndshm_array_stat(tu_name("absent"), &ai), NDSHM_E_NOENT);
    assert_memory_equal(&ai, &before, sizeof ai); /* untouched on failure */
    assert_int_equal(ndshm_array_stat(name, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_delete(NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_delete("../x"), NDSHM_E_NAME);
    assert_null(ndshm_array_data(NULL));
    assert_null(ndshm_array_cdata(NULL));
    assert_int_equal(ndshm_array_publish(NULL, NULL, NULL), NDSHM_E_INVAL);

    /* an invalid NDSHM_DIR is refused by every entry point, never replaced by /dev/shm */
    char *saved = strdup(getenv("NDSHM_DIR"));
    setenv("NDSHM_DIR", "relative/dir", 1);
    CREATE_FAILS(NDSHM_E_DIR, name, NDSHM_UINT8, 1, shape, NULL);
    ATTACH_FAILS(NDSHM_E_DIR, name, NULL);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_DIR);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_DIR);
    setenv("NDSHM_DIR", saved, 1);
    free(saved);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* ----- read-only attachments --------------------------------------------------------------- */

static void on_segv(int sig)
{
    (void)sig;
    _exit(77);
}

static void readonly_refuses_writes(void **state)
{
    (void)state;
    const char *name = tu_name("ro");
    uint64_t shape[1] = {4096};
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a), NDSHM_OK);
    unsigned char *p = ndshm_array_data(a);
    memset(p, 0xab, 4096);
    for (int readonly = 1; readonly >= 0; readonly--) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_segv;
            sigaction(SIGSEGV, &sa, NULL);
            sigaction(SIGBUS, &sa, NULL);
            ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
            o.flags = readonly ? NDSHM_ARRAY_READONLY : 0;
            ndshm_array *r;
            if (ndshm_array_attach(name, &o, &r) != NDSHM_OK)
                _exit(1);
            if ((ndshm_array_data(r) == NULL) != readonly)
                _exit(3);
            volatile unsigned char *q = (volatile unsigned char *)ndshm_array_cdata(r);
            if (q[100] != 0xab)
                _exit(4);
            q[100] = 0x01; /* read-only: must fault */
            _exit(2);
        }
        /* the control run (read-write) proves the child reaches the store */
        assert_int_equal(child_status(pid), readonly ? 77 : 2);
        assert_int_equal(p[100], readonly ? 0xab : 0x01);
        p[100] = 0xab;
    }
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* ----- shapes and dtypes ------------------------------------------------------------------- */

static void check_array(const char *name, int dtype, uint32_t ndim, const uint64_t *shape,
                        uint32_t order, uint64_t nbytes)
{
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.order = order;
    ndshm_array *a, *b;
    assert_int_equal(ndshm_array_create(name, dtype, ndim, shape, &o, &a), NDSHM_OK);
    assert_int_equal(ndshm_array_attach(name, NULL, &b), NDSHM_OK);
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_info_get(b, &ai), NDSHM_OK);
    assert_int_equal(ai.dtype, dtype);
    assert_int_equal(ai.ndim, ndim);
    assert_int_equal(ai.order, order);
    for (uint32_t i = 0; i < NDSHM_MAX_DIMS; i++)
        assert_int_equal(ai.shape[i], i < ndim ? shape[i] : 0);
    assert_int_equal(ai.nbytes, nbytes);
    assert_non_null(ndshm_array_data(b)); /* even for zero elements */
    tu_fill(ndshm_array_data(a), (size_t)nbytes, 9);
    assert_true(tu_check(ndshm_array_cdata(b), (size_t)nbytes, 9));
    ndshm_array_detach(b);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

static void shapes(void **state)
{
    (void)state;
    const char *name = tu_name("shapes");
    check_array(name, NDSHM_FLOAT64, 0, NULL, NDSHM_ORDER_C, 8); /* 0-d: one element */
    check_array(name, NDSHM_COMPLEX128, 0, NULL, NDSHM_ORDER_F, 16);
    uint64_t s32[NDSHM_MAX_DIMS];
    for (int i = 0; i < NDSHM_MAX_DIMS; i++)
        s32[i] = i % 8 == 0 ? 2 : 1;
    check_array(name, NDSHM_INT32, NDSHM_MAX_DIMS, s32, NDSHM_ORDER_C, 4 * 16);
    check_array(name, NDSHM_INT32, NDSHM_MAX_DIMS, s32, NDSHM_ORDER_F, 4 * 16);
    uint64_t zero[3] = {3, 0, 2};
    check_array(name, NDSHM_UINT16, 3, zero, NDSHM_ORDER_C, 0);
    check_array(name, NDSHM_UINT16, 3, zero, NDSHM_ORDER_F, 0);
    uint64_t big[2] = {1000, 1001}; /* several pages, not a multiple of a page */
    check_array(name, NDSHM_FLOAT32, 2, big, NDSHM_ORDER_F, 4004000);
    for (int dt = 1; dt <= NDSHM_DTYPE_COUNT; dt++) {
        uint64_t s[2] = {5, 7};
        check_array(name, dt, 2, s, dt % 2 ? NDSHM_ORDER_C : NDSHM_ORDER_F,
                    35 * ndshm_dtype_size(dt));
    }
    /* the file is the header page plus the data rounded up to pages */
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(name, NDSHM_FLOAT32, 2, big, NULL, &a), NDSHM_OK);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(name, &ci), NDSHM_OK);
    assert_int_equal(ci.bytes, 4096 + ((4004000 + 4095) / 4096) * 4096);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

static void modes(void **state)
{
    (void)state;
    const char *name = tu_name("mode");
    uint64_t shape[1] = {8};
    mode_t old = umask(0077); /* the mode asked for is applied exactly, whatever the umask */
    uint32_t want[] = {0, 0640, 0666, 0400};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
        o.mode = want[i];
        ndshm_array *a;
        assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, &o, &a), NDSHM_OK);
        char path[512];
        seg_path(path, sizeof path, name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, want[i] ? want[i] : 0600);
        ndshm_array_info ai;
        assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
        assert_int_equal(ai.mode, want[i] ? want[i] : 0600);
        assert_int_equal(chmod(path, 0604), 0); /* info reports the file's mode now */
        assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
        assert_int_equal(ai.mode, 0604);
        ndshm_array_detach(a);
        assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
    }
    umask(old);
}

/* ----- corrupted, truncated and planted files ---------------------------------------------- */

static void corrupted_header(void **state)
{
    (void)state;
    const char *name = tu_name("corrupt");
    uint64_t shape[2] = {3, 5};
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(name, NDSHM_INT64, 2, shape, NULL, &a), NDSHM_OK);
    size_t size;
    struct ndshm__arr *h = map_file(name, &size);
    struct ndshm__arr saved;
    memcpy(&saved, h, sizeof saved);
#define ARR_CORRUPT(field, value, status)                                                          \
    do {                                                                                           \
        h->field = (value);                                                                        \
        assert_int_equal(attach_status(name, 0), status);                                          \
        assert_int_equal(attach_status(name, NDSHM_ARRAY_READONLY), status);                       \
        ndshm_array_info ai_;                                                                      \
        assert_int_equal(ndshm_array_stat(name, &ai_), status);                                    \
        h->field = saved.field;                                                                    \
        assert_int_equal(attach_status(name, 0), NDSHM_OK);                                        \
    } while (0)
    ARR_CORRUPT(magic, 1, NDSHM_E_MAGIC);
    ARR_CORRUPT(magic, NDSHM__CTL_MAGIC, NDSHM_E_KIND);
    ARR_CORRUPT(layout, 2, NDSHM_E_LAYOUT);
    ARR_CORRUPT(hdr_size, 4096, NDSHM_E_CORRUPT);
    ARR_CORRUPT(dtype, 0, NDSHM_E_CORRUPT);
    ARR_CORRUPT(dtype, 15, NDSHM_E_CORRUPT);
    ARR_CORRUPT(dtype, NDSHM_INT32, NDSHM_E_CORRUPT); /* itemsize and nbytes disagree */
    ARR_CORRUPT(itemsize, 4, NDSHM_E_CORRUPT);
    ARR_CORRUPT(ndim, 33, NDSHM_E_CORRUPT);
    ARR_CORRUPT(ndim, UINT32_MAX, NDSHM_E_CORRUPT);
    ARR_CORRUPT(ndim, 1, NDSHM_E_CORRUPT); /* shape[1] != 0 past ndim */
    ARR_CORRUPT(ndim, 3, NDSHM_E_CORRUPT); /* shape[2] = 0: nbytes 0 != 120 */
    ARR_CORRUPT(order, 2, NDSHM_E_CORRUPT);
    ARR_CORRUPT(nbytes, 121, NDSHM_E_CORRUPT);
    ARR_CORRUPT(nbytes, UINT64_MAX, NDSHM_E_CORRUPT);
    ARR_CORRUPT(shape[0], 4, NDSHM_E_CORRUPT);
    ARR_CORRUPT(shape[0], UINT64_MAX, NDSHM_E_CORRUPT);
    ARR_CORRUPT(shape[5], 1, NDSHM_E_CORRUPT);
    ARR_CORRUPT(data_offset, 0, NDSHM_E_CORRUPT);
    ARR_CORRUPT(data_offset, 100, NDSHM_E_CORRUPT);
    ARR_CORRUPT(data_offset, UINT64_MAX - 4095, NDSHM_E_CORRUPT);
    ARR_CORRUPT(file_size, 8192 * 2, NDSHM_E_CORRUPT);
    ARR_CORRUPT(file_size, 0, NDSHM_E_CORRUPT);
    ARR_CORRUPT(reserved[3], 1, NDSHM_E_CORRUPT);
    ARR_CORRUPT(name[0], 'X', NDSHM_E_CORRUPT); /* an array copied under another name */
    memset(h->name, 'x', sizeof h->name);       /* no NUL */
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    memcpy(h->name, saved.name, sizeof h->name);
    /* a header whose ready word was never stored: not ready (nobody holds the creation lock:
     * reported at once, without the 250 ms wait) */
    atomic_store(&h->ready, 0);
    uint64_t t0 = ndshm_now_ns();
    assert_int_equal(attach_status(name, 0), NDSHM_E_NOT_READY);
    uint64_t waited = ndshm_now_ns() - t0;
    atomic_store(&h->ready, NDSHM__ARR_READY);
    assert_int_equal(attach_status(name, 0), NDSHM_OK);
    print_message("not-ready attach without a creator returned after %.1f ms\n", waited / 1e6);

    /* the attachment made before any of this never re-reads the header */
    ndshm_array_info ai;
    h->nbytes = 1;
    assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    assert_int_equal(ai.nbytes, 120);
    h->nbytes = saved.nbytes;
    munmap(h, size);

    /* truncated or extended files */
    char path[512];
    seg_path(path, sizeof path, name);
    assert_int_equal(truncate(path, 8192 + 4096), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    assert_int_equal(truncate(path, 4096), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    assert_int_equal(truncate(path, 100), 0); /* less than a header */
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_NOT_READY);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_NOT_READY);
    /* an empty file might be a channel being created: array_delete refuses, unlink removes */
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_NOT_READY);
    assert_int_equal(ndshm_unlink(name), NDSHM_OK);
    ndshm_array_detach(a);

    /* a damaged array (magic intact) is removed by ndshm_array_delete */
    assert_int_equal(ndshm_array_create(name, NDSHM_INT64, 2, shape, NULL, &a), NDSHM_OK);
    ndshm_array_detach(a);
    h = map_file(name, &size);
    h->file_size = 1;
    munmap(h, size);
    assert_int_equal(attach_status(name, 0), NDSHM_E_CORRUPT);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
    assert_false(file_exists(name));
}

static void write_file(const char *name, const void *data, size_t n)
{
    char path[512];
    seg_path(path, sizeof path, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void planted_files(void **state)
{
    (void)state;
    const char *name = tu_name("planted");
    char path[512];
    seg_path(path, sizeof path, name);
    ndshm_array_info ai;
    /* foreign bytes */
    unsigned char junk[8192];
    tu_fill(junk, sizeof junk, 3);
    write_file(name, junk, sizeof junk);
    assert_int_equal(attach_status(name, 0), NDSHM_E_MAGIC);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_MAGIC);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_MAGIC);
    memset(junk, 0, sizeof junk); /* all zero: a header not yet written */
    write_file(name, junk, sizeof junk);
    assert_int_equal(attach_status(name, 0), NDSHM_E_NOT_READY);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_NOT_READY);
    assert_int_equal(unlink(path), 0);
    /* a FIFO: refused without blocking */
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_UNTRUSTED);
    assert_int_equal(attach_status(name, NDSHM_ARRAY_READONLY), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_UNTRUSTED);
    uint64_t shape[1] = {4};
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a), NDSHM_E_EXISTS);
    assert_int_equal(unlink(path), 0);
    /* a symlink to a real array: neither followed nor overwritten */
    const char *target = tu_name("planted-target");
    assert_int_equal(ndshm_array_create(target, NDSHM_UINT8, 1, shape, NULL, &a), NDSHM_OK);
    char tpath[512];
    seg_path(tpath, sizeof tpath, target);
    assert_int_equal(symlink(tpath, path), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_UNTRUSTED);
    assert_int_equal(attach_status(name, NDSHM_ARRAY_READONLY), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_UNTRUSTED);
    assert_int_equal(ndshm_array_delete(name), NDSHM_E_UNTRUSTED);
    ndshm_array *b;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &b), NDSHM_E_EXISTS);
    assert_int_equal(unlink(path), 0);
    /* a directory */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(attach_status(name, 0), NDSHM_E_UNTRUSTED);
    assert_int_equal(attach_status(name, NDSHM_ARRAY_READONLY), NDSHM_E_UNTRUSTED);
    assert_int_equal(rmdir(path), 0);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(target), NDSHM_OK);
}

/* ----- fault injection --------------------------------------------------------------------- */

static struct ndshm__os faulty;
static int fail_fallocate_after; /* fail the n-th fallocate from now (1 = next) */
static int fail_errno;           /* ... with this errno */
static int fail_ftruncate, fail_mmap, fail_fchmod, fail_open, fail_lock_count;
static int kill_in_fchmod, kill_in_ftruncate, kill_in_big_fallocate; /* killed creators */
static int hold_fd = -1; /* ... and the creating-creator test */

static int f_fallocate(int fd, uint64_t size)
{
    if (kill_in_big_fallocate && size > NDSHM__ARR_DATA)
        raise(SIGKILL);
    if (hold_fd >= 0 && size > NDSHM__ARR_DATA) {
        char c = 'h';
        if (write(hold_fd, &c, 1) != 1 || read(hold_fd, &c, 1) != 1)
            _exit(5);
    }
    if (fail_fallocate_after > 0 && --fail_fallocate_after == 0)
        return -fail_errno;
    return ndshm__os_linux.fallocate(fd, size);
}

static int f_ftruncate(int fd, uint64_t size)
{
    if (kill_in_ftruncate)
        raise(SIGKILL);
    if (fail_ftruncate)
        return -fail_errno;
    return ndshm__os_linux.ftruncate(fd, size);
}

static void *f_mmap(int fd, uint64_t size, int writable, int *err)
{
    if (fail_mmap) {
        *err = -ENOMEM;
        return NULL;
    }
    return ndshm__os_linux.mmap(fd, size, writable, err);
}

static int f_fchmod(int fd, uint32_t mode)
{
    if (kill_in_fchmod)
        raise(SIGKILL);
    if (fail_fchmod)
        return -EPERM;
    return ndshm__os_linux.fchmod(fd, mode);
}

static int f_open(const char *seg, int create, int writable, uint32_t mode)
{
    if (fail_open)
        return -fail_open;
    return ndshm__os_linux.open(seg, create, writable, mode);
}

static int f_lock_count(uint64_t dev, uint64_t ino, uint64_t off)
{
    if (fail_lock_count)
        return -ENOENT;
    return ndshm__os_linux.lock_count(dev, ino, off);
}

static int install_faults(void **state)
{
    (void)state;
    faulty = ndshm__os_linux;
    faulty.fallocate = f_fallocate;
    faulty.ftruncate = f_ftruncate;
    faulty.mmap = f_mmap;
    faulty.fchmod = f_fchmod;
    faulty.open = f_open;
    faulty.lock_count = f_lock_count;
    fail_fallocate_after = fail_ftruncate = fail_mmap = fail_fchmod = fail_open = 0;
    fail_lock_count = kill_in_fchmod = kill_in_ftruncate = kill_in_big_fallocate = 0;
    fail_errno = ENOSPC;
    hold_fd = -1;
    ndshm__os_set(&faulty);
    return 0;
}

static int remove_faults(void **state)
{
    (void)state;
    ndshm__os_set(NULL);
    ndshm__array_ready_wait_ns = 250000000u;
    return 0;
}

static void create_failures_leave_nothing(void **state)
{
    (void)state;
    const char *name = tu_name("nospc");
    uint64_t shape[2] = {512, 1024};
    ndshm_array *sentinel = (ndshm_array *)&shape, *a = sentinel;
#define CREATE_FAULT(setup, status)                                                                \
    do {                                                                                           \
        setup;                                                                                     \
        assert_int_equal(ndshm_array_create(name, NDSHM_FLOAT32, 2, shape, NULL, &a), status);     \
        assert_ptr_equal(a, sentinel);                                                             \
        assert_false(file_exists(name));                                                           \
        fail_fallocate_after = fail_ftruncate = fail_mmap = fail_fchmod = fail_open = 0;           \
    } while (0)
    CREATE_FAULT(fail_fallocate_after = 1, NDSHM_E_NOSPC); /* the header page */
    CREATE_FAULT(fail_fallocate_after = 2, NDSHM_E_NOSPC); /* all the pages */
    CREATE_FAULT(fail_ftruncate = 1, NDSHM_E_NOSPC);
    CREATE_FAULT(fail_mmap = 1, NDSHM_E_NOMEM);
    CREATE_FAULT(fail_fchmod = 1, NDSHM_E_PERM);
    CREATE_FAULT(fail_open = EACCES, NDSHM_E_PERM);
    fail_errno = EFBIG;
    CREATE_FAULT(fail_ftruncate = 1, NDSHM_E_SYS - EFBIG);
    fail_errno = ENOSPC;
    /* and once space is back, the same create works */
    assert_int_equal(ndshm_array_create(name, NDSHM_FLOAT32, 2, shape, NULL, &a), NDSHM_OK);
    /* attach failures */
    ndshm_array *b = sentinel;
    fail_open = EACCES;
    assert_int_equal(ndshm_array_attach(name, NULL, &b), NDSHM_E_PERM);
    fail_open = EMFILE;
    int st = ndshm_array_attach(name, NULL, &b);
    assert_int_equal(NDSHM_SYS_ERRNO(st), EMFILE);
    fail_open = 0;
    fail_mmap = 1;
    assert_int_equal(ndshm_array_attach(name, NULL, &b), NDSHM_E_NOMEM);
    fail_mmap = 0;
    assert_ptr_equal(b, sentinel);
    /* an unreadable /proc/locks: the count is unknown (-1), nothing else changes */
    fail_lock_count = 1;
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_info_get(a, &ai), NDSHM_OK);
    assert_int_equal(ai.attached, -1);
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_OK);
    assert_int_equal(ai.attached, -1);
    fail_lock_count = 0;
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* A creator killed mid-create leaves something attach reports as not ready, gc leaves alone
 * and unlink removes; from the header on, ndshm_array_delete removes it too. */
static void killed_creator(void **state)
{
    (void)state;
    const char *name = tu_name("killed");
    uint64_t shape[1] = {100000};
    static const char *const at[] = {"fchmod", "ftruncate", "fallocate"};
    for (int where = 0; where < 3; where++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (where == 0)
                kill_in_fchmod = 1; /* right after open: an empty file */
            else if (where == 1)
                kill_in_ftruncate = 1; /* one backed, all-zero header page */
            else
                kill_in_big_fallocate = 1; /* header written, ready not stored */
            ndshm_array *a;
            ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a);
            _exit(1);
        }
        assert_int_equal(child_status(pid), 1000 + SIGKILL);
        assert_true(file_exists(name));
        uint64_t t0 = ndshm_now_ns();
        assert_int_equal(attach_status(name, 0), NDSHM_E_NOT_READY);
        assert_int_equal(attach_status(name, NDSHM_ARRAY_READONLY), NDSHM_E_NOT_READY);
        print_message("killed in %s: not-ready attach returned after %.1f ms\n", at[where],
                      (ndshm_now_ns() - t0) / 1e6);
        char path[512];
        seg_path(path, sizeof path, name);
        struct stat fst;
        assert_int_equal(lstat(path, &fst), 0);
        assert_int_equal(fst.st_size, where == 0 ? 0 : where == 1 ? 4096 : 4096 + 25 * 4096);
        ndshm_array_info ai;
        assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_NOT_READY);
        ndshm_channel_info ci;
        assert_int_equal(ndshm_stat(name, &ci), NDSHM_E_NOT_READY);
        ndshm_channel_info *list;
        size_t n, seen = 0;
        assert_int_equal(ndshm_list(&list, &n), NDSHM_OK);
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i].name, name) == 0) {
                seen++;
                assert_int_equal(list[i].status, NDSHM_E_NOT_READY);
            }
        ndshm_list_free(list);
        assert_int_equal(seen, 1);
        size_t removed = 99;
        assert_int_equal(ndshm_gc(&removed), NDSHM_OK);
        assert_int_equal(removed, 0);
        assert_true(file_exists(name));
        ndshm_array *a;
        assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a), NDSHM_E_EXISTS);
        ndshm_reader *r;
        if (where < 2) {
            assert_int_equal(ndshm_array_delete(name), NDSHM_E_NOT_READY);
            assert_int_equal(ndshm_unlink(name), NDSHM_OK);
        } else {
            /* the magic is there: channel calls say "an array", array_delete removes it */
            assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_E_KIND);
            assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
        }
        assert_false(file_exists(name));
        assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a), NDSHM_OK);
        ndshm_array_detach(a);
        assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
    }
}

/* While the creator is alive and still creating (it holds the creation lock), an attach
 * waits for it instead of failing. The creator is held inside its big fallocate by a pipe,
 * so the test does not depend on timing. */
static void attach_waits_for_creator(void **state)
{
    (void)state;
    const char *name = tu_name("waiting");
    uint64_t shape[1] = {100000};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        hold_fd = sv[1]; /* f_fallocate: "h" out, then wait for a byte back */
        ndshm_array *a;
        if (ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a) != NDSHM_OK)
            _exit(10);
        ((unsigned char *)ndshm_array_data(a))[99999] = 0x5c;
        _exit(0);
    }
    close(sv[1]);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1); /* the child is inside its big fallocate */
    ndshm__array_ready_wait_ns = 0;          /* no waiting: not ready */
    assert_int_equal(attach_status(name, 0), NDSHM_E_NOT_READY);
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_stat(name, &ai), NDSHM_E_NOT_READY);
    /* wait as long as it takes: the creator holds its creation lock until ready */
    ndshm__array_ready_wait_ns = UINT64_C(60000000000);
    assert_int_equal(write(sv[0], "g", 1), 1); /* let it finish */
    ndshm_array *a;
    assert_int_equal(ndshm_array_attach(name, NULL, &a), NDSHM_OK);
    assert_int_equal(child_status(pid), 0);
    assert_int_equal(((const unsigned char *)ndshm_array_cdata(a))[99999], 0x5c);
    ndshm_array_detach(a);
    close(sv[0]);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* ----- a real small tmpfs: ENOSPC at create, and no SIGBUS later ----------------------------- */

static void real_tmpfs(void **state)
{
    (void)state;
    char dir[128], *saved = strdup(getenv("NDSHM_DIR"));
    snprintf(dir, sizeof dir, "/dev/shm/ndt-%d-arrfs", (int)getpid());
    assert_int_equal(mkdir(dir, 0700), 0);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0700") != 0) {
        print_message("mount -t tmpfs not permitted (%s): fault injection only\n", strerror(errno));
        rmdir(dir);
        free(saved);
        skip();
    }
    setenv("NDSHM_DIR", dir, 1);
    const char *name = tu_name("fs");
    ndshm_array *a = NULL;
    uint64_t too_big[1] = {3u << 20};
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, too_big, NULL, &a), NDSHM_E_NOSPC);
    assert_null(a);
    assert_false(file_exists(name)); /* nothing left behind */
    uint64_t fits[1] = {1u << 20};
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT8, 1, fits, NULL, &a), NDSHM_OK);
    /* fill the rest of the file system */
    char fill[256];
    snprintf(fill, sizeof fill, "%s/filler", dir);
    int fd = open(fill, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    static char chunk[65536];
    while (write(fd, chunk, sizeof chunk) > 0)
        ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
    /* every page of the array was reserved at create: writing all of it cannot SIGBUS */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigaction(SIGBUS, &sa, NULL);
        ndshm_array *b;
        if (ndshm_array_attach(name, NULL, &b) != NDSHM_OK)
            _exit(1);
        memset(ndshm_array_data(b), 0x77, 1u << 20);
        _exit(0);
    }
    assert_int_equal(child_status(pid), 0);
    assert_int_equal(((const unsigned char *)ndshm_array_cdata(a))[(1u << 20) - 1], 0x77);
    const char *other = tu_name("fs2");
    ndshm_array *c = NULL;
    uint64_t small[1] = {100000};
    assert_int_equal(ndshm_array_create(other, NDSHM_UINT8, 1, small, NULL, &c), NDSHM_E_NOSPC);
    assert_false(file_exists(other));
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
    unlink(fill);
    assert_int_equal(umount(dir), 0);
    assert_int_equal(rmdir(dir), 0);
    setenv("NDSHM_DIR", saved, 1);
    free(saved);
}

/* ----- attach count ------------------------------------------------------------------------ */

static void attach_count(void **state)
{
    (void)state;
    const char *name = tu_name("count");
    uint64_t shape[1] = {64};
    ndshm_array *a, *b, *c;
    assert_int_equal(ndshm_array_create(name, NDSHM_UINT64, 1, shape, NULL, &a), NDSHM_OK);
    assert_int_equal(attached(name), 1);
    assert_int_equal(ndshm_array_attach(name, NULL, &b), NDSHM_OK);
    assert_int_equal(attached(name), 2);
    ndshm_array_options ro = NDSHM_ARRAY_OPTIONS_INIT;
    ro.flags = NDSHM_ARRAY_READONLY;
    assert_int_equal(ndshm_array_attach(name, &ro, &c), NDSHM_OK);
    assert_int_equal(attached(name), 3);
    ndshm_array_detach(b);
    assert_int_equal(attached(name), 2);
    /* children: one attached and killed, one inheriting an attachment over fork */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ndshm_array *k;
        if (ndshm_array_attach(name, NULL, &k) != NDSHM_OK)
            _exit(1);
        ((uint64_t *)ndshm_array_data(k))[1] = 11;
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        pause(); /* until killed: never detaches */
        _exit(3);
    }
    char ch;
    assert_int_equal(read(ready[0], &ch, 1), 1);
    assert_int_equal(attached(name), 3);
    kill(pid, SIGKILL);
    assert_int_equal(child_status(pid), 1000 + SIGKILL);
    attached_after_exit(name, 2); /* the kernel dropped the dead one's lock */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* an inherited attachment works in the child, is not a new attachment, and
         * detaching it here leaves the parent's attachment counted */
        uint64_t *p = ndshm_array_data(a);
        p[2] = 22;
        ndshm_array_info ai;
        if (ndshm_array_info_get(a, &ai) != NDSHM_OK || ai.attached != 2)
            _exit(4);
        ndshm_array_detach(a);
        _exit(0);
    }
    assert_int_equal(child_status(pid), 0);
    attached_after_exit(name, 2);
    const uint64_t *p = ndshm_array_cdata(c);
    assert_int_equal(p[1], 11);
    assert_int_equal(p[2], 22);
    ndshm_array_detach(c);
    ndshm_array_detach(a);
    assert_int_equal(attached(name), 0);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(ndshm_array_delete(name), NDSHM_OK);
}

/* ----- snapshots through a channel --------------------------------------------------------- */

static void publish_snapshot(void **state)
{
    (void)state;
    const char *arr = tu_name("snap-arr"), *chan = tu_name("snap-chan");
    ndshm_writer *w;
    ndshm_reader *r;
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(chan, NULL, &r), NDSHM_OK);
    uint64_t shape[3] = {2, 3, 4};
    static unsigned char buf[1024];
    ndshm_info info;
    for (uint32_t order = 0; order < 2; order++) {
        ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
        o.order = order;
        ndshm_array *a, *ro;
        assert_int_equal(ndshm_array_create(arr, NDSHM_INT32, 3, shape, &o, &a), NDSHM_OK);
        tu_fill(ndshm_array_data(a), 96, 100 + order);
        uint64_t v = 0;
        assert_int_equal(ndshm_array_publish(w, a, &v), NDSHM_OK);
        assert_int_equal(v, 2 * order + 1);
        assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_int_equal(info.dtype, NDSHM_INT32);
        assert_int_equal(info.ndim, 3);
        for (int i = 0; i < 3; i++) /* F order: the transpose, shape reversed */
            assert_int_equal(info.shape[i], order ? shape[2 - i] : shape[i]);
        assert_int_equal(info.nbytes, 96);
        assert_true(tu_check(buf, 96, 100 + order));
        /* the snapshot is a copy: later stores do not change the published version */
        ((int32_t *)ndshm_array_data(a))[0] ^= 1;
        assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_NO_NEW);
        ndshm_array_options rop = NDSHM_ARRAY_OPTIONS_INIT;
        rop.flags = NDSHM_ARRAY_READONLY;
        assert_int_equal(ndshm_array_attach(arr, &rop, &ro), NDSHM_OK);
        assert_int_equal(ndshm_array_publish(w, ro, &v), NDSHM_OK); /* from a read-only one */
        assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_memory_equal(buf, ndshm_array_cdata(a), 96);
        ndshm_array_detach(ro);
        ndshm_array_detach(a);
        assert_int_equal(ndshm_array_delete(arr), NDSHM_OK);
    }
    /* a 0-d array and a zero-element one */
    ndshm_array *a;
    assert_int_equal(ndshm_array_create(arr, NDSHM_FLOAT64, 0, NULL, NULL, &a), NDSHM_OK);
    *(double *)ndshm_array_data(a) = 2.5;
    assert_int_equal(ndshm_array_publish(w, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.ndim, 0);
    assert_true(*(double *)(void *)buf == 2.5);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(arr), NDSHM_OK);
    uint64_t zero[2] = {0, 5};
    assert_int_equal(ndshm_array_create(arr, NDSHM_UINT8, 2, zero, NULL, &a), NDSHM_OK);
    assert_int_equal(ndshm_array_publish(w, a, NULL), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.nbytes, 0);
    assert_int_equal(info.shape[1], 5);
    assert_int_equal(ndshm_array_publish(w, NULL, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_array_publish(NULL, a, NULL), NDSHM_E_INVAL);
    ndshm_array_detach(a);
    assert_int_equal(ndshm_array_delete(arr), NDSHM_OK);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
}

/* ----- Fortran-order .npy ------------------------------------------------------------------ */

static void npy_fortran(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/ndt-%d-f.npy", getenv("NDSHM_DIR"), (int)getpid());
    uint64_t shape[2] = {3, 4};
    int32_t data[12];
    for (int i = 0; i < 12; i++)
        data[i] = i * 7 - 20;
    assert_int_equal(ndshm_save_npy_order(path, NDSHM_INT32, 2, shape, NDSHM_ORDER_F, data),
                     NDSHM_OK);
    /* the header says so, exactly as numpy writes it */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char head[129] = {0};
    assert_int_equal(fread(head, 1, 128, f), 128);
    fclose(f);
    assert_non_null(
        strstr(head + 10, "{'descr': '<i4', 'fortran_order': True, 'shape': (3, 4), }"));
    assert_int_equal(head[127], '\n');
    ndshm_npy_header h;
    uint32_t order = 99;
    void *back = NULL;
    assert_int_equal(ndshm_load_npy_order(path, &h, &order, &back), NDSHM_OK);
    assert_int_equal(order, NDSHM_ORDER_F);
    assert_int_equal(h.dtype, NDSHM_INT32);
    assert_int_equal(h.ndim, 2);
    assert_int_equal(h.shape[0], 3);
    assert_int_equal(h.shape[1], 4);
    assert_int_equal(h.data_offset, 128);
    assert_memory_equal(back, data, sizeof data);
    ndshm_npy_free(back);
    /* the channel functions keep refusing Fortran order */
    back = NULL;
    assert_int_equal(ndshm_load_npy(path, &h, &back), NDSHM_E_LIMIT);
    assert_null(back);
    /* C order through the _order functions is what the channel functions write, byte for
     * byte */
    unsigned char b1[256], b2[256];
    size_t l1, l2;
    assert_int_equal(ndshm_npy_header_format(NDSHM_INT32, 2, shape, b1, sizeof b1, &l1), NDSHM_OK);
    assert_int_equal(
        ndshm_npy_header_format_order(NDSHM_INT32, 2, shape, NDSHM_ORDER_C, b2, sizeof b2, &l2),
        NDSHM_OK);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    assert_int_equal(ndshm_npy_header_format_order(NDSHM_INT32, 2, shape, 2, b2, sizeof b2, &l2),
                     NDSHM_E_INVAL);
    assert_int_equal(ndshm_save_npy_order(path, NDSHM_INT32, 2, shape, 7, data), NDSHM_E_INVAL);
    assert_int_equal(ndshm_load_npy_order(path, &h, NULL, &back), NDSHM_E_INVAL);
    /* parse in memory */
    static unsigned char file[256];
    assert_int_equal(
        ndshm_npy_header_format_order(NDSHM_INT32, 2, shape, NDSHM_ORDER_F, file, sizeof file, &l1),
        NDSHM_OK);
    memcpy(file + l1, data, sizeof data);
    const void *payload = NULL;
    assert_int_equal(ndshm_npy_parse_order(file, l1 + sizeof data, &h, &order, &payload), NDSHM_OK);
    assert_int_equal(order, NDSHM_ORDER_F);
    assert_ptr_equal(payload, file + l1);
    assert_int_equal(ndshm_npy_parse(file, l1 + sizeof data, &h, &payload), NDSHM_E_LIMIT);
    assert_int_equal(ndshm_npy_parse_order(b1, l1, &h, NULL, &payload), NDSHM_E_INVAL);
    unlink(path);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(life_cycle),
        cmocka_unit_test(outlives_creator),
        cmocka_unit_test(exists),
        cmocka_unit_test(kinds),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(readonly_refuses_writes),
        cmocka_unit_test(shapes),
        cmocka_unit_test(modes),
        cmocka_unit_test(corrupted_header),
        cmocka_unit_test(planted_files),
        cmocka_unit_test_setup_teardown(create_failures_leave_nothing, install_faults,
                                        remove_faults),
        cmocka_unit_test_setup_teardown(killed_creator, install_faults, remove_faults),
        cmocka_unit_test_setup_teardown(attach_waits_for_creator, install_faults, remove_faults),
        cmocka_unit_test(real_tmpfs),
        cmocka_unit_test(attach_count),
        cmocka_unit_test(publish_snapshot),
        cmocka_unit_test(npy_fortran),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
