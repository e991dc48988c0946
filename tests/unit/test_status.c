/* Every status has a distinct name and message; OS errors keep their errno. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

static const int all[] = {
#define X(name, value, text) NDSHM_##name,
    NDSHM_STATUS_MAP(X)
#undef X
};

static void names_and_messages_distinct(void **state)
{
    (void)state;
    size_t n = sizeof all / sizeof all[0];
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) {
        const char *name = ndshm_status_name(all[i]);
        const char *msg = ndshm_strerror(all[i]);
        assert_non_null(name);
        assert_non_null(msg);
        assert_true(strncmp(name, "NDSHM_", 6) == 0);
        assert_string_not_equal(name, "NDSHM_UNKNOWN");
        assert_true(strlen(msg) > 3);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all[i], all[j]);
            assert_string_not_equal(name, ndshm_status_name(all[j]));
        }
    }
    assert_string_equal(ndshm_status_name(NDSHM_E_EXISTS), "NDSHM_E_EXISTS");
    assert_string_equal(ndshm_status_name(0), "NDSHM_OK");
}

static void signs_follow_the_convention(void **state)
{
    (void)state;
    /* positive: normal outcomes; negative: errors */
    assert_true(NDSHM_NO_NEW > 0 && NDSHM_NO_DATA > 0 && NDSHM_TIMEOUT > 0);
    assert_true(NDSHM_WRITER_GONE > 0 && NDSHM_CONTENDED > 0 && NDSHM_OVERWRITTEN > 0);
    assert_true(NDSHM_E_INVAL < 0 && NDSHM_E_EXISTS < 0 && NDSHM_E_CORRUPT < 0);
}

static void os_errors_keep_errno(void **state)
{
    (void)state;
    int st = ndshm__errno_status(-EMFILE);
    assert_true(st <= NDSHM_E_SYS);
    assert_int_equal(NDSHM_SYS_ERRNO(st), EMFILE);
    assert_string_equal(ndshm_strerror(st), strerror(EMFILE));
    assert_string_equal(ndshm_status_name(st), "NDSHM_E_SYS");
    assert_int_equal(ndshm__errno_status(-ENOENT), NDSHM_E_NOENT);
    assert_int_equal(ndshm__errno_status(-EEXIST), NDSHM_E_EXISTS);
    assert_int_equal(ndshm__errno_status(-EACCES), NDSHM_E_PERM);
    assert_int_equal(ndshm__errno_status(-ENOSPC), NDSHM_E_NOSPC);
    assert_int_equal(NDSHM_SYS_ERRNO(NDSHM_E_INVAL), 0);
    assert_string_equal(ndshm_status_name(12345), "NDSHM_UNKNOWN");
    assert_non_null(ndshm_strerror(-999));
}

static void version_strings(void **state)
{
    (void)state;
    assert_string_equal(ndshm_version(), NDSHM_VERSION_STRING);
    assert_int_equal(NDSHM_VERSION_HEX, (NDSHM_VERSION_MAJOR << 16) | (NDSHM_VERSION_MINOR << 8) |
                                            NDSHM_VERSION_PATCH);
}

static void slots_for(void **state)
{
    (void)state;
    /* the table in docs/benchmarks.md ("How many slots"), write time ~0 */
    assert_int_equal(ndshm_slots_for(30, 0.005, 0), 2);
    assert_int_equal(ndshm_slots_for(30, 0.1, 0), 4);
    assert_int_equal(ndshm_slots_for(30, 1, 0), 31);
    assert_int_equal(ndshm_slots_for(60, 0.033, 0), 3);
    assert_int_equal(ndshm_slots_for(120, 0.033, 0), 5);
    assert_int_equal(ndshm_slots_for(1000, 0.005, 0), 6);
    assert_int_equal(ndshm_slots_for(1000, 1, 0), 1001);
    assert_int_equal(ndshm_slots_for(1000, 0.1, 0.001), 102);
    assert_int_equal(ndshm_slots_for(0, 5, 0), 2);
    assert_int_equal(ndshm_slots_for(-1, 1, 0), 0);
    assert_int_equal(ndshm_slots_for(30, NAN, 0), 0);
    assert_int_equal(ndshm_slots_for(INFINITY, 1, 0), 0);
    assert_int_equal(ndshm_slots_for(1e6, 1, 0), 0); /* more than NDSHM_MAX_SLOTS */
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_messages_distinct),
        cmocka_unit_test(signs_follow_the_convention),
        cmocka_unit_test(os_errors_keep_errno),
        cmocka_unit_test(version_strings),
        cmocka_unit_test(slots_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
