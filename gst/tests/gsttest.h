/* Helpers of the GStreamer tests: pipelines run to an end with a bound, frames as packed
 * bytes, bus messages collected, gst-launch-1.0 children. */
#ifndef NDSHM_GSTTEST_H
#define NDSHM_GSTTEST_H

#include <gst/gst.h>
#include <sys/types.h>

/* tu_init(), gst_init(), and a check that the ndshm plugin is found (GST_PLUGIN_PATH). */
void gt_init(int *argc, char ***argv);

/* One frame or audio buffer: caps, PTS, version (buffer offset) and its bytes packed (rows
 * without padding). */
typedef struct {
    GstCaps *caps;
    GstClockTime pts;
    guint64 offset;
    GBytes *bytes;
} GtFrame;

typedef struct {
    GtFrame *f;
    guint n, cap;
} GtFrames;

void gt_frames_clear(GtFrames *fs);
/* Packed bytes of a sample (video rows without padding, audio as is). */
GBytes *gt_packed(GstSample *sample);
/* Append the sample of an appsink. */
void gt_frames_add(GtFrames *fs, GstSample *sample);

/* Run a pipeline (gst_parse_launch) until EOS or an error, at most timeout_s seconds, pulling
 * every sample of the appsink named "out" (if any) into fs. Returns TRUE on EOS; on an error
 * *err (may be NULL) gets it. FALSE also on a timeout (*err NULL then). */
gboolean gt_run(const char *desc, double timeout_s, GtFrames *fs, GError **err);

/* Pull one sample from appsink "out" of a running pipeline within timeout_s; NULL on EOS,
 * error or timeout. */
GstSample *gt_pull(GstElement *pipeline, double timeout_s);

/* Element messages with this structure name seen on the bus so far (pops all pending bus
 * messages; errors are kept in *err if not NULL and not yet set). */
typedef struct {
    GstBus *bus;
    guint gone, back, drops, overwritten;
    guint64 dropped;
    gboolean eos;
    GError *error;
} GtBus;
void gt_bus_poll(GtBus *b, double timeout_s);

/* Start `gst-launch-1.0 -q <desc>` (split on spaces) as a child; its pid. */
pid_t gt_spawn_launch(const char *desc);
/* The child was reaped by the caller: not to be killed at exit. */
void gt_forget(pid_t pid);
/* Wait for a child at most timeout_s: its exit status (WEXITSTATUS), or -1 on a signal or
 * timeout (the child is killed then). */
int gt_wait_child(pid_t pid, double timeout_s);

/* Wait until channel `name` exists (and has at least min_version versions), at most
 * timeout_s. */
gboolean gt_wait_channel(const char *name, guint64 min_version, double timeout_s);

/* gst_parse_launch or fail the test. */
GstElement *gt_launch(const char *desc);
/* Wait (60 s) for a state change; fails the test on a failure. */
void gt_wait_state(GstElement *p, GstState want);
/* Wait (120 s) for EOS on the pipeline's bus; fails the test on an error or a timeout. */
void gt_wait_eos(GstElement *p, const char *what);
/* Pull every sample from appsink "out" until EOS (bounded); fails on an error. */
void gt_collect(GstElement *q, GtFrames *fs, double timeout_s);
/* A uint64 field of the "stats" property of element `element`. */
guint64 gt_stat(GstElement *pipeline, const char *element, const char *field);
/* Producer pdesc paused (the channel exists), consumer qdesc started, producer played to EOS
 * and stopped (the writer closes), consumer collected to EOS. *q_out: the consumer, still
 * running (gt_stop it). */
void gt_round_trip(const char *pdesc, const char *qdesc, GtFrames *got, GstElement **q_out);
void gt_stop(GstElement *q);

#endif
