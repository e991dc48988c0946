#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ndshm/ndshm.h"

static char prefix[64];

static const char *shm_dir(void)
{
    const char *d = getenv("NDSHM_DIR");
    return d && d[0] == '/' ? d : "/dev/shm";
}

const char *tu_name(const char *base)
{
    static char names[16][NDSHM_NAME_MAX + 1];
    static unsigned next;
    char *out = names[next++ % 16];
    if (!prefix[0])
        snprintf(prefix, sizeof prefix, "ndt-%d-", (int)getpid());
    snprintf(out, NDSHM_NAME_MAX + 1, "%s%s", prefix, base);
    return out;
}

void tu_cleanup(void)
{
    char want[80];
    snprintf(want, sizeof want, "ndshm.ndt-%d-", (int)getpid());
    DIR *d = opendir(shm_dir());
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, want, strlen(want)) == 0) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", shm_dir(), e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static pid_t owner;
static char private_dir[128];

static void at_exit(void)
{
    if (getpid() != owner) /* forked children must not clean up under the parent */
        return;
    tu_cleanup();
    if (private_dir[0]) {
        DIR *d = opendir(private_dir);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", private_dir, e->d_name);
            unlink(path);
        }
        if (d)
            closedir(d);
        rmdir(private_dir);
    }
}

static void on_signal(int sig)
{
    at_exit();
    signal(sig, SIG_DFL);
    raise(sig);
}

void tu_init(void)
{
    owner = getpid();
    /* Each test process works in a private segment directory (the library honours
     * NDSHM_DIR), so machine-wide calls such as ndshm_gc() or ndshm_list() in one test never
     * see, let alone remove, another test's channels when ctest runs them in parallel. */
    if (!getenv("NDSHM_DIR")) {
        snprintf(private_dir, sizeof private_dir, "/dev/shm/ndt-%d.d", (int)owner);
        if (mkdir(private_dir, 0700) == 0)
            setenv("NDSHM_DIR", private_dir, 1);
        else
            private_dir[0] = 0;
    }
    (void)tu_name("");
    atexit(at_exit);
    int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGTERM, SIGINT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_signal);
}

int tu_count_segments(const char *name)
{
    char ctl[256], data[256];
    snprintf(ctl, sizeof ctl, "ndshm.%s", name);
    snprintf(data, sizeof data, "ndshm.%s@", name);
    int n = 0;
    DIR *d = opendir(shm_dir());
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ctl) == 0 || strncmp(e->d_name, data, strlen(data)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int tu_data_seg(const char *name, uint64_t gen, char *out, size_t cap)
{
    char want[256];
    snprintf(want, sizeof want, "ndshm.%s@%llu.", name, (unsigned long long)gen);
    DIR *d = opendir(shm_dir());
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, want, strlen(want)) == 0) {
            snprintf(out, cap, "%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

void tu_seg_path(const char *seg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", shm_dir(), seg);
}

static uint64_t mix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

void tu_fill(void *buf, size_t n, uint64_t v)
{
    unsigned char *p = buf;
    uint64_t seed = mix(v);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = seed ^ (i * UINT64_C(0x100000001b3));
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] = (unsigned char)(seed >> (8 * (i % 8)));
}

int tu_check(const void *buf, size_t n, uint64_t v)
{
    const unsigned char *p = buf;
    uint64_t seed = mix(v);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = seed ^ (i * UINT64_C(0x100000001b3)), got;
        memcpy(&got, p + i, 8);
        if (got != w)
            return 0;
    }
    for (; i < n; i++)
        if (p[i] != (unsigned char)(seed >> (8 * (i % 8))))
            return 0;
    return 1;
}

size_t tu_size_for(uint64_t v, size_t lo, size_t hi)
{
    return lo + (size_t)(mix(v * 31 + 7) % (hi - lo + 1));
}

static pid_t strays[64];
static int nstrays;

int tu_spawn(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        nstrays = 0; /* the parent's children are not ours */
        return 0;
    }
    if (nstrays < 64)
        strays[nstrays++] = pid;
    return pid;
}

void tu_kill_strays(void)
{
    for (int i = 0; i < nstrays; i++) {
        if (kill(strays[i], SIGKILL) == 0 || errno != ESRCH)
            waitpid(strays[i], NULL, 0);
    }
    nstrays = 0;
}

int tu_child_status(int pid)
{
    int st = 0;
    if (waitpid((pid_t)pid, &st, 0) != (pid_t)pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void tu_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
