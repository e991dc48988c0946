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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Where the segments live: $NDSHM_DIR or /dev/shm (what shm_open(3) uses on Linux). An
 * NDSHM_DIR that is set but not an absolute path of at most 255 characters is refused by
 * every entry point (ndshm__dir_status), never silently replaced by /dev/shm. */
static int dir_valid(const char *d)
{
    return d[0] == '/' && strlen(d) <= 255;
}

static const char *shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return (d && d[0] && dir_valid(d)) ? d : "/dev/shm";
}

int ndshm__dir_status(void)
{
    const char *d = getenv("NDSHM_DIR");
    return (!d || !d[0] || dir_valid(d)) ? NDSHM_OK : NDSHM_E_DIR;
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
    /* O_NONBLOCK: a FIFO planted under our name opens at once (and is then refused as not a
     * regular file) instead of blocking until someone writes to it. */
    int flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
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

static void fill_stat(const struct stat *st, struct ndshm__fstat *out)
{
    out->size = (uint64_t)st->st_size;
    out->dev = (uint64_t)st->st_dev;
    out->ino = (uint64_t)st->st_ino;
    out->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    out->type = S_ISREG(st->st_mode) ? NDSHM__FT_REG : NDSHM__FT_OTHER;
    out->mode = (uint32_t)(st->st_mode & 07777);
    out->uid = (uint32_t)st->st_uid;
    out->gid = (uint32_t)st->st_gid;
}

static int lx_fstat(int fd, struct ndshm__fstat *out)
{
    struct stat st;
    if (fstat(fd, &st))
        return -errno;
    fill_stat(&st, out);
    return 0;
}

static int lx_stat(const char *seg, struct ndshm__fstat *out)
{
    char path[PATH_MAX];
    int rc = seg_path(path, sizeof path, seg);
    if (rc)
        return rc;
    struct stat st;
    if (lstat(path, &st))
        return -errno;
    fill_stat(&st, out);
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

static int lx_open_tmp(uint32_t mode)
{
    /* O_TMPFILE: a file with no name yet, so nobody can see it half initialised. */
    int fd = open(shm_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)mode);
    if (fd >= 0)
        return fd;
    return errno == EISDIR || errno == EINVAL ? -EOPNOTSUPP : -errno;
}

static int lx_link_tmp(int fd, const char *seg)
{
    char path[PATH_MAX], self[64];
    int rc = seg_path(path, sizeof path, seg);
    if (rc)
        return rc;
    /* Through /proc/self/fd: linkat(fd, "", AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
     * Fails with EEXIST if the name is taken: creation stays exclusive. */
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) ? -errno : 0;
}

static int lx_fchown(int fd, uint32_t uid, uint32_t gid)
{
    return fchown(fd, (uid_t)uid, (gid_t)gid) ? -errno : 0;
}

static int lx_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t k = getrandom(p, n, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int lx_shm_create(uint32_t mode)
{
    int id = shmget(IPC_PRIVATE, NDSHM__PAGE, IPC_CREAT | IPC_EXCL | (int)(mode & 0666));
    return id < 0 ? -errno : id;
}

static void *lx_shm_attach(int id, int writable, int *err)
{
    void *p = shmat(id, NULL, writable ? 0 : SHM_RDONLY);
    if (p == (void *)-1) {
        *err = -errno;
        return NULL;
    }
    *err = 0;
    return p;
}

static int lx_shm_stat(int id, uint32_t *uid, uint64_t *size)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds))
        return -errno;
    *uid = (uint32_t)ds.shm_perm.uid;
    *size = (uint64_t)ds.shm_segsz;
    return 0;
}

static int lx_shm_nattch(int id)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds))
        return -errno;
    return ds.shm_nattch > INT32_MAX ? INT32_MAX : (int)ds.shm_nattch;
}

/* The largest cache sysfs reports for CPU 0 (its last level): "32768K", "8M". */
static uint64_t lx_llc_bytes(void)
{
    uint64_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "re");
        if (!f)
            break;
        if (fgets(buf, sizeof buf, f)) {
            char *end;
            uint64_t b = strtoull(buf, &end, 10);
            b <<= *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
            if (b > best)
                best = b;
        }
        fclose(f);
    }
    return best;
}

static int lx_shm_remove(int id)
{
    return shmctl(id, IPC_RMID, NULL) ? -errno : 0;
}

static int lx_shm_detach(void *addr)
{
    return shmdt(addr) ? -errno : 0;
}

static uint64_t lx_pidns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) ? 0 : (uint64_t)st.st_ino;
}

static uint32_t lx_euid(void)
{
    return (uint32_t)geteuid();
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

static int ofd_fcntl(int fd, int cmd, uint64_t off, short type, struct flock *fl)
{
    if (off > (uint64_t)INT64_MAX)
        return -EINVAL;
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)off;
    fl->l_len = 1;
    fl->l_pid = 0; /* must be 0 for OFD locks */
    return fcntl(fd, cmd, fl) ? -errno : 0;
}

static short lock_type(enum ndshm__lock type)
{
    return type == NDSHM__WRLOCK ? F_WRLCK : type == NDSHM__RDLOCK ? F_RDLCK : F_UNLCK;
}

static int lx_lock(int fd, uint64_t off, enum ndshm__lock type)
{
    struct flock fl;
    int rc = ofd_fcntl(fd, F_OFD_SETLK, off, lock_type(type), &fl);
    return rc == -EACCES ? -EAGAIN : rc;
}

static int lx_lock_held(int fd, uint64_t off, enum ndshm__lock type)
{
    struct flock fl;
    int rc = ofd_fcntl(fd, F_OFD_GETLK, off, lock_type(type), &fl);
    if (rc)
        return rc;
    return fl.l_type != F_UNLCK;
}

/* One line of /proc/locks: "12: OFDLCK ADVISORY  READ  -1 00:1a:1234 1 1" (device in hex,
 * inode and range in decimal, end "EOF" for an open range). Lines with "->" are blocked
 * waiters, not locks. */
static int locks_line_matches(const char *line, uint64_t dev, uint64_t ino, uint64_t off)
{
    char kind[16], adv[16], rw[16], start_s[32], end_s[32];
    long long pid;
    unsigned maj, mnr;
    unsigned long long in;
    if (strstr(line, "->"))
        return 0;
    const char *p = strchr(line, ':');
    if (!p)
        return 0;
    if (sscanf(p + 1, "%15s %15s %15s %lld %x:%x:%llu %31s %31s", kind, adv, rw, &pid, &maj, &mnr,
               &in, start_s, end_s) != 9)
        return 0;
    if (strcmp(kind, "OFDLCK") != 0 || (uint64_t)in != ino || makedev(maj, mnr) != (dev_t)dev)
        return 0;
    unsigned long long lo = strtoull(start_s, NULL, 10);
    unsigned long long hi = strcmp(end_s, "EOF") == 0 ? ULLONG_MAX : strtoull(end_s, NULL, 10);
    return off >= lo && off <= hi;
}

static int lx_lock_count(uint64_t dev, uint64_t ino, uint64_t off)
{
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return -errno;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += locks_line_matches(line, dev, ino, off);
    fclose(f);
    return n;
}

const struct ndshm__os ndshm__os_linux = {
    .open = lx_open,
    .unlink = lx_unlink,
    .close = lx_close,
    .fstat = lx_fstat,
    .stat = lx_stat,
    .ftruncate = lx_ftruncate,
    .fallocate = lx_fallocate,
    .fchmod = lx_fchmod,
    .mmap = lx_mmap,
    .munmap = lx_munmap,
    .futex_wait = lx_futex_wait,
    .futex_wake = lx_futex_wake,
    .list = lx_list,
    .lock = lx_lock,
    .lock_held = lx_lock_held,
    .lock_count = lx_lock_count,
    .open_tmp = lx_open_tmp,
    .link_tmp = lx_link_tmp,
    .fchown = lx_fchown,
    .random = lx_random,
    .shm_create = lx_shm_create,
    .shm_attach = lx_shm_attach,
    .shm_stat = lx_shm_stat,
    .shm_nattch = lx_shm_nattch,
    .llc_bytes = lx_llc_bytes,
    .shm_remove = lx_shm_remove,
    .shm_detach = lx_shm_detach,
    .pidns = lx_pidns,
    .euid = lx_euid,
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

uint64_t ndshm__realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fork generation: bumped in every child. Handles compare it with the value they recorded
 * at open (one relaxed load, no syscall: getpid() is not cached by glibc). */
static _Atomic uint64_t fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void register_fork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

uint64_t ndshm__fork_gen(void)
{
    pthread_once(&fork_once, register_fork);
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

uint64_t ndshm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
