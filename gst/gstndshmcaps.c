/* Caps <-> ndshm dtype/shape (see gstndshmcaps.h). */
#include "gstndshmcaps.h"

#include <string.h>

#include "ndshm/ndshm.h"

typedef struct {
    GstVideoFormat format;
    int dtype;
    guint channels; /* 0: a 2-D (H, W) array, else the third dimension */
} VideoMap;

/* Order matters for the reverse direction: the first entry of a dtype/channel count is the
 * format chosen for an array published without caps. */
static const VideoMap video_map[] = {
    {GST_VIDEO_FORMAT_GRAY8, NDSHM_UINT8, 0}, {GST_VIDEO_FORMAT_GRAY16_LE, NDSHM_UINT16, 0},
    {GST_VIDEO_FORMAT_RGB, NDSHM_UINT8, 3},   {GST_VIDEO_FORMAT_BGR, NDSHM_UINT8, 3},
    {GST_VIDEO_FORMAT_RGBA, NDSHM_UINT8, 4},  {GST_VIDEO_FORMAT_BGRA, NDSHM_UINT8, 4},
    {GST_VIDEO_FORMAT_RGBx, NDSHM_UINT8, 4},  {GST_VIDEO_FORMAT_BGRx, NDSHM_UINT8, 4},
};

typedef struct {
    GstAudioFormat format;
    int dtype;
} AudioMap;

static const AudioMap audio_map[] = {
    {GST_AUDIO_FORMAT_S16LE, NDSHM_INT16},
    {GST_AUDIO_FORMAT_S32LE, NDSHM_INT32},
    {GST_AUDIO_FORMAT_F32LE, NDSHM_FLOAT32},
    {GST_AUDIO_FORMAT_F64LE, NDSHM_FLOAT64},
};

gchar *ndshm_gst_describe(int dtype, guint32 ndim, const guint64 *shape)
{
    const char *name = ndshm_dtype_name(dtype);
    GString *s = g_string_new(NULL);
    if (name)
        g_string_append(s, name);
    else
        g_string_append_printf(s, "dtype %d", dtype);
    g_string_append(s, " (");
    guint32 shown = ndim > 8 ? 8 : ndim;
    for (guint32 i = 0; i < shown && shape; i++)
        g_string_append_printf(s, "%s%" G_GUINT64_FORMAT, i ? ", " : "", shape[i]);
    if (ndim > shown)
        g_string_append(s, ", ...");
    if (ndim == 1)
        g_string_append(s, ",");
    g_string_append(s, ")");
    return g_string_free(s, FALSE);
}

static gboolean system_memory(const GstCaps *caps)
{
    GstCapsFeatures *f = gst_caps_get_features(caps, 0);
    return f == NULL || gst_caps_features_is_equal(f, GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY);
}

gboolean ndshm_gst_layout_from_caps(const GstCaps *caps, NdshmGstLayout *out, gchar **why)
{
    NdshmGstLayout l;
    memset(&l, 0, sizeof l);
    if (!caps || !gst_caps_is_fixed(caps) || gst_caps_get_size(caps) != 1) {
        *why = g_strdup("caps are not fixed");
        return FALSE;
    }
    if (!system_memory(caps)) {
        *why = g_strdup("only system-memory caps map to ndshm arrays");
        return FALSE;
    }
    const GstStructure *st = gst_caps_get_structure(caps, 0);
    if (gst_structure_has_name(st, "video/x-raw")) {
        if (!gst_video_info_from_caps(&l.vinfo, caps)) {
            *why = g_strdup("invalid raw video caps");
            return FALSE;
        }
        if (GST_VIDEO_INFO_INTERLACE_MODE(&l.vinfo) != GST_VIDEO_INTERLACE_MODE_PROGRESSIVE) {
            *why = g_strdup("interlaced video has no ndshm mapping (use deinterlace first)");
            return FALSE;
        }
        const VideoMap *m = NULL;
        for (size_t i = 0; i < G_N_ELEMENTS(video_map); i++)
            if (video_map[i].format == GST_VIDEO_INFO_FORMAT(&l.vinfo))
                m = &video_map[i];
        if (!m) {
            *why = g_strdup_printf("video format %s has no ndshm mapping",
                                   gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&l.vinfo)));
            return FALSE;
        }
        guint64 w = (guint64)GST_VIDEO_INFO_WIDTH(&l.vinfo);
        guint64 h = (guint64)GST_VIDEO_INFO_HEIGHT(&l.vinfo);
        l.kind = NDSHM_GST_VIDEO;
        l.dtype = m->dtype;
        l.ndim = m->channels ? 3 : 2;
        l.shape[0] = h;
        l.shape[1] = w;
        l.shape[2] = m->channels;
        l.row_bytes = (gsize)(w * (m->channels ? m->channels : 1) * ndshm_dtype_size(m->dtype));
        l.frame_bytes = l.row_bytes * (gsize)h;
    } else if (gst_structure_has_name(st, "audio/x-raw")) {
        if (!gst_audio_info_from_caps(&l.ainfo, caps)) {
            *why = g_strdup("invalid raw audio caps");
            return FALSE;
        }
        if (GST_AUDIO_INFO_LAYOUT(&l.ainfo) != GST_AUDIO_LAYOUT_INTERLEAVED) {
            *why = g_strdup("non-interleaved audio has no ndshm mapping");
            return FALSE;
        }
        const AudioMap *m = NULL;
        for (size_t i = 0; i < G_N_ELEMENTS(audio_map); i++)
            if (audio_map[i].format == GST_AUDIO_INFO_FORMAT(&l.ainfo))
                m = &audio_map[i];
        if (!m) {
            *why = g_strdup_printf("audio format %s has no ndshm mapping",
                                   gst_audio_format_to_string(GST_AUDIO_INFO_FORMAT(&l.ainfo)));
            return FALSE;
        }
        l.kind = NDSHM_GST_AUDIO;
        l.dtype = m->dtype;
        l.ndim = 2;
        l.shape[0] = 0;
        l.shape[1] = (guint64)GST_AUDIO_INFO_CHANNELS(&l.ainfo);
        l.frame_bytes = (gsize)GST_AUDIO_INFO_BPF(&l.ainfo);
        if (l.frame_bytes != l.shape[1] * ndshm_dtype_size(m->dtype)) {
            *why = g_strdup("audio frame size does not match format and channels");
            return FALSE;
        }
    } else {
        *why = g_strdup_printf("%s has no ndshm mapping (raw video or raw audio only)",
                               gst_structure_get_name(st));
        return FALSE;
    }
    *out = l;
    return TRUE;
}

/* Caps from dtype/shape alone; NULL with *why. */
static GstCaps *derive(int dtype, guint32 ndim, const guint64 *shape, gint audio_rate, gchar **why)
{
    if (ndim == 2 || ndim == 3) {
        guint channels = ndim == 3 ? (guint)MIN(shape[2], G_MAXUINT) : 0;
        if (ndim == 3 && channels == 1)
            channels = 0; /* (H, W, 1) is a gray image too */
        for (size_t i = 0; i < G_N_ELEMENTS(video_map); i++) {
            const VideoMap *m = &video_map[i];
            if (m->dtype != dtype || m->channels != channels)
                continue;
            if (shape[0] == 0 || shape[1] == 0 || shape[0] > G_MAXINT || shape[1] > G_MAXINT) {
                *why = g_strdup("image height and width must be 1 .. 2^31-1");
                return NULL;
            }
            return gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING,
                                       gst_video_format_to_string(m->format), "width", G_TYPE_INT,
                                       (gint)shape[1], "height", G_TYPE_INT, (gint)shape[0],
                                       "framerate", GST_TYPE_FRACTION, 0, 1, "pixel-aspect-ratio",
                                       GST_TYPE_FRACTION, 1, 1, NULL);
        }
    }
    if (ndim == 2) {
        for (size_t i = 0; i < G_N_ELEMENTS(audio_map); i++) {
            const AudioMap *m = &audio_map[i];
            if (m->dtype != dtype)
                continue;
            if (shape[1] == 0 || shape[1] > 64) {
                *why = g_strdup("audio needs 1 .. 64 channels (the second dimension)");
                return NULL;
            }
            GstAudioInfo info;
            gst_audio_info_init(&info);
            gst_audio_info_set_format(&info, m->format, audio_rate, (gint)shape[1], NULL);
            return gst_audio_info_to_caps(&info);
        }
    }
    gchar *d = ndshm_gst_describe(dtype, ndim, shape);
    *why = g_strdup_printf("%s has no GStreamer caps mapping (video: uint8 (H, W), (H, W, 1), "
                           "(H, W, 3), (H, W, 4) or uint16 (H, W); audio: int16, int32, "
                           "float32 or float64 (frames, channels))",
                           d);
    g_free(d);
    return NULL;
}

/* Caps from an untrusted caps string, if they agree with dtype/shape; else NULL. */
static GstCaps *from_meta(int dtype, guint32 ndim, const guint64 *shape, const void *meta,
                          gsize meta_len)
{
    if (!meta || meta_len == 0 || meta_len > NDSHM_META_MAX)
        return NULL;
    gchar *str = g_strndup(meta, meta_len);
    GstCaps *caps = gst_caps_from_string(str);
    g_free(str);
    if (!caps)
        return NULL;
    GstCaps *tmpl = gst_caps_from_string(NDSHM_GST_CAPS);
    NdshmGstLayout l;
    gchar *why = NULL;
    gboolean ok = gst_caps_is_fixed(caps) && gst_caps_is_subset(caps, tmpl) &&
                  ndshm_gst_layout_from_caps(caps, &l, &why) && l.dtype == dtype && l.ndim == ndim;
    if (ok && l.kind == NDSHM_GST_VIDEO)
        ok = l.shape[0] == shape[0] && l.shape[1] == shape[1] &&
             (ndim == 2 || l.shape[2] == shape[2]);
    if (ok && l.kind == NDSHM_GST_AUDIO)
        ok = l.shape[1] == shape[1];
    g_free(why);
    gst_caps_unref(tmpl);
    if (!ok) {
        gst_caps_unref(caps);
        return NULL;
    }
    return caps;
}

GstCaps *ndshm_gst_caps_for_array(int dtype, guint32 ndim, const guint64 *shape, const void *meta,
                                  gsize meta_len, gint audio_rate, gboolean *meta_used, gchar **why)
{
    *meta_used = FALSE;
    if (!shape || ndim > NDSHM_MAX_DIMS) {
        *why = g_strdup("invalid shape");
        return NULL;
    }
    GstCaps *caps = from_meta(dtype, ndim, shape, meta, meta_len);
    if (caps) {
        *meta_used = TRUE;
        return caps;
    }
    return derive(dtype, ndim, shape, audio_rate > 0 ? audio_rate : 48000, why);
}
