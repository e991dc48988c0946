/* Status names and messages, generated from NDSHM_STATUS_MAP. */
#include <math.h>
#include <string.h>

#include "internal.h"

const char *ndshm_status_name(int status)
{
    if (status <= NDSHM_E_SYS)
        return "NDSHM_E_SYS";
    switch (status) {
#define NDSHM__NAME(name, value, text)                                                             \
    case value:                                                                                    \
        return "NDSHM_" #name;
        NDSHM_STATUS_MAP(NDSHM__NAME)
#undef NDSHM__NAME
    }
    return "NDSHM_UNKNOWN";
}

const char *ndshm_strerror(int status)
{
    if (status < NDSHM_E_SYS)
        return strerror(NDSHM_SYS_ERRNO(status)); /* glibc: static text, never NULL */
    switch (status) {
#define NDSHM__TEXT(name, value, text)                                                             \
    case value:                                                                                    \
        return text;
        NDSHM_STATUS_MAP(NDSHM__TEXT)
#undef NDSHM__TEXT
    }
    return "unknown ndshm status";
}

const char *ndshm_version(void)
{
    return NDSHM_VERSION_STRING;
}

uint32_t ndshm_slots_for(double rate_hz, double hold_s, double write_s)
{
    if (!isfinite(rate_hz) || !isfinite(hold_s) || !isfinite(write_s) || rate_hz < 0 ||
        hold_s < 0 || write_s < 0)
        return 0;
    double n = ceil(rate_hz * (hold_s + write_s) - 1e-9) + 1; /* tolerate rounding of f*h */
    if (n > NDSHM_MAX_SLOTS)
        return 0;
    return n < 2 ? 2 : (uint32_t)n;
}
