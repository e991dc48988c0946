#ifndef NDSHM_VERSION_H
#define NDSHM_VERSION_H

#define NDSHM_VERSION_MAJOR 0
#define NDSHM_VERSION_MINOR 1
#define NDSHM_VERSION_PATCH 0
#define NDSHM_VERSION_HEX                                                                          \
    ((NDSHM_VERSION_MAJOR << 16) | (NDSHM_VERSION_MINOR << 8) | NDSHM_VERSION_PATCH)
#define NDSHM_VERSION_STRING "0.1.0"

#endif /* NDSHM_VERSION_H */
