/* ndshmsrc against a writer (gst-launch-1.0 ... ! ndshmsink in another process) that is
 * SIGKILLed: on-writer-gone=wait reports it ("ndshmsrc-writer-gone"), keeps waiting, and
 * continues with the versions of a new writer that takes the channel over (numbering goes on,
 * "ndshmsrc-writer-back"); eos ends the stream, error posts an error; a channel removed and
 * created anew under the name is followed (reopened). Stopping a waiting source returns. No
 * hang anywhere: every wait is bounded. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <gst/app/gstappsink.h>

#include "gsttest.h"
#include "ndshm/ndshm.h"
#include "testutil.h"

static pid_t start_writer(const char *chan, const char *extra)
{
    gchar *desc = g_strdup_printf("videotestsrc is-live=true pattern=ball ! "
                                  "video/x-raw,format=GRAY8,width=64,height=48,framerate=100/1 ! "
                                  "ndshmsink channel=%s slots=8 %s",
                                  chan, extra);
    pid_t pid = gt_spawn_launch(desc);
    assert_true(pid > 0);
    g_free(desc);
    return pid;
}

static void kill_writer(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    gt_forget(pid);
    assert_true(WIFSIGNALED(st));
}

static GstElement *start_reader(const char *chan, const char *gone, GtBus *bus)
{
    gchar *desc = g_strdup_printf("ndshmsrc name=src channel=%s mode=every on-writer-gone=%s ! "
                                  "appsink name=out sync=false",
                                  chan, gone);
    GstElement *q = gt_launch(desc);
    g_free(desc);
    memset(bus, 0, sizeof *bus);
    bus->bus = gst_element_get_bus(q);
    if (gst_element_set_state(q, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        fail_msg("the reader pipeline did not start");
    return q;
}

/* Pull until a sample with a version above `after` (and count them); fails after 60 s. */
static guint64 pull_after(GstElement *q, guint64 after, int n)
{
    guint64 last = 0;
    int got = 0;
    gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (got < n) {
        GstSample *s = gt_pull(q, 1.0);
        if (s) {
            guint64 v = GST_BUFFER_OFFSET(gst_sample_get_buffer(s));
            gst_sample_unref(s);
            if (last && v <= last)
                fail_msg("version %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, v, last);
            last = v;
            if (v > after)
                got++;
        }
        if (g_get_monotonic_time() > end)
            fail_msg("%d of %d versions after %" G_GUINT64_FORMAT " within 60 s", got, n, after);
    }
    return last;
}

static void wait_msg(GtBus *b, const guint *counter, const char *what)
{
    gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (*counter == 0) {
        gt_bus_poll(b, 0.1);
        if (b->error)
            fail_msg("waiting for %s: error %s", what, b->error->message);
        if (g_get_monotonic_time() > end)
            fail_msg("no %s message within 60 s", what);
    }
}

static void stop_reader(GstElement *q, GtBus *b)
{
    gst_element_set_state(q, GST_STATE_NULL); /* returns: the wait is sliced */
    gst_object_unref(b->bus);
    g_clear_error(&b->error);
    gst_object_unref(q);
}

static void test_wait_takeover(void **state)
{
    (void)state;
    const char *chan = tu_name("takeover");
    pid_t w1 = start_writer(chan, "");
    assert_true(gt_wait_channel(chan, 1, 60));
    GtBus b;
    GstElement *q = start_reader(chan, "wait", &b);
    pull_after(q, 0, 10);
    kill_writer(w1);
    ndshm_channel_info info;
    assert_int_equal(ndshm_stat(chan, &info), NDSHM_OK);
    guint64 v1 = info.version; /* the dead writer's last version */
    assert_int_equal(info.writer_alive, 0);
    wait_msg(&b, &b.gone, "ndshmsrc-writer-gone");
    /* the source keeps waiting; a new writer takes over and continues the numbering */
    pid_t w2 = start_writer(chan, "");
    guint64 last = pull_after(q, v1, 10);
    assert_true(last > v1 + 9);
    wait_msg(&b, &b.back, "ndshmsrc-writer-back");
    assert_true(gt_stat(q, "src", "writer-gone") >= 1);
    assert_true(gt_stat(q, "src", "writer-back") >= 1);
    assert_null(b.error);
    kill_writer(w2);
    /* waiting for a writer that never comes: stopping the pipeline still returns */
    stop_reader(q, &b);
}

static void test_eos_and_error(void **state)
{
    (void)state;
    const char *modes[] = {"eos", "error"};
    for (int m = 0; m < 2; m++) {
        const char *chan = tu_name(m ? "gone-error" : "gone-eos");
        pid_t w = start_writer(chan, "");
        assert_true(gt_wait_channel(chan, 1, 60));
        GtBus b;
        GstElement *q = start_reader(chan, modes[m], &b);
        pull_after(q, 0, 5);
        kill_writer(w);
        if (m == 0) {
            GtFrames rest = {0};
            gt_collect(q, &rest, 60); /* EOS after the remaining versions */
            gt_frames_clear(&rest);
            gt_bus_poll(&b, 0);
            assert_true(b.gone >= 1);
        } else {
            gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
            while (!b.error && g_get_monotonic_time() < end) {
                GstSample *s = gt_pull(q, 0.05);
                if (s)
                    gst_sample_unref(s);
                gt_bus_poll(&b, 0);
            }
            if (!b.error)
                fail_msg("on-writer-gone=error: no error within 60 s of the writer's death");
            assert_true(b.error->domain == GST_RESOURCE_ERROR);
            if (!strstr(b.error->message, "is gone"))
                fail_msg("error message '%s' does not say the writer is gone", b.error->message);
            assert_true(b.gone >= 1);
        }
        stop_reader(q, &b);
    }
}

/* A writer that closes with unlink-on-close, then a new channel under the same name: the
 * source (wait) reopens it and continues from its version 1. */
static void test_replaced(void **state)
{
    (void)state;
    const char *chan = tu_name("replaced");
    pid_t w1 = start_writer(chan, "unlink-on-close=true");
    assert_true(gt_wait_channel(chan, 1, 60));
    GtBus b;
    GstElement *q = start_reader(chan, "wait", &b);
    pull_after(q, 0, 5);
    kill(w1, SIGINT); /* gst-launch stops the pipeline: the sink unlinks the channel */
    int st = gt_wait_child(w1, 60);
    assert_int_not_equal(st, -1);
    assert_int_equal(ndshm_stat(chan, &(ndshm_channel_info){0}), NDSHM_E_NOENT);
    pid_t w2 = start_writer(chan, "");
    /* reopened on the new channel, then 5 more versions of it */
    gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (gt_stat(q, "src", "reopened") < 1) {
        GstSample *s = gt_pull(q, 0.05);
        if (s)
            gst_sample_unref(s);
        if (g_get_monotonic_time() > end)
            fail_msg("the source did not reopen the new channel within 60 s");
    }
    guint64 last = pull_after(q, 0, 5);
    ndshm_channel_info info;
    assert_int_equal(ndshm_stat(chan, &info), NDSHM_OK);
    assert_true(info.writer_alive == 1 && last <= info.version);
    assert_int_equal(gt_stat(q, "src", "reopened"), 1);
    gt_bus_poll(&b, 0);
    assert_true(b.gone >= 1);
    assert_null(b.error);
    kill_writer(w2);
    stop_reader(q, &b);
}

int main(int argc, char **argv)
{
    gt_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_takeover),
        cmocka_unit_test(test_eos_and_error),
        cmocka_unit_test(test_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
