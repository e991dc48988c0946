/* The GStreamer plugin "ndshm": ndshmsink and ndshmsrc (docs/gstreamer.md). */
#include <gst/gst.h>

#include "gstndshmsink.h"
#include "gstndshmsrc.h"

static gboolean plugin_init(GstPlugin *plugin)
{
    gboolean ok = GST_ELEMENT_REGISTER(ndshmsink, plugin);
    ok &= GST_ELEMENT_REGISTER(ndshmsrc, plugin);
    return ok;
}

#define PACKAGE "ndshm"
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, ndshm,
                  "ndshm: n-dimensional arrays between processes through shared memory "
                  "(versions with dtype, shape, drop counts; any number of consumers)",
                  plugin_init, PACKAGE_VERSION, GST_LICENSE_UNKNOWN, "ndshm", "ndshm")
