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
    ndshm__data_name(b, "cam.1", 5, UINT64_C(0x00ab00cd00ef0011));
    assert_string_not_equal(a, b);
    assert_string_equal(a, "ndshm.cam.1.5");
    assert_string_equal(b, "ndshm.cam.1@5.00ab00cd00ef0011");
    /* the directory listing parses both back */
    char name[NDSHM_NAME_MAX + 1];
    uint64_t gen = 0, token = 0;
    assert_int_equal(ndshm__parse_entry(a + 0, name, &gen, &token), 1);
    assert_string_equal(name, "cam.1.5");
    assert_int_equal(ndshm__parse_entry(b, name, &gen, &token), 2);
    assert_string_equal(name, "cam.1");
    assert_int_equal(gen, 5);
    assert_int_equal(token, UINT64_C(0x00ab00cd00ef0011));
    /* layout-1 data names (no token) are still recognised, for gc and unlink */
    assert_int_equal(ndshm__parse_entry("ndshm.cam@7", name, &gen, &token), 2);
    assert_int_equal(gen, 7);
    assert_int_equal(token, 0);
    const char *junk[] = {"ndshm.",      "ndshm.cam@",
                          "ndshm.cam@x", "ndshm.cam@5.12",
                          "other",       "ndshm.cam@5.00ab00cd00ef00zz",
                          "ndshm.a/b",   "ndshm.cam@99999999999999999999"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(ndshm__parse_entry(junk[i], name, &gen, &token), 0);
}

/* An NDSHM_DIR that is set but relative or longer than 255 characters is refused by every
 * entry point with NDSHM_E_DIR, never silently replaced by /dev/shm. */
static void bad_dir_refused(void **state)
{
    (void)state;
    const char *saved = getenv("NDSHM_DIR");
    char keep[512] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    char longdir[300];
    memset(longdir, 'a', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = 0;
    const char *bad[] = {"relative/dir", longdir};
    for (size_t i = 0; i < 2; i++) {
        setenv("NDSHM_DIR", bad[i], 1);
        ndshm_writer *w = NULL;
        ndshm_reader *r = NULL;
        ndshm_channel_info ci, *list = NULL;
        size_t n = 0;
        assert_int_equal(ndshm_writer_create("ok", NULL, &w), NDSHM_E_DIR);
        assert_int_equal(ndshm_writer_open("ok", NULL, &w), NDSHM_E_DIR);
        assert_int_equal(ndshm_reader_open("ok", NULL, &r), NDSHM_E_DIR);
        assert_int_equal(ndshm_stat("ok", &ci), NDSHM_E_DIR);
        assert_int_equal(ndshm_unlink("ok"), NDSHM_E_DIR);
        assert_int_equal(ndshm_list(&list, &n), NDSHM_E_DIR);
        assert_int_equal(ndshm_gc(NULL), NDSHM_E_DIR);
        assert_null(w);
        assert_null(r);
    }
    if (saved)
        setenv("NDSHM_DIR", keep, 1);
    else
        unsetenv("NDSHM_DIR");
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
    in = (ndshm_options)NDSHM_OPTIONS_INIT;
    in.growth = NDSHM_GROW_FIXED + 1;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_E_INVAL);
    in.growth = NDSHM_GROW_EXACT;
    in.flags = NDSHM_PERSISTENT | NDSHM_AWAIT_WRITER;
    assert_int_equal(ndshm__options_read(&in, &out), NDSHM_OK);
    assert_int_equal(out.growth, NDSHM_GROW_EXACT);
    /* geometry limits */
    struct ndshm__geom g;
    assert_int_equal(ndshm__geom_plan(0, 64, 0, &g), NDSHM_E_LIMIT);
    assert_int_equal(ndshm__geom_plan(NDSHM_MAX_SLOTS, NDSHM_MAX_CAPACITY, 0, &g), NDSHM_E_LIMIT);
    assert_int_equal(ndshm__geom_plan(3, 64, NDSHM_META_MAX + 1, &g), NDSHM_E_LIMIT);
    assert_int_equal(ndshm__geom_plan(3, 1, 0, &g), NDSHM_OK);
    assert_int_equal(g.slot_capacity, 64);
    assert_int_equal(g.payload_offset, NDSHM__SLOT_HDR);
    assert_int_equal(ndshm__geom_plan(3, 1, 100, &g), NDSHM_OK);
    assert_int_equal(g.meta_capacity, 128);
    assert_int_equal(g.payload_offset, NDSHM__SLOT_HDR + 128);
    assert_int_equal(ndshm__geom_plan(3, 6220800, 0, &g), NDSHM_OK);
    assert_int_equal(g.payload_offset % 4096, 0);
    assert_int_equal((g.slots_offset + g.payload_offset) % 4096, 0);
    assert_int_equal(g.slot_stride % 4096, 0);
    assert_int_equal(ndshm__geom_plan(3, 6220800, 5000, &g), NDSHM_OK);
    assert_int_equal(g.payload_offset, 8192); /* header + metadata, then page aligned */
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(segment_names_never_collide),
        cmocka_unit_test(bad_names_refused_everywhere),
        cmocka_unit_test(options),
        cmocka_unit_test(bad_dir_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
