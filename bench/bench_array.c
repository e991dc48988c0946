/*
 * ndshm-bench-array: what shared arrays cost against doing it by hand, in the same run.
 *
 *   1. attach + read the first data byte + detach of a SIZE array (default 1 GiB), against
 *      open + fstat + mmap + read the same byte + munmap + close of the same file by hand
 *      (what shm_open(3) + mmap(2) do: glibc's shm_open is an open(2) in /dev/shm).
 *      Read-write and read-only, interleaved, ITERS times each; medians and their ratio. A
 *      third variant by hand also takes the one-byte OFD read lock every ndshm attachment
 *      holds (the attach count), to separate the cost of that lock from the rest.
 *   2. create of a SIZE array (zero-filled, every page reserved, mapped), against
 *      open(O_CREAT|O_EXCL) + ftruncate + posix_fallocate + close of the same size; the
 *      removal is not timed. REPS times each, interleaved; medians as GB/s and their ratio.
 *
 *   ndshm-bench-array [--size BYTES] [--iters N] [--reps N]
 *
 * A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md, "Shared arrays".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ndshm/ndshm.h"

static const char *shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return d && d[0] == '/' ? d : "/dev/shm";
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct dist {
    double p10, p50, p90;
};

static struct dist dist_of(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    struct dist d = {(double)v[n / 10], (double)v[n / 2], (double)v[(n * 9) / 10]};
    return d;
}

static void die(const char *what, int st)
{
    fprintf(stderr, "ndshm-bench-array: %s: %s (%s)\n", what, ndshm_strerror(st),
            ndshm_status_name(st));
    exit(1);
}

static volatile unsigned char sink;

/* 1 attach + first byte + detach, through ndshm. */
static uint64_t attach_ndshm(const char *name, int readonly)
{
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = readonly ? NDSHM_ARRAY_READONLY : 0;
    uint64_t t0 = ndshm_now_ns();
    ndshm_array *a;
    int st = ndshm_array_attach(name, &o, &a);
    if (st)
        die("attach", st);
    sink = *(const volatile unsigned char *)ndshm_array_cdata(a);
    ndshm_array_detach(a);
    return ndshm_now_ns() - t0;
}

/* ... and by hand on the same file; with lock != 0 also taking the one-byte OFD read lock
 * that every ndshm attachment holds (the attach count), to show what that lock costs. */
static uint64_t attach_hand(const char *path, int readonly, int lock)
{
    uint64_t t0 = ndshm_now_ns();
    int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        die(path, NDSHM_E_SYS - errno);
    if (lock) {
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_len = 1;
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
            die("F_OFD_SETLK", NDSHM_E_SYS - errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat", NDSHM_E_SYS - errno);
    void *p = mmap(NULL, (size_t)st.st_size, readonly ? PROT_READ : PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap", NDSHM_E_SYS - errno);
    sink = ((const volatile unsigned char *)p)[4096]; /* where ndshm's data starts */
    munmap(p, (size_t)st.st_size);
    close(fd);
    return ndshm_now_ns() - t0;
}

static uint64_t create_ndshm(const char *name, uint64_t size)
{
    uint64_t shape[1] = {size};
    uint64_t t0 = ndshm_now_ns();
    ndshm_array *a;
    int st = ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &a);
    uint64_t t = ndshm_now_ns() - t0;
    if (st)
        die("create", st);
    ndshm_array_detach(a);
    if ((st = ndshm_array_delete(name)) != NDSHM_OK)
        die("delete", st);
    return t;
}

static uint64_t create_hand(const char *path, uint64_t size)
{
    uint64_t t0 = ndshm_now_ns();
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        die(path, NDSHM_E_SYS - errno);
    if (ftruncate(fd, (off_t)size) != 0)
        die("ftruncate", NDSHM_E_SYS - errno);
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc)
        die("posix_fallocate", NDSHM_E_SYS - rc);
    close(fd);
    uint64_t t = ndshm_now_ns() - t0;
    unlink(path);
    return t;
}

int main(int argc, char **argv)
{
    uint64_t size = UINT64_C(1) << 30;
    size_t iters = 2000, reps = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = (size_t)strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: ndshm-bench-array [--size BYTES] [--iters N] [--reps N]\n");
            return 2;
        }
    }
    if (size == 0 || iters < 10 || reps < 1) {
        fprintf(stderr, "ndshm-bench-array: --size > 0, --iters >= 10, --reps >= 1\n");
        return 2;
    }
    char name[64], path[512], hand[512];
    snprintf(name, sizeof name, "bench-array-%d", (int)getpid());
    snprintf(path, sizeof path, "%s/ndshm.%s", shm_dir(), name);
    snprintf(hand, sizeof hand, "%s/bench-array-hand-%d", shm_dir(), (int)getpid());
    printf("# ndshm-bench-array --size %llu --iters %zu --reps %zu   (dir %s)\n",
           (unsigned long long)size, iters, reps, shm_dir());

    /* 1. attach */
    uint64_t shape[1] = {size};
    ndshm_array *keep;
    int st = ndshm_array_create(name, NDSHM_UINT8, 1, shape, NULL, &keep);
    if (st)
        die("create", st);
    ndshm_array_detach(keep); /* the array stays, with no attachment */
    uint64_t *tn = malloc(iters * sizeof *tn), *th = malloc(iters * sizeof *th),
             *tl = malloc(iters * sizeof *tl);
    if (!tn || !th || !tl)
        die("malloc", NDSHM_E_NOMEM);
    printf("\n%-44s %10s %10s %10s\n", "attach + first byte + detach", "p10 us", "median us",
           "p90 us");
    for (int ro = 0; ro < 2; ro++) {
        for (size_t i = 0; i < 50; i++) { /* warm-up */
            attach_ndshm(name, ro);
            attach_hand(path, ro, 0);
            attach_hand(path, ro, 1);
        }
        for (size_t i = 0; i < iters; i++) {
            if (i % 2) { /* alternate which goes first */
                tn[i] = attach_ndshm(name, ro);
                th[i] = attach_hand(path, ro, 0);
                tl[i] = attach_hand(path, ro, 1);
            } else {
                tl[i] = attach_hand(path, ro, 1);
                th[i] = attach_hand(path, ro, 0);
                tn[i] = attach_ndshm(name, ro);
            }
        }
        struct dist dn = dist_of(tn, iters), dh = dist_of(th, iters), dl = dist_of(tl, iters);
        const char *mode = ro ? "read-only" : "read-write";
        printf("ndshm_array_attach, %-24s %10.2f %10.2f %10.2f\n", mode, dn.p10 / 1e3, dn.p50 / 1e3,
               dn.p90 / 1e3);
        printf("open+fstat+mmap by hand, %-19s %10.2f %10.2f %10.2f\n", mode, dh.p10 / 1e3,
               dh.p50 / 1e3, dh.p90 / 1e3);
        printf("  ... + the OFD read lock, %-17s %10.2f %10.2f %10.2f\n", mode, dl.p10 / 1e3,
               dl.p50 / 1e3, dl.p90 / 1e3);
        printf("  ratio of medians, ndshm / by hand: %.3f; ndshm / by hand with the lock: %.3f\n",
               dn.p50 / dh.p50, dn.p50 / dl.p50);
    }
    if ((st = ndshm_array_delete(name)) != NDSHM_OK)
        die("delete", st);

    /* 2. create */
    uint64_t *cn = malloc(reps * sizeof *cn), *ch = malloc(reps * sizeof *ch);
    if (!cn || !ch)
        die("malloc", NDSHM_E_NOMEM);
    for (size_t i = 0; i < reps; i++) {
        if (i % 2) {
            cn[i] = create_ndshm(name, size);
            ch[i] = create_hand(hand, size);
        } else {
            ch[i] = create_hand(hand, size);
            cn[i] = create_ndshm(name, size);
        }
    }
    struct dist dn = dist_of(cn, reps), dh = dist_of(ch, reps);
    printf("\n%-44s %10s %10s %10s\n", "create (zero-filled, pages reserved)", "median ms", "GB/s",
           "best GB/s");
    printf("%-44s %10.1f %10.2f %10.2f\n", "ndshm_array_create", dn.p50 / 1e6,
           (double)size / dn.p50, (double)size / (double)cn[0]);
    printf("%-44s %10.1f %10.2f %10.2f\n", "open+ftruncate+posix_fallocate by hand", dh.p50 / 1e6,
           (double)size / dh.p50, (double)size / (double)ch[0]);
    printf("  ratio of medians (ndshm / by hand): %.3f\n", dn.p50 / dh.p50);
    free(tn);
    free(th);
    free(tl);
    free(cn);
    free(ch);
    return 0;
}
