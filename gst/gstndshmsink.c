/* ndshmsink: every buffer becomes one version of an ndshm channel (docs/gstreamer.md).
 *
 * Zero copy. For raw video the sink offers upstream a buffer pool whose buffers are loaned
 * slots of the channel (ndshm_loan_ex): an upstream element that takes the pool (videotestsrc,
 * v4l2src in userptr-less modes, decoders, videoconvert ...) writes the frame straight into
 * shared memory, and render() only commits it. Anything else is published with one copy.
 *
 * The rules that keep that safe:
 *  - The core allows one open loan per writer, and a loan reserves the next version. The pool
 *    therefore lends one buffer at a time: acquire() waits (on wr->cond, woken by commit,
 *    cancel and flushing) until the previous loan is committed or cancelled, at most
 *    ACQUIRE_WAIT_US (an element holding one buffer while it acquires the next, a sink
 *    holding its preroll buffer); then the buffer is plain memory, published by copy.
 *  - A loaned buffer dropped before it reaches render() cancels its loan when freed.
 *  - A buffer that is not the open loan (a copy, or a pool buffer already committed that
 *    comes back, as videorate's duplicates do) while a loan is open: the open loan is
 *    "detached" first: once upstream has unmapped it, its bytes move to private memory, the
 *    loan is cancelled, and the buffer publishes by copy when it arrives.
 *  - After commit, a buffer that someone else still references (a tee branch, videorate's
 *    previous frame) is detached too, so no GstMemory outlives its slot: the writer reuses a
 *    slot N versions later and unmaps a data segment when the channel re-allocates. A mapping
 *    held across the commit itself keeps reading the slot, valid for N - 1 more versions.
 *  - The writer handle is shared, refcounted, by the element and every loaned memory: it is
 *    closed when the element has stopped and the last loaned memory is gone, so a buffer that
 *    upstream is still filling while the sink shuts down never points into an unmapped slot.
 *  - Every writer call, and every read or change of the loan state, holds wr->lock (a writer
 *    handle belongs to one thread at a time: the upstream thread acquires, the sink thread
 *    renders).
 */
#include "gstndshmsink.h"

#include <string.h>

#include <gst/video/gstvideometa.h>
#include <gst/video/gstvideopool.h>

#include "gstndshmcaps.h"
#include "ndshm/ndshm.h"

GST_DEBUG_CATEGORY_STATIC(ndshmsink_debug);
#define GST_CAT_DEFAULT ndshmsink_debug

/* ----- the shared writer ------------------------------------------------------------------ */

typedef struct NdshmLoanMemory NdshmLoanMemory;

typedef struct {
    gint refs;
    GMutex lock;
    GCond cond;
    ndshm_writer *w;
    guint64 open_loan; /* id of the open loan; 0 = none */
    guint64 next_loan;
    NdshmLoanMemory *open_mem;
    gboolean closed; /* the element stopped: no new loans */
} NdshmWriterRef;

static NdshmWriterRef *wr_new(ndshm_writer *w)
{
    NdshmWriterRef *wr = g_new0(NdshmWriterRef, 1);
    wr->refs = 1;
    g_mutex_init(&wr->lock);
    g_cond_init(&wr->cond);
    wr->w = w;
    return wr;
}

static NdshmWriterRef *wr_ref(NdshmWriterRef *wr)
{
    g_atomic_int_inc(&wr->refs);
    return wr;
}

static void wr_unref(NdshmWriterRef *wr)
{
    if (!wr || !g_atomic_int_dec_and_test(&wr->refs))
        return;
    int rc = ndshm_writer_close(wr->w);
    if (rc != NDSHM_OK)
        GST_WARNING("ndshm_writer_close: %s", ndshm_strerror(rc));
    g_mutex_clear(&wr->lock);
    g_cond_clear(&wr->cond);
    g_free(wr);
}

/* ----- loaned memory ------------------------------------------------------------------------ */

#define NDSHM_LOAN_MEMORY_TYPE "NdshmLoanMemory"

struct NdshmLoanMemory {
    GstMemory mem;
    NdshmWriterRef *wr;
    guint64 id;
    guint8 *data; /* the slot, or priv once detached (wr->lock) */
    guint8 *priv; /* private copy after detach */
    gint maps;    /* current mappings (wr->lock) */
    gchar *caps;  /* caps string published with the version */
    gsize caps_len;
};

typedef struct {
    GstAllocator parent;
} NdshmLoanAllocator;
typedef struct {
    GstAllocatorClass parent_class;
} NdshmLoanAllocatorClass;

static GType ndshm_loan_allocator_get_type(void);
G_DEFINE_TYPE(NdshmLoanAllocator, ndshm_loan_allocator, GST_TYPE_ALLOCATOR)

static gpointer loan_map(GstMemory *mem, gsize maxsize, GstMapFlags flags)
{
    (void)maxsize;
    (void)flags;
    NdshmLoanMemory *lm = (NdshmLoanMemory *)mem;
    g_mutex_lock(&lm->wr->lock);
    lm->maps++;
    gpointer p = lm->data;
    g_mutex_unlock(&lm->wr->lock);
    return p;
}

static void loan_unmap(GstMemory *mem)
{
    NdshmLoanMemory *lm = (NdshmLoanMemory *)mem;
    g_mutex_lock(&lm->wr->lock);
    lm->maps--;
    g_cond_broadcast(&lm->wr->cond);
    g_mutex_unlock(&lm->wr->lock);
}

static GstMemory *loan_copy(GstMemory *mem, gssize offset, gssize size)
{
    if (size == -1)
        size = (gssize)mem->size > offset ? (gssize)mem->size - offset : 0;
    GstMemory *copy = gst_allocator_alloc(NULL, (gsize)size, NULL);
    GstMapInfo in, out;
    if (!copy)
        return NULL;
    if (!gst_memory_map(mem, &in, GST_MAP_READ)) {
        gst_memory_unref(copy);
        return NULL;
    }
    if (gst_memory_map(copy, &out, GST_MAP_WRITE)) {
        memcpy(out.data, in.data + offset, (gsize)size);
        gst_memory_unmap(copy, &out);
    }
    gst_memory_unmap(mem, &in);
    return copy;
}

static GstMemory *loan_alloc(GstAllocator *a, gsize size, GstAllocationParams *params)
{
    (void)a;
    (void)size;
    (void)params;
    return NULL; /* loaned memory comes from the pool only */
}

/* Move the bytes of a loan to private memory (wr->lock held). */
static void loan_detach(NdshmLoanMemory *lm)
{
    if (lm->priv)
        return;
    lm->priv = g_malloc(lm->mem.maxsize ? lm->mem.maxsize : 1);
    memcpy(lm->priv, lm->data, lm->mem.maxsize);
    lm->data = lm->priv;
}

static void loan_free(GstAllocator *a, GstMemory *mem)
{
    (void)a;
    NdshmLoanMemory *lm = (NdshmLoanMemory *)mem;
    NdshmWriterRef *wr = lm->wr;
    g_mutex_lock(&wr->lock);
    if (lm->id == wr->open_loan) { /* dropped before render: no version */
        int rc = ndshm_cancel(wr->w);
        if (rc != NDSHM_OK)
            GST_WARNING("ndshm_cancel: %s", ndshm_strerror(rc));
        wr->open_loan = 0;
        wr->open_mem = NULL;
        g_cond_broadcast(&wr->cond);
    }
    g_mutex_unlock(&wr->lock);
    g_free(lm->priv);
    g_free(lm->caps);
    g_free(lm);
    wr_unref(wr);
}

static void ndshm_loan_allocator_class_init(NdshmLoanAllocatorClass *klass)
{
    GstAllocatorClass *ac = GST_ALLOCATOR_CLASS(klass);
    ac->alloc = loan_alloc;
    ac->free = loan_free;
}

static void ndshm_loan_allocator_init(NdshmLoanAllocator *self)
{
    GstAllocator *a = GST_ALLOCATOR_CAST(self);
    a->mem_type = NDSHM_LOAN_MEMORY_TYPE;
    a->mem_map = loan_map;
    a->mem_unmap = loan_unmap;
    a->mem_copy = loan_copy;
    a->mem_share = NULL; /* NO_SHARE: a sub-memory would outlive a detach */
    GST_OBJECT_FLAG_SET(self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

static NdshmLoanMemory *loan_memory(GstBuffer *buf, NdshmWriterRef *wr)
{
    if (gst_buffer_n_memory(buf) != 1)
        return NULL;
    GstMemory *m = gst_buffer_peek_memory(buf, 0);
    if (!gst_memory_is_type(m, NDSHM_LOAN_MEMORY_TYPE))
        return NULL;
    NdshmLoanMemory *lm = (NdshmLoanMemory *)m;
    return lm->wr == wr ? lm : NULL;
}

/* ----- the pool ------------------------------------------------------------------------------ */

typedef struct {
    GstBufferPool parent;
    NdshmWriterRef *wr;
    GstAllocator *allocator;
    NdshmGstLayout layout;
    gboolean have_layout;
    gboolean video_meta; /* upstream maps with GstVideoMeta: our packed strides are honoured */
    gboolean lend;       /* buffers are loaned slots (else plain memory, published by copy) */
    gchar *caps;
    gsize caps_len;
} NdshmSinkPool;
typedef struct {
    GstBufferPoolClass parent_class;
} NdshmSinkPoolClass;

#define ACQUIRE_WAIT_US (1 * G_TIME_SPAN_SECOND)

static GType ndshm_sink_pool_get_type(void);
G_DEFINE_TYPE(NdshmSinkPool, ndshm_sink_pool, GST_TYPE_BUFFER_POOL)

static const gchar **pool_get_options(GstBufferPool *pool)
{
    (void)pool;
    static const gchar *options[] = {GST_BUFFER_POOL_OPTION_VIDEO_META, NULL};
    return options;
}

static gboolean pool_set_config(GstBufferPool *bp, GstStructure *config)
{
    NdshmSinkPool *p = (NdshmSinkPool *)bp;
    GstCaps *caps = NULL;
    guint size, min, max;
    if (!gst_buffer_pool_config_get_params(config, &caps, &size, &min, &max) || !caps)
        return FALSE;
    gchar *why = NULL;
    NdshmGstLayout l;
    if (!ndshm_gst_layout_from_caps(caps, &l, &why) || l.kind != NDSHM_GST_VIDEO) {
        GST_WARNING_OBJECT(bp, "pool caps %" GST_PTR_FORMAT ": %s", caps, why ? why : "not video");
        g_free(why);
        return FALSE;
    }
    p->layout = l;
    p->have_layout = TRUE;
    p->video_meta = gst_buffer_pool_config_has_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    /* Without GstVideoMeta upstream writes with GStreamer's default stride: zero copy only
     * when that is the packed row. */
    p->lend = p->video_meta || (gsize)GST_VIDEO_INFO_PLANE_STRIDE(&l.vinfo, 0) == l.row_bytes;
    g_free(p->caps);
    p->caps = gst_caps_to_string(caps);
    p->caps_len = strlen(p->caps);
    if (p->caps_len > NDSHM_META_MAX)
        p->caps_len = 0;
    GST_DEBUG_OBJECT(bp, "config %" GST_PTR_FORMAT " video-meta %d: %s", caps, p->video_meta,
                     p->lend ? "loaned slots" : "plain memory (default stride is padded)");
    gst_buffer_pool_config_set_params(config, caps, (guint)l.frame_bytes, min, max);
    return GST_BUFFER_POOL_CLASS(ndshm_sink_pool_parent_class)->set_config(bp, config);
}

static gboolean pool_start(GstBufferPool *bp)
{
    (void)bp;
    return TRUE; /* nothing is preallocated: each buffer is a fresh loan */
}

static gboolean pool_stop(GstBufferPool *bp)
{
    (void)bp;
    return TRUE;
}

static void pool_flush_start(GstBufferPool *bp)
{
    NdshmSinkPool *p = (NdshmSinkPool *)bp;
    g_mutex_lock(&p->wr->lock);
    g_cond_broadcast(&p->wr->cond); /* acquire() re-checks GST_BUFFER_POOL_IS_FLUSHING */
    g_mutex_unlock(&p->wr->lock);
}

static void add_video_meta(NdshmSinkPool *p, GstBuffer *buf)
{
    if (!p->video_meta)
        return;
    gsize offset[GST_VIDEO_MAX_PLANES] = {0};
    gint stride[GST_VIDEO_MAX_PLANES] = {(gint)p->layout.row_bytes};
    gst_buffer_add_video_meta_full(buf, GST_VIDEO_FRAME_FLAG_NONE,
                                   GST_VIDEO_INFO_FORMAT(&p->layout.vinfo),
                                   GST_VIDEO_INFO_WIDTH(&p->layout.vinfo),
                                   GST_VIDEO_INFO_HEIGHT(&p->layout.vinfo), 1, offset, stride);
}

static GstFlowReturn pool_acquire(GstBufferPool *bp, GstBuffer **out,
                                  GstBufferPoolAcquireParams *params)
{
    NdshmSinkPool *p = (NdshmSinkPool *)bp;
    NdshmWriterRef *wr = p->wr;
    if (!p->have_layout)
        return GST_FLOW_NOT_NEGOTIATED;
    g_mutex_lock(&wr->lock);
    /* An element that holds one pool buffer while it acquires the next, or a sink holding
     * its preroll buffer, would wait forever: after ACQUIRE_WAIT_US the buffer is plain
     * memory instead (published by copy; render() detaches the open loan if it must). */
    gint64 until = g_get_monotonic_time() + ACQUIRE_WAIT_US;
    gboolean lend = p->lend;
    while (lend && wr->open_loan != 0 && !wr->closed && !GST_BUFFER_POOL_IS_FLUSHING(bp)) {
        if (params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT)) {
            g_mutex_unlock(&wr->lock);
            return GST_FLOW_EOS;
        }
        if (!g_cond_wait_until(&wr->cond, &wr->lock, until)) {
            GST_DEBUG_OBJECT(bp, "previous loan still open: plain memory");
            lend = FALSE;
        }
    }
    if (GST_BUFFER_POOL_IS_FLUSHING(bp)) {
        g_mutex_unlock(&wr->lock);
        return GST_FLOW_FLUSHING;
    }
    void *data = NULL;
    int rc = NDSHM_E_STATE;
    if (lend && !wr->closed) {
        ndshm_extra ex = NDSHM_EXTRA_INIT;
        ex.meta = p->caps;
        ex.meta_len = (uint32_t)p->caps_len;
        rc = ndshm_loan_ex(wr->w, p->layout.dtype, p->layout.ndim, p->layout.shape, &ex, &data);
        if (rc != NDSHM_OK)
            GST_WARNING_OBJECT(bp, "ndshm_loan_ex: %s (plain memory instead)", ndshm_strerror(rc));
    }
    GstBuffer *buf = gst_buffer_new();
    if (rc == NDSHM_OK) {
        NdshmLoanMemory *lm = g_new0(NdshmLoanMemory, 1);
        gst_memory_init(&lm->mem, GST_MEMORY_FLAG_NO_SHARE, p->allocator, NULL,
                        p->layout.frame_bytes, 0, 0, p->layout.frame_bytes);
        lm->wr = wr_ref(wr);
        lm->id = ++wr->next_loan;
        lm->data = data;
        lm->caps = g_strndup(p->caps, p->caps_len);
        lm->caps_len = p->caps_len;
        wr->open_loan = lm->id;
        wr->open_mem = lm;
        gst_buffer_append_memory(buf, &lm->mem);
    } else {
        gst_buffer_append_memory(buf, gst_allocator_alloc(NULL, p->layout.frame_bytes, NULL));
    }
    g_mutex_unlock(&wr->lock);
    add_video_meta(p, buf);
    *out = buf;
    return GST_FLOW_OK;
}

static void pool_release(GstBufferPool *bp, GstBuffer *buf)
{
    (void)bp;
    gst_buffer_unref(buf); /* never reused: the next buffer is the next loan */
}

static void pool_finalize(GObject *obj)
{
    NdshmSinkPool *p = (NdshmSinkPool *)obj;
    wr_unref(p->wr);
    gst_object_unref(p->allocator);
    g_free(p->caps);
    G_OBJECT_CLASS(ndshm_sink_pool_parent_class)->finalize(obj);
}

static void ndshm_sink_pool_class_init(NdshmSinkPoolClass *klass)
{
    GstBufferPoolClass *pc = GST_BUFFER_POOL_CLASS(klass);
    G_OBJECT_CLASS(klass)->finalize = pool_finalize;
    pc->get_options = pool_get_options;
    pc->set_config = pool_set_config;
    pc->start = pool_start;
    pc->stop = pool_stop;
    pc->acquire_buffer = pool_acquire;
    pc->release_buffer = pool_release;
    pc->flush_start = pool_flush_start;
}

static void ndshm_sink_pool_init(NdshmSinkPool *p)
{
    (void)p;
}

static GstBufferPool *pool_new(NdshmWriterRef *wr, GstAllocator *allocator)
{
    NdshmSinkPool *p = g_object_new(ndshm_sink_pool_get_type(), NULL);
    gst_object_ref_sink(p);
    p->wr = wr_ref(wr);
    p->allocator = gst_object_ref(allocator);
    return GST_BUFFER_POOL_CAST(p);
}

/* ----- the element ----------------------------------------------------------------------- */

struct _GstNdshmSink {
    GstBaseSink parent;
    /* properties (object lock) */
    gchar *channel;
    guint slots;
    guint mode;
    gboolean unlink_on_close;
    gboolean zero_copy;
    gboolean takeover;
    /* streaming state */
    NdshmWriterRef *wr;
    GstAllocator *allocator;
    NdshmGstLayout layout;
    gboolean have_layout;
    gchar *caps;
    gsize caps_len;
    /* statistics (object lock) */
    guint64 published, zero_copied, copied, detached, last_version;
};

enum {
    PROP_0,
    PROP_CHANNEL,
    PROP_SLOTS,
    PROP_MODE,
    PROP_UNLINK_ON_CLOSE,
    PROP_ZERO_COPY,
    PROP_TAKEOVER,
    PROP_STATS,
};

#define DEFAULT_SLOTS           4
#define DEFAULT_MODE            0600
#define DEFAULT_UNLINK_ON_CLOSE TRUE
#define DEFAULT_ZERO_COPY       TRUE
#define DEFAULT_TAKEOVER        TRUE

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(NDSHM_GST_CAPS));

G_DEFINE_TYPE(GstNdshmSink, gst_ndshm_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE(ndshmsink, "ndshmsink", GST_RANK_NONE, GST_TYPE_NDSHM_SINK)

static void sink_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *ps)
{
    GstNdshmSink *s = GST_NDSHM_SINK(obj);
    GST_OBJECT_LOCK(s);
    switch (id) {
    case PROP_CHANNEL:
        g_free(s->channel);
        s->channel = g_value_dup_string(v);
        break;
    case PROP_SLOTS:
        s->slots = g_value_get_uint(v);
        break;
    case PROP_MODE:
        s->mode = g_value_get_uint(v);
        break;
    case PROP_UNLINK_ON_CLOSE:
        s->unlink_on_close = g_value_get_boolean(v);
        break;
    case PROP_ZERO_COPY:
        s->zero_copy = g_value_get_boolean(v);
        break;
    case PROP_TAKEOVER:
        s->takeover = g_value_get_boolean(v);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
        break;
    }
    GST_OBJECT_UNLOCK(s);
}

static void sink_get_property(GObject *obj, guint id, GValue *v, GParamSpec *ps)
{
    GstNdshmSink *s = GST_NDSHM_SINK(obj);
    GST_OBJECT_LOCK(s);
    switch (id) {
    case PROP_CHANNEL:
        g_value_set_string(v, s->channel);
        break;
    case PROP_SLOTS:
        g_value_set_uint(v, s->slots);
        break;
    case PROP_MODE:
        g_value_set_uint(v, s->mode);
        break;
    case PROP_UNLINK_ON_CLOSE:
        g_value_set_boolean(v, s->unlink_on_close);
        break;
    case PROP_ZERO_COPY:
        g_value_set_boolean(v, s->zero_copy);
        break;
    case PROP_TAKEOVER:
        g_value_set_boolean(v, s->takeover);
        break;
    case PROP_STATS:
        g_value_take_boxed(v, gst_structure_new("ndshmsink-stats", "channel", G_TYPE_STRING,
                                                s->channel, "published", G_TYPE_UINT64,
                                                s->published, "zero-copy", G_TYPE_UINT64,
                                                s->zero_copied, "copied", G_TYPE_UINT64, s->copied,
                                                "detached", G_TYPE_UINT64, s->detached, "version",
                                                G_TYPE_UINT64, s->last_version, NULL));
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
        break;
    }
    GST_OBJECT_UNLOCK(s);
}

static gboolean sink_start(GstBaseSink *bs)
{
    GstNdshmSink *s = GST_NDSHM_SINK(bs);
    GST_OBJECT_LOCK(s);
    gchar *name = g_strdup(s->channel);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = s->slots;
    o.mode = s->mode;
    o.flags =
        (s->unlink_on_close ? NDSHM_UNLINK_ON_CLOSE : 0) | (s->takeover ? NDSHM_OPEN_OR_CREATE : 0);
    s->published = s->zero_copied = s->copied = s->detached = s->last_version = 0;
    GST_OBJECT_UNLOCK(s);
    if (!name || !name[0]) {
        GST_ELEMENT_ERROR(s, RESOURCE, NOT_FOUND, ("No channel name given"),
                          ("set the 'channel' property"));
        g_free(name);
        return FALSE;
    }
    ndshm_writer *w = NULL;
    int rc = ndshm_writer_create(name, &o, &w);
    if (rc != NDSHM_OK) {
        if (rc == NDSHM_E_NAME)
            GST_ELEMENT_ERROR(s, RESOURCE, SETTINGS, ("Invalid ndshm channel name '%s'", name),
                              ("%s", ndshm_strerror(rc)));
        else if (rc == NDSHM_E_WRITER_ALIVE || rc == NDSHM_E_EXISTS)
            GST_ELEMENT_ERROR(s, RESOURCE, BUSY,
                              ("ndshm channel '%s' is in use: %s", name, ndshm_strerror(rc)),
                              ("%s", ndshm_status_name(rc)));
        else
            GST_ELEMENT_ERROR(s, RESOURCE, OPEN_WRITE,
                              ("Could not create ndshm channel '%s': %s", name, ndshm_strerror(rc)),
                              ("%s", ndshm_status_name(rc)));
        g_free(name);
        return FALSE;
    }
    GST_INFO_OBJECT(s, "writer of channel '%s' (slots %u, mode %o)", name, o.slots, o.mode);
    g_free(name);
    s->wr = wr_new(w);
    s->allocator = g_object_new(ndshm_loan_allocator_get_type(), NULL);
    gst_object_ref_sink(s->allocator);
    s->have_layout = FALSE;
    return TRUE;
}

static gboolean sink_stop(GstBaseSink *bs)
{
    GstNdshmSink *s = GST_NDSHM_SINK(bs);
    if (s->wr) {
        g_mutex_lock(&s->wr->lock);
        s->wr->closed = TRUE;
        g_cond_broadcast(&s->wr->cond);
        g_mutex_unlock(&s->wr->lock);
        wr_unref(s->wr); /* closes now, or when the last loaned buffer is freed */
        s->wr = NULL;
    }
    gst_clear_object(&s->allocator);
    g_clear_pointer(&s->caps, g_free);
    s->have_layout = FALSE;
    return TRUE;
}

static gboolean sink_set_caps(GstBaseSink *bs, GstCaps *caps)
{
    GstNdshmSink *s = GST_NDSHM_SINK(bs);
    NdshmGstLayout l;
    gchar *why = NULL;
    if (!ndshm_gst_layout_from_caps(caps, &l, &why)) {
        gchar *str = gst_caps_to_string(caps);
        GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Caps have no ndshm dtype/shape mapping: %s", why),
                          ("caps %s", str));
        g_free(str);
        g_free(why);
        return FALSE;
    }
    g_free(s->caps);
    s->caps = gst_caps_to_string(caps);
    s->caps_len = strlen(s->caps);
    if (s->caps_len > NDSHM_META_MAX) {
        GST_WARNING_OBJECT(s,
                           "caps string of %zu bytes is over the %u metadata bytes a "
                           "version carries: versions go without it",
                           s->caps_len, NDSHM_META_MAX);
        s->caps_len = 0;
    }
    s->layout = l;
    s->have_layout = TRUE;
    gchar *d = ndshm_gst_describe(l.dtype, l.ndim, l.shape);
    GST_INFO_OBJECT(s, "caps %" GST_PTR_FORMAT " -> %s", caps, d);
    g_free(d);
    return TRUE;
}

static gboolean sink_propose_allocation(GstBaseSink *bs, GstQuery *query)
{
    GstNdshmSink *s = GST_NDSHM_SINK(bs);
    GstCaps *caps = NULL;
    gboolean need_pool = FALSE;
    gst_query_parse_allocation(query, &caps, &need_pool);
    GST_OBJECT_LOCK(s);
    gboolean zero_copy = s->zero_copy;
    GST_OBJECT_UNLOCK(s);
    if (!caps || !s->wr)
        return TRUE;
    NdshmGstLayout l;
    gchar *why = NULL;
    if (!ndshm_gst_layout_from_caps(caps, &l, &why)) {
        g_free(why);
        return TRUE;
    }
    if (l.kind != NDSHM_GST_VIDEO)
        return TRUE; /* audio buffers vary in size: published by copy */
    gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, NULL);
    if (!zero_copy || !need_pool)
        return TRUE;
    GstBufferPool *pool = pool_new(s->wr, s->allocator);
    GstStructure *config = gst_buffer_pool_get_config(pool);
    gst_buffer_pool_config_set_params(config, caps, (guint)l.frame_bytes, 0, 0);
    if (!gst_buffer_pool_set_config(pool, config)) {
        gst_object_unref(pool);
        return TRUE;
    }
    gst_query_add_allocation_pool(query, pool, (guint)l.frame_bytes, 0, 0);
    gst_object_unref(pool);
    return TRUE;
}

static void extras_for(GstBuffer *buf, const gchar *caps, gsize caps_len, ndshm_extra *ex)
{
    ndshm_extra init = NDSHM_EXTRA_INIT;
    *ex = init;
    ex->meta = caps;
    ex->meta_len = (uint32_t)caps_len;
    if (GST_BUFFER_PTS_IS_VALID(buf)) {
        ex->user_ns = GST_BUFFER_PTS(buf);
        ex->user_tag = NDSHM_GST_TAG_PTS;
    }
}

static GstFlowReturn publish_failed(GstNdshmSink *s, int rc)
{
    if (rc == NDSHM_E_SUPERSEDED)
        GST_ELEMENT_ERROR(s, RESOURCE, WRITE,
                          ("The ndshm channel was taken over by another writer"),
                          ("%s", ndshm_strerror(rc)));
    else
        GST_ELEMENT_ERROR(s, RESOURCE, WRITE,
                          ("Could not publish to the ndshm channel: %s", ndshm_strerror(rc)),
                          ("%s", ndshm_status_name(rc)));
    return GST_FLOW_ERROR;
}

/* A buffer that is not the open loan is about to publish: detach the open loan once upstream
 * has stopped writing into it (wr->lock held). */
static void resolve_open_loan(GstNdshmSink *s, NdshmWriterRef *wr)
{
    NdshmLoanMemory *lm = wr->open_mem;
    if (!lm)
        return;
    gint64 until = g_get_monotonic_time() + 2 * G_TIME_SPAN_SECOND;
    while (wr->open_mem == lm && lm->maps > 0)
        if (!g_cond_wait_until(&wr->cond, &wr->lock, until)) {
            GST_WARNING_OBJECT(s, "loaned buffer still mapped after 2 s: detached anyway");
            break;
        }
    if (wr->open_mem != lm)
        return; /* freed or committed meanwhile */
    loan_detach(lm);
    int rc = ndshm_cancel(wr->w);
    if (rc != NDSHM_OK)
        GST_WARNING_OBJECT(s, "ndshm_cancel: %s", ndshm_strerror(rc));
    wr->open_loan = 0;
    wr->open_mem = NULL;
    g_cond_broadcast(&wr->cond);
    GST_OBJECT_LOCK(s);
    s->detached++;
    GST_OBJECT_UNLOCK(s);
}

static GstFlowReturn render_loan(GstNdshmSink *s, GstBuffer *buf, NdshmLoanMemory *lm,
                                 gboolean *done)
{
    NdshmWriterRef *wr = s->wr;
    *done = FALSE;
    g_mutex_lock(&wr->lock);
    if (lm->id != wr->open_loan) {
        g_mutex_unlock(&wr->lock);
        return GST_FLOW_OK; /* committed before or detached: publish by copy */
    }
    ndshm_extra ex;
    extras_for(buf, lm->caps, lm->caps_len, &ex);
    uint64_t version = 0;
    int rc = ndshm_commit_ex(wr->w, &ex, &version);
    if (rc != NDSHM_OK) {
        /* the loan stays open on NDSHM_E_TOO_SMALL only; cancel so the pool goes on */
        (void)ndshm_cancel(wr->w);
    }
    wr->open_loan = 0;
    wr->open_mem = NULL;
    gboolean shared =
        GST_MINI_OBJECT_REFCOUNT_VALUE(buf) > 1 || GST_MINI_OBJECT_REFCOUNT_VALUE(&lm->mem) > 1;
    if (shared)
        loan_detach(lm);
    g_cond_broadcast(&wr->cond);
    g_mutex_unlock(&wr->lock);
    *done = TRUE;
    if (rc != NDSHM_OK)
        return publish_failed(s, rc);
    GST_OBJECT_LOCK(s);
    s->published++;
    s->zero_copied++;
    s->detached += shared ? 1 : 0;
    s->last_version = version;
    GST_OBJECT_UNLOCK(s);
    GST_LOG_OBJECT(s, "version %" G_GUINT64_FORMAT " committed in place", (guint64)version);
    return GST_FLOW_OK;
}

static GstFlowReturn render_video_copy(GstNdshmSink *s, GstBuffer *buf)
{
    NdshmWriterRef *wr = s->wr;
    const NdshmGstLayout *l = &s->layout;
    GstVideoFrame frame;
    if (!gst_video_frame_map(&frame, (GstVideoInfo *)&l->vinfo, buf, GST_MAP_READ)) {
        GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Could not map a video buffer"),
                          ("buffer of %zu bytes for %s", gst_buffer_get_size(buf), s->caps));
        return GST_FLOW_ERROR;
    }
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
    gsize stride = (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    ndshm_extra ex;
    extras_for(buf, s->caps, s->caps_len, &ex);
    uint64_t version = 0;
    int rc;
    g_mutex_lock(&wr->lock);
    resolve_open_loan(s, wr);
    if (stride == l->row_bytes) {
        rc = ndshm_publish_ex(wr->w, l->dtype, l->ndim, l->shape, src, &ex, &version);
    } else { /* row padding removed: rows copied one by one into a loan */
        void *dst = NULL;
        rc = ndshm_loan_ex(wr->w, l->dtype, l->ndim, l->shape, &ex, &dst);
        if (rc == NDSHM_OK) {
            for (guint64 y = 0; y < l->shape[0]; y++)
                memcpy((guint8 *)dst + y * l->row_bytes, src + y * stride, l->row_bytes);
            rc = ndshm_commit_ex(wr->w, &ex, &version);
            if (rc != NDSHM_OK)
                (void)ndshm_cancel(wr->w);
        }
    }
    g_mutex_unlock(&wr->lock);
    gst_video_frame_unmap(&frame);
    if (rc != NDSHM_OK)
        return publish_failed(s, rc);
    GST_OBJECT_LOCK(s);
    s->published++;
    s->copied++;
    s->last_version = version;
    GST_OBJECT_UNLOCK(s);
    return GST_FLOW_OK;
}

static GstFlowReturn render_audio(GstNdshmSink *s, GstBuffer *buf)
{
    NdshmWriterRef *wr = s->wr;
    const NdshmGstLayout *l = &s->layout;
    GstMapInfo map;
    if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
        GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Could not map an audio buffer"), (NULL));
        return GST_FLOW_ERROR;
    }
    if (map.size % l->frame_bytes != 0) {
        GST_ELEMENT_ERROR(s, STREAM, FORMAT, ("Audio buffer is not a whole number of frames"),
                          ("%zu bytes, %zu bytes per frame", map.size, l->frame_bytes));
        gst_buffer_unmap(buf, &map);
        return GST_FLOW_ERROR;
    }
    guint64 shape[2] = {map.size / l->frame_bytes, l->shape[1]};
    if (shape[0] == 0) {
        gst_buffer_unmap(buf, &map);
        return GST_FLOW_OK; /* an empty buffer is no version */
    }
    ndshm_extra ex;
    extras_for(buf, s->caps, s->caps_len, &ex);
    uint64_t version = 0;
    g_mutex_lock(&wr->lock);
    resolve_open_loan(s, wr);
    int rc = ndshm_publish_ex(wr->w, l->dtype, 2, shape, map.data, &ex, &version);
    g_mutex_unlock(&wr->lock);
    gst_buffer_unmap(buf, &map);
    if (rc != NDSHM_OK)
        return publish_failed(s, rc);
    GST_OBJECT_LOCK(s);
    s->published++;
    s->copied++;
    s->last_version = version;
    GST_OBJECT_UNLOCK(s);
    return GST_FLOW_OK;
}

static GstFlowReturn sink_render(GstBaseSink *bs, GstBuffer *buf)
{
    GstNdshmSink *s = GST_NDSHM_SINK(bs);
    if (!s->have_layout || !s->wr) {
        GST_ELEMENT_ERROR(s, CORE, NEGOTIATION, ("No caps before the first buffer"), (NULL));
        return GST_FLOW_NOT_NEGOTIATED;
    }
    NdshmLoanMemory *lm = loan_memory(buf, s->wr);
    if (lm) {
        gboolean done;
        GstFlowReturn ret = render_loan(s, buf, lm, &done);
        if (done)
            return ret;
    }
    if (s->layout.kind == NDSHM_GST_VIDEO)
        return render_video_copy(s, buf);
    return render_audio(s, buf);
}

static void sink_finalize(GObject *obj)
{
    GstNdshmSink *s = GST_NDSHM_SINK(obj);
    g_free(s->channel);
    g_free(s->caps);
    G_OBJECT_CLASS(gst_ndshm_sink_parent_class)->finalize(obj);
}

static void gst_ndshm_sink_class_init(GstNdshmSinkClass *klass)
{
    GObjectClass *oc = G_OBJECT_CLASS(klass);
    GstElementClass *ec = GST_ELEMENT_CLASS(klass);
    GstBaseSinkClass *bc = GST_BASE_SINK_CLASS(klass);
    GST_DEBUG_CATEGORY_INIT(ndshmsink_debug, "ndshmsink", 0, "ndshm sink");
    oc->set_property = sink_set_property;
    oc->get_property = sink_get_property;
    oc->finalize = sink_finalize;
    const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
    g_object_class_install_property(
        oc, PROP_CHANNEL,
        g_param_spec_string("channel", "Channel",
                            "Name of the ndshm channel to publish to (1-128 characters of "
                            "[A-Za-z0-9._-]); created when the element starts",
                            NULL, rw));
    g_object_class_install_property(
        oc, PROP_SLOTS,
        g_param_spec_uint("slots", "Slots",
                          "Ring slots of the channel: a reader that copies or views a version "
                          "has slots - 1 frame periods before it can be overwritten "
                          "(0 = the library default, 4)",
                          0, NDSHM_MAX_SLOTS, DEFAULT_SLOTS, rw));
    g_object_class_install_property(
        oc, PROP_MODE,
        g_param_spec_uint(
            "mode", "Mode",
            "Permission bits of the channel's files: who may read it (e.g. 0644 "
            "lets every local user read; group/other write bits are dropped). Octal on the "
            "command line (mode=0644); the default, 0600, shows here as 384",
            0, 0777, DEFAULT_MODE, rw));
    g_object_class_install_property(
        oc, PROP_UNLINK_ON_CLOSE,
        g_param_spec_boolean("unlink-on-close", "Unlink on close",
                             "Remove the channel when the element stops (readers still "
                             "attached see the writer gone)",
                             DEFAULT_UNLINK_ON_CLOSE, rw));
    g_object_class_install_property(
        oc, PROP_ZERO_COPY,
        g_param_spec_boolean("zero-copy", "Zero copy",
                             "Offer upstream a buffer pool whose buffers are loaned slots of "
                             "the channel (raw video), so frames are written straight into "
                             "shared memory; otherwise every buffer is published by one copy",
                             DEFAULT_ZERO_COPY, rw));
    g_object_class_install_property(
        oc, PROP_TAKEOVER,
        g_param_spec_boolean("takeover", "Take over",
                             "If the channel exists and its writer is gone (closed or dead), "
                             "take it over and continue its numbering; if FALSE an existing "
                             "channel is an error. A channel with a live writer is always an "
                             "error",
                             DEFAULT_TAKEOVER, rw));
    g_object_class_install_property(
        oc, PROP_STATS,
        g_param_spec_boxed("stats", "Statistics",
                           "Counters since start: published (versions), zero-copy (committed "
                           "in place), copied (published by copy), detached (loaned buffers "
                           "moved to private memory), version (the last one)",
                           GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
    gst_element_class_add_static_pad_template(ec, &sink_template);
    gst_element_class_set_static_metadata(
        ec, "ndshm sink", "Sink/Video/Audio",
        "Publishes every buffer as one version of an ndshm channel (dtype/shape from the caps, "
        "caps string and PTS with each version; zero-copy buffer pool for raw video)",
        "ndshm");
    bc->start = sink_start;
    bc->stop = sink_stop;
    bc->set_caps = sink_set_caps;
    bc->propose_allocation = sink_propose_allocation;
    bc->render = sink_render;
}

static void gst_ndshm_sink_init(GstNdshmSink *s)
{
    /* The last sample would hold a reference to every committed pool buffer, which then has
     * to be detached (copied out of its slot): off unless the user asks for it. */
    gst_base_sink_set_last_sample_enabled(GST_BASE_SINK(s), FALSE);
    s->slots = DEFAULT_SLOTS;
    s->mode = DEFAULT_MODE;
    s->unlink_on_close = DEFAULT_UNLINK_ON_CLOSE;
    s->zero_copy = DEFAULT_ZERO_COPY;
    s->takeover = DEFAULT_TAKEOVER;
}
