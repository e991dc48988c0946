/* Channels on this machine: list, stat, unlink, garbage-collect. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "array_internal.h" /* shared arrays: the other kind of name */

/* A file nobody claims is stale once this old (tests lower it). */
int64_t ndshm__orphan_age_ns = INT64_C(10) * 1000000000;

static int parse_u64(const char *p, const char *end, int base, uint64_t *out)
{
    uint64_t v = 0;
    if (p >= end)
        return 0;
    for (; p < end; p++) {
        int dgt;
        if (*p >= '0' && *p <= '9')
            dgt = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            dgt = *p - 'a' + 10;
        else
            return 0;
        if (__builtin_mul_overflow(v, (uint64_t)base, &v) ||
            __builtin_add_overflow(v, (uint64_t)dgt, &v))
            return 0;
    }
    *out = v;
    return 1;
}

int ndshm__parse_entry(const char *entry, char *name, uint64_t *gen, uint64_t *token)
{
    if (strncmp(entry, "ndshm.", 6) != 0)
        return 0;
    const char *n = entry + 6;
    const char *at = strchr(n, '@');
    size_t len = at ? (size_t)(at - n) : strlen(n);
    if (len == 0 || len > NDSHM_NAME_MAX)
        return 0;
    memcpy(name, n, len);
    name[len] = 0;
    if (ndshm_name_check(name) != NDSHM_OK)
        return 0;
    if (!at)
        return 1;
    /* "@<gen>.<token>" (layout 2) or "@<gen>" (layout 1: token 0) */
    const char *p = at + 1, *dot = strchr(p, '.'), *end = p + strlen(p);
    *token = 0;
    if (dot) {
        if (end - (dot + 1) != 16 || !parse_u64(dot + 1, end, 16, token))
            return 0;
        end = dot;
    }
    return parse_u64(p, end, 10, gen) ? 2 : 0;
}

/* The instance nonce a data segment carries (0 if it cannot be read). */
static uint64_t data_nonce(const char *entry)
{
    int fd = ndshm__os->open(entry, 0, 0, 0);
    if (fd < 0)
        return 0;
    struct ndshm__fstat st;
    uint64_t nonce = 0;
    if (ndshm__os->fstat(fd, &st) == 0 && st.type == NDSHM__FT_REG &&
        st.size >= sizeof(struct ndshm__data)) {
        int err = 0;
        const struct ndshm__data *d = ndshm__os->mmap(fd, sizeof *d, 0, &err);
        if (d) {
            if (d->magic == NDSHM__DATA_MAGIC)
                nonce = d->nonce;
            ndshm__os->munmap((void *)d, sizeof *d);
        }
    }
    ndshm__os->close(fd);
    return nonce;
}

struct unlink_ctx {
    const char *name;
    uint64_t nonce, keep_gen, keep_token;
    int count;
};

static int unlink_cb(const char *entry, void *arg)
{
    struct unlink_ctx *u = arg;
    char name[NDSHM_NAME_MAX + 1];
    uint64_t gen = 0, token = 0;
    if (ndshm__parse_entry(entry, name, &gen, &token) != 2 || strcmp(name, u->name) != 0)
        return 0;
    if (gen == u->keep_gen && token == u->keep_token)
        return 0;
    /* With a nonce: only this instance's segments (an older instance's writer may still be
     * using its own under the same name). */
    if (u->nonce && data_nonce(entry) != u->nonce)
        return 0;
    if (ndshm__os->unlink(entry) == 0)
        u->count++;
    return 0;
}

int ndshm__unlink_data(const char *name, uint64_t nonce, uint64_t keep_gen, uint64_t keep_token)
{
    struct unlink_ctx u = {name, nonce, keep_gen, keep_token, 0};
    int rc = ndshm__os->list(unlink_cb, &u);
    return rc < 0 ? ndshm__errno_status(rc) : u.count;
}

int ndshm_unlink(const char *name)
{
    int rc = ndshm__name_dir_check(name);
    if (rc)
        return rc;
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int ctl = ndshm__os->unlink(seg);
    int data = ndshm__unlink_data(name, 0, UINT64_MAX, 0);
    if (ctl == 0 || data > 0)
        return NDSHM_OK;
    if (data < 0)
        return data;
    return ndshm__errno_status(ctl);
}

int ndshm_stat(const char *name, ndshm_channel_info *out)
{
    int rc = ndshm__name_dir_check(name);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    struct ndshm__ctlh h = NDSHM__CTLH_INIT;
    if ((rc = ndshm__ctl_open(name, 0, 0, &h)) != NDSHM_OK)
        return rc == NDSHM_E_KIND ? ndshm__array_stat_entry(name, out) : rc; /* array.c */
    struct ndshm__ctl *c = ndshm__ctlh_ctl(&h);
    ndshm_channel_info ci;
    memset(&ci, 0, sizeof ci);
    snprintf(ci.name, sizeof ci.name, "%s", name);
    ci.kind = NDSHM_KIND_CHANNEL;
    ci.order = NDSHM_ORDER_C;
    ci.mode = h.st.mode;
    ci.created_ns = c->created_ns;
    int locked = ndshm__ctl_writer_locked(&h);
    ci.writer_alive = locked > 0;
    if (atomic_load_explicit(&c->owner, memory_order_acquire) != 0) {
        ci.writer_pid = atomic_load_explicit(&c->writer_pid, memory_order_relaxed);
        uint64_t ns = atomic_load_explicit(&c->writer_pidns, memory_order_relaxed);
        uint64_t mine = ndshm__os->pidns();
        if (ns && mine && ns != mine)
            ci.flags |= NDSHM_ENTRY_OTHER_PIDNS;
    }
    if (atomic_load_explicit(&c->flags, memory_order_relaxed) & NDSHM__CTL_PERSISTENT)
        ci.flags |= NDSHM_ENTRY_PERSISTENT;
    int n = ndshm__os->lock_count(h.st.dev, h.st.ino, NDSHM__LOCK_READERS);
    ci.attached = n < 0 ? -1 : n;
    ci.reallocs = atomic_load_explicit(&c->reallocs, memory_order_relaxed);
    /* The data segment can be replaced while we look: retry a few times. */
    rc = NDSHM_E_NOENT;
    for (int i = 0; i < 100 && rc == NDSHM_E_NOENT; i++) {
        uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
        uint64_t token = atomic_load_explicit(&c->token[gen % 2], memory_order_acquire);
        uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
        struct ndshm__map dm = {0};
        struct ndshm__geom g;
        rc = ndshm__map_data(name, gen, token, &h, 0, &dm, &g);
        if (rc)
            continue;
        ci.generation = gen;
        ci.version = head;
        ci.slots = g.slot_count;
        ci.capacity = g.slot_capacity;
        ci.bytes = h.map.size + dm.size;
        if (head) {
            struct ndshm__meta meta;
            uint64_t seq;
            for (int k = 0; k < 64; k++) {
                enum ndshm__try t = ndshm__slot_read(ndshm__slot_at(dm.base, &g, head), &g, head,
                                                     NULL, &meta, &seq);
                if (t == NDSHM__GOT) {
                    ci.dtype = meta.dtype;
                    ci.ndim = meta.ndim;
                    memcpy(ci.shape, meta.shape, meta.ndim * sizeof meta.shape[0]);
                    ci.publish_ns = meta.publish_ns;
                    ci.nbytes = meta.nbytes;
                    break;
                }
                if (t == NDSHM__BAD)
                    break;
            }
        }
        ndshm__unmap(&dm);
    }
    if (rc == NDSHM_E_NOENT && ndshm__ctl_same_file(&h, name))
        rc = NDSHM_E_CORRUPT; /* a channel whose data segment is missing */
    ndshm__ctl_close(&h);
    if (rc)
        return rc;
    *out = ci;
    return NDSHM_OK;
}

struct list_ctx {
    ndshm_channel_info *items;
    size_t count, cap;
    int err;
};

static int list_cb(const char *entry, void *arg)
{
    struct list_ctx *l = arg;
    char name[NDSHM_NAME_MAX + 1];
    uint64_t gen, token;
    if (ndshm__parse_entry(entry, name, &gen, &token) != 1)
        return 0;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->items, cap * sizeof *l->items);
        if (!p) {
            l->err = NDSHM_E_NOMEM;
            return 1;
        }
        l->items = p;
        l->cap = cap;
    }
    ndshm_channel_info *ci = &l->items[l->count++];
    int rc = ndshm_stat(name, ci);
    if (rc) {
        memset(ci, 0, sizeof *ci);
        snprintf(ci->name, sizeof ci->name, "%s", name);
        ci->attached = -1;
        ci->status = rc;
    }
    return 0;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const ndshm_channel_info *)a)->name, ((const ndshm_channel_info *)b)->name);
}

int ndshm_list(ndshm_channel_info **list, size_t *count)
{
    if (!list || !count)
        return NDSHM_E_INVAL;
    int drc = ndshm__dir_status();
    if (drc)
        return drc;
    struct list_ctx l = {0};
    int rc = ndshm__os->list(list_cb, &l);
    if (rc < 0 || l.err) {
        free(l.items);
        return l.err ? l.err : ndshm__errno_status(rc);
    }
    if (l.count)
        qsort(l.items, l.count, sizeof *l.items, cmp_info);
    *list = l.items;
    *count = l.count;
    return NDSHM_OK;
}

void ndshm_list_free(ndshm_channel_info *list)
{
    free(list);
}

/* ----- gc ------------------------------------------------------------------------------------ */

static int old_enough(const struct ndshm__fstat *st)
{
    return (int64_t)ndshm__realtime_ns() - st->ctime_ns > ndshm__orphan_age_ns;
}

/* Remove channel `name` if it has no writer: only while holding its writer lock (so a
 * takeover cannot land in between), only if the name still refers to the file we locked,
 * never a persistent channel. Returns 1 if removed. */
static int gc_channel(const char *name)
{
    struct ndshm__ctlh h = NDSHM__CTLH_INIT;
    int rc = ndshm__ctl_open(name, 1, 0, &h);
    int removed = 0;
    if (rc == NDSHM_OK) {
        struct ndshm__ctl *c = ndshm__ctlh_ctl(&h);
        if (!(atomic_load_explicit(&c->flags, memory_order_relaxed) & NDSHM__CTL_PERSISTENT) &&
            ndshm__os->lock(h.fd, NDSHM__LOCK_WRITER, NDSHM__WRLOCK) == 0 &&
            ndshm__ctl_same_file(&h, name)) {
            char seg[NDSHM__SEG_MAX];
            ndshm__ctl_name(seg, name);
            ndshm__unlink_data(name, c->nonce, UINT64_MAX, 0);
            removed = ndshm__os->unlink(seg) == 0;
        }
        ndshm__ctl_close(&h); /* releases the lock */
        return removed;
    }
    if (rc != NDSHM_E_NOT_READY)
        return 0; /* alive-or-not unknowable (no permission), an array, or foreign/corrupt
                     files under our prefix: not ours to judge; ndshm_unlink removes them */
    /* Never became ready (only the O_EXCL fallback shows that): abandoned if nobody holds its
     * writer lock and it is old enough that its creator is not just slow. */
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int fd = ndshm__os->open(seg, 0, 1, 0);
    if (fd < 0)
        return 0;
    struct ndshm__fstat st;
    if (ndshm__os->fstat(fd, &st) == 0 && st.type == NDSHM__FT_REG && old_enough(&st) &&
        ndshm__os->lock(fd, NDSHM__LOCK_WRITER, NDSHM__WRLOCK) == 0) {
        struct ndshm__fstat now;
        if (ndshm__os->stat(seg, &now) == 0 && now.dev == st.dev && now.ino == st.ino)
            removed = ndshm__os->unlink(seg) == 0;
    }
    ndshm__os->close(fd);
    return removed;
}

/* A data segment that belongs to no live instance of its channel: its control segment is
 * gone, or is another instance (a removed and re-created namesake). Only old files: a
 * channel being created makes its first data segment just before its control segment gets
 * its name. */
static int orphan_cb(const char *entry, void *arg)
{
    size_t *count = arg;
    char name[NDSHM_NAME_MAX + 1];
    uint64_t gen, token;
    if (ndshm__parse_entry(entry, name, &gen, &token) != 2)
        return 0;
    struct ndshm__fstat st;
    if (ndshm__os->stat(entry, &st) != 0 || st.type != NDSHM__FT_REG || !old_enough(&st))
        return 0;
    struct ndshm__ctlh h = NDSHM__CTLH_INIT;
    int rc = ndshm__ctl_open(name, 0, 0, &h);
    int orphan = rc == NDSHM_E_NOENT;
    if (rc == NDSHM_OK) {
        orphan = data_nonce(entry) != ndshm__ctlh_ctl(&h)->nonce;
        ndshm__ctl_close(&h);
    }
    if (orphan && ndshm__os->unlink(entry) == 0)
        (*count)++;
    return 0;
}

int ndshm_gc(size_t *removed)
{
    ndshm_channel_info *items;
    size_t n;
    int rc = ndshm_list(&items, &n);
    if (rc)
        return rc;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == NDSHM_KIND_ARRAY)
            continue; /* an array has no writer that can die: only ndshm_unlink removes it */
        count += (size_t)gc_channel(items[i].name);
    }
    ndshm_list_free(items);
    (void)ndshm__os->list(orphan_cb, &count);
    if (removed)
        *removed = count;
    return NDSHM_OK;
}
