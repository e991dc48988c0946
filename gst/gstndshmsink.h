#ifndef GST_NDSHM_SINK_H
#define GST_NDSHM_SINK_H

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_NDSHM_SINK (gst_ndshm_sink_get_type())
G_DECLARE_FINAL_TYPE(GstNdshmSink, gst_ndshm_sink, GST, NDSHM_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE(ndshmsink);

/* user_tag bit set by ndshmsink: user_ns holds the buffer's PTS (so PTS 0 is not "none"). */
#define NDSHM_GST_TAG_PTS 1u

G_END_DECLS

#endif
