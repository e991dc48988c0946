#include "gsttest.h"

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

extern char **environ;

void gt_init(int *argc, char ***argv)
{
    tu_init();
    gst_init(argc, argv);
    if (getenv("GT_FILTER")) /* run only the tests matching this pattern */
        cmocka_set_test_filter(getenv("GT_FILTER"));
    GstElementFactory *f = gst_element_factory_find("ndshmsink");
    if (!f) {
        fprintf(stderr, "the ndshm plugin was not found: GST_PLUGIN_PATH=%s\n",
                getenv("GST_PLUGIN_PATH") ? getenv("GST_PLUGIN_PATH") : "(unset)");
        exit(1);
    }
    gst_object_unref(f);
}

void gt_frames_clear(GtFrames *fs)
{
    for (guint i = 0; i < fs->n; i++) {
        gst_caps_unref(fs->f[i].caps);
        g_bytes_unref(fs->f[i].bytes);
    }
    g_free(fs->f);
    memset(fs, 0, sizeof *fs);
}

GBytes *gt_packed(GstSample *sample)
{
    GstCaps *caps = gst_sample_get_caps(sample);
    GstBuffer *buf = gst_sample_get_buffer(sample);
    GstStructure *st = gst_caps_get_structure(caps, 0);
    if (gst_structure_has_name(st, "video/x-raw")) {
        GstVideoInfo vi;
        GstVideoFrame fr;
        if (!gst_video_info_from_caps(&vi, caps) ||
            !gst_video_frame_map(&fr, &vi, buf, GST_MAP_READ))
            return NULL;
        gsize row = (gsize)GST_VIDEO_INFO_WIDTH(&vi) * GST_VIDEO_FORMAT_INFO_PSTRIDE(vi.finfo, 0);
        gsize h = (gsize)GST_VIDEO_INFO_HEIGHT(&vi);
        guint8 *out = g_malloc(MAX(row * h, 1));
        for (gsize y = 0; y < h; y++)
            memcpy(out + y * row,
                   (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&fr, 0) +
                       y * (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(&fr, 0),
                   row);
        gst_video_frame_unmap(&fr);
        return g_bytes_new_take(out, row * h);
    }
    GstMapInfo m;
    if (!gst_buffer_map(buf, &m, GST_MAP_READ))
        return NULL;
    GBytes *b = g_bytes_new(m.data, m.size);
    gst_buffer_unmap(buf, &m);
    return b;
}

void gt_frames_add(GtFrames *fs, GstSample *sample)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 64;
        fs->f = g_renew(GtFrame, fs->f, fs->cap);
    }
    GtFrame *f = &fs->f[fs->n++];
    GstBuffer *buf = gst_sample_get_buffer(sample);
    f->caps = gst_caps_ref(gst_sample_get_caps(sample));
    f->pts = GST_BUFFER_PTS(buf);
    f->offset = GST_BUFFER_OFFSET(buf);
    f->bytes = gt_packed(sample);
    if (!f->bytes)
        f->bytes = g_bytes_new(NULL, 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

gboolean gt_run(const char *desc, double timeout_s, GtFrames *fs, GError **err)
{
    GError *perr = NULL;
    GstElement *p = gst_parse_launch(desc, &perr);
    if (!p) {
        if (err)
            *err = perr;
        else
            g_clear_error(&perr);
        return FALSE;
    }
    g_clear_error(&perr); /* a recoverable parse warning */
    GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
    GstBus *bus = gst_element_get_bus(p);
    gboolean eos = FALSE, done = FALSE;
    double end = now_s() + timeout_s;
    gst_element_set_state(p, GST_STATE_PLAYING);
    while (!done && now_s() < end) {
        if (out) {
            GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 20 * GST_MSECOND);
            if (s) {
                if (fs)
                    gt_frames_add(fs, s);
                gst_sample_unref(s);
                continue;
            }
            if (gst_app_sink_is_eos(GST_APP_SINK(out))) {
                eos = done = TRUE;
                break;
            }
        }
        GstMessage *m = gst_bus_timed_pop_filtered(bus, out ? 0 : 20 * GST_MSECOND,
                                                   GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
        if (!m)
            continue;
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
            GError *e = NULL;
            gst_message_parse_error(m, &e, NULL);
            if (err)
                *err = e;
            else
                g_clear_error(&e);
            done = TRUE;
        } else if (!out) {
            eos = done = TRUE;
        }
        gst_message_unref(m);
    }
    gst_element_set_state(p, GST_STATE_NULL);
    if (out)
        gst_object_unref(out);
    gst_object_unref(bus);
    gst_object_unref(p);
    return eos;
}

GstSample *gt_pull(GstElement *pipeline, double timeout_s)
{
    GstElement *out = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    if (!out)
        return NULL;
    GstSample *s =
        gst_app_sink_try_pull_sample(GST_APP_SINK(out), (GstClockTime)(timeout_s * GST_SECOND));
    gst_object_unref(out);
    return s;
}

void gt_bus_poll(GtBus *b, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (;;) {
        double left = end - now_s();
        GstMessage *m = gst_bus_timed_pop(b->bus, left > 0 ? (GstClockTime)(left * GST_SECOND) : 0);
        if (!m)
            return;
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT) {
            const GstStructure *st = gst_message_get_structure(m);
            if (gst_structure_has_name(st, "ndshmsrc-writer-gone"))
                b->gone++;
            else if (gst_structure_has_name(st, "ndshmsrc-writer-back"))
                b->back++;
            else if (gst_structure_has_name(st, "ndshmsrc-overwritten"))
                b->overwritten++;
            else if (gst_structure_has_name(st, "ndshmsrc-drop")) {
                guint64 d = 0;
                gst_structure_get_uint64(st, "dropped", &d);
                b->drops++;
                b->dropped += d;
            }
        } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
            b->eos = TRUE;
        } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR && !b->error) {
            gst_message_parse_error(m, &b->error, NULL);
        }
        gst_message_unref(m);
        if (timeout_s <= 0)
            continue;
    }
}

/* Children still running when the test process exits (a failed test) are killed. */
static pid_t children[64];

void gt_forget(pid_t pid)
{
    for (size_t i = 0; i < G_N_ELEMENTS(children); i++)
        if (children[i] == pid)
            children[i] = 0;
}

static void kill_children(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(children); i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

pid_t gt_spawn_launch(const char *desc)
{
    static gboolean registered;
    if (!registered) {
        atexit(kill_children);
        registered = TRUE;
    }
    gchar **words = g_strsplit(desc, " ", -1);
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer) "gst-launch-1.0");
    g_ptr_array_add(argv, (gpointer) "-q");
    for (gchar **w = words; *w; w++)
        if (**w)
            g_ptr_array_add(argv, *w);
    g_ptr_array_add(argv, NULL);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "gst-launch-1.0", NULL, NULL, (char **)argv->pdata, environ) != 0)
        pid = -1;
    for (size_t i = 0; pid > 0 && i < G_N_ELEMENTS(children); i++)
        if (children[i] == 0) {
            children[i] = pid;
            break;
        }
    g_ptr_array_free(argv, TRUE);
    g_strfreev(words);
    return pid;
}

int gt_wait_child(pid_t pid, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            gt_forget(pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        if (r < 0)
            return -1;
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            gt_forget(pid);
            return -1;
        }
        tu_sleep_ms(10);
    }
}

gboolean gt_wait_channel(const char *name, guint64 min_version, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        ndshm_channel_info info;
        if (ndshm_stat(name, &info) == NDSHM_OK && info.version >= min_version)
            return TRUE;
        tu_sleep_ms(10);
    }
    return FALSE;
}

GstElement *gt_launch(const char *desc)
{
    GError *err = NULL;
    GstElement *p = gst_parse_launch(desc, &err);
    if (!p)
        fail_msg("'%s': %s", desc, err ? err->message : "?");
    g_clear_error(&err);
    return p;
}

void gt_wait_state(GstElement *p, GstState want)
{
    GstState cur;
    GstStateChangeReturn r = gst_element_get_state(p, &cur, NULL, 60 * GST_SECOND);
    if (r == GST_STATE_CHANGE_FAILURE || (r == GST_STATE_CHANGE_SUCCESS && cur != want))
        fail_msg("state change to %s failed", gst_element_state_get_name(want));
}

void gt_wait_eos(GstElement *p, const char *what)
{
    GstBus *bus = gst_element_get_bus(p);
    GstMessage *m =
        gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (!m || GST_MESSAGE_TYPE(m) != GST_MESSAGE_EOS) {
        GError *e = NULL;
        if (m)
            gst_message_parse_error(m, &e, NULL);
        fail_msg("%s: no EOS within 120 s (%s)", what, e ? e->message : "timeout");
    }
    gst_message_unref(m);
    gst_object_unref(bus);
}

/* Pull every sample from appsink "out" until EOS (bounded). */
void gt_collect(GstElement *q, GtFrames *fs, double timeout_s)
{
    GstElement *out = gst_bin_get_by_name(GST_BIN(q), "out");
    gint64 end = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);
    for (;;) {
        GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 50 * GST_MSECOND);
        if (s) {
            gt_frames_add(fs, s);
            gst_sample_unref(s);
            continue;
        }
        if (gst_app_sink_is_eos(GST_APP_SINK(out)))
            break;
        GstBus *bus = gst_element_get_bus(q);
        GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        gst_object_unref(bus);
        if (m) {
            GError *e = NULL;
            gst_message_parse_error(m, &e, NULL);
            fail_msg("consumer error: %s", e->message);
        }
        if (g_get_monotonic_time() > end)
            fail_msg("consumer: no EOS within %.0f s (%u samples)", timeout_s, fs->n);
    }
    gst_object_unref(out);
}

guint64 gt_stat(GstElement *pipeline, const char *element, const char *field)
{
    GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline), element);
    GstStructure *st = NULL;
    g_object_get(e, "stats", &st, NULL);
    guint64 v = G_MAXUINT64;
    gst_structure_get_uint64(st, field, &v);
    gst_structure_free(st);
    gst_object_unref(e);
    return v;
}

/* producer P (paused: the channel exists), consumer Q playing, then P plays to EOS and stops
 * (the writer closes: Q ends with EOS once it has read everything). */
void gt_round_trip(const char *pdesc, const char *qdesc, GtFrames *got, GstElement **q_out)
{
    GstElement *p = gt_launch(pdesc);
    gst_element_set_state(p, GST_STATE_PAUSED);
    gt_wait_state(p, GST_STATE_PAUSED);
    GstElement *q = gt_launch(qdesc);
    /* live: set_state returns once the source has started (its reader is open); PLAYING
     * itself completes with the first buffer */
    if (gst_element_set_state(q, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        fail_msg("consumer did not start");
    gst_element_set_state(p, GST_STATE_PLAYING);
    gt_wait_eos(p, pdesc);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
    gt_collect(q, got, 120);
    *q_out = q; /* still PLAYING (EOS): the caller reads stats, then stops it */
}

void gt_stop(GstElement *q)
{
    gst_element_set_state(q, GST_STATE_NULL);
    gst_object_unref(q);
}
