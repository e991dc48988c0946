/*
 * Non-temporal payload stores (writer.c use_nt, ring.c ndshm__store_payload_nt), forced on
 * with NDSHM_NT=1: every length and alignment copies exactly, and a free-running writer
 * process publishing with them never lets a reader accept a torn or mixed version (the sfence
 * before W3 is what orders streaming stores before the even seq). Checksummed payloads.
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

static size_t len_for(uint64_t v)
{
    return (256u << 10) + (size_t)(v * 4099 % 300000); /* 256 KiB .. ~550 KiB, odd lengths */
}

static void exact_copies(void **state)
{
    (void)state;
    ndshm_writer *w;
    ndshm_reader *r;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.capacity = 1u << 20;
    assert_int_equal(ndshm_writer_create(tu_name("nt"), &o, &w), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(tu_name("nt"), NULL, &r), NDSHM_OK);
    unsigned char *src = malloc((1u << 20) + 64), *dst = malloc(1u << 20);
    assert_non_null(src);
    assert_non_null(dst);
    for (uint64_t v = 1; v <= 64; v++) {
        size_t n = len_for(v);
        unsigned char *s = src + v % 17; /* unaligned sources too */
        tu_fill(s, n, v);
        uint64_t shape[1] = {n};
        assert_int_equal(ndshm_publish(w, NDSHM_UINT8, 1, shape, s, NULL), NDSHM_OK);
        ndshm_info info;
        assert_int_equal(ndshm_read_latest(r, dst, 1u << 20, &info), NDSHM_OK);
        assert_int_equal(info.nbytes, n);
        if (!tu_check(dst, n, info.version))
            fail_msg("version %llu (%zu bytes) read back wrong", (unsigned long long)v, n);
    }
    free(src);
    free(dst);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
}

static void no_torn_reads(void **state)
{
    (void)state;
    atomic_int *go = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(go != MAP_FAILED);
    const char *name = tu_name("ntmp");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.capacity = 1u << 20;
    o.slots = 2; /* the reader is lapped often: torn copies would be frequent */
    fflush(NULL);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ndshm_writer *w;
        if (ndshm_writer_create(name, &o, &w))
            _exit(2);
        unsigned char *src = malloc(1u << 20);
        atomic_store(&go[0], 1);
        while (!atomic_load(&go[1])) {
            uint64_t v = ndshm_writer_version(w) + 1;
            size_t n = len_for(v);
            tu_fill(src, n, v);
            uint64_t shape[1] = {n};
            if (ndshm_publish(w, NDSHM_UINT8, 1, shape, src, NULL))
                _exit(3);
        }
        ndshm_writer_close(w);
        _exit(0);
    }
    while (!atomic_load(&go[0]))
        usleep(1000);
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    unsigned char *dst = malloc(1u << 20);
    uint64_t ok = 0, torn = 0, end = ndshm_now_ns() + 3000000000ull;
    while (ndshm_now_ns() < end) {
        ndshm_info info;
        int rc = ndshm_read_latest(r, dst, 1u << 20, &info);
        if (rc != NDSHM_OK)
            continue;
        ok++;
        if (info.nbytes != len_for(info.version) || !tu_check(dst, info.nbytes, info.version))
            torn++;
    }
    atomic_store(&go[1], 1);
    int st = 0;
    waitpid(p, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    print_message("streaming stores: %llu reads accepted, %llu torn\n", (unsigned long long)ok,
                  (unsigned long long)torn);
    assert_true(ok > 0);
    assert_int_equal(torn, 0);
    free(dst);
    ndshm_reader_close(r);
    munmap(go, 4096);
}

int main(void)
{
    setenv("NDSHM_NT", "1", 1); /* before the first publish: the mode is read once */
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_copies),
        cmocka_unit_test(no_torn_reads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return rc;
}
