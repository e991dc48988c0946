/* Channels on this machine: list, stat, unlink, garbage-collect. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "array_internal.h" /* shared arrays: the other kind of name */

/* Split a directory entry into a channel name and (for data segments) a generation.
 * Returns 1 for a control segment, 2 for a data segment, 0 for anything else. */
static int parse_entry(const char *entry, char *name, uint64_t *gen)
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
    const char *p = at + 1;
    uint64_t g = 0;
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || __builtin_mul_overflow(g, 10, &g) ||
            __builtin_add_overflow(g, (uint64_t)(*p - '0'), &g))
            return 0;
    }
    *gen = g;
    return 2;
}

struct unlink_ctx {
    const char *name;
    uint64_t keep;
    int count;
};

static int unlink_cb(const char *entry, void *arg)
{
    struct unlink_ctx *u = arg;
    char name[NDSHM_NAME_MAX + 1];
    uint64_t gen = 0;
    if (parse_entry(entry, name, &gen) == 2 && strcmp(name, u->name) == 0 && gen != u->keep) {
        if (ndshm__os->unlink(entry) == 0)
            u->count++;
    }
    return 0;
}

int ndshm__unlink_data_except(const char *name, uint64_t keep)
{
    struct unlink_ctx u = {name, keep, 0};
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
    int data = ndshm__unlink_data_except(name, 0);
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
    struct ndshm__map cm = {0};
    uint32_t mode = 0;
    if ((rc = ndshm__map_ctl(name, 0, &cm, &mode)) != NDSHM_OK)
        return rc == NDSHM_E_KIND ? ndshm__array_stat_entry(name, out) : rc; /* array.c */
    struct ndshm__ctl *c = cm.base;
    ndshm_channel_info ci;
    memset(&ci, 0, sizeof ci);
    snprintf(ci.name, sizeof ci.name, "%s", name);
    ci.kind = NDSHM_KIND_CHANNEL;
    ci.order = NDSHM_ORDER_C;
    ci.attached = -1;
    ci.mode = mode;
    ci.created_ns = c->created_ns;
    uint64_t ident = atomic_load_explicit(&c->writer, memory_order_acquire);
    ci.writer_pid = (int64_t)(ident & UINT32_MAX);
    ci.writer_alive = ident ? ndshm__identity_alive(ident) : 0;
    ci.reallocs = atomic_load_explicit(&c->reallocs, memory_order_relaxed);
    /* The data segment can be replaced while we look: retry a few times. */
    rc = NDSHM_E_NOENT;
    for (int i = 0; i < 100 && rc == NDSHM_E_NOENT; i++) {
        uint64_t gen = atomic_load_explicit(&c->gen, memory_order_acquire);
        uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
        struct ndshm__map dm = {0};
        struct ndshm__geom g;
        rc = ndshm__map_data(name, gen, 0, &dm, &g);
        if (rc)
            continue;
        ci.generation = gen;
        ci.version = head;
        ci.slots = g.slot_count;
        ci.capacity = g.slot_capacity;
        ci.bytes = cm.size + dm.size;
        if (head) {
            struct ndshm__meta meta;
            uint64_t seq;
            for (int k = 0; k < 64; k++) {
                enum ndshm__try t = ndshm__slot_read(ndshm__slot_at(dm.base, &g, head), &g, head,
                                                     NULL, 0, &meta, &seq);
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
    ndshm__unmap(&cm);
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
    uint64_t gen;
    if (parse_entry(entry, name, &gen) != 1)
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

static int orphan_cb(const char *entry, void *arg)
{
    size_t *count = arg;
    char name[NDSHM_NAME_MAX + 1], ctl[NDSHM__SEG_MAX];
    uint64_t gen;
    if (parse_entry(entry, name, &gen) != 2)
        return 0;
    ndshm__ctl_name(ctl, name);
    int fd = ndshm__os->open(ctl, 0, 0, 0);
    if (fd >= 0)
        ndshm__os->close(fd);
    else if (fd == -ENOENT && ndshm__os->unlink(entry) == 0)
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
        /* Re-check liveness right before removing: never touch a channel whose writer lives. */
        struct ndshm__map cm = {0};
        int st = ndshm__map_ctl(items[i].name, 0, &cm, NULL);
        int dead;
        if (st == NDSHM_OK) {
            dead = !ndshm__writer_alive(cm.base);
            ndshm__unmap(&cm);
        } else if (st == NDSHM_E_NOT_READY) {
            dead = ndshm__ctl_creator_dead(items[i].name);
        } else {
            /* foreign, truncated or corrupt segments under our prefix are left alone: they
             * are not ours to judge; `ndshm_unlink` removes them explicitly */
            dead = 0;
        }
        if (dead && ndshm_unlink(items[i].name) == NDSHM_OK)
            count++;
    }
    ndshm_list_free(items);
    /* Data segments whose control segment is gone (an unlink that raced with a writer's
     * re-allocation) belong to nobody: remove them too. A channel being created never has
     * this shape (its control segment is created first). */
    (void)ndshm__os->list(orphan_cb, &count);
    if (removed)
        *removed = count;
    return NDSHM_OK;
}
