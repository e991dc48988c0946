/* A caps change mid-stream (resolution and format switches, up and down, a padded width the
 * source pads back for appsink) re-allocates the channel as any shape change does, and every
 * version arrives at ndshmsrc -> appsink with its own caps and bytes. */
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

typedef struct {
    const char *format;
    int w, h, n;
} Segment;

/* Caps change mid-stream: each version arrives with its own caps and bytes. */
static void test_caps_change(void **state)
{
    (void)state;
    const Segment segs[] = {{"RGB", 64, 48, 10}, {"RGB", 128, 96, 10},    {"GRAY8", 32, 24, 5},
                            {"RGB", 33, 21, 5},  {"GRAY16_LE", 17, 9, 3}, {"RGB", 64, 48, 4}};
    const char *chan = tu_name("reshape");
    /* unlink-on-close=false: the producer stops once it has pushed everything, and a consumer
     * that lags (a loaded machine) must still find the segments it has not mapped yet; with
     * the default, their versions are gone and ndshmsrc ends early (EOS) */
    gchar *pdesc = g_strdup_printf("appsrc name=in format=time ! ndshmsink channel=%s slots=64 "
                                   "sync=false unlink-on-close=false",
                                   chan);
    gchar *qdesc = g_strdup_printf("ndshmsrc name=src channel=%s mode=every ! appsink name=out "
                                   "sync=false",
                                   chan);
    GstElement *p = gt_launch(pdesc);
    gst_element_set_state(p, GST_STATE_PAUSED);
    GstElement *q = gt_launch(qdesc);
    /* live: set_state returns once the source has started (its reader is open); PLAYING
     * itself completes with the first buffer */
    if (gst_element_set_state(q, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        fail_msg("consumer did not start");
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstElement *in = gst_bin_get_by_name(GST_BIN(p), "in");
    GPtrArray *want = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    GPtrArray *want_caps = g_ptr_array_new_with_free_func((GDestroyNotify)gst_caps_unref);
    guint64 k = 0;
    for (size_t s = 0; s < G_N_ELEMENTS(segs); s++) {
        GstCaps *caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, segs[s].format,
                                            "width", G_TYPE_INT, segs[s].w, "height", G_TYPE_INT,
                                            segs[s].h, "framerate", GST_TYPE_FRACTION, 30, 1, NULL);
        gst_app_src_set_caps(GST_APP_SRC(in), caps);
        GstVideoInfo vi;
        assert_true(gst_video_info_from_caps(&vi, caps));
        gsize row = (gsize)segs[s].w * GST_VIDEO_FORMAT_INFO_PSTRIDE(vi.finfo, 0);
        for (int i = 0; i < segs[s].n; i++, k++) {
            /* a GStreamer-layout (padded) frame whose packed rows we know */
            GstBuffer *b = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&vi), NULL);
            GstMapInfo m;
            gst_buffer_map(b, &m, GST_MAP_WRITE);
            guint8 *packed = g_malloc(row * (gsize)segs[s].h);
            tu_fill(packed, row * (gsize)segs[s].h, k + 1);
            for (int y = 0; y < segs[s].h; y++)
                memcpy(m.data + (gsize)y * GST_VIDEO_INFO_PLANE_STRIDE(&vi, 0),
                       packed + (gsize)y * row, row);
            gst_buffer_unmap(b, &m);
            GST_BUFFER_PTS(b) = k * (GST_SECOND / 30);
            GST_BUFFER_DURATION(b) = GST_SECOND / 30;
            g_ptr_array_add(want, g_bytes_new_take(packed, row * (gsize)segs[s].h));
            g_ptr_array_add(want_caps, gst_caps_ref(caps));
            assert_int_equal(gst_app_src_push_buffer(GST_APP_SRC(in), b), GST_FLOW_OK);
        }
        gst_caps_unref(caps);
    }
    gst_app_src_end_of_stream(GST_APP_SRC(in));
    gst_object_unref(in);
    gt_wait_eos(p, "appsrc producer");
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
    GtFrames got = {0};
    gt_collect(q, &got, 120);
    assert_int_equal(got.n, want->len);
    for (guint i = 0; i < got.n; i++) {
        GstStructure *gs = gst_caps_get_structure(got.f[i].caps, 0);
        GstStructure *ws = gst_caps_get_structure(g_ptr_array_index(want_caps, i), 0);
        const char *fields[] = {"format", "width", "height", "framerate"};
        for (size_t f = 0; f < G_N_ELEMENTS(fields); f++)
            if (gst_value_compare(gst_structure_get_value(gs, fields[f]),
                                  gst_structure_get_value(ws, fields[f])) != GST_VALUE_EQUAL)
                fail_msg("frame %u: caps %" GST_PTR_FORMAT ", expected %" GST_PTR_FORMAT, i,
                         got.f[i].caps, g_ptr_array_index(want_caps, i));
        if (!g_bytes_equal(got.f[i].bytes, g_ptr_array_index(want, i)))
            fail_msg("frame %u (caps %" GST_PTR_FORMAT ") differs", i, got.f[i].caps);
    }
    assert_int_equal(gt_stat(q, "src", "renegotiated"), G_N_ELEMENTS(segs) - 1);
    gt_stop(q);
    assert_int_equal(ndshm_unlink(chan), NDSHM_OK);
    gt_frames_clear(&got);
    g_ptr_array_unref(want);
    g_ptr_array_unref(want_caps);
    g_free(pdesc);
    g_free(qdesc);
}

int main(int argc, char **argv)
{
    gt_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
