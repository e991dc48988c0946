/* Caps <-> ndshm dtype/shape, shared by ndshmsink and ndshmsrc (docs/gstreamer.md, "Caps").
 *
 *   video/x-raw GRAY8              (H, W)    uint8
 *   video/x-raw GRAY16_LE          (H, W)    uint16
 *   video/x-raw RGB, BGR           (H, W, 3) uint8
 *   video/x-raw RGBA BGRA RGBx BGRx (H, W, 4) uint8
 *   audio/x-raw S16LE S32LE F32LE F64LE, interleaved: (frames, channels) int16 int32 float32
 *                                  float64
 *
 * Versions are always packed (C-contiguous): row padding of a GStreamer frame is removed by
 * the sink and put back by the source when a downstream element needs it. */
#ifndef GST_NDSHM_CAPS_H
#define GST_NDSHM_CAPS_H

#include <gst/audio/audio.h>
#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define NDSHM_GST_CAPS                                                                             \
    "video/x-raw, format = (string) { GRAY8, GRAY16_LE, RGB, BGR, RGBA, BGRA, RGBx, BGRx }, "      \
    "width = (int) [ 1, max ], height = (int) [ 1, max ], framerate = (fraction) [ 0, max ]; "     \
    "audio/x-raw, format = (string) { S16LE, S32LE, F32LE, F64LE }, "                              \
    "layout = (string) interleaved, rate = (int) [ 1, max ], channels = (int) [ 1, 64 ]"

typedef enum {
    NDSHM_GST_NONE = 0,
    NDSHM_GST_VIDEO = 1,
    NDSHM_GST_AUDIO = 2,
} NdshmGstKind;

/* One negotiated stream seen as ndshm arrays. */
typedef struct {
    NdshmGstKind kind;
    int dtype;         /* ndshm_dtype */
    guint32 ndim;      /* video 2 or 3, audio 2 */
    guint64 shape[3];  /* video (H, W[, C]); audio (0, channels): frames vary per buffer */
    gsize row_bytes;   /* video: bytes of one packed row (W x pixel size) */
    gsize frame_bytes; /* video: bytes of one packed frame; audio: bytes per sample frame */
    GstVideoInfo vinfo;
    GstAudioInfo ainfo;
} NdshmGstLayout;

/* The layout of fixed caps. FALSE with *why (free with g_free) when the caps have no
 * mapping. */
gboolean ndshm_gst_layout_from_caps(const GstCaps *caps, NdshmGstLayout *out, gchar **why);

/* Caps for a version of dtype/shape. meta/meta_len are the version's metadata bytes
 * (untrusted: another process wrote them): when they hold a caps string that parses, is fixed
 * and agrees with dtype and shape, those caps are used (*meta_used = TRUE) and carry what
 * dtype/shape cannot say (framerate, BGR vs RGB, sample rate, colorimetry); otherwise the
 * caps are derived from dtype/shape alone, with audio_rate for audio. NULL with *why (free
 * with g_free) when dtype/shape has no caps mapping. */
GstCaps *ndshm_gst_caps_for_array(int dtype, guint32 ndim, const guint64 *shape, const void *meta,
                                  gsize meta_len, gint audio_rate, gboolean *meta_used,
                                  gchar **why);

/* "uint8 (480, 640, 3)" for messages; free with g_free. */
gchar *ndshm_gst_describe(int dtype, guint32 ndim, const guint64 *shape);

G_END_DECLS

#endif
