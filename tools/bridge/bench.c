/*
 * ndshm-bridge-bench: throughput and added latency of ndshm-bridge on this host, with the
 * reference measured in the same run.
 *
 *   ndshm-bridge-bench [--size BYTES] [--rate HZ] [--seconds S] [--ipc]
 *
 * Publishes SIZE-byte versions at RATE Hz (0 = as fast as possible) into a source channel;
 * runs `ndshm-bridge send` and `ndshm-bridge recv` (found next to this program) over
 * tcp://127.0.0.1 (or ipc://); one thread reads the source channel directly (the reference:
 * plain shared memory), another reads the receiver's channel. Each payload carries its
 * publish time (CLOCK_MONOTONIC, same host), so both readers measure publish -> read latency
 * the same way; the difference is what the bridge adds.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ndshm/ndshm.h"

struct side {
    const char *name;
    pthread_t th;
    uint64_t *lat; /* ns, one per version received */
    size_t n, cap;
    uint64_t received, dropped, bytes, first_ns, last_ns;
    atomic_int seen; /* got anything (warm-up) */
};

static atomic_int done, measuring;
static size_t size = 64;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *reader_main(void *arg)
{
    struct side *s = arg;
    ndshm_reader *r = NULL;
    while (!atomic_load(&done) && ndshm_reader_open(s->name, NULL, &r) != NDSHM_OK)
        usleep(10000);
    unsigned char *buf = malloc(size);
    while (r && buf && !atomic_load(&done)) {
        ndshm_info info;
        int rc = ndshm_read_next(r, buf, size, &info);
        if (rc == NDSHM_OK && !atomic_load(&measuring)) {
            atomic_store(&s->seen, 1);
        } else if (rc == NDSHM_OK) {
            uint64_t t;
            memcpy(&t, buf, sizeof t);
            if (s->n < s->cap)
                s->lat[s->n++] = info.read_ns > t ? info.read_ns - t : 0;
            if (!s->received)
                s->first_ns = info.read_ns;
            s->last_ns = info.read_ns;
            s->received++;
            s->dropped += info.dropped;
            s->bytes += info.nbytes;
        } else if (rc == NDSHM_NO_NEW || rc == NDSHM_NO_DATA || rc == NDSHM_WRITER_GONE) {
            ndshm_wait(r, 10000000);
        }
    }
    free(buf);
    ndshm_reader_close(r);
    return NULL;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void report(struct side *s, const char *what)
{
    qsort(s->lat, s->n, sizeof *s->lat, cmp_u64);
    double secs = s->last_ns > s->first_ns ? (double)(s->last_ns - s->first_ns) / 1e9 : 0;
    double p50 = s->n ? (double)s->lat[s->n / 2] / 1e3 : 0;
    double p99 = s->n ? (double)s->lat[(size_t)((double)(s->n - 1) * 0.99)] / 1e3 : 0;
    double mx = s->n ? (double)s->lat[s->n - 1] / 1e3 : 0;
    printf("%-7s received=%llu dropped=%llu rate=%.0f/s throughput=%.1f MB/s "
           "latency_us p50=%.1f p99=%.1f max=%.1f\n",
           what, (unsigned long long)s->received, (unsigned long long)s->dropped,
           secs > 0 ? (double)s->received / secs : 0, secs > 0 ? (double)s->bytes / secs / 1e6 : 0,
           p50, p99, mx);
}

int main(int argc, char **argv)
{
    double rate = 1000, seconds = 3;
    int ipc = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--ipc"))
            ipc = 1;
        else {
            fprintf(stderr, "usage: ndshm-bridge-bench [--size BYTES] [--rate HZ (0 = max)] "
                            "[--seconds S] [--ipc]\n");
            return 2;
        }
    }
    if (size < 16 || seconds <= 0 || rate < 0) {
        fprintf(stderr, "ndshm-bridge-bench: --size >= 16, --seconds > 0, --rate >= 0\n");
        return 2;
    }
    char bin[PATH_MAX - 32], bridge[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
    if (n <= 0)
        return 1;
    bin[n] = 0;
    *strrchr(bin, '/') = 0;
    snprintf(bridge, sizeof bridge, "%s/ndshm-bridge", bin);

    char src[64], dst[64], ep[128], ipcdir[] = "/tmp/ndshm-bench-XXXXXX";
    snprintf(src, sizeof src, "nbb-%d-src", (int)getpid());
    snprintf(dst, sizeof dst, "nbb-%d-dst", (int)getpid());
    if (ipc) {
        if (!mkdtemp(ipcdir))
            return 1;
        snprintf(ep, sizeof ep, "ipc://%s/b.ipc", ipcdir);
    } else {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
            getsockname(fd, (struct sockaddr *)&a, &len))
            return 1;
        close(fd);
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    }
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 64;
    o.capacity = size;
    o.flags = NDSHM_UNLINK_ON_CLOSE;
    ndshm_writer *w = NULL;
    if (ndshm_writer_create(src, &o, &w) != NDSHM_OK)
        return 1;
    char *rargv[] = {bridge, "recv", ep, dst, "--slots", "64", "--stats", "0", NULL};
    char *sargv[] = {bridge, "send", src, ep, "--stats", "0", NULL};
    pid_t rp = spawn(rargv), sp = spawn(sargv);

    size_t maxn = (size_t)(rate > 0 ? rate * seconds * 1.2 + 1000 : 5e6);
    struct side sides[2] = {{.name = src}, {.name = dst}};
    for (int i = 0; i < 2; i++) {
        sides[i].cap = maxn;
        sides[i].lat = malloc(maxn * sizeof(uint64_t));
        pthread_create(&sides[i].th, NULL, reader_main, &sides[i]);
    }
    unsigned char *buf = calloc(1, size);
    uint64_t shape[1] = {size};
    /* warm up until the receiver's side gets data, then measure */
    for (int i = 0; i < 2000 && !atomic_load(&sides[1].seen); i++) {
        uint64_t t = ndshm_now_ns();
        memcpy(buf, &t, sizeof t);
        ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL);
        usleep(10000);
    }
    usleep(200000);
    atomic_store(&measuring, 1);
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0, t0 = ndshm_now_ns(), next = t0;
    uint64_t end = t0 + (uint64_t)(seconds * 1e9), published = 0;
    for (uint64_t now; (now = ndshm_now_ns()) < end;) {
        if (period && now < next) {
            uint64_t d = next - now;
            struct timespec ts = {0, (long)(d > 100000 ? d - 50000 : 0)};
            if (ts.tv_nsec)
                nanosleep(&ts, NULL);
            continue;
        }
        uint64_t t = ndshm_now_ns();
        memcpy(buf, &t, sizeof t);
        ndshm_publish(w, NDSHM_UINT8, 1, shape, buf, NULL);
        published++;
        next += period;
    }
    double pub_s = (double)(ndshm_now_ns() - t0) / 1e9;
    usleep(500000); /* let the bridge drain */
    atomic_store(&done, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(sides[i].th, NULL);
    printf("ndshm-bridge-bench size=%zu B rate=%s%.0f Hz seconds=%.1f endpoint=%s\n", size,
           rate > 0 ? "" : "max ", (double)published / pub_s, seconds, ipc ? "ipc" : "tcp");
    printf("published=%llu\n", (unsigned long long)published);
    report(&sides[0], "direct");
    report(&sides[1], "bridged");
    kill(sp, SIGTERM);
    kill(rp, SIGTERM);
    waitpid(sp, NULL, 0);
    waitpid(rp, NULL, 0);
    ndshm_writer_close(w);
    ndshm_unlink(dst);
    if (ipc)
        rmdir(ipcdir);
    for (int i = 0; i < 2; i++)
        free(sides[i].lat);
    free(buf);
    return 0;
}
