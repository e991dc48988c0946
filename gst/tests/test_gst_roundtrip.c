/* ndshmsink -> ndshmsrc -> appsink: identical frames (every mode, copy and zero-copy views;
 * latest mode: each frame one that was published), audio streams in four formats, and the C
 * reader's view of audio: (frames, channels). Caps changes: test_gst_reshape.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include "gsttest.h"
#include "ndshm/ndshm.h"
#include "testutil.h"

#define VIDEO_W(w)                                                                                 \
    "videotestsrc num-buffers=120 pattern=ball ! video/x-raw,format=RGB,width=" #w                 \
    ",height=241,framerate=30/1"
#define VIDEO VIDEO_W(321)

static void check_same(const GtFrames *got, const GtFrames *ref, gboolean pts)
{
    assert_int_equal(got->n, ref->n);
    for (guint i = 0; i < ref->n; i++) {
        assert_int_equal(got->f[i].offset, i + 1); /* the version number */
        if (!gst_caps_is_equal(got->f[i].caps, ref->f[i].caps))
            fail_msg("frame %u: caps %" GST_PTR_FORMAT ", expected %" GST_PTR_FORMAT, i,
                     got->f[i].caps, ref->f[i].caps);
        if (!g_bytes_equal(got->f[i].bytes, ref->f[i].bytes))
            fail_msg("frame %u differs from the producer's", i);
        if (pts)
            assert_int_equal(got->f[i].pts, ref->f[i].pts);
    }
}

/* every mode: all 120 frames, identical, with the producer's PTS. zero-copy=true pushes views
 * when downstream can take the packed rows (width 320: GStreamer's stride is the packed row)
 * and copies when the rows must be padded for it (width 321, appsink reads no GstVideoMeta). */
static void test_video_every(void **state)
{
    (void)state;
    const struct {
        const char *src;
        gboolean zc, expect_views;
    } cases[] = {
        {VIDEO_W(321), FALSE, FALSE}, {VIDEO_W(321), TRUE, FALSE}, {VIDEO_W(320), TRUE, TRUE}};
    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        GtFrames ref = {0};
        gchar *rdesc = g_strdup_printf("%s ! appsink name=out sync=false", cases[c].src);
        assert_true(gt_run(rdesc, 120, &ref, NULL));
        assert_int_equal(ref.n, 120);
        const char *chan = tu_name("every");
        gchar *pdesc =
            g_strdup_printf("%s ! ndshmsink channel=%s slots=128 sync=false", cases[c].src, chan);
        gchar *qdesc = g_strdup_printf("ndshmsrc name=src channel=%s mode=every "
                                       "timestamp-mode=pts zero-copy=%s ! appsink name=out "
                                       "sync=false",
                                       chan, cases[c].zc ? "true" : "false");
        GtFrames got = {0};
        GstElement *q;
        gt_round_trip(pdesc, qdesc, &got, &q);
        check_same(&got, &ref, TRUE);
        assert_int_equal(gt_stat(q, "src", "versions"), 120);
        assert_int_equal(gt_stat(q, "src", "dropped"), 0);
        assert_int_equal(gt_stat(q, "src", "zero-copy"), cases[c].expect_views ? 120 : 0);
        assert_int_equal(gt_stat(q, "src", "copied"), cases[c].expect_views ? 0 : 120);
        assert_int_equal(gt_stat(q, "src", "overwritten"), 0);
        gt_stop(q);
        gt_frames_clear(&got);
        gt_frames_clear(&ref);
        g_free(rdesc);
        g_free(pdesc);
        g_free(qdesc);
    }
}

/* latest mode: whatever it skips, every frame it gives is exactly one published version, in
 * order, and the last version always arrives. */
static void test_video_latest(void **state)
{
    (void)state;
    GtFrames ref = {0};
    assert_true(gt_run(VIDEO " ! appsink name=out sync=false", 120, &ref, NULL));
    const char *chan = tu_name("latest");
    gchar *pdesc = g_strdup_printf(VIDEO " ! ndshmsink channel=%s slots=4 sync=true", chan);
    gchar *qdesc = g_strdup_printf("ndshmsrc name=src channel=%s mode=latest ! appsink "
                                   "name=out sync=false",
                                   chan);
    GtFrames got = {0};
    GstElement *q;
    gt_round_trip(pdesc, qdesc, &got, &q);
    assert_true(got.n >= 1 && got.n <= 120);
    guint64 prev = 0;
    for (guint i = 0; i < got.n; i++) {
        guint64 v = got.f[i].offset;
        if (v <= prev || v > 120)
            fail_msg("latest: version %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, v, prev);
        if (!g_bytes_equal(got.f[i].bytes, ref.f[v - 1].bytes))
            fail_msg("latest: frame of version %" G_GUINT64_FORMAT " differs", v);
        prev = v;
    }
    assert_int_equal(prev, 120);
    assert_int_equal(gt_stat(q, "src", "versions") + gt_stat(q, "src", "dropped"), 120);
    gt_stop(q);
    gt_frames_clear(&got);
    gt_frames_clear(&ref);
    g_free(pdesc);
    g_free(qdesc);
}

/* do-timestamp=true (arrival time) and is-live=false (a non-live source: it prerolls): the
 * same frames, with valid, non-decreasing timestamps. */
static void test_timestamps_and_liveness(void **state)
{
    (void)state;
    GtFrames ref = {0};
    assert_true(gt_run(VIDEO " ! appsink name=out sync=false", 120, &ref, NULL));
    const char *props[] = {"do-timestamp=true", "is-live=false", "timestamp-mode=publish"};
    for (size_t i = 0; i < G_N_ELEMENTS(props); i++) {
        const char *chan = tu_name("stamps");
        gchar *pdesc = g_strdup_printf(VIDEO " ! ndshmsink channel=%s slots=128 sync=false", chan);
        gchar *qdesc = g_strdup_printf("ndshmsrc name=src channel=%s mode=every %s ! appsink "
                                       "name=out sync=false",
                                       chan, props[i]);
        GtFrames got = {0};
        GstElement *q;
        gt_round_trip(pdesc, qdesc, &got, &q);
        assert_int_equal(got.n, ref.n);
        for (guint k = 0; k < got.n; k++) {
            if (!g_bytes_equal(got.f[k].bytes, ref.f[k].bytes))
                fail_msg("%s: frame %u differs", props[i], k);
            if (!GST_CLOCK_TIME_IS_VALID(got.f[k].pts) || (k && got.f[k].pts < got.f[k - 1].pts))
                fail_msg("%s: frame %u PTS %" GST_TIME_FORMAT " after %" GST_TIME_FORMAT, props[i],
                         k, GST_TIME_ARGS(got.f[k].pts), GST_TIME_ARGS(k ? got.f[k - 1].pts : 0));
        }
        gt_stop(q);
        gt_frames_clear(&got);
        g_free(pdesc);
        g_free(qdesc);
    }
    gt_frames_clear(&ref);
}

typedef struct {
    const char *format;
    int channels;
    int dtype;
} AudioCase;

static void test_audio(void **state)
{
    (void)state;
    const AudioCase cases[] = {{"S16LE", 2, NDSHM_INT16},
                               {"S32LE", 1, NDSHM_INT32},
                               {"F32LE", 6, NDSHM_FLOAT32},
                               {"F64LE", 2, NDSHM_FLOAT64}};
    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        gchar *src = g_strdup_printf("audiotestsrc num-buffers=50 samplesperbuffer=480 "
                                     "wave=sine ! audio/x-raw,format=%s,channels=%d,rate=48000",
                                     cases[c].format, cases[c].channels);
        gchar *rdesc = g_strdup_printf("%s ! appsink name=out sync=false", src);
        GtFrames ref = {0};
        assert_true(gt_run(rdesc, 120, &ref, NULL));
        assert_int_equal(ref.n, 50);
        const char *chan = tu_name("audio");
        gchar *pdesc = g_strdup_printf("%s ! ndshmsink channel=%s slots=64 sync=false", src, chan);
        gchar *qdesc = g_strdup_printf("ndshmsrc name=src channel=%s mode=every "
                                       "timestamp-mode=pts ! appsink name=out sync=false",
                                       chan);
        /* the C reader's view: (frames, channels) of the right dtype */
        GstElement *p = gt_launch(pdesc);
        gst_element_set_state(p, GST_STATE_PAUSED);
        gt_wait_state(p, GST_STATE_PAUSED);
        ndshm_reader *r = NULL;
        assert_int_equal(ndshm_reader_open(chan, NULL, &r), NDSHM_OK);
        GstElement *q = gt_launch(qdesc);
        if (gst_element_set_state(q, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
            fail_msg("consumer did not start");
        gst_element_set_state(p, GST_STATE_PLAYING);
        gt_wait_eos(p, pdesc);
        const void *data;
        ndshm_info info;
        assert_int_equal(ndshm_read_next_owned(r, &data, &info), NDSHM_OK);
        assert_int_equal(info.dtype, cases[c].dtype);
        assert_int_equal(info.ndim, 2);
        assert_int_equal(info.shape[0], 480);
        assert_int_equal(info.shape[1], cases[c].channels);
        assert_true(g_bytes_get_size(ref.f[0].bytes) == info.nbytes &&
                    memcmp(data, g_bytes_get_data(ref.f[0].bytes, NULL), info.nbytes) == 0);
        ndshm_reader_close(r);
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
        GtFrames got = {0};
        gt_collect(q, &got, 120);
        check_same(&got, &ref, TRUE);
        gt_stop(q);
        gt_frames_clear(&got);
        gt_frames_clear(&ref);
        g_free(src);
        g_free(rdesc);
        g_free(pdesc);
        g_free(qdesc);
    }
}

int main(int argc, char **argv)
{
    gt_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_video_every),
        cmocka_unit_test(test_video_latest),
        cmocka_unit_test(test_audio),
        cmocka_unit_test(test_timestamps_and_liveness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
