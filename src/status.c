/* Status names and messages, generated from NDSHM_STATUS_MAP. */
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
