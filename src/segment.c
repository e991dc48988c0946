/*
 * Segments: channel names, the files of a channel, creating, mapping and trusting them.
 *
 * FILES (all in $NDSHM_DIR, default /dev/shm)
 *   "ndshm.<name>"                      control segment, one page (struct ndshm__ctl)
 *   "ndshm.<name>@<gen>.<token>"        data segment of generation <gen>; <token> is 16 hex
 *                                       digits of a random number drawn for that segment
 *   A name never contains '@', so the kinds never collide. A shared array uses the control
 *   segment's name (array.c), so a name is a channel or an array, never both.
 *
 * CREATION. A file is created without a name (O_TMPFILE), sized, its pages reserved
 * (fallocate: a full tmpfs fails here, not with SIGBUS later), initialised, and only then
 * given its name with linkat(), which fails if the name is taken. So no process ever sees a
 * half-initialised segment under a channel's name, and creation stays exclusive. Where the
 * file system lacks O_TMPFILE the file is created under its name with O_CREAT|O_EXCL; a
 * control segment is then "not ready" (NDSHM_E_NOT_READY) until its `ready` word is stored
 * last, with release. Data-segment names are unpredictable (the token), so nobody can block a
 * re-allocation by creating the next generation's file first.
 *
 * TRUST. Every open is O_NOFOLLOW|O_NONBLOCK (a planted symlink is refused; a planted FIFO
 * neither blocks nor is used: it is not a regular file). Readers open every file read-only.
 * A control segment is accepted only if it is a regular file that no one but its owner can
 * write (group/other write bits would let another user truncate it under its readers); a
 * data segment only if, in addition, it has the control segment's owner and carries the
 * control segment's random instance nonce, its generation and its token. Nothing read from
 * shared memory is trusted: every count, offset and length is checked against the mapping's
 * real size (fstat) before use, and the geometry is kept in a private copy.
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

void ndshm__ctl_name(char *out, const char *name)
{
    snprintf(out, NDSHM__SEG_MAX, "ndshm.%s", name);
}

void ndshm__data_name(char *out, const char *name, uint64_t gen, uint64_t token)
{
    snprintf(out, NDSHM__SEG_MAX, "ndshm.%s@%llu.%016llx", name, (unsigned long long)gen,
             (unsigned long long)token);
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

/* ----- creating ------------------------------------------------------------------------------ */

/* A new file of `size` bytes, exact mode (not masked by the umask), owner uid/gid (changed
 * only when it differs from ours: a root writer taking over a user's channel), pages
 * reserved, mapped read-write (uid UINT32_MAX: as created). *named says whether it already has its
 * name (the O_EXCL fallback) or still needs ndshm__seg_link(). */
static int seg_prepare(const char *seg, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size,
                       int *fd_out, int *named, struct ndshm__map *out)
{
    int fd = ndshm__os->open_tmp(mode);
    *named = 0;
    if (fd == -EOPNOTSUPP) {
        fd = ndshm__os->open(seg, 1, 1, mode);
        *named = 1;
    }
    if (fd < 0)
        return ndshm__errno_status(fd);
    struct ndshm__fstat st;
    int rc = ndshm__os->fchmod(fd, mode);
    if (!rc)
        rc = ndshm__os->fstat(fd, &st);
    /* Owned like the channel: a root writer taking over a user's channel, or a channel whose
     * group was changed to share it (chgrp), keeps every new file in that owner and group. */
    if (!rc && uid != UINT32_MAX && (st.uid != uid || st.gid != gid))
        rc = ndshm__os->fchown(fd, uid, gid);
    if (!rc)
        rc = ndshm__os->ftruncate(fd, size);
    if (!rc)
        rc = ndshm__os->fallocate(fd, size);
    void *p = NULL;
    if (!rc)
        p = ndshm__os->mmap(fd, size, 1, &rc);
    if (rc) {
        ndshm__os->close(fd);
        if (*named)
            ndshm__os->unlink(seg);
        return ndshm__errno_status(rc);
    }
    *fd_out = fd;
    out->base = p;
    out->size = size;
    return NDSHM_OK;
}

/* Give a prepared file its name (nothing to do if it has one already). */
static int seg_link(int fd, int named, const char *seg)
{
    return named ? NDSHM_OK : ndshm__errno_status(ndshm__os->link_tmp(fd, seg));
}

/* ----- control segments ---------------------------------------------------------------------- */

struct ndshm__ctl *ndshm__ctlh_ctl(const struct ndshm__ctlh *h)
{
    return h->map.base;
}

int ndshm__validate_ctl(const void *base, uint64_t size, const char *name)
{
    const struct ndshm__ctl *c = base;
    if (size < sizeof(struct ndshm__ctl))
        return NDSHM_E_CORRUPT;
    uint64_t magic = c->magic;
    if (magic == 0 && c->layout == 0)
        return NDSHM_E_NOT_READY; /* sized (zero pages), header not yet written */
    if ((magic & UINT64_C(0x00ffffffffffffff)) == NDSHM__ARRAY_PREFIX)
        return NDSHM_E_KIND;
    if (magic != NDSHM__CTL_MAGIC) {
        /* An older layout of ours ("NSHMCTL" + version digit, or layout 1's magic) is
         * recognised as such, not as foreign. */
        if ((magic & UINT64_C(0x00ffffffffffffff)) ==
                (NDSHM__CTL_MAGIC & UINT64_C(0x00ffffffffffffff)) ||
            magic == UINT64_C(0x314c54434d48534e))
            return NDSHM_E_LAYOUT;
        return NDSHM_E_MAGIC;
    }
    if (c->layout != NDSHM__LAYOUT)
        return NDSHM_E_LAYOUT;
    /* Pairs with the release store of `ready` by the creating writer: once we see it, every
     * field initialised before it is visible. */
    if (atomic_load_explicit(&((struct ndshm__ctl *)c)->ready, memory_order_acquire) !=
        NDSHM__READY)
        return NDSHM_E_NOT_READY;
    if (c->ctl_size != NDSHM__CTL_SIZE || size < c->ctl_size || c->nonce == 0)
        return NDSHM_E_CORRUPT;
    if (name && strncmp(c->name, name, sizeof c->name) != 0)
        return NDSHM_E_CORRUPT;
    return NDSHM_OK;
}

static int ctl_open_once(const char *name, int writable, struct ndshm__ctlh *out)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int fd = ndshm__os->open(seg, 0, writable, 0);
    if (fd < 0)
        return ndshm__errno_status(fd);
    struct ndshm__fstat st;
    int rc = ndshm__errno_status(ndshm__os->fstat(fd, &st));
    if (rc == NDSHM_OK && st.type != NDSHM__FT_REG)
        rc = NDSHM_E_UNTRUSTED; /* a FIFO, directory or device planted under the name */
    else if (rc == NDSHM_OK && st.size == 0)
        rc = NDSHM_E_NOT_READY; /* created (O_EXCL fallback), not yet sized */
    else if (rc == NDSHM_OK && st.size < sizeof(struct ndshm__ctl))
        rc = NDSHM_E_CORRUPT;
    struct ndshm__map m = {0};
    if (rc == NDSHM_OK) {
        int err = 0;
        m.base = ndshm__os->mmap(fd, st.size, writable, &err);
        m.size = st.size;
        rc = ndshm__errno_status(err);
    }
    if (rc == NDSHM_OK)
        rc = ndshm__validate_ctl(m.base, m.size, name);
    /* Checked after the magic, so that a shared array (whose mode is its own business) is
     * reported as NDSHM_E_KIND. */
    if (rc == NDSHM_OK && (st.mode & 022))
        rc = NDSHM_E_UNTRUSTED; /* others could truncate it under its readers */
    if (rc != NDSHM_OK) {
        ndshm__unmap(&m);
        ndshm__os->close(fd);
        return rc;
    }
    out->fd = fd;
    out->map = m;
    out->st = st;
    return NDSHM_OK;
}

uint64_t ndshm__ready_wait_ns = 250000000u;

int ndshm__ctl_open(const char *name, int writable, int wait, struct ndshm__ctlh *out)
{
    /* Only the O_EXCL fallback ever shows a control segment before it is ready (O_TMPFILE
     * files appear complete): give its creator a moment rather than fail. A creator that died
     * before `ready` still yields NDSHM_E_NOT_READY, after the bound. */
    uint64_t end = ndshm_now_ns() + (wait ? ndshm__ready_wait_ns : 0);
    for (;;) {
        int rc = ctl_open_once(name, writable, out);
        if (rc != NDSHM_E_NOT_READY || ndshm_now_ns() >= end)
            return rc;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void ndshm__ctl_close(struct ndshm__ctlh *h)
{
    ndshm__unmap(&h->map);
    if (h->fd >= 0)
        ndshm__os->close(h->fd); /* drops this handle's kernel locks */
    h->fd = -1;
}

int ndshm__ctl_same_file(const struct ndshm__ctlh *h, const char *name)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    struct ndshm__fstat st;
    if (ndshm__os->stat(seg, &st) != 0)
        return 0;
    return st.dev == h->st.dev && st.ino == h->st.ino;
}

int ndshm__ctl_writer_locked(const struct ndshm__ctlh *h)
{
    int rc = ndshm__os->lock_held(h->fd, NDSHM__LOCK_WRITER, NDSHM__RDLOCK);
    return rc < 0 ? ndshm__errno_status(rc) : rc;
}

/* ----- data segments ------------------------------------------------------------------------- */

int ndshm__geom_plan(uint32_t slots, uint64_t capacity, uint32_t meta_capacity,
                     struct ndshm__geom *g)
{
    if (slots == 0 || slots > NDSHM_MAX_SLOTS || capacity > NDSHM_MAX_CAPACITY ||
        meta_capacity > NDSHM_META_MAX)
        return NDSHM_E_LIMIT;
    /* Large payloads are page aligned (huge copies, user DMA targets); small ones share
     * pages but keep whole cache lines. Metadata sits between the header and the payload. */
    int big = capacity >= 65536;
    uint64_t align = big ? NDSHM__PAGE : NDSHM__CACHE_LINE;
    uint64_t cap = (capacity + align - 1) & ~(align - 1);
    if (cap == 0)
        cap = NDSHM__CACHE_LINE;
    uint32_t mcap = (meta_capacity + NDSHM__CACHE_LINE - 1) & ~(uint32_t)(NDSHM__CACHE_LINE - 1);
    uint64_t payload_off = NDSHM__SLOT_HDR + (uint64_t)mcap;
    payload_off = (payload_off + align - 1) & ~(align - 1);
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
    g->payload_offset = (uint32_t)payload_off;
    g->meta_capacity = mcap;
    return NDSHM_OK;
}

int ndshm__create_data(const char *name, struct ndshm__geom *g, uint32_t mode, uint32_t uid,
                       uint32_t gid, struct ndshm__map *out)
{
    /* A fresh random token per segment; on the (astronomically unlikely, or planted) chance
     * that the name is taken, draw another: we never remove a file we did not create. */
    for (int attempt = 0; attempt < 4; attempt++) {
        uint64_t token = 0;
        int rc = ndshm__errno_status(ndshm__os->random(&token, sizeof token));
        if (rc)
            return rc;
        token |= 1; /* never 0 */
        char seg[NDSHM__SEG_MAX];
        ndshm__data_name(seg, name, g->generation, token);
        int fd = -1, named = 0;
        struct ndshm__map m = {0};
        rc = seg_prepare(seg, mode, uid, gid, g->seg_size, &fd, &named, &m);
        if (rc == NDSHM_E_EXISTS)
            continue;
        if (rc)
            return rc;
        struct ndshm__data *d = m.base; /* pages start zeroed: slots have seq 0, version 0 */
        d->magic = NDSHM__DATA_MAGIC;
        d->layout = NDSHM__LAYOUT;
        d->hdr_size = sizeof *d;
        d->generation = g->generation;
        d->first_version = g->first_version;
        d->seg_size = g->seg_size;
        d->slots_offset = g->slots_offset;
        d->slot_stride = g->slot_stride;
        d->slot_capacity = g->slot_capacity;
        d->nonce = g->nonce;
        d->token = token;
        d->slot_count = g->slot_count;
        d->payload_offset = g->payload_offset;
        d->meta_capacity = g->meta_capacity;
        atomic_store_explicit(&d->sealed, NDSHM__UNSEALED, memory_order_relaxed);
        rc = seg_link(fd, named, seg);
        ndshm__os->close(fd);
        if (rc == NDSHM_E_EXISTS) {
            ndshm__unmap(&m);
            continue;
        }
        if (rc) {
            ndshm__unmap(&m);
            return rc;
        }
        g->token = token;
        *out = m;
        return NDSHM_OK;
    }
    return NDSHM_E_EXISTS;
}

int ndshm__validate_data(const void *base, uint64_t size, uint64_t gen, uint64_t nonce,
                         uint64_t token, struct ndshm__geom *g)
{
    const struct ndshm__data *d = base;
    if (size < sizeof *d)
        return NDSHM_E_CORRUPT;
    if (d->magic != NDSHM__DATA_MAGIC)
        return NDSHM_E_MAGIC;
    if (d->layout != NDSHM__LAYOUT)
        return NDSHM_E_LAYOUT;
    /* Another channel's segment (a removed and re-created namesake, or a planted file). */
    if (d->nonce != nonce || d->token != token)
        return NDSHM_E_UNTRUSTED;
    struct ndshm__geom v = {
        .generation = d->generation,
        .first_version = d->first_version,
        .seg_size = d->seg_size,
        .slots_offset = d->slots_offset,
        .slot_stride = d->slot_stride,
        .slot_capacity = d->slot_capacity,
        .nonce = d->nonce,
        .token = d->token,
        .slot_count = d->slot_count,
        .payload_offset = d->payload_offset,
        .meta_capacity = d->meta_capacity,
    };
    /* Check everything against the real mapping size before any use. */
    if (d->hdr_size != sizeof *d || v.generation != gen || v.seg_size > size || v.slot_count == 0 ||
        v.slot_count > NDSHM_MAX_SLOTS || v.slots_offset < sizeof *d ||
        v.slots_offset % NDSHM__CACHE_LINE || v.meta_capacity > NDSHM_META_MAX ||
        v.meta_capacity % NDSHM__CACHE_LINE ||
        v.payload_offset < NDSHM__SLOT_HDR + (uint64_t)v.meta_capacity ||
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

int ndshm__map_data(const char *name, uint64_t gen, uint64_t token, const struct ndshm__ctlh *ctl,
                    int writable, struct ndshm__map *out, struct ndshm__geom *g)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__data_name(seg, name, gen, token);
    int fd = ndshm__os->open(seg, 0, writable, 0);
    if (fd < 0)
        return ndshm__errno_status(fd);
    struct ndshm__fstat st;
    int rc = ndshm__errno_status(ndshm__os->fstat(fd, &st));
    /* Regular, owned by the control segment's owner, writable by nobody else: a file another
     * user planted (or a group member could rewrite) is never read. */
    if (rc == NDSHM_OK &&
        (st.type != NDSHM__FT_REG || st.uid != ctl->st.uid || (st.mode & 022) != 0))
        rc = NDSHM_E_UNTRUSTED;
    else if (rc == NDSHM_OK && st.size < sizeof(struct ndshm__data))
        rc = NDSHM_E_CORRUPT;
    struct ndshm__map m = {0};
    if (rc == NDSHM_OK) {
        int err = 0;
        m.base = ndshm__os->mmap(fd, st.size, writable, &err);
        m.size = st.size;
        rc = ndshm__errno_status(err);
    }
    ndshm__os->close(fd);
    if (rc == NDSHM_OK)
        rc = ndshm__validate_data(m.base, m.size, gen, ndshm__ctlh_ctl(ctl)->nonce, token, g);
    if (rc) {
        ndshm__unmap(&m);
        return rc;
    }
    *out = m;
    return NDSHM_OK;
}

/* ----- creating a channel's control segment (used by writer.c) ------------------------------- */

/* Prepare a control segment: a file with the header written but `ready` 0, not yet under
 * its name (unless the O_EXCL fallback had to name it). The caller takes the writer lock,
 * creates the first data segment, stores `ready` and calls ndshm__ctl_link(). */
int ndshm__ctl_prepare(const char *name, uint32_t mode, uint32_t flags, struct ndshm__ctlh *out,
                       int *named)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int fd = -1;
    struct ndshm__map m = {0};
    int rc = seg_prepare(seg, mode, UINT32_MAX, UINT32_MAX, NDSHM__CTL_SIZE, &fd, named, &m);
    if (rc)
        return rc;
    /* The writer lock first: in the O_EXCL fallback the file is already visible, and a
     * locked file is never judged abandoned. */
    int lk = ndshm__os->lock(fd, NDSHM__LOCK_WRITER, NDSHM__WRLOCK);
    uint64_t nonce = 0;
    if (!lk)
        lk = ndshm__os->random(&nonce, sizeof nonce);
    if (!lk)
        lk = ndshm__os->fstat(fd, &out->st);
    if (lk) {
        ndshm__unmap(&m);
        ndshm__os->close(fd);
        if (*named)
            ndshm__os->unlink(seg);
        return ndshm__errno_status(lk);
    }
    struct ndshm__ctl *c = m.base; /* tmpfs pages start zeroed */
    c->magic = NDSHM__CTL_MAGIC;
    c->layout = NDSHM__LAYOUT;
    c->ctl_size = NDSHM__CTL_SIZE;
    c->mode = mode;
    c->created_ns = ndshm__realtime_ns();
    c->nonce = nonce | 1;
    atomic_store_explicit(&c->flags, flags, memory_order_relaxed);
    atomic_store_explicit(&c->wait_id, -1, memory_order_relaxed);
    snprintf(c->name, sizeof c->name, "%s", name);
    out->fd = fd;
    out->map = m;
    return NDSHM_OK;
}

int ndshm__ctl_link(struct ndshm__ctlh *h, int named, const char *name)
{
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int rc = seg_link(h->fd, named, seg);
    if (rc == NDSHM_OK && !named)
        (void)ndshm__os->fstat(h->fd, &h->st); /* the same inode; refresh ctime */
    return rc;
}
