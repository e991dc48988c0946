/*
 * Segments: channel names, creating, mapping and validating the control and data segments.
 * Nothing read from shared memory is trusted: every count, offset and length is checked
 * against the mapping's real size (fstat) before use.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "array_internal.h" /* shared arrays: the other kind of name */

int ndshm_name_check(const char *name)
{
    if (!name)
        return NDSHM_E_INVAL;
    size_t len = strnlen(name, NDSHM_NAME_MAX + 1);
    if (len == 0 || len > NDSHM_NAME_MAX || name[0] == '.')
        return NDSHM_E_NAME;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return NDSHM_E_NAME;
    }
    return NDSHM_OK;
}

int ndshm__name_dir_check(const char *name)
{
    int rc = ndshm_name_check(name);
    return rc ? rc : ndshm__dir_status();
}

/* "ndshm.<name>" and "ndshm.<name>@<gen>": '@' never occurs in a name, so the two kinds can
 * never collide whatever names users choose. */
void ndshm__ctl_name(char *out, const char *name)
{
    snprintf(out, NDSHM__SEG_MAX, "ndshm.%s", name);
}

void ndshm__data_name(char *out, const char *name, uint64_t gen)
{
    snprintf(out, NDSHM__SEG_MAX, "ndshm.%s@%llu", name, (unsigned long long)gen);
}

void ndshm__unmap(struct ndshm__map *m)
{
    if (m->base) {
        int rc = ndshm__os->munmap(m->base, m->size);
        NDSHM__INVARIANT(rc == 0); /* only fails for a bad address: our own bug */
    }
    m->base = NULL;
    m->size = 0;
}

/* Open + fstat + mmap one segment; on success the fd is closed (the mapping keeps it). A
 * FIFO, directory or device planted under the name is refused (NDSHM_E_UNTRUSTED) without
 * ever blocking: the open is O_NONBLOCK. */
static int map_seg(const char *seg, int writable, uint64_t min_size, int empty_status,
                   struct ndshm__map *out, uint32_t *mode)
{
    int fd = ndshm__os->open(seg, 0, writable, 0);
    if (fd < 0)
        return ndshm__errno_status(fd);
    struct ndshm__fstat st;
    int rc = ndshm__os->fstat(fd, &st);
    if (rc == 0 && st.type != NDSHM__FT_REG) {
        ndshm__os->close(fd);
        return NDSHM_E_UNTRUSTED;
    }
    if (rc == 0 && st.size < min_size)
        rc = st.size == 0 ? 2 : 1;
    void *p = NULL;
    if (rc == 0)
        p = ndshm__os->mmap(fd, st.size, writable, &rc);
    ndshm__os->close(fd);
    /* An empty file is a segment whose creator has opened it (O_EXCL) but not yet sized it:
     * only control segments are ever visible in that state (a data segment is published by
     * gen only once complete), and a control segment in creation is "not ready", not
     * corrupt. */
    if (rc == 2)
        return empty_status;
    if (rc == 1)
        return NDSHM_E_CORRUPT;
    if (rc)
        return ndshm__errno_status(rc);
    if (mode)
        *mode = st.mode;
    out->base = p;
    out->size = st.size;
    return NDSHM_OK;
}

/* Create a segment of `size` bytes: O_EXCL, exact mode, pages reserved, mapped read-write. */
static int create_seg(const char *seg, uint32_t mode, uint64_t size, struct ndshm__map *out)
{
    int fd = ndshm__os->open(seg, 1, 1, mode);
    if (fd < 0)
        return ndshm__errno_status(fd);
    int rc = ndshm__os->fchmod(fd, mode); /* the caller's mode, not masked by the umask */
    if (!rc)
        rc = ndshm__os->ftruncate(fd, size);
    if (!rc)
        rc = ndshm__os->fallocate(fd, size);
    void *p = NULL;
    if (!rc)
        p = ndshm__os->mmap(fd, size, 1, &rc);
    ndshm__os->close(fd);
    if (rc) {
        ndshm__os->unlink(seg);
        return ndshm__errno_status(rc);
    }
    out->base = p;
    out->size = size;
    return NDSHM_OK;
}

int ndshm__validate_ctl(const void *base, uint64_t size, const char *name)
{
    const struct ndshm__ctl *c = base;
    if (size < sizeof(struct ndshm__ctl))
        return NDSHM_E_CORRUPT;
    if (c->magic == 0 && c->layout == 0)
        return NDSHM_E_NOT_READY; /* sized (zero pages), header not yet written */
    if (c->magic != NDSHM__CTL_MAGIC)
        return c->magic == NDSHM__ARR_MAGIC ? NDSHM_E_KIND : NDSHM_E_MAGIC; /* a shared array */
    if (c->layout != NDSHM__LAYOUT)
        return NDSHM_E_LAYOUT;
    /* Pairs with the release store of `ready` in ndshm__create_ctl(): once we see it, every
     * field initialised before it is visible. */
    if (atomic_load_explicit(&((struct ndshm__ctl *)c)->ready, memory_order_acquire) !=
        NDSHM__READY)
        return NDSHM_E_NOT_READY;
    if (c->ctl_size != NDSHM__CTL_SIZE || size < c->ctl_size)
        return NDSHM_E_CORRUPT;
    if (name && strncmp(c->name, name, sizeof c->name) != 0)
        return NDSHM_E_CORRUPT;
    return NDSHM_OK;
}

int ndshm__map_ctl(const char *name, int writable, struct ndshm__map *out, uint32_t *mode)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    struct ndshm__map m = {0};
    int rc = map_seg(seg, writable, 1, NDSHM_E_NOT_READY, &m, mode);
    if (rc)
        return rc;
    rc = ndshm__validate_ctl(m.base, m.size, name);
    if (rc) {
        ndshm__unmap(&m);
        return rc;
    }
    *out = m;
    return NDSHM_OK;
}

uint64_t ndshm__ready_wait_ns = 250000000u;

int ndshm__map_ctl_wait(const char *name, int writable, struct ndshm__map *out, uint32_t *mode)
{
    /* A channel being created is not ready until its first data segment exists (reserving
     * its pages can take milliseconds): give the creator a moment rather than fail. A creator
     * that died before `ready` still yields NDSHM_E_NOT_READY, after the bound. */
    uint64_t end = ndshm_now_ns() + ndshm__ready_wait_ns;
    for (;;) {
        int rc = ndshm__map_ctl(name, writable, out, mode);
        if (rc != NDSHM_E_NOT_READY || ndshm_now_ns() >= end)
            return rc;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int ndshm__create_ctl(const char *name, uint32_t mode, struct ndshm__map *out)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    struct ndshm__map m = {0};
    int rc = create_seg(seg, mode, NDSHM__CTL_SIZE, &m);
    if (rc)
        return rc;
    struct ndshm__ctl *c = m.base; /* tmpfs pages start zeroed */
    c->magic = NDSHM__CTL_MAGIC;
    c->layout = NDSHM__LAYOUT;
    c->ctl_size = NDSHM__CTL_SIZE;
    c->mode = mode;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    snprintf(c->name, sizeof c->name, "%s", name);
    /* `ready` is left 0 here: the writer stores it (release) once gen and the first data
     * segment exist. */
    *out = m;
    return NDSHM_OK;
}

int ndshm__geom_plan(uint32_t slots, uint64_t capacity, struct ndshm__geom *g)
{
    if (slots == 0 || slots > NDSHM_MAX_SLOTS || capacity > NDSHM_MAX_CAPACITY)
        return NDSHM_E_LIMIT;
    /* Large payloads are page aligned (huge copies, user DMA targets); small ones share
     * pages but keep whole cache lines. */
    int big = capacity >= 65536;
    uint64_t align = big ? NDSHM__PAGE : NDSHM__CACHE_LINE;
    uint64_t cap = (capacity + align - 1) & ~(align - 1);
    if (cap == 0)
        cap = NDSHM__CACHE_LINE;
    uint32_t payload_off = big ? NDSHM__PAGE : NDSHM__SLOT_HDR;
    uint64_t stride = payload_off + cap;
    uint64_t slots_off = big ? NDSHM__PAGE : sizeof(struct ndshm__data);
    uint64_t total;
    if (__builtin_mul_overflow(stride, (uint64_t)slots, &total) ||
        __builtin_add_overflow(total, slots_off, &total) || total > (UINT64_C(1) << 46))
        return NDSHM_E_LIMIT;
    g->seg_size = total;
    g->slots_offset = slots_off;
    g->slot_stride = stride;
    g->slot_capacity = cap;
    g->slot_count = slots;
    g->payload_offset = payload_off;
    return NDSHM_OK;
}

int ndshm__create_data(const char *name, const struct ndshm__geom *g, uint32_t mode,
                       struct ndshm__map *out)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, name, g->generation);
    struct ndshm__map m = {0};
    int rc = create_seg(seg, mode, g->seg_size, &m);
    if (rc == NDSHM_E_EXISTS) {
        /* A stale segment of a writer that died mid re-allocation; it was never published
         * (gen not advanced), so nobody uses it. */
        ndshm__os->unlink(seg);
        rc = create_seg(seg, mode, g->seg_size, &m);
    }
    if (rc)
        return rc;
    struct ndshm__data *d = m.base;
    d->magic = NDSHM__DATA_MAGIC;
    d->layout = NDSHM__LAYOUT;
    d->hdr_size = sizeof *d;
    d->generation = g->generation;
    d->first_version = g->first_version;
    d->seg_size = g->seg_size;
    d->slots_offset = g->slots_offset;
    d->slot_stride = g->slot_stride;
    d->slot_capacity = g->slot_capacity;
    d->slot_count = g->slot_count;
    d->payload_offset = g->payload_offset;
    atomic_store_explicit(&d->sealed, NDSHM__UNSEALED, memory_order_relaxed);
    /* slots are zero: seq 0 (even), version 0 (invalid) */
    *out = m;
    return NDSHM_OK;
}

int ndshm__validate_data(const void *base, uint64_t size, uint64_t gen, struct ndshm__geom *g)
{
    const struct ndshm__data *d = base;
    if (size < sizeof *d)
        return NDSHM_E_CORRUPT;
    if (d->magic != NDSHM__DATA_MAGIC)
        return NDSHM_E_MAGIC;
    if (d->layout != NDSHM__LAYOUT)
        return NDSHM_E_LAYOUT;
    struct ndshm__geom v = {
        .generation = d->generation,
        .first_version = d->first_version,
        .seg_size = d->seg_size,
        .slots_offset = d->slots_offset,
        .slot_stride = d->slot_stride,
        .slot_capacity = d->slot_capacity,
        .slot_count = d->slot_count,
        .payload_offset = d->payload_offset,
    };
    /* Check everything against the real mapping size before any use. */
    if (d->hdr_size != sizeof *d || v.generation != gen || v.seg_size > size || v.slot_count == 0 ||
        v.slot_count > NDSHM_MAX_SLOTS || v.slots_offset < sizeof *d ||
        v.slots_offset % NDSHM__CACHE_LINE || v.payload_offset < sizeof(struct ndshm__slot) ||
        v.payload_offset % NDSHM__CACHE_LINE || v.slot_stride % NDSHM__CACHE_LINE ||
        v.slot_capacity > NDSHM_MAX_CAPACITY || v.first_version == 0)
        return NDSHM_E_CORRUPT;
    uint64_t need;
    if (__builtin_add_overflow(v.payload_offset, v.slot_capacity, &need) || need > v.slot_stride)
        return NDSHM_E_CORRUPT;
    if (__builtin_mul_overflow(v.slot_stride, (uint64_t)v.slot_count, &need) ||
        __builtin_add_overflow(need, v.slots_offset, &need) || need > v.seg_size)
        return NDSHM_E_CORRUPT;
    *g = v;
    return NDSHM_OK;
}

int ndshm__map_data(const char *name, uint64_t gen, int writable, struct ndshm__map *out,
                    struct ndshm__geom *g)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, name, gen);
    struct ndshm__map m = {0};
    int rc = map_seg(seg, writable, sizeof(struct ndshm__data), NDSHM_E_CORRUPT, &m, NULL);
    if (rc)
        return rc;
    rc = ndshm__validate_data(m.base, m.size, gen, g);
    if (rc) {
        ndshm__unmap(&m);
        return rc;
    }
    *out = m;
    return NDSHM_OK;
}

/* Identity word: (start time mod 2^32) << 32 | pid. Alive = the pid exists and, when the
 * start time is readable, it matches, so a recycled pid is not mistaken for the writer. */
uint64_t ndshm__self_identity(void)
{
    int64_t pid = ndshm__self_pid();
    uint64_t start = ndshm__os->proc_start(pid);
    return (start & UINT32_MAX) << 32 | ((uint64_t)pid & UINT32_MAX);
}

int ndshm__identity_alive(uint64_t identity)
{
    int64_t pid = (int64_t)(identity & UINT32_MAX);
    uint32_t start = (uint32_t)(identity >> 32);
    if (pid <= 0 || !ndshm__os->pid_exists(pid))
        return 0;
    uint64_t now = ndshm__os->proc_start(pid);
    /* 0: /proc unreadable (hidepid) or unknown at claim time: trust the pid alone */
    return now == 0 || start == 0 || (uint32_t)now == start;
}

int ndshm__writer_alive(const struct ndshm__ctl *ctl)
{
    struct ndshm__ctl *c = (struct ndshm__ctl *)ctl;
    return ndshm__identity_alive(atomic_load_explicit(&c->writer, memory_order_acquire));
}

/* A control segment that never became ready: its creator died if the identity it recorded
 * (before anything else) is dead, or if none was recorded and it is older than 10 s. */
int ndshm__ctl_creator_dead(const char *name)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    struct ndshm__map m = {0};
    if (map_seg(seg, 0, sizeof(struct ndshm__ctl), NDSHM_E_CORRUPT, &m, NULL) != NDSHM_OK)
        return 0;
    struct ndshm__ctl *c = m.base;
    int dead = 0;
    if (c->magic == NDSHM__CTL_MAGIC &&
        atomic_load_explicit(&c->ready, memory_order_acquire) != NDSHM__READY) {
        uint64_t ident = atomic_load_explicit(&c->writer, memory_order_acquire);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        dead = ident ? !ndshm__identity_alive(ident)
                     : (now > c->created_ns && now - c->created_ns > UINT64_C(10000000000));
    }
    ndshm__unmap(&m);
    return dead;
}
