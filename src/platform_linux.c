/*
 * The platform interface on Linux. Every OS call of the library goes through ndshm__os so
 * that tests can inject faults (ENOSPC, EACCES, ...) and a port replaces one file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Where the segments live: $NDSHM_DIR or /dev/shm (what shm_open(3) uses on Linux). */
static const char *shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return (d && d[0] == '/' && strlen(d) < 256) ? d : "/dev/shm";
}

static int seg_path(char *out, size_t cap, const char *seg)
{
    int n = snprintf(out, cap, "%s/%s", shm_dir(), seg);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

static int lx_open(const char *seg, int create, int writable, uint32_t mode)
{
    char path[PATH_MAX];
    int rc = seg_path(path, sizeof path, seg);
    if (rc)
        return rc;
    /* O_NOFOLLOW: a symlink planted under our name is refused, not followed. */
    int flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC;
    if (create)
        flags |= O_CREAT | O_EXCL;
    int fd = open(path, flags, (mode_t)mode);
    return fd < 0 ? -errno : fd;
}

static int lx_unlink(const char *seg)
{
    char path[PATH_MAX];
    int rc = seg_path(path, sizeof path, seg);
    if (rc)
        return rc;
    return unlink(path) ? -errno : 0;
}

static int lx_close(int fd)
{
    return close(fd) ? -errno : 0;
}

static int lx_fstat(int fd, uint64_t *size, uint32_t *mode)
{
    struct stat st;
    if (fstat(fd, &st))
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    *size = (uint64_t)st.st_size;
    if (mode)
        *mode = (uint32_t)(st.st_mode & 07777);
    return 0;
}

static int lx_ftruncate(int fd, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    return ftruncate(fd, (off_t)size) ? -errno : 0;
}

static int lx_fallocate(int fd, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    /* Reserve the pages now so a full tmpfs fails here, not with SIGBUS mid-publish. */
    int rc = posix_fallocate(fd, 0, (off_t)size);
    return rc == EOPNOTSUPP || rc == EINVAL ? 0 : -rc;
}

static int lx_fchmod(int fd, uint32_t mode)
{
    return fchmod(fd, (mode_t)mode) ? -errno : 0;
}

static void *lx_mmap(int fd, uint64_t size, int writable, int *err)
{
    if (size == 0 || size > (uint64_t)SIZE_MAX) {
        *err = -EINVAL;
        return NULL;
    }
    void *p =
        mmap(NULL, (size_t)size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    *err = 0;
    return p;
}

static int lx_munmap(void *addr, uint64_t size)
{
    return munmap(addr, (size_t)size) ? -errno : 0;
}

static int lx_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    /* Shared futex (no FUTEX_PRIVATE_FLAG): the word lives in memory mapped by other
     * processes. */
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tsp, NULL, 0);
    return rc < 0 ? -errno : 0;
}

static int lx_futex_wake(_Atomic uint32_t *word)
{
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

/* /proc/<pid>/stat into buf (NUL-terminated); its length, or -1. */
static ssize_t read_proc_stat(int64_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return n;
}

static uint64_t lx_proc_start(int64_t pid)
{
    if (pid <= 0 || pid > INT_MAX)
        return 0;
    char buf[1024];
    ssize_t n = read_proc_stat(pid, buf, sizeof buf);
    uint64_t start = 0;
    if (n < 0 || ndshm__proc_start_parse(buf, (size_t)n, &start))
        return 0;
    return start;
}

static int lx_pid_exists(int64_t pid)
{
    if (pid <= 0 || pid > INT_MAX)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return 0;
    /* A zombie (killed, not yet reaped by its parent) still answers kill(): it is dead. The
     * state is field 3, right after the command name's closing ')'. */
    char buf[1024];
    ssize_t n = read_proc_stat(pid, buf, sizeof buf);
    if (n < 0)
        return 1; /* no /proc (or hidepid): trust kill() */
    const char *p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static int lx_list(int (*fn)(const char *entry, void *arg), void *arg)
{
    DIR *d = opendir(shm_dir());
    if (!d)
        return -errno;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if ((rc = fn(e->d_name, arg)) != 0)
            break;
    }
    closedir(d);
    return rc > 0 ? 0 : rc;
}

const struct ndshm__os ndshm__os_linux = {
    .open = lx_open,
    .unlink = lx_unlink,
    .close = lx_close,
    .fstat = lx_fstat,
    .ftruncate = lx_ftruncate,
    .fallocate = lx_fallocate,
    .fchmod = lx_fchmod,
    .mmap = lx_mmap,
    .munmap = lx_munmap,
    .futex_wait = lx_futex_wait,
    .futex_wake = lx_futex_wake,
    .proc_start = lx_proc_start,
    .pid_exists = lx_pid_exists,
    .list = lx_list,
};

const struct ndshm__os *_Atomic ndshm__os = &ndshm__os_linux;

void ndshm__os_set(const struct ndshm__os *os)
{
    /* Release: the table's contents are visible to any thread that then loads the pointer. */
    atomic_store_explicit(&ndshm__os, os ? os : &ndshm__os_linux, memory_order_release);
}

int64_t ndshm__self_pid(void)
{
    return (int64_t)getpid();
}

uint64_t ndshm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Field 22 of /proc/<pid>/stat (starttime), parsed after the last ')' since the command name
 * (field 2) may itself contain spaces and parentheses. */
int ndshm__proc_start_parse(const char *stat, size_t len, uint64_t *start)
{
    const char *end = stat + len, *p = NULL;
    for (const char *q = stat; q < end; q++)
        if (*q == ')')
            p = q;
    if (!p)
        return -1;
    p++;
    /* after ')' come fields 3.. separated by single spaces; starttime is field 22 */
    int field = 2;
    while (p < end && field < 22) {
        if (*p == ' ') {
            field++;
            while (p < end && *p == ' ')
                p++;
            continue;
        }
        p++;
    }
    if (field != 22 || p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return -1;
        p++;
    }
    *start = v;
    return 0;
}

int ndshm__errno_status(int neg_errno)
{
    int e = -neg_errno;
    switch (e) {
    case 0:
        return NDSHM_OK;
    case ENOENT:
        return NDSHM_E_NOENT;
    case EEXIST:
        return NDSHM_E_EXISTS;
    case EACCES:
    case EPERM:
        return NDSHM_E_PERM;
    case ENOSPC:
        return NDSHM_E_NOSPC;
    case ENOMEM:
        return NDSHM_E_NOMEM;
    default:
        return NDSHM_E_SYS - (e > 0 ? e : EIO);
    }
}
