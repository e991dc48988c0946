/* Bad input gets a clear GStreamer error and no crash: caps with no ndshm mapping, a missing
 * channel, an invalid name, no name, a channel with a live writer, a channel whose arrays
 * have no caps mapping, a timeout; and metadata that are no (matching) caps string are
 * ignored for caps derived from dtype/shape, while a matching one is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gst/app/gstappsink.h>

#include "gsttest.h"
#include "ndshm/ndshm.h"
#include "testutil.h"

/* Run desc; it must end with an error of this domain (code -1: any) whose message contains
 * `text`. */
static void expect_error(const char *desc, GQuark domain, int code, const char *text)
{
    GError *err = NULL;
    gboolean eos = gt_run(desc, 60, NULL, &err);
    if (eos || !err)
        fail_msg("'%s': expected an error containing '%s', got %s", desc, text,
                 eos ? "EOS" : "a timeout");
    if (err->domain != domain || (code >= 0 && err->code != code) || !strstr(err->message, text))
        fail_msg("'%s': error %s %d '%s', expected %s %d containing '%s'", desc,
                 g_quark_to_string(err->domain), err->code, err->message, g_quark_to_string(domain),
                 code, text);
    g_error_free(err);
}

static void test_missing_and_bad_names(void **state)
{
    (void)state;
    gchar *d = g_strdup_printf("ndshmsrc channel=%s ! fakesink", tu_name("nothing-here"));
    expect_error(d, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND, "No ndshm channel named");
    g_free(d);
    expect_error("ndshmsrc channel=a/b ! fakesink", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                 "Invalid ndshm channel name");
    expect_error("ndshmsrc ! fakesink", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
                 "No channel name given");
    expect_error("videotestsrc num-buffers=1 ! ndshmsink channel=.hidden", GST_RESOURCE_ERROR,
                 GST_RESOURCE_ERROR_SETTINGS, "Invalid ndshm channel name");
    expect_error("videotestsrc num-buffers=1 ! ndshmsink", GST_RESOURCE_ERROR,
                 GST_RESOURCE_ERROR_NOT_FOUND, "No channel name given");
}

static void test_bad_caps(void **state)
{
    (void)state;
    const char *chan = tu_name("badcaps");
    gchar *d;
    /* a format outside the template: GStreamer's own not-negotiated error */
    d = g_strdup_printf("videotestsrc num-buffers=3 ! capsfilter caps=video/x-raw,format=I420 ! "
                        "ndshmsink channel=%s",
                        chan);
    expect_error(d, GST_STREAM_ERROR, -1, "");
    g_free(d);
    d = g_strdup_printf("audiotestsrc num-buffers=3 ! "
                        "capsfilter caps=audio/x-raw,format=S16LE,layout=non-interleaved ! "
                        "ndshmsink channel=%s",
                        chan);
    expect_error(d, GST_STREAM_ERROR, -1, "");
    g_free(d);
    /* caps the template lets through but that have no array form: the sink says why */
    d = g_strdup_printf("videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=48 ! "
                        "capssetter caps=video/x-raw,interlace-mode=interleaved ! "
                        "ndshmsink channel=%s",
                        chan);
    expect_error(d, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "no ndshm dtype/shape mapping");
    g_free(d);
    assert_int_equal(ndshm_stat(chan, &(ndshm_channel_info){0}), NDSHM_E_NOENT); /* cleaned */
}

static void test_live_writer(void **state)
{
    (void)state;
    const char *chan = tu_name("busy");
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    gchar *d = g_strdup_printf("videotestsrc num-buffers=1 ! ndshmsink channel=%s", chan);
    expect_error(d, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY, "in use");
    ndshm_writer_close(w); /* gone, channel still there */
    g_free(d);
    d = g_strdup_printf("videotestsrc num-buffers=1 ! ndshmsink channel=%s takeover=false", chan);
    expect_error(d, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY, "in use");
    g_free(d);
    /* takeover (the default) of the dead writer's channel works */
    d = g_strdup_printf("videotestsrc num-buffers=1 ! ndshmsink channel=%s", chan);
    assert_true(gt_run(d, 60, NULL, NULL));
    g_free(d);
}

/* A channel whose array has no caps mapping: a STREAM FORMAT error naming it. */
static void test_unmapped_arrays(void **state)
{
    (void)state;
    const struct {
        int dtype;
        uint32_t ndim;
        uint64_t shape[3];
    } bad[] = {
        {NDSHM_FLOAT16, 2, {4, 4}},  {NDSHM_COMPLEX64, 2, {4, 4}}, {NDSHM_UINT8, 1, {16}},
        {NDSHM_UINT8, 3, {4, 4, 2}}, {NDSHM_BOOL, 2, {4, 4}},      {NDSHM_INT16, 3, {4, 4, 3}},
        {NDSHM_INT16, 2, {4, 65}}, /* 65 audio channels */
    };
    static guint8 data[4096];
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *chan = tu_name("unmapped");
        ndshm_writer *w = NULL;
        assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
        assert_int_equal(ndshm_publish(w, bad[i].dtype, bad[i].ndim, bad[i].shape, data, NULL),
                         NDSHM_OK);
        gchar *d = g_strdup_printf("ndshmsrc channel=%s ! fakesink", chan);
        expect_error(d, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "cannot stream");
        g_free(d);
        ndshm_writer_close(w);
        assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    }
}

/* Caps of the one version of a channel published by C with these metadata bytes. */
static GstCaps *caps_with_meta(const void *meta, uint32_t meta_len)
{
    const char *chan = tu_name("meta");
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    static guint8 frame[48 * 64 * 3];
    uint64_t shape[3] = {48, 64, 3};
    ndshm_extra x = NDSHM_EXTRA_INIT;
    x.meta = meta;
    x.meta_len = meta_len;
    assert_int_equal(ndshm_publish_ex(w, NDSHM_UINT8, 3, shape, frame, &x, NULL), NDSHM_OK);
    gchar *d =
        g_strdup_printf("ndshmsrc channel=%s num-buffers=1 ! appsink name=out sync=false", chan);
    GtFrames fs = {0};
    GError *err = NULL;
    gboolean eos = gt_run(d, 60, &fs, &err);
    if (!eos || fs.n != 1)
        fail_msg("'%s': %s, %u buffers", d, err ? err->message : "no EOS", fs.n);
    GstCaps *caps = gst_caps_ref(fs.f[0].caps);
    assert_int_equal(g_bytes_get_size(fs.f[0].bytes), sizeof frame);
    gt_frames_clear(&fs);
    g_free(d);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    return caps;
}

static void expect_caps(GstCaps *caps, const char *format, int fps_n)
{
    GstStructure *st = gst_caps_get_structure(caps, 0);
    int w = 0, h = 0, n = -1, dd = 0;
    assert_string_equal(gst_structure_get_string(st, "format"), format);
    assert_true(gst_structure_get_int(st, "width", &w) && w == 64);
    assert_true(gst_structure_get_int(st, "height", &h) && h == 48);
    assert_true(gst_structure_get_fraction(st, "framerate", &n, &dd) && n == fps_n);
    gst_caps_unref(caps);
}

static void test_metadata(void **state)
{
    (void)state;
    /* no metadata, garbage, binary with NULs, caps of another shape, caps of another
     * media type: all derived from dtype/shape (RGB, variable framerate) */
    expect_caps(caps_with_meta(NULL, 0), "RGB", 0);
    expect_caps(caps_with_meta("not caps {{{ ((", 16), "RGB", 0);
    static const guint8 bin[] = {0, 1, 2, 0xff, 0xfe, 0, 'v', 'i'};
    expect_caps(caps_with_meta(bin, sizeof bin), "RGB", 0);
    const char *other = "video/x-raw,format=GRAY8,width=10,height=10,framerate=30/1";
    expect_caps(caps_with_meta(other, (uint32_t)strlen(other)), "RGB", 0);
    const char *audio = "audio/x-raw,format=S16LE,layout=interleaved,rate=8000,channels=3";
    expect_caps(caps_with_meta(audio, (uint32_t)strlen(audio)), "RGB", 0);
    const char *unfixed = "video/x-raw,format={BGR,RGB},width=64,height=48,framerate=25/1";
    expect_caps(caps_with_meta(unfixed, (uint32_t)strlen(unfixed)), "RGB", 0);
    /* matching caps carry what dtype/shape cannot say */
    const char *bgr = "video/x-raw,format=BGR,width=64,height=48,framerate=25/1";
    expect_caps(caps_with_meta(bgr, (uint32_t)strlen(bgr)), "BGR", 25);
}

static void test_timeout(void **state)
{
    (void)state;
    const char *chan = tu_name("silent");
    ndshm_writer *w = NULL;
    assert_int_equal(ndshm_writer_create(chan, NULL, &w), NDSHM_OK);
    gchar *d = g_strdup_printf("ndshmsrc channel=%s timeout=300000000 ! fakesink", chan);
    expect_error(d, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, "No new version");
    g_free(d);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
}

int main(int argc, char **argv)
{
    gt_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_and_bad_names),
        cmocka_unit_test(test_bad_caps),
        cmocka_unit_test(test_live_writer),
        cmocka_unit_test(test_unmapped_arrays),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
