/* ndshmsink: 120 videotestsrc frames published as 120 versions that a C reader gets with
 * read_next, with the right dtype and shape, byte-identical to what `videotestsrc ! appsink`
 * produces with the same settings (row padding removed), carrying the caps string and the PTS.
 * Zero copy (the loaned-slot pool) and one copy, in-process and through gst-launch-1.0 with
 * GST_PLUGIN_PATH pointing at the build tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gsttest.h"
#include "ndshm/ndshm.h"
#include "testutil.h"

#define FRAMES 120

typedef struct {
    const char *format;
    int width, height;
    int dtype;
    uint32_t ndim;
    uint64_t channels; /* third dimension, 0 = none */
} Case;

static const Case cases[] = {
    {"RGB", 320, 240, NDSHM_UINT8, 3, 3},       /* packed rows */
    {"RGB", 321, 241, NDSHM_UINT8, 3, 3},       /* GStreamer pads rows to 964 bytes */
    {"BGR", 161, 120, NDSHM_UINT8, 3, 3},       /* padded */
    {"GRAY8", 321, 241, NDSHM_UINT8, 2, 0},     /* padded */
    {"GRAY16_LE", 161, 97, NDSHM_UINT16, 2, 0}, /* padded */
    {"RGBA", 77, 33, NDSHM_UINT8, 3, 4},        {"BGRA", 64, 48, NDSHM_UINT8, 3, 4},
    {"RGBx", 64, 48, NDSHM_UINT8, 3, 4},        {"BGRx", 99, 50, NDSHM_UINT8, 3, 4},
};

static gchar *caps_of(const Case *c)
{
    return g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", c->format,
                           c->width, c->height);
}

/* The reference: the same source into an appsink. */
static void reference(const Case *c, GtFrames *ref)
{
    gchar *caps = caps_of(c);
    gchar *desc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! appsink "
                                  "name=out sync=false",
                                  FRAMES, caps);
    GError *err = NULL;
    gboolean ok = gt_run(desc, 120, ref, &err);
    if (!ok)
        fail_msg("reference pipeline '%s': %s", desc, err ? err->message : "timeout");
    assert_int_equal(ref->n, FRAMES);
    g_free(desc);
    g_free(caps);
}

/* Read every version with read_next (REPLAY: from the oldest, all still in the ring) and
 * compare with the reference. */
static void check_channel(const Case *c, const char *chan, const GtFrames *ref)
{
    const guint n = ref->n;
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_REPLAY;
    ndshm_reader *r = NULL;
    int rc = ndshm_reader_open(chan, &o, &r);
    if (rc != NDSHM_OK)
        fail_msg("reader_open(%s): %s", chan, ndshm_strerror(rc));
    gsize row = (gsize)c->width * (c->channels ? c->channels : 1) * ndshm_dtype_size(c->dtype);
    gsize size = row * (gsize)c->height;
    guint8 *buf = g_malloc(size);
    char *meta = g_malloc(NDSHM_META_MAX + 1);
    for (guint i = 0; i < n; i++) {
        ndshm_info info;
        rc = ndshm_read_ex(r, NDSHM_READ_NEXT, buf, size, meta, NDSHM_META_MAX, &info);
        if (rc != NDSHM_OK)
            fail_msg("%s %dx%d: read_next #%u: %s (expected %u versions)", c->format, c->width,
                     c->height, i + 1, ndshm_strerror(rc), n);
        assert_int_equal(info.version, i + 1);
        assert_int_equal(info.dropped, 0);
        assert_int_equal(info.dtype, c->dtype);
        assert_int_equal(info.ndim, c->ndim);
        assert_int_equal(info.shape[0], c->height);
        assert_int_equal(info.shape[1], c->width);
        if (c->ndim == 3)
            assert_int_equal(info.shape[2], c->channels);
        assert_int_equal(info.nbytes, size);
        gsize rn = 0;
        const guint8 *want = g_bytes_get_data(ref->f[i].bytes, &rn);
        assert_int_equal(rn, size);
        if (memcmp(buf, want, size) != 0)
            fail_msg("%s %dx%d: version %u differs from the appsink frame", c->format, c->width,
                     c->height, i + 1);
        /* the caps string and the PTS travel with the version */
        assert_true(info.meta_len > 0 && info.meta_len <= NDSHM_META_MAX);
        meta[info.meta_len] = 0;
        GstCaps *caps = gst_caps_from_string(meta);
        assert_non_null(caps);
        if (!gst_caps_is_equal(caps, ref->f[i].caps))
            fail_msg("version %u carries caps '%s', the appsink got %" GST_PTR_FORMAT, i + 1, meta,
                     ref->f[i].caps);
        gst_caps_unref(caps);
        assert_true(info.flags & NDSHM_INFO_EXTRA);
        assert_int_equal(info.user_tag & 1u, 1u);
        assert_int_equal(info.user_ns, ref->f[i].pts);
    }
    ndshm_info info;
    rc = ndshm_read_next(r, buf, size, &info);
    if (rc != NDSHM_NO_NEW)
        fail_msg("after %u versions read_next says %s, expected NDSHM_NO_NEW", n,
                 ndshm_status_name(rc));
    g_free(meta);
    g_free(buf);
    ndshm_reader_close(r);
}

static void run_in_process(const Case *c, gboolean zero_copy, const GtFrames *ref)
{
    const char *chan = tu_name(zero_copy ? "zc" : "copy");
    gchar *caps = caps_of(c);
    gchar *desc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! ndshmsink "
                                  "name=sink channel=%s slots=128 unlink-on-close=false "
                                  "zero-copy=%s sync=false",
                                  FRAMES, caps, chan, zero_copy ? "true" : "false");
    GError *err = NULL;
    GstElement *p = gst_parse_launch(desc, &err);
    assert_non_null(p);
    GstBus *bus = gst_element_get_bus(p);
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstMessage *m =
        gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (!m || GST_MESSAGE_TYPE(m) != GST_MESSAGE_EOS)
        fail_msg("'%s' did not reach EOS within 120 s", desc);
    gst_message_unref(m);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "sink");
    GstStructure *st = NULL;
    g_object_get(sink, "stats", &st, NULL);
    guint64 published = 0, zc = 0, copied = 0;
    gst_structure_get_uint64(st, "published", &published);
    gst_structure_get_uint64(st, "zero-copy", &zc);
    gst_structure_get_uint64(st, "copied", &copied);
    guint64 detached = 1;
    gst_structure_get_uint64(st, "detached", &detached);
    gst_structure_free(st);
    assert_int_equal(detached, 0); /* nothing else held a committed pool buffer */
    assert_int_equal(published, FRAMES);
    if (zero_copy && (zc != FRAMES || copied != 0))
        fail_msg("%s %dx%d zero-copy: %" G_GUINT64_FORMAT " committed in place, %" G_GUINT64_FORMAT
                 " copied; expected all %d in place",
                 c->format, c->width, c->height, zc, copied, FRAMES);
    if (!zero_copy && (copied != FRAMES || zc != 0))
        fail_msg("zero-copy=false: %" G_GUINT64_FORMAT " copied, %" G_GUINT64_FORMAT
                 " in place; expected all %d copied",
                 copied, zc, FRAMES);
    gst_object_unref(sink);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(p);
    check_channel(c, chan, ref);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    g_free(desc);
    g_free(caps);
}

static void test_formats(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        GtFrames ref = {0};
        reference(&cases[i], &ref);
        run_in_process(&cases[i], TRUE, &ref);
        run_in_process(&cases[i], FALSE, &ref);
        gt_frames_clear(&ref);
    }
}

/* The same through gst-launch-1.0 in another process (the plugin found through
 * GST_PLUGIN_PATH), read by this process. */
static void test_gst_launch(void **state)
{
    (void)state;
    const Case *cs[] = {&cases[0], &cases[1]};
    for (size_t i = 0; i < 2; i++) {
        const Case *c = cs[i];
        GtFrames ref = {0};
        reference(c, &ref);
        const char *chan = tu_name("launch");
        gchar *caps = caps_of(c);
        gchar *desc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! ndshmsink "
                                      "channel=%s slots=128 unlink-on-close=false sync=false",
                                      FRAMES, caps, chan);
        pid_t pid = gt_spawn_launch(desc);
        assert_true(pid > 0);
        int st = gt_wait_child(pid, 120);
        if (st != 0)
            fail_msg("gst-launch-1.0 %s: exit status %d (expected 0 within 120 s)", desc, st);
        check_channel(c, chan, &ref);
        assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
        g_free(desc);
        g_free(caps);
        gt_frames_clear(&ref);
    }
}

/* Upstream chains that stress the loaned-slot pool: a queue (buffers acquired in one thread
 * while the sink commits in another), videorate (the same pool buffer pushed twice), a tee
 * with a second branch holding references, and videoconvert writing into the pool. Every
 * version is exactly the frame appsink gets from the same chain. */
static void test_pipelines(void **state)
{
    (void)state;
    static const Case c = {"RGB", 160, 120, NDSHM_UINT8, 3, 3};
    enum { ZC, COPY, DETACH };
    const struct {
        const char *chain, *sink;
        int expect; /* every version committed in place, copied, or in place then detached */
    } chains[] = {
        {"queue max-size-buffers=3", "", ZC},
        {"videoconvert ! video/x-raw,format=RGB", "", ZC},
        {"queue", "enable-last-sample=true", DETACH}, /* the last sample holds each buffer */
        {"videorate ! video/x-raw,framerate=60/1", "", COPY},
        {"tee name=t t. ! queue ! fakesink sync=false t. ! queue", "", COPY},
        {"queue ! videorate ! video/x-raw,framerate=45/1 ! queue", "", COPY},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(chains); i++) {
        gchar *caps = caps_of(&c);
        gchar *rdesc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! %s ! "
                                       "appsink name=out sync=false",
                                       FRAMES, caps, chains[i].chain);
        GtFrames ref = {0};
        GError *err = NULL;
        if (!gt_run(rdesc, 120, &ref, &err))
            fail_msg("'%s': %s", rdesc, err ? err->message : "timeout");
        assert_true(ref.n >= FRAMES && ref.n < 250);
        const char *chan = tu_name("chain");
        gchar *pdesc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! %s ! "
                                       "ndshmsink name=sink channel=%s slots=256 "
                                       "unlink-on-close=false sync=false %s",
                                       FRAMES, caps, chains[i].chain, chan, chains[i].sink);
        GstElement *p = gt_launch(pdesc);
        gst_element_set_state(p, GST_STATE_PLAYING);
        gt_wait_eos(p, pdesc);
        guint64 published = gt_stat(p, "sink", "published");
        if (published != ref.n)
            fail_msg("'%s': %" G_GUINT64_FORMAT " published, appsink got %u", chains[i].chain,
                     published, ref.n);
        guint64 zc = gt_stat(p, "sink", "zero-copy"), cp = gt_stat(p, "sink", "copied"),
                dt = gt_stat(p, "sink", "detached");
        int e = chains[i].expect;
        if (zc != (e == COPY ? 0 : ref.n) || cp != (e == COPY ? ref.n : 0) ||
            dt != (e == DETACH ? ref.n : 0))
            fail_msg("'%s' %s: %u versions: %" G_GUINT64_FORMAT " zero-copy, %" G_GUINT64_FORMAT
                     " copied, %" G_GUINT64_FORMAT " detached; expected all %s",
                     chains[i].chain, chains[i].sink, ref.n, zc, cp, dt,
                     e == ZC     ? "zero-copy"
                     : e == COPY ? "copied"
                                 : "zero-copy and detached");
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
        check_channel(&c, chan, &ref);
        assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
        gt_frames_clear(&ref);
        g_free(caps);
        g_free(rdesc);
        g_free(pdesc);
    }
}

/* A sink holding its preroll buffer (a loan) while the pipeline stays PAUSED: upstream's next
 * acquire cannot get a loan and falls back to plain memory after a second, so nothing hangs;
 * the versions are still exactly the frames, in order. */
static void test_preroll_fallback(void **state)
{
    (void)state;
    static const Case c = {"RGB", 160, 120, NDSHM_UINT8, 3, 3};
    gchar *caps = caps_of(&c);
    gchar *rdesc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! appsink "
                                   "name=out sync=false",
                                   FRAMES, caps);
    GtFrames ref = {0};
    assert_true(gt_run(rdesc, 120, &ref, NULL));
    const char *chan = tu_name("preroll");
    gchar *pdesc = g_strdup_printf("videotestsrc num-buffers=%d pattern=ball ! %s ! queue ! "
                                   "ndshmsink name=sink channel=%s slots=128 "
                                   "unlink-on-close=false sync=false",
                                   FRAMES, caps, chan);
    GstElement *p = gt_launch(pdesc);
    gst_element_set_state(p, GST_STATE_PAUSED);
    gt_wait_state(p, GST_STATE_PAUSED);
    tu_sleep_ms(2500); /* > the pool's 1 s wait */
    gst_element_set_state(p, GST_STATE_PLAYING);
    gt_wait_eos(p, pdesc);
    assert_int_equal(gt_stat(p, "sink", "published"), FRAMES);
    guint64 zc = gt_stat(p, "sink", "zero-copy"), cp = gt_stat(p, "sink", "copied");
    if (zc < 1 || cp < 1 || zc + cp != FRAMES)
        fail_msg("%" G_GUINT64_FORMAT " zero-copy, %" G_GUINT64_FORMAT
                 " copied: expected the preroll buffer in place and plain buffers after it",
                 zc, cp);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
    check_channel(&c, chan, &ref);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    gt_frames_clear(&ref);
    g_free(caps);
    g_free(rdesc);
    g_free(pdesc);
}

int main(int argc, char **argv)
{
    gt_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_gst_launch),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_preroll_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
