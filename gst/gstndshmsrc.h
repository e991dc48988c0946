#ifndef GST_NDSHM_SRC_H
#define GST_NDSHM_SRC_H

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_NDSHM_SRC (gst_ndshm_src_get_type())
G_DECLARE_FINAL_TYPE(GstNdshmSrc, gst_ndshm_src, GST, NDSHM_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(ndshmsrc);

G_END_DECLS

#endif
