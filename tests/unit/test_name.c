/* Channel names, segment names, options and the /proc start-time parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

static void names(void **state)
{
    (void)state;
    const char *good[] = {"a", "camera", "cam.1", "Cam_front-left", "x..y", "0", "a-b_c.d"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(ndshm_name_check(good[i]), NDSHM_OK);
    char longest[NDSHM_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[NDSHM_NAME_MAX] = 0;
    assert_int_equal(ndshm_name_check(longest), NDSHM_OK);
    longest[NDSHM_NAME_MAX] = 'a';
    longest[NDSHM_NAME_MAX + 1] = 0;
    assert_int_equal(ndshm_name_check(longest), NDSHM_E_NAME);
    const char *bad[] = {"",    ".",   "..",    ".hidden", "a/b", "/abs",     "../x",
                         "a b", "a@1", "tab\t", "é",       "a*",  "new\nline"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ndshm_name_check(bad[i]), NDSHM_E_NAME);
    assert_int_equal(ndshm_name_check(NULL), NDSHM_E_INVAL);
}

static void segment_names_never_collide(void **state)
{
    (void)state;
    char a[NDSHM__SEG_MAX], b[NDSHM__SEG_MAX];
    ndshm__ctl_name(a, "cam.1.5");
    ndshm__data_name(b, "cam.1", 5);
    assert_string_not_equal(a, b);
    assert_string_equal(a, "ndshm.cam.1.5");
    assert_string_equal(b, "ndshm.cam.1@5");
}

static void bad_names_refused_everywhere(void **state)
{
    (void)state;
    ndshm_writer *w = (ndshm_writer *)0x1;
    ndshm_reader *r = (ndshm_reader *)0x1;
    ndshm_channel_info ci;
    assert_int_equal(ndshm_writer_create("a/b", NULL, &w), NDSHM_E_NAME);
    assert_int_equal(ndshm_writer_open("..", NULL, &w), NDSHM_E_NAME);
    assert_int_equal(ndshm_reader_open("", NULL, &r), NDSHM_E_NAME);
    assert_int_equal(ndshm_stat(".x", &ci), NDSHM_E_NAME);
    assert_int_equal(ndshm_unlink("x/../y"), NDSHM_E_NAME);
    assert_ptr_equal(w, (ndshm_writer *)0x1); /* untouched */
    assert_ptr_equal(r, (ndshm_reader *)0x1);
    assert_int_equal(ndshm_writer_create(NULL, NULL, &w), NDSHM_E_INVAL);
    assert_int_equal(ndshm_writer_create("ok", NULL, NULL), NDSHM_E_INVAL);
    assert_int_equal(ndshm_reader_open("ok", NULL, NULL), NDSHM_E_INVAL);
}

static void options(void **state)
{
    (void)state;
    ndshm_options in = NDSHM_OPTIONS_INIT, out;
    assert_int_equal(ndshm__options_read(NULL, &out), NDSHM_OK);
    assert_int_equal(out.slots, 4);
    assert_int_equal(out.mode, 0600);
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_OK);
    in.slots = NDSHM_MAX_SLOTS + 1;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_LIMIT);
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.capacity = NDSHM_MAX_CAPACITY + 1;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_LIMIT);
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.flags = 1u << 20;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_INVAL);
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.mode = 010000;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_INVAL);
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.size = 3; /* not an ndshm_options */
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_INVAL);
    /* an older, smaller struct: fields it lacks take defaults */
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.size = offsetof(ndshm_options, retries);
    in.slots = 9;
    in.retries = 5; /* beyond the declared size: ignored */
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_OK);
    assert_int_equal(out.slots, 9);
    assert_int_equal(out.retries, 64);
    /* geometry limits */
    struct ndshm__geom g;
    assert_int_equal(ndshm__geom_plan(0, 64, &g), NDSHM_E_LIMIT);
    assert_int_equal(ndshm__geom_plan(NDSHM_MAX_SLOTS, NDSHM_MAX_CAPACITY, &g), NDSHM_E_LIMIT);
    assert_int_equal(ndshm__geom_plan(3, 1, &g), NDSHM_OK);
    assert_int_equal(g.slot_capacity, 64);
    assert_int_equal(ndshm__geom_plan(3, 6220800, &g), NDSHM_OK);
    assert_int_equal(g.payload_offset % 4096, 0);
    assert_int_equal((g.slots_offset + g.payload_offset) % 4096, 0);
    assert_int_equal(g.slot_stride % 4096, 0);
}

static void proc_start_parser(void **state)
{
    (void)state;
    uint64_t st = 0;
    const char *s = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 "
                    "1 0 987654 1000 10";
    assert_int_equal(ndshm__proc_start_parse(s, strlen(s), &st), 0);
    assert_int_equal(st, 987654);
    const char *trunc = "1234 (x) S 1 2 3";
    assert_int_equal(ndshm__proc_start_parse(trunc, strlen(trunc), &st), -1);
    assert_int_equal(ndshm__proc_start_parse("garbage", 7, &st), -1);
    /* our own start time is readable and stable */
    uint64_t a = ndshm__os->proc_start(ndshm__self_pid());
    uint64_t b = ndshm__os->proc_start(ndshm__self_pid());
    assert_true(a > 0);
    assert_int_equal(a, b);
    assert_int_equal(ndshm__os->proc_start(-5), 0);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(segment_names_never_collide),
        cmocka_unit_test(bad_names_refused_everywhere),
        cmocka_unit_test(options),
        cmocka_unit_test(proc_start_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
