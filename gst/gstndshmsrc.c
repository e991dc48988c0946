/* ndshmsrc: a live source producing the versions of an ndshm channel (docs/gstreamer.md).
 *
 * create() waits for the next version with ndshm_wait (spin, then a futex sleep; the writer
 * wakes it), reads it by copy (ndshm_read_ex) or, with zero-copy=true, as a view wrapped in a
 * read-only GstMemory whose release checks the view (ndshm_view_release: a version the writer
 * overwrote while downstream still used it is counted and reported). Caps come from the
 * version's caps string when it agrees with its dtype/shape, else from dtype/shape alone; a
 * version whose caps differ from the current ones renegotiates before it is pushed.
 *
 * ndshm_wait cannot be interrupted from another thread, so create() waits in slices of
 * WAIT_SLICE_NS and checks the unlock flag between them: a stop takes at most that long.
 */
#include "gstndshmsrc.h"

#include <string.h>

#include <gst/video/gstvideometa.h>

#include "gstndshmcaps.h"
#include "gstndshmsink.h"
#include "ndshm/ndshm.h"

GST_DEBUG_CATEGORY_STATIC(ndshmsrc_debug);
#define GST_CAT_DEFAULT ndshmsrc_debug

#define WAIT_SLICE_NS (100 * GST_MSECOND)

typedef enum {
    READ_LATEST = 0,
    READ_EVERY = 1,
} NdshmSrcMode;

typedef enum {
    GONE_EOS = 0,
    GONE_ERROR = 1,
    GONE_WAIT = 2,
} NdshmSrcGone;

typedef enum {
    TS_PUBLISH = 0,
    TS_PTS = 1,
} NdshmSrcTimestamp;

struct _GstNdshmSrc {
    GstPushSrc parent;
    /* properties (object lock) */
    gchar *channel;
    NdshmSrcMode mode;
    guint64 timeout;
    NdshmSrcGone on_writer_gone;
    gboolean zero_copy;
    NdshmSrcTimestamp timestamp_mode;
    gboolean is_live;
    gint audio_rate;
    gboolean drop_messages;
    /* streaming state */
    ndshm_reader *r;
    gchar *name;
    gboolean flushing; /* object lock */
    GstCaps *caps;     /* caps of the versions being pushed */
    NdshmGstLayout layout;
    gboolean downstream_video_meta;
    /* the caps cache: dtype, shape and metadata bytes they were computed from */
    int c_dtype;
    guint32 c_ndim;
    guint64 c_shape[NDSHM_MAX_DIMS];
    guint8 *c_meta;
    gsize c_meta_len;
    guint8 *meta; /* NDSHM_META_MAX bytes: the metadata of the version being read */
    GstBufferPool *pool;
    gsize pool_size;
    guint64 first_publish_ns;
    gboolean gone_posted;
    gboolean discont;
    /* statistics (object lock) */
    guint64 versions, dropped, overwritten, contended, gone, back, reopened, renegotiated,
        zero_copied, copied, last_version;
};

enum {
    PROP_0,
    PROP_CHANNEL,
    PROP_MODE,
    PROP_TIMEOUT,
    PROP_ON_WRITER_GONE,
    PROP_ZERO_COPY,
    PROP_TIMESTAMP_MODE,
    PROP_IS_LIVE,
    PROP_AUDIO_RATE,
    PROP_DROP_MESSAGES,
    PROP_STATS,
};

#define DEFAULT_MODE           READ_LATEST
#define DEFAULT_TIMEOUT        0
#define DEFAULT_ON_WRITER_GONE GONE_EOS
#define DEFAULT_ZERO_COPY      FALSE
#define DEFAULT_TIMESTAMP_MODE TS_PUBLISH
#define DEFAULT_IS_LIVE        TRUE
#define DEFAULT_AUDIO_RATE     48000
#define DEFAULT_DROP_MESSAGES  TRUE

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(NDSHM_GST_CAPS));

G_DEFINE_TYPE(GstNdshmSrc, gst_ndshm_src, GST_TYPE_PUSH_SRC)
GST_ELEMENT_REGISTER_DEFINE(ndshmsrc, "ndshmsrc", GST_RANK_NONE, GST_TYPE_NDSHM_SRC)

static GType mode_type(void)
{
    static GType t = 0;
    static const GEnumValue values[] = {
        {READ_LATEST,
         "The newest version each time (ndshm_read_latest): skips what a slow "
         "pipeline cannot take",
         "latest"},
        {READ_EVERY,
         "Every version in order (ndshm_read_next); versions the writer overwrote "
         "before they were read are counted and reported",
         "every"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t))
        g_once_init_leave(&t, g_enum_register_static("GstNdshmSrcMode", values));
    return t;
}

static GType gone_type(void)
{
    static GType t = 0;
    static const GEnumValue values[] = {
        {GONE_EOS, "End the stream (EOS) once every version is read", "eos"},
        {GONE_ERROR, "Post an error", "error"},
        {GONE_WAIT,
         "Keep waiting: continue with the versions of a writer that takes the channel over, "
         "or of a new channel created under the name",
         "wait"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t))
        g_once_init_leave(&t, g_enum_register_static("GstNdshmSrcWriterGone", values));
    return t;
}

static GType ts_type(void)
{
    static GType t = 0;
    static const GEnumValue values[] = {
        {TS_PUBLISH, "Running time of the version's publish time (CLOCK_MONOTONIC)", "publish"},
        {TS_PTS, "The PTS ndshmsink published with the version (its user_ns), else as 'publish'",
         "pts"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t))
        g_once_init_leave(&t, g_enum_register_static("GstNdshmSrcTimestampMode", values));
    return t;
}

static void src_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *ps)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(obj);
    GST_OBJECT_LOCK(s);
    switch (id) {
    case PROP_CHANNEL:
        g_free(s->channel);
        s->channel = g_value_dup_string(v);
        break;
    case PROP_MODE:
        s->mode = g_value_get_enum(v);
        break;
    case PROP_TIMEOUT:
        s->timeout = g_value_get_uint64(v);
        break;
    case PROP_ON_WRITER_GONE:
        s->on_writer_gone = g_value_get_enum(v);
        break;
    case PROP_ZERO_COPY:
        s->zero_copy = g_value_get_boolean(v);
        break;
    case PROP_TIMESTAMP_MODE:
        s->timestamp_mode = g_value_get_enum(v);
        break;
    case PROP_IS_LIVE:
        s->is_live = g_value_get_boolean(v);
        break;
    case PROP_AUDIO_RATE:
        s->audio_rate = g_value_get_int(v);
        break;
    case PROP_DROP_MESSAGES:
        s->drop_messages = g_value_get_boolean(v);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
        break;
    }
    GST_OBJECT_UNLOCK(s);
}

static GstStructure *stats_locked(GstNdshmSrc *s)
{
    return gst_structure_new(
        "ndshmsrc-stats", "channel", G_TYPE_STRING, s->channel, "versions", G_TYPE_UINT64,
        s->versions, "dropped", G_TYPE_UINT64, s->dropped, "overwritten", G_TYPE_UINT64,
        s->overwritten, "contended", G_TYPE_UINT64, s->contended, "writer-gone", G_TYPE_UINT64,
        s->gone, "writer-back", G_TYPE_UINT64, s->back, "reopened", G_TYPE_UINT64, s->reopened,
        "renegotiated", G_TYPE_UINT64, s->renegotiated, "zero-copy", G_TYPE_UINT64, s->zero_copied,
        "copied", G_TYPE_UINT64, s->copied, "version", G_TYPE_UINT64, s->last_version, NULL);
}

static void src_get_property(GObject *obj, guint id, GValue *v, GParamSpec *ps)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(obj);
    GST_OBJECT_LOCK(s);
    switch (id) {
    case PROP_CHANNEL:
        g_value_set_string(v, s->channel);
        break;
    case PROP_MODE:
        g_value_set_enum(v, s->mode);
        break;
    case PROP_TIMEOUT:
        g_value_set_uint64(v, s->timeout);
        break;
    case PROP_ON_WRITER_GONE:
        g_value_set_enum(v, s->on_writer_gone);
        break;
    case PROP_ZERO_COPY:
        g_value_set_boolean(v, s->zero_copy);
        break;
    case PROP_TIMESTAMP_MODE:
        g_value_set_enum(v, s->timestamp_mode);
        break;
    case PROP_IS_LIVE:
        g_value_set_boolean(v, s->is_live);
        break;
    case PROP_AUDIO_RATE:
        g_value_set_int(v, s->audio_rate);
        break;
    case PROP_DROP_MESSAGES:
        g_value_set_boolean(v, s->drop_messages);
        break;
    case PROP_STATS:
        g_value_take_boxed(v, stats_locked(s));
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
        break;
    }
    GST_OBJECT_UNLOCK(s);
}

static void post(GstNdshmSrc *s, GstStructure *st)
{
    gst_element_post_message(GST_ELEMENT_CAST(s), gst_message_new_element(GST_OBJECT_CAST(s), st));
}

static int open_reader(GstNdshmSrc *s, ndshm_reader **out)
{
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = s->on_writer_gone == GONE_WAIT ? NDSHM_AWAIT_WRITER : 0;
    return ndshm_reader_open(s->name, &o, out);
}

static gboolean src_start(GstBaseSrc *bs)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    GST_OBJECT_LOCK(s);
    g_free(s->name);
    s->name = g_strdup(s->channel);
    s->flushing = FALSE;
    s->versions = s->dropped = s->overwritten = s->contended = s->gone = s->back = 0;
    s->reopened = s->renegotiated = s->zero_copied = s->copied = s->last_version = 0;
    gboolean live = s->is_live;
    GST_OBJECT_UNLOCK(s);
    if (!s->name || !s->name[0]) {
        GST_ELEMENT_ERROR(s, RESOURCE, NOT_FOUND, ("No channel name given"),
                          ("set the 'channel' property"));
        return FALSE;
    }
    int rc = open_reader(s, &s->r);
    if (rc != NDSHM_OK) {
        if (rc == NDSHM_E_NOENT)
            GST_ELEMENT_ERROR(s, RESOURCE, NOT_FOUND, ("No ndshm channel named '%s'", s->name),
                              ("%s", ndshm_strerror(rc)));
        else if (rc == NDSHM_E_NAME)
            GST_ELEMENT_ERROR(s, RESOURCE, SETTINGS, ("Invalid ndshm channel name '%s'", s->name),
                              ("%s", ndshm_strerror(rc)));
        else
            GST_ELEMENT_ERROR(
                s, RESOURCE, OPEN_READ,
                ("Could not open ndshm channel '%s': %s", s->name, ndshm_strerror(rc)),
                ("%s", ndshm_status_name(rc)));
        return FALSE;
    }
    gst_base_src_set_live(bs, live);
    s->meta = g_malloc(NDSHM_META_MAX);
    s->c_dtype = 0;
    s->c_ndim = 0;
    s->c_meta_len = 0;
    s->first_publish_ns = 0;
    s->gone_posted = FALSE;
    s->discont = TRUE;
    GST_INFO_OBJECT(s, "reading channel '%s'", s->name);
    return TRUE;
}

static gboolean src_stop(GstBaseSrc *bs)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    ndshm_reader_close(s->r); /* views still held downstream keep their mapping */
    s->r = NULL;
    gst_clear_caps(&s->caps);
    g_clear_pointer(&s->meta, g_free);
    g_clear_pointer(&s->c_meta, g_free);
    if (s->pool) {
        gst_buffer_pool_set_active(s->pool, FALSE);
        gst_clear_object(&s->pool);
    }
    s->pool_size = 0;
    return TRUE;
}

static gboolean src_unlock(GstBaseSrc *bs)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    GST_OBJECT_LOCK(s);
    s->flushing = TRUE;
    GST_OBJECT_UNLOCK(s);
    return TRUE;
}

static gboolean src_unlock_stop(GstBaseSrc *bs)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    GST_OBJECT_LOCK(s);
    s->flushing = FALSE;
    GST_OBJECT_UNLOCK(s);
    return TRUE;
}

static gboolean flushing(GstNdshmSrc *s)
{
    GST_OBJECT_LOCK(s);
    gboolean f = s->flushing;
    GST_OBJECT_UNLOCK(s);
    return f;
}

static GstCaps *src_get_caps(GstBaseSrc *bs, GstCaps *filter)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    GstCaps *caps;
    GST_OBJECT_LOCK(s);
    caps = s->caps ? gst_caps_ref(s->caps) : NULL;
    GST_OBJECT_UNLOCK(s);
    if (!caps)
        caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(bs));
    if (filter) {
        GstCaps *t = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref(caps);
        caps = t;
    }
    return caps;
}

/* Caps are known only once a version is read: until then negotiation waits. */
static gboolean src_negotiate(GstBaseSrc *bs)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    GST_OBJECT_LOCK(s);
    GstCaps *caps = s->caps ? gst_caps_ref(s->caps) : NULL;
    GST_OBJECT_UNLOCK(s);
    if (!caps)
        return TRUE;
    gboolean ok = gst_base_src_set_caps(bs, caps);
    gst_caps_unref(caps);
    return ok;
}

static gboolean src_decide_allocation(GstBaseSrc *bs, GstQuery *query)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    s->downstream_video_meta = gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, NULL);
    return GST_BASE_SRC_CLASS(gst_ndshm_src_parent_class)->decide_allocation(bs, query);
}

static gboolean src_query(GstBaseSrc *bs, GstQuery *q)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(bs);
    if (GST_QUERY_TYPE(q) == GST_QUERY_LATENCY) {
        /* A version is pushed microseconds after its publish, timestamped with that instant
         * (or with the producer's PTS): no latency of our own. */
        gst_query_set_latency(q, gst_base_src_is_live(bs), 0, GST_CLOCK_TIME_NONE);
        return TRUE;
    }
    (void)s;
    return GST_BASE_SRC_CLASS(gst_ndshm_src_parent_class)->query(bs, q);
}

/* ----- view-backed memory ------------------------------------------------------------------ */

#define NDSHM_VIEW_MEMORY_TYPE "NdshmViewMemory"

typedef struct {
    GstMemory mem;
    ndshm_view view;
    GstNdshmSrc *src; /* ref */
} NdshmViewMemory;

typedef struct {
    GstAllocator parent;
} NdshmViewAllocator;
typedef struct {
    GstAllocatorClass parent_class;
} NdshmViewAllocatorClass;

static GType ndshm_view_allocator_get_type(void);
G_DEFINE_TYPE(NdshmViewAllocator, ndshm_view_allocator, GST_TYPE_ALLOCATOR)

static gpointer view_map(GstMemory *mem, gsize maxsize, GstMapFlags flags)
{
    (void)maxsize;
    if (flags & GST_MAP_WRITE)
        return NULL; /* the mapping is read-only */
    return (gpointer)((NdshmViewMemory *)mem)->view.data;
}

static void view_unmap(GstMemory *mem)
{
    (void)mem;
}

static GstMemory *view_copy(GstMemory *mem, gssize offset, gssize size)
{
    NdshmViewMemory *vm = (NdshmViewMemory *)mem;
    if (size == -1)
        size = (gssize)mem->size > offset ? (gssize)mem->size - offset : 0;
    GstMemory *copy = gst_allocator_alloc(NULL, (gsize)size, NULL);
    GstMapInfo out;
    if (copy && gst_memory_map(copy, &out, GST_MAP_WRITE)) {
        memcpy(out.data, (const guint8 *)vm->view.data + mem->offset + offset, (gsize)size);
        gst_memory_unmap(copy, &out);
    }
    return copy;
}

static GstMemory *view_alloc(GstAllocator *a, gsize size, GstAllocationParams *params)
{
    (void)a;
    (void)size;
    (void)params;
    return NULL;
}

static void view_free(GstAllocator *a, GstMemory *mem)
{
    (void)a;
    NdshmViewMemory *vm = (NdshmViewMemory *)mem;
    GstNdshmSrc *s = vm->src;
    guint64 version = vm->view.info.version;
    int rc = ndshm_view_release(&vm->view);
    if (rc == NDSHM_OVERWRITTEN) {
        GST_OBJECT_LOCK(s);
        s->overwritten++;
        gchar *name = g_strdup(s->name);
        GST_OBJECT_UNLOCK(s);
        GST_WARNING_OBJECT(s, "version %" G_GUINT64_FORMAT " was overwritten while in use",
                           version);
        post(s, gst_structure_new("ndshmsrc-overwritten", "channel", G_TYPE_STRING, name, "version",
                                  G_TYPE_UINT64, version, NULL));
        g_free(name);
    }
    g_free(vm);
    gst_object_unref(s);
}

static void ndshm_view_allocator_class_init(NdshmViewAllocatorClass *klass)
{
    GstAllocatorClass *ac = GST_ALLOCATOR_CLASS(klass);
    ac->alloc = view_alloc;
    ac->free = view_free;
}

static void ndshm_view_allocator_init(NdshmViewAllocator *self)
{
    GstAllocator *a = GST_ALLOCATOR_CAST(self);
    a->mem_type = NDSHM_VIEW_MEMORY_TYPE;
    a->mem_map = view_map;
    a->mem_unmap = view_unmap;
    a->mem_copy = view_copy;
    a->mem_share = NULL;
    GST_OBJECT_FLAG_SET(self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

static GstAllocator *view_allocator(void)
{
    static GstAllocator *a = NULL;
    if (g_once_init_enter(&a)) {
        GstAllocator *n = g_object_new(ndshm_view_allocator_get_type(), NULL);
        gst_object_ref_sink(n);
        GST_OBJECT_FLAG_SET(n, GST_OBJECT_FLAG_MAY_BE_LEAKED);
        g_once_init_leave(&a, n);
    }
    return a;
}

/* ----- reading ------------------------------------------------------------------------------ */

/* Update s->caps for a version; renegotiate when they change. */
static GstFlowReturn ensure_caps(GstNdshmSrc *s, const ndshm_info *info, const guint8 *meta)
{
    gsize meta_len = info->meta_len <= NDSHM_META_MAX ? info->meta_len : 0;
    if (s->caps && s->c_dtype == info->dtype && s->c_ndim == info->ndim &&
        memcmp(s->c_shape, info->shape, info->ndim * sizeof info->shape[0]) == 0 &&
        s->c_meta_len == meta_len && (meta_len == 0 || memcmp(s->c_meta, meta, meta_len) == 0))
        return GST_FLOW_OK;
    if (s->caps && s->layout.kind == NDSHM_GST_AUDIO && s->c_dtype == info->dtype &&
        s->c_ndim == 2 && info->ndim == 2 && s->c_shape[1] == info->shape[1] &&
        s->c_meta_len == meta_len && (meta_len == 0 || memcmp(s->c_meta, meta, meta_len) == 0))
        return GST_FLOW_OK; /* audio: only the number of frames changed */
    GST_OBJECT_LOCK(s);
    gint rate = s->audio_rate;
    GST_OBJECT_UNLOCK(s);
    gboolean meta_used = FALSE;
    gchar *why = NULL;
    GstCaps *caps = ndshm_gst_caps_for_array(info->dtype, info->ndim, info->shape, meta, meta_len,
                                             rate, &meta_used, &why);
    if (!caps) {
        GST_ELEMENT_ERROR(s, STREAM, FORMAT,
                          ("Channel '%s' carries an array GStreamer cannot stream", s->name),
                          ("%s", why));
        g_free(why);
        return GST_FLOW_ERROR;
    }
    if (meta_len && !meta_used)
        GST_WARNING_OBJECT(s,
                           "version %" G_GUINT64_FORMAT " carries metadata that are no "
                           "caps matching its dtype/shape: caps derived from dtype/shape",
                           (guint64)info->version);
    NdshmGstLayout l;
    if (!ndshm_gst_layout_from_caps(caps, &l, &why)) {
        GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Channel '%s': %s", s->name, why), (NULL));
        g_free(why);
        gst_caps_unref(caps);
        return GST_FLOW_ERROR;
    }
    s->c_dtype = info->dtype;
    s->c_ndim = info->ndim;
    memcpy(s->c_shape, info->shape, info->ndim * sizeof info->shape[0]);
    g_free(s->c_meta);
    s->c_meta = meta_len ? g_memdup2(meta, meta_len) : NULL;
    s->c_meta_len = meta_len;
    if (s->caps && gst_caps_is_equal(s->caps, caps)) {
        gst_caps_unref(caps);
        return GST_FLOW_OK;
    }
    GST_INFO_OBJECT(s, "version %" G_GUINT64_FORMAT ": caps %" GST_PTR_FORMAT,
                    (guint64)info->version, caps);
    gboolean renegotiate = s->caps != NULL;
    GST_OBJECT_LOCK(s);
    gst_caps_replace(&s->caps, caps);
    if (renegotiate)
        s->renegotiated++;
    GST_OBJECT_UNLOCK(s);
    gst_caps_unref(caps);
    s->layout = l;
    if (!gst_base_src_negotiate(GST_BASE_SRC_CAST(s))) {
        GST_ELEMENT_ERROR(s, CORE, NEGOTIATION,
                          ("Downstream refused the caps of channel '%s'", s->name),
                          ("%" GST_PTR_FORMAT, s->caps));
        return GST_FLOW_NOT_NEGOTIATED;
    }
    return GST_FLOW_OK;
}

/* Video needs GStreamer's default (padded) stride when downstream cannot read GstVideoMeta. */
static gboolean needs_padding(GstNdshmSrc *s)
{
    return s->layout.kind == NDSHM_GST_VIDEO && !s->downstream_video_meta &&
           (gsize)GST_VIDEO_INFO_PLANE_STRIDE(&s->layout.vinfo, 0) != s->layout.row_bytes;
}

static void add_packed_meta(GstNdshmSrc *s, GstBuffer *buf)
{
    if (s->layout.kind != NDSHM_GST_VIDEO ||
        (gsize)GST_VIDEO_INFO_PLANE_STRIDE(&s->layout.vinfo, 0) == s->layout.row_bytes)
        return;
    gsize offset[GST_VIDEO_MAX_PLANES] = {0};
    gint stride[GST_VIDEO_MAX_PLANES] = {(gint)s->layout.row_bytes};
    gst_buffer_add_video_meta_full(buf, GST_VIDEO_FRAME_FLAG_NONE,
                                   GST_VIDEO_INFO_FORMAT(&s->layout.vinfo),
                                   GST_VIDEO_INFO_WIDTH(&s->layout.vinfo),
                                   GST_VIDEO_INFO_HEIGHT(&s->layout.vinfo), 1, offset, stride);
}

static GstFlowReturn pool_buffer(GstNdshmSrc *s, gsize size, GstBuffer **out)
{
    if (!s->pool || s->pool_size != size) {
        if (s->pool) {
            gst_buffer_pool_set_active(s->pool, FALSE);
            gst_object_unref(s->pool);
        }
        s->pool = gst_buffer_pool_new();
        GstStructure *config = gst_buffer_pool_get_config(s->pool);
        gst_buffer_pool_config_set_params(config, NULL, (guint)size, 0, 0);
        if (!gst_buffer_pool_set_config(s->pool, config) ||
            !gst_buffer_pool_set_active(s->pool, TRUE)) {
            gst_clear_object(&s->pool);
            GST_ELEMENT_ERROR(s, RESOURCE, FAILED,
                              ("Could not allocate buffers of %zu bytes", size), (NULL));
            return GST_FLOW_ERROR;
        }
        s->pool_size = size;
    }
    return gst_buffer_pool_acquire_buffer(s->pool, out, NULL);
}

/* Packed frame -> GStreamer's default stride, for downstream without GstVideoMeta. */
static GstFlowReturn pad_rows(GstNdshmSrc *s, GstBuffer *packed, GstBuffer **out)
{
    const GstVideoInfo *vi = &s->layout.vinfo;
    GstBuffer *buf = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(vi), NULL);
    GstMapInfo in, o;
    if (!buf || !gst_buffer_map(packed, &in, GST_MAP_READ))
        return GST_FLOW_ERROR;
    if (!gst_buffer_map(buf, &o, GST_MAP_WRITE)) {
        gst_buffer_unmap(packed, &in);
        gst_buffer_unref(buf);
        return GST_FLOW_ERROR;
    }
    gsize stride = (gsize)GST_VIDEO_INFO_PLANE_STRIDE(vi, 0);
    for (guint64 y = 0; y < s->layout.shape[0]; y++)
        memcpy(o.data + GST_VIDEO_INFO_PLANE_OFFSET(vi, 0) + y * stride,
               in.data + y * s->layout.row_bytes, s->layout.row_bytes);
    gst_buffer_unmap(buf, &o);
    gst_buffer_unmap(packed, &in);
    gst_buffer_copy_into(buf, packed, GST_BUFFER_COPY_METADATA, 0, (gsize)-1);
    *out = buf;
    return GST_FLOW_OK;
}

static gboolean size_ok(GstNdshmSrc *s, const ndshm_info *info)
{
    if (s->layout.kind == NDSHM_GST_VIDEO)
        return info->nbytes == s->layout.frame_bytes;
    return info->ndim == 2 && info->nbytes == info->shape[0] * s->layout.frame_bytes;
}

static void stamp(GstNdshmSrc *s, GstBuffer *buf, const ndshm_info *info)
{
    GstBaseSrc *bs = GST_BASE_SRC_CAST(s);
    GST_BUFFER_OFFSET(buf) = info->version;
    GST_BUFFER_OFFSET_END(buf) = info->version + 1;
    if (s->discont || info->dropped) {
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
        s->discont = FALSE;
    }
    if (s->first_publish_ns == 0)
        s->first_publish_ns = info->publish_ns;
    GstClockTime duration = GST_CLOCK_TIME_NONE;
    if (s->layout.kind == NDSHM_GST_VIDEO && GST_VIDEO_INFO_FPS_N(&s->layout.vinfo) > 0)
        duration = gst_util_uint64_scale_int(GST_SECOND, GST_VIDEO_INFO_FPS_D(&s->layout.vinfo),
                                             GST_VIDEO_INFO_FPS_N(&s->layout.vinfo));
    else if (s->layout.kind == NDSHM_GST_AUDIO && GST_AUDIO_INFO_RATE(&s->layout.ainfo) > 0)
        duration = gst_util_uint64_scale_int(info->shape[0], GST_SECOND,
                                             GST_AUDIO_INFO_RATE(&s->layout.ainfo));
    GST_BUFFER_DURATION(buf) = duration;
    if (gst_base_src_get_do_timestamp(bs))
        return; /* GstBaseSrc stamps the running time of arrival */
    GST_OBJECT_LOCK(s);
    NdshmSrcTimestamp mode = s->timestamp_mode;
    GstClock *clock = GST_ELEMENT_CLOCK(s) ? gst_object_ref(GST_ELEMENT_CLOCK(s)) : NULL;
    GstClockTime base = GST_ELEMENT_CAST(s)->base_time;
    GST_OBJECT_UNLOCK(s);
    if (mode == TS_PTS && (info->user_tag & NDSHM_GST_TAG_PTS)) {
        GST_BUFFER_PTS(buf) = info->user_ns;
    } else if (clock && gst_base_src_is_live(bs)) {
        /* the running time now, minus the version's age */
        GstClockTime now = gst_clock_get_time(clock);
        guint64 mono = ndshm_now_ns();
        guint64 age = mono > info->publish_ns ? mono - info->publish_ns : 0;
        GstClockTime rt = now > base ? now - base : 0;
        GST_BUFFER_PTS(buf) = rt > age ? rt - age : 0;
    } else {
        GST_BUFFER_PTS(buf) = info->publish_ns - s->first_publish_ns;
    }
    if (clock)
        gst_object_unref(clock);
}

static void count_version(GstNdshmSrc *s, const ndshm_info *info, gboolean zero_copy)
{
    GST_OBJECT_LOCK(s);
    s->versions++;
    s->dropped += info->dropped;
    s->last_version = info->version;
    if (zero_copy)
        s->zero_copied++;
    else
        s->copied++;
    guint64 total = s->dropped;
    gboolean msg = s->drop_messages && info->dropped > 0;
    const gchar *mode = s->mode == READ_EVERY ? "every" : "latest";
    GST_OBJECT_UNLOCK(s);
    if (msg)
        post(s, gst_structure_new("ndshmsrc-drop", "channel", G_TYPE_STRING, s->name, "version",
                                  G_TYPE_UINT64, (guint64)info->version, "dropped", G_TYPE_UINT64,
                                  (guint64)info->dropped, "total-dropped", G_TYPE_UINT64, total,
                                  "mode", G_TYPE_STRING, mode, NULL));
    if (s->gone_posted) {
        s->gone_posted = FALSE;
        GST_OBJECT_LOCK(s);
        s->back++;
        GST_OBJECT_UNLOCK(s);
        post(s, gst_structure_new("ndshmsrc-writer-back", "channel", G_TYPE_STRING, s->name,
                                  "version", G_TYPE_UINT64, (guint64)info->version, NULL));
    }
}

/* One read. GST_FLOW_OK with *out, or GST_FLOW_CUSTOM_SUCCESS to wait again, or an error. */
static GstFlowReturn read_one(GstNdshmSrc *s, gboolean every, gboolean zero_copy, int *status,
                              GstBuffer **out)
{
    ndshm_info info;
    GstFlowReturn ret;
    if (zero_copy && !needs_padding(s)) {
        NdshmViewMemory *vm = g_new0(NdshmViewMemory, 1);
        int rc = every ? ndshm_view_next(s->r, &vm->view) : ndshm_view_latest(s->r, &vm->view);
        *status = rc;
        if (rc != NDSHM_OK) {
            g_free(vm);
            return GST_FLOW_CUSTOM_SUCCESS;
        }
        info = vm->view.info;
        gsize meta_len = info.meta_len <= NDSHM_META_MAX ? info.meta_len : 0;
        if (meta_len)
            memcpy(s->meta, vm->view.meta, meta_len);
        if (ndshm_view_check(&vm->view) != NDSHM_OK) { /* the meta copy may be torn */
            (void)ndshm_view_release(&vm->view);
            g_free(vm);
            GST_OBJECT_LOCK(s);
            s->contended++;
            GST_OBJECT_UNLOCK(s);
            *status = NDSHM_CONTENDED;
            return GST_FLOW_CUSTOM_SUCCESS;
        }
        ret = ensure_caps(s, &info, s->meta);
        if (ret == GST_FLOW_OK && !size_ok(s, &info)) {
            GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Version size does not match its caps"),
                              ("%" G_GUINT64_FORMAT " bytes", (guint64)info.nbytes));
            ret = GST_FLOW_ERROR;
        }
        if (ret != GST_FLOW_OK || needs_padding(s)) {
            /* caps changed to ones that need padding: copy out of the view instead */
            GstBuffer *packed = NULL;
            if (ret == GST_FLOW_OK) {
                packed = gst_buffer_new_memdup(vm->view.data, (gsize)info.nbytes);
                if (ndshm_view_release(&vm->view) != NDSHM_OK) {
                    gst_buffer_unref(packed);
                    g_free(vm);
                    *status = NDSHM_CONTENDED;
                    return GST_FLOW_CUSTOM_SUCCESS;
                }
            } else {
                (void)ndshm_view_release(&vm->view);
            }
            g_free(vm);
            if (ret != GST_FLOW_OK)
                return ret;
            stamp(s, packed, &info);
            ret = pad_rows(s, packed, out);
            gst_buffer_unref(packed);
            count_version(s, &info, FALSE);
            return ret;
        }
        gst_memory_init(&vm->mem, GST_MEMORY_FLAG_READONLY | GST_MEMORY_FLAG_NO_SHARE,
                        view_allocator(), NULL, (gsize)info.nbytes, 0, 0, (gsize)info.nbytes);
        vm->src = gst_object_ref(s);
        GstBuffer *buf = gst_buffer_new();
        gst_buffer_append_memory(buf, &vm->mem);
        add_packed_meta(s, buf);
        stamp(s, buf, &info);
        count_version(s, &info, TRUE);
        *out = buf;
        return GST_FLOW_OK;
    }

    gsize size = s->pool_size ? s->pool_size : 4096;
    for (;;) {
        GstBuffer *buf = NULL;
        ret = pool_buffer(s, size, &buf);
        if (ret != GST_FLOW_OK)
            return ret;
        GstMapInfo map;
        if (!gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
            gst_buffer_unref(buf);
            return GST_FLOW_ERROR;
        }
        int rc = ndshm_read_ex(s->r, every ? NDSHM_READ_NEXT : NDSHM_READ_LATEST, map.data,
                               map.size, s->meta, NDSHM_META_MAX, &info);
        gst_buffer_unmap(buf, &map);
        *status = rc;
        if (rc == NDSHM_E_TOO_SMALL) {
            gst_buffer_unref(buf);
            if (info.nbytes > size && info.nbytes <= G_MAXUINT) {
                size = (gsize)info.nbytes;
                continue;
            }
            GST_ELEMENT_ERROR(s, STREAM, FORMAT,
                              ("A version of channel '%s' is too large to stream", s->name),
                              ("%" G_GUINT64_FORMAT " bytes", (guint64)info.nbytes));
            return GST_FLOW_ERROR;
        }
        if (rc != NDSHM_OK) {
            gst_buffer_unref(buf);
            if (rc == NDSHM_CONTENDED) {
                GST_OBJECT_LOCK(s);
                s->contended++;
                GST_OBJECT_UNLOCK(s);
            }
            return GST_FLOW_CUSTOM_SUCCESS; /* the caller waits, retries or reports rc */
        }
        gst_buffer_set_size(buf, (gssize)info.nbytes);
        ret = ensure_caps(s, &info, s->meta);
        if (ret == GST_FLOW_OK && !size_ok(s, &info)) {
            GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Version size does not match its caps"),
                              ("%" G_GUINT64_FORMAT " bytes", (guint64)info.nbytes));
            ret = GST_FLOW_ERROR;
        }
        if (ret != GST_FLOW_OK) {
            gst_buffer_unref(buf);
            return ret;
        }
        stamp(s, buf, &info);
        count_version(s, &info, FALSE);
        if (needs_padding(s)) {
            ret = pad_rows(s, buf, out);
            gst_buffer_unref(buf);
            return ret;
        }
        add_packed_meta(s, buf);
        *out = buf;
        return GST_FLOW_OK;
    }
}

static GstFlowReturn writer_gone(GstNdshmSrc *s, NdshmSrcGone action, int status)
{
    if (!s->gone_posted) {
        s->gone_posted = TRUE;
        GST_OBJECT_LOCK(s);
        s->gone++;
        guint64 last = s->last_version;
        GST_OBJECT_UNLOCK(s);
        post(s, gst_structure_new("ndshmsrc-writer-gone", "channel", G_TYPE_STRING, s->name,
                                  "version", G_TYPE_UINT64, last, "replaced", G_TYPE_BOOLEAN,
                                  status == NDSHM_REPLACED, NULL));
    }
    if (action == GONE_EOS) {
        GST_INFO_OBJECT(s, "writer of '%s' gone: EOS", s->name);
        return GST_FLOW_EOS;
    }
    GST_ELEMENT_ERROR(s, RESOURCE, READ, ("The writer of ndshm channel '%s' is gone", s->name),
                      ("%s", ndshm_strerror(status)));
    return GST_FLOW_ERROR;
}

/* The name now belongs to a new channel: follow it (on-writer-gone=wait). */
static GstFlowReturn reopen(GstNdshmSrc *s)
{
    ndshm_reader *n = NULL;
    int rc = open_reader(s, &n);
    if (rc == NDSHM_E_NOENT || rc == NDSHM_E_NOT_READY)
        return GST_FLOW_CUSTOM_SUCCESS; /* gone again already, or still being created */
    if (rc != NDSHM_OK) {
        GST_ELEMENT_ERROR(s, RESOURCE, OPEN_READ,
                          ("Could not reopen ndshm channel '%s': %s", s->name, ndshm_strerror(rc)),
                          ("%s", ndshm_status_name(rc)));
        return GST_FLOW_ERROR;
    }
    ndshm_reader_close(s->r);
    s->r = n;
    s->discont = TRUE;
    GST_OBJECT_LOCK(s);
    s->reopened++;
    GST_OBJECT_UNLOCK(s);
    GST_INFO_OBJECT(s, "channel '%s' was replaced: reading the new one", s->name);
    return GST_FLOW_CUSTOM_SUCCESS;
}

static GstFlowReturn src_create(GstPushSrc *ps, GstBuffer **out)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(ps);
    GST_OBJECT_LOCK(s);
    gboolean every = s->mode == READ_EVERY;
    gboolean zero_copy = s->zero_copy;
    guint64 timeout = s->timeout;
    NdshmSrcGone action = s->on_writer_gone;
    GST_OBJECT_UNLOCK(s);
    guint64 start = ndshm_now_ns();
    guint64 last_alive_check = start;
    for (;;) {
        if (flushing(s))
            return GST_FLOW_FLUSHING;
        int st = NDSHM_OK;
        GstFlowReturn ret = read_one(s, every, zero_copy, &st, out);
        if (ret != GST_FLOW_CUSTOM_SUCCESS)
            return ret;
        if (st < 0) {
            GST_ELEMENT_ERROR(
                s, RESOURCE, READ,
                ("Could not read ndshm channel '%s': %s", s->name, ndshm_strerror(st)),
                ("%s", ndshm_status_name(st)));
            return GST_FLOW_ERROR;
        }
        if (st == NDSHM_CONTENDED)
            continue;
        if (st == NDSHM_REPLACED) {
            if (action != GONE_WAIT)
                return writer_gone(s, action, st);
            (void)writer_gone(s, GONE_EOS, st); /* posts the message once */
            ret = reopen(s);
            if (ret != GST_FLOW_CUSTOM_SUCCESS)
                return ret;
        }
        /* NO_NEW / NO_DATA: wait for the writer */
        guint64 now = ndshm_now_ns();
        int64_t slice = WAIT_SLICE_NS;
        if (timeout) {
            if (now - start >= timeout) {
                GST_ELEMENT_ERROR(
                    s, RESOURCE, READ,
                    ("No new version on ndshm channel '%s' within %.3f s", s->name, timeout / 1e9),
                    ("timeout=%" G_GUINT64_FORMAT " ns", timeout));
                return GST_FLOW_ERROR;
            }
            if (timeout - (now - start) < (guint64)slice)
                slice = (int64_t)(timeout - (now - start));
        }
        int rc = ndshm_wait(s->r, slice);
        if (rc == NDSHM_OK || rc == NDSHM_TIMEOUT) {
            if (rc == NDSHM_TIMEOUT && action == GONE_WAIT && !s->gone_posted &&
                ndshm_now_ns() - last_alive_check >= WAIT_SLICE_NS) {
                /* ndshm_wait sleeps through the writer's absence: tell the bus once */
                last_alive_check = ndshm_now_ns();
                if (!ndshm_reader_writer_alive(s->r))
                    (void)writer_gone(s, GONE_EOS, NDSHM_WRITER_GONE);
            }
            continue;
        }
        if (rc == NDSHM_WRITER_GONE)
            return writer_gone(s, action, rc);
        if (rc == NDSHM_REPLACED) {
            if (action != GONE_WAIT)
                return writer_gone(s, action, rc);
            (void)writer_gone(s, GONE_EOS, rc);
            ret = reopen(s);
            if (ret != GST_FLOW_CUSTOM_SUCCESS)
                return ret;
            continue;
        }
        GST_ELEMENT_ERROR(s, RESOURCE, READ,
                          ("Could not wait on ndshm channel '%s': %s", s->name, ndshm_strerror(rc)),
                          ("%s", ndshm_status_name(rc)));
        return GST_FLOW_ERROR;
    }
}

static void src_finalize(GObject *obj)
{
    GstNdshmSrc *s = GST_NDSHM_SRC(obj);
    g_free(s->channel);
    g_free(s->name);
    G_OBJECT_CLASS(gst_ndshm_src_parent_class)->finalize(obj);
}

static void gst_ndshm_src_class_init(GstNdshmSrcClass *klass)
{
    GObjectClass *oc = G_OBJECT_CLASS(klass);
    GstElementClass *ec = GST_ELEMENT_CLASS(klass);
    GstBaseSrcClass *bc = GST_BASE_SRC_CLASS(klass);
    GstPushSrcClass *pc = GST_PUSH_SRC_CLASS(klass);
    GST_DEBUG_CATEGORY_INIT(ndshmsrc_debug, "ndshmsrc", 0, "ndshm source");
    oc->set_property = src_set_property;
    oc->get_property = src_get_property;
    oc->finalize = src_finalize;
    const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
    g_object_class_install_property(
        oc, PROP_CHANNEL,
        g_param_spec_string("channel", "Channel",
                            "Name of the ndshm channel to read (it must exist when the element "
                            "starts)",
                            NULL, rw));
    g_object_class_install_property(oc, PROP_MODE,
                                    g_param_spec_enum("mode", "Mode",
                                                      "Which versions become buffers", mode_type(),
                                                      DEFAULT_MODE, rw));
    g_object_class_install_property(
        oc, PROP_TIMEOUT,
        g_param_spec_uint64("timeout", "Timeout",
                            "Post an error when no new version arrives for this long, in "
                            "nanoseconds (0 = wait forever)",
                            0, G_MAXUINT64, DEFAULT_TIMEOUT, rw));
    g_object_class_install_property(
        oc, PROP_ON_WRITER_GONE,
        g_param_spec_enum("on-writer-gone", "On writer gone",
                          "What to do when the channel's writer closes or dies (an element "
                          "message 'ndshmsrc-writer-gone' is posted in every case, "
                          "'ndshmsrc-writer-back' when versions arrive again)",
                          gone_type(), DEFAULT_ON_WRITER_GONE, rw));
    g_object_class_install_property(
        oc, PROP_ZERO_COPY,
        g_param_spec_boolean("zero-copy", "Zero copy",
                             "Push views of the shared memory instead of copies. A view is "
                             "valid while the writer has not reused its slot (slots - 1 "
                             "publish periods); its release checks that and counts and reports "
                             "('ndshmsrc-overwritten' message) a version overwritten while in "
                             "use. Off: one copy per buffer",
                             DEFAULT_ZERO_COPY, rw));
    g_object_class_install_property(
        oc, PROP_TIMESTAMP_MODE,
        g_param_spec_enum("timestamp-mode", "Timestamp mode",
                          "How buffers are timestamped (do-timestamp=true overrides both with "
                          "the arrival time)",
                          ts_type(), DEFAULT_TIMESTAMP_MODE, rw));
    g_object_class_install_property(
        oc, PROP_IS_LIVE,
        g_param_spec_boolean("is-live", "Is live",
                             "Act as a live source (no preroll; buffers are timestamped on the "
                             "pipeline clock)",
                             DEFAULT_IS_LIVE, rw));
    g_object_class_install_property(
        oc, PROP_AUDIO_RATE,
        g_param_spec_int("audio-rate", "Audio rate",
                         "Sample rate for audio arrays published without caps (by something "
                         "other than ndshmsink)",
                         1, G_MAXINT, DEFAULT_AUDIO_RATE, rw));
    g_object_class_install_property(
        oc, PROP_DROP_MESSAGES,
        g_param_spec_boolean("drop-messages", "Drop messages",
                             "Post an element message 'ndshmsrc-drop' (version, dropped, "
                             "total-dropped, mode) for every buffer that follows lost versions",
                             DEFAULT_DROP_MESSAGES, rw));
    g_object_class_install_property(
        oc, PROP_STATS,
        g_param_spec_boxed("stats", "Statistics",
                           "Counters since start: versions, dropped, overwritten (zero-copy "
                           "views found overwritten at release), contended, writer-gone, "
                           "writer-back, reopened, renegotiated, zero-copy, copied, version "
                           "(the last one)",
                           GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
    gst_element_class_add_static_pad_template(ec, &src_template);
    gst_element_class_set_static_metadata(
        ec, "ndshm source", "Source/Video/Audio",
        "Produces the versions of an ndshm channel (caps from the caps string or the "
        "dtype/shape, renegotiated when they change; drop counts as element messages)",
        "ndshm");
    bc->start = src_start;
    bc->stop = src_stop;
    bc->unlock = src_unlock;
    bc->unlock_stop = src_unlock_stop;
    bc->get_caps = src_get_caps;
    bc->negotiate = src_negotiate;
    bc->decide_allocation = src_decide_allocation;
    bc->query = src_query;
    pc->create = src_create;
}

static void gst_ndshm_src_init(GstNdshmSrc *s)
{
    s->mode = DEFAULT_MODE;
    s->timeout = DEFAULT_TIMEOUT;
    s->on_writer_gone = DEFAULT_ON_WRITER_GONE;
    s->zero_copy = DEFAULT_ZERO_COPY;
    s->timestamp_mode = DEFAULT_TIMESTAMP_MODE;
    s->is_live = DEFAULT_IS_LIVE;
    s->audio_rate = DEFAULT_AUDIO_RATE;
    s->drop_messages = DEFAULT_DROP_MESSAGES;
    gst_base_src_set_format(GST_BASE_SRC(s), GST_FORMAT_TIME);
    gst_base_src_set_live(GST_BASE_SRC(s), DEFAULT_IS_LIVE);
}
