/*
 * Shared arrays: one named n-d array that every attached process maps and changes in place.
 *
 * LAYOUT (array layout version 1; integers little-endian, fixed width, naturally aligned)
 *
 *   One file "<dir>/ndshm.<name>" — the path of a channel's control segment, so a name is a
 *   channel or an array, never both, and O_EXCL settles a race between the two kinds.
 *     page 0  header (struct ndshm__arr, src/array_internal.h; 520 bytes, rest of the page 0):
 *               0 magic "NSHMARR1"   8 layout = 1   12 hdr_size = 520
 *              16 ready = "ARDY" (u32, stored last with release)   20 mode asked for
 *              24 created_ns (CLOCK_REALTIME)   32 data_offset = 4096   40 nbytes
 *              48 file_size   56 dtype (i32)   60 ndim   64 order (0 C, 1 F)   68 itemsize
 *              72 creator_pid   80 reserved[6] = 0   128 shape[32] (entries past ndim 0)
 *             384 name[129] (NUL-terminated)
 *     data    from data_offset (page aligned), nbytes bytes in the array's memory order;
 *             file_size = data_offset + nbytes rounded up to whole pages, at least one page
 *             (so a zero-element array still has a valid data pointer).
 *   The header is written once, by the creator, before `ready`, and never changed again:
 *   there is no shared mutable state in an array besides the data itself, which belongs to
 *   the users (no versions, no locks: what one process stores every other sees at once).
 *
 *   Kernel OFD locks (one byte each, on the file; locks are not data, so offsets may lie
 *   inside the header):
 *     byte 0  ATTACH: every attachment (the creator's too) holds a read lock for its life, on
 *             the descriptor it keeps open. The attach count is the number of OFD locks on
 *             byte 0 in /proc/locks (ndshm__os->lock_count; best effort, -1 when unknown). A
 *             process killed in any way drops its lock: the count never leaks.
 *     byte 1  CREATE: the creator holds a write lock from right after open(O_EXCL) until it
 *             has stored `ready`. An attacher that finds the file not ready waits (up to
 *             ndshm__array_ready_wait_ns, 250 ms) only while that lock is held; without it the
 *             creator is dead and the file is reported NDSHM_E_NOT_READY at once (after a
 *             10 ms grace for the few microseconds between open and lock).
 *   Both locks are best effort: failing to take one (a peer with write access holding a
 *   conflicting lock, a file system without OFD locks) never fails a create or an attach; the
 *   attachment is then simply not counted, or not waited for.
 *
 * CREATE (race-free: no half-valid array is ever attachable)
 *   C1  open(O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK, mode): NDSHM_E_EXISTS if the name is taken
 *       by anything (array, channel, stray file).
 *   C2  write-lock byte 1 (CREATE), read-lock byte 0 (ATTACH); fchmod(mode) — the exact mode,
 *       not narrowed by the umask; fstat (dev, ino for the count).
 *   C3  fallocate(the header page: the file is one page, backed); ftruncate(file_size); mmap
 *       read-write. Whenever the file has a size, its header page is backed, so reading the
 *       header of a file being created never faults in a page (a SIGBUS on a full tmpfs).
 *   C4  write the header, all but `ready` (the header page is reserved: no SIGBUS).
 *   C5  fallocate(file_size): every page reserved now, so a full tmpfs fails here with
 *       NDSHM_E_NOSPC, and no later store into the array can SIGBUS for lack of space.
 *   C6  ready := READY (release). Pairs with the acquire load in ndshm__array_validate(): a
 *       process that sees ready sees the whole header and the final file size. Unlock byte 1.
 *   Any failure in C2-C5 unmaps, unlinks the name and closes: nothing is left behind. A
 *   creator killed in C2-C5 leaves a file that attach and stat report as NDSHM_E_NOT_READY
 *   (size 0, an all-zero header, or a header with ready = 0) and that ndshm_unlink() removes;
 *   from C4 on it carries the array magic, so ndshm_array_delete() removes it too, and a
 *   channel call on it answers NDSHM_E_KIND. ndshm_gc() never removes any of these.
 *
 * ATTACH (read-write: O_RDWR + PROT_READ|PROT_WRITE; read-only: O_RDONLY + PROT_READ)
 *   A1  open (O_NOFOLLOW|O_NONBLOCK: a planted symlink is refused, a planted FIFO cannot
 *       block); fstat: not a regular file -> NDSHM_E_UNTRUSTED (also a symlink, a directory
 *       or a socket under the name); size 0 -> not ready.
 *   A2  mmap the whole file (fstat size), validate the header (ndshm__array_validate): magic
 *       (a channel's -> NDSHM_E_KIND), layout, ready (acquire), then a private copy of the
 *       header, every field checked — dtype, ndim, order, itemsize, nbytes = shape product,
 *       zero padding, data_offset, and file_size = what the shape needs = the real size from
 *       fstat — before any of it is used. Nothing is ever re-read from shared memory.
 *   A3  read-lock byte 0; keep the descriptor open for the attachment's life (the lock lives
 *       on it).
 *   Detach unmaps and closes. Delete unlinks the name only: attachments keep their mapping,
 *   and the pages are freed after the last one goes (unlink(2) semantics).
 *
 * TRUST
 *   An array is as trustworthy as the users who may write its file (its mode): any of them
 *   can change the data, and one that truncates the file makes the other attachments' next
 *   access SIGBUS — a limit of name-based shared memory that no check can remove (see
 *   docs/reliability.md). Readers need no write access to anything: a read-only attachment
 *   writes nothing, not even a lock byte's content.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "array_internal.h"

uint64_t ndshm__array_ready_wait_ns = 250000000u;

struct ndshm_array {
    int fd; /* kept open: it carries the ATTACH lock */
    int readonly;
    void *base;
    uint64_t map_size;
    uint64_t dev, ino;
    struct ndshm__arr_geom g;
    char name[NDSHM_NAME_MAX + 1];
};

/* A symlink (O_NOFOLLOW: ELOOP), a directory opened for writing (EISDIR) or a socket (ENXIO)
 * under the name: not a file we would ever have created. */
static int open_status(int neg_errno)
{
    if (neg_errno == -ELOOP || neg_errno == -EISDIR || neg_errno == -ENXIO)
        return NDSHM_E_UNTRUSTED;
    return ndshm__errno_status(neg_errno);
}

static int options_read(const ndshm_array_options *opts, ndshm_array_options *out)
{
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    if (opts) {
        /* size-versioned: accept older (smaller) structs, take only the fields they have */
        if (opts->size < offsetof(ndshm_array_options, mode) || opts->size > 4096)
            return NDSHM_E_INVAL;
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
    }
    if (o.flags & ~(uint32_t)NDSHM_ARRAY_READONLY)
        return NDSHM_E_INVAL;
    if (o.mode & ~07777u)
        return NDSHM_E_INVAL;
    if (o.order != NDSHM_ORDER_C && o.order != NDSHM_ORDER_F)
        return NDSHM_E_INVAL;
    if (o.mode == 0)
        o.mode = 0600;
    *out = o;
    return NDSHM_OK;
}

static uint64_t file_size_for(uint64_t nbytes)
{
    /* nbytes <= NDSHM_MAX_CAPACITY (ndshm_array_nbytes), so this cannot overflow */
    uint64_t data = nbytes ? nbytes : 1;
    return NDSHM__ARR_DATA + ((data + NDSHM__PAGE - 1) & ~(uint64_t)(NDSHM__PAGE - 1));
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------------
 * Validation of untrusted bytes
 * ------------------------------------------------------------------------------------------- */

int ndshm__array_validate(const void *base, uint64_t size, const char *name,
                          struct ndshm__arr_geom *out)
{
    const struct ndshm__arr *h = base;
    if (size == 0)
        return NDSHM_E_NOT_READY; /* opened (C1) but not yet sized (C3) */
    if (size < 16)
        return NDSHM_E_CORRUPT;
    if (h->magic == NDSHM__CTL_MAGIC)
        return NDSHM_E_KIND;
    if (h->magic == 0 && h->layout == 0)
        return NDSHM_E_NOT_READY; /* sized (C3), header not yet written (C4) */
    if (h->magic != NDSHM__ARR_MAGIC)
        return NDSHM_E_MAGIC;
    if (h->layout != NDSHM__ARR_LAYOUT)
        return NDSHM_E_LAYOUT;
    if (size < sizeof *h)
        return NDSHM_E_CORRUPT;
    /* Pairs with the release store of `ready` in ndshm_array_create() (C6): once we see it,
     * every header field and the final file size are visible. Failure to acquire lets a
     * process act on a header still being written. */
    if (atomic_load_explicit(&((struct ndshm__arr *)h)->ready, memory_order_acquire) !=
        NDSHM__ARR_READY)
        return NDSHM_E_NOT_READY;
    /* A private copy: every check below and every later use read this copy only, so a peer
     * changing the header cannot make a checked value differ from a used one. */
    struct ndshm__arr c;
    memcpy(&c, h, sizeof c);
    if (c.hdr_size != sizeof c || c.ndim > NDSHM_MAX_DIMS ||
        (c.order != NDSHM_ORDER_C && c.order != NDSHM_ORDER_F) || ndshm_dtype_size(c.dtype) == 0 ||
        c.itemsize != ndshm_dtype_size(c.dtype))
        return NDSHM_E_CORRUPT;
    for (uint32_t i = c.ndim; i < NDSHM_MAX_DIMS; i++)
        if (c.shape[i] != 0)
            return NDSHM_E_CORRUPT;
    for (size_t i = 0; i < sizeof c.reserved / sizeof c.reserved[0]; i++)
        if (c.reserved[i] != 0)
            return NDSHM_E_CORRUPT;
    uint64_t nbytes;
    if (ndshm_array_nbytes(c.dtype, c.ndim, c.shape, &nbytes) != NDSHM_OK || nbytes != c.nbytes)
        return NDSHM_E_CORRUPT;
    if (c.data_offset != NDSHM__ARR_DATA || c.file_size != file_size_for(nbytes) ||
        c.file_size != size)
        return NDSHM_E_CORRUPT; /* checked against the real size before anything is used */
    if (!memchr(c.name, 0, sizeof c.name) || (name && strcmp(c.name, name) != 0))
        return NDSHM_E_CORRUPT; /* an array file copied or renamed under another name */
    struct ndshm__arr_geom g;
    memset(&g, 0, sizeof g);
    g.dtype = c.dtype;
    g.ndim = c.ndim;
    g.order = c.order;
    g.mode = c.mode & 07777;
    memcpy(g.shape, c.shape, sizeof g.shape);
    g.nbytes = nbytes;
    g.data_offset = c.data_offset;
    g.file_size = c.file_size;
    g.created_ns = c.created_ns;
    *out = g;
    return NDSHM_OK;
}

/* 1 if the file's first bytes carry the array magic (a header ready or not, damaged or not). */
static int has_array_magic(const void *base, uint64_t size)
{
    const struct ndshm__arr *h = base;
    return size >= 8 && h->magic == NDSHM__ARR_MAGIC;
}

/* ---------------------------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------------------------- */

struct opened {
    int fd;
    struct ndshm__fstat st;
    void *base;
    uint64_t map_size;
    struct ndshm__arr_geom g;
    int creating; /* NOT_READY and the creator still holds the CREATE lock */
    int array;    /* the file carries the array magic (whatever the status) */
};

static void opened_close(struct opened *o)
{
    if (o->base) {
        int rc = ndshm__os->munmap(o->base, o->map_size);
        NDSHM__INVARIANT(rc == 0); /* only fails for a bad address: our own bug */
        o->base = NULL;
    }
    if (o->fd >= 0)
        ndshm__os->close(o->fd);
    o->fd = -1;
}

/* A1-A2: open, fstat and map `name` (the whole file, or with whole = 0 its first page) and
 * validate it. On NDSHM_OK the caller owns o->fd and o->base; on failure both are released
 * (with o->creating and o->array describing what was found). */
static int open_array(const char *name, int writable, int whole, struct opened *o)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    int fd = ndshm__os->open(seg, 0, writable, 0);
    if (fd < 0)
        return open_status(fd);
    o->fd = fd;
    int rc = ndshm__os->fstat(fd, &o->st);
    if (rc) {
        opened_close(o);
        return ndshm__errno_status(rc);
    }
    if (o->st.type != NDSHM__FT_REG) {
        opened_close(o);
        return NDSHM_E_UNTRUSTED;
    }
    if (o->st.size == 0) {
        rc = NDSHM_E_NOT_READY;
    } else {
        o->map_size = whole || o->st.size < NDSHM__PAGE ? o->st.size : NDSHM__PAGE;
        int err = 0;
        o->base = ndshm__os->mmap(fd, o->map_size, writable, &err);
        if (!o->base) {
            opened_close(o);
            return ndshm__errno_status(err ? err : -EIO);
        }
        o->array = has_array_magic(o->base, o->st.size);
        rc = ndshm__array_validate(o->base, o->st.size, name, &o->g);
    }
    if (rc == NDSHM_E_NOT_READY)
        o->creating = ndshm__os->lock_held(fd, NDSHM__ARR_LOCK_CREATE, NDSHM__RDLOCK) == 1;
    if (rc) {
        opened_close(o);
        return rc;
    }
    o->g.mode = o->st.mode & 07777; /* the file's real mode, not the one asked for */
    return NDSHM_OK;
}

static int32_t count_attached(uint64_t dev, uint64_t ino)
{
    int n = ndshm__os->lock_count(dev, ino, NDSHM__ARR_LOCK_ATTACH);
    return n < 0 ? -1 : n;
}

static void sleep_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------------------------- */

int ndshm_array_create(const char *name, int dtype, uint32_t ndim, const uint64_t *shape,
                       const ndshm_array_options *opts, ndshm_array **out)
{
    ndshm_array_options o;
    int rc = options_read(opts, &o);
    if (rc)
        return rc;
    if (!out || (o.flags & NDSHM_ARRAY_READONLY))
        return NDSHM_E_INVAL;
    if ((rc = ndshm__name_dir_check(name)) != NDSHM_OK)
        return rc;
    uint64_t nbytes;
    if ((rc = ndshm_array_nbytes(dtype, ndim, shape, &nbytes)) != NDSHM_OK)
        return rc;
    uint64_t size = file_size_for(nbytes);
    ndshm_array *a = calloc(1, sizeof *a);
    if (!a)
        return NDSHM_E_NOMEM;
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    /* C1 */
    int fd = ndshm__os->open(seg, 1, 1, o.mode);
    if (fd < 0) {
        free(a);
        return open_status(fd);
    }
    /* C2: both locks best effort (see the top of the file) */
    (void)ndshm__os->lock(fd, NDSHM__ARR_LOCK_CREATE, NDSHM__WRLOCK);
    (void)ndshm__os->lock(fd, NDSHM__ARR_LOCK_ATTACH, NDSHM__RDLOCK);
    struct ndshm__fstat st;
    void *base = NULL;
    rc = ndshm__os->fchmod(fd, o.mode);
    if (!rc)
        rc = ndshm__os->fstat(fd, &st);
    /* C3: the header page first (this also sizes the file to one page), so that whenever the
     * file has a size its header page is backed: a process reading the header of a file
     * being created never faults in a page of a full tmpfs (which would be a SIGBUS). */
    if (!rc)
        rc = ndshm__os->fallocate(fd, NDSHM__ARR_DATA);
    if (!rc)
        rc = ndshm__os->ftruncate(fd, size);
    if (!rc && !(base = ndshm__os->mmap(fd, size, 1, &rc)) && !rc)
        rc = -EIO;
    if (!rc) {
        /* C4: tmpfs pages start zeroed, so the padding, reserved words and shape entries
         * past ndim are already 0. */
        struct ndshm__arr *h = base;
        h->magic = NDSHM__ARR_MAGIC;
        h->layout = NDSHM__ARR_LAYOUT;
        h->hdr_size = sizeof *h;
        h->mode = o.mode;
        h->created_ns = realtime_ns();
        h->data_offset = NDSHM__ARR_DATA;
        h->nbytes = nbytes;
        h->file_size = size;
        h->dtype = dtype;
        h->ndim = ndim;
        h->order = o.order;
        h->itemsize = (uint32_t)ndshm_dtype_size(dtype);
        h->creator_pid = ndshm__self_pid();
        if (ndim)
            memcpy(h->shape, shape, ndim * sizeof shape[0]);
        snprintf(h->name, sizeof h->name, "%s", name);
        /* C5 */
        rc = ndshm__os->fallocate(fd, size);
    }
    if (rc) {
        if (base)
            NDSHM__INVARIANT(ndshm__os->munmap(base, size) == 0);
        ndshm__os->unlink(seg);
        ndshm__os->close(fd);
        free(a);
        return ndshm__errno_status(rc);
    }
    struct ndshm__arr *h = base;
    a->g.dtype = dtype;
    a->g.ndim = ndim;
    a->g.order = o.order;
    a->g.mode = o.mode;
    if (ndim)
        memcpy(a->g.shape, shape, ndim * sizeof shape[0]);
    a->g.nbytes = nbytes;
    a->g.data_offset = NDSHM__ARR_DATA;
    a->g.file_size = size;
    a->g.created_ns = h->created_ns;
    /* C6. Pairs with the acquire load of `ready` in ndshm__array_validate(). */
    atomic_store_explicit(&h->ready, NDSHM__ARR_READY, memory_order_release);
    (void)ndshm__os->lock(fd, NDSHM__ARR_LOCK_CREATE, NDSHM__UNLOCK);
    a->fd = fd;
    a->readonly = 0;
    a->base = base;
    a->map_size = size;
    a->dev = st.dev;
    a->ino = st.ino;
    snprintf(a->name, sizeof a->name, "%s", name);
    *out = a;
    return NDSHM_OK;
}

int ndshm_array_attach(const char *name, const ndshm_array_options *opts, ndshm_array **out)
{
    ndshm_array_options o;
    int rc = options_read(opts, &o);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    if ((rc = ndshm__name_dir_check(name)) != NDSHM_OK)
        return rc;
    int writable = !(o.flags & NDSHM_ARRAY_READONLY);
    struct opened op;
    uint64_t start = 0;
    for (;;) {
        rc = open_array(name, writable, 1, &op);
        if (rc != NDSHM_E_NOT_READY)
            break;
        if (!start)
            start = ndshm_now_ns();
        /* Wait for a creator that is still creating (it holds the CREATE lock); a file
         * nobody is creating any more is reported at once, after a grace of 10 ms for the
         * moment between the creator's open and its lock. */
        uint64_t waited = ndshm_now_ns() - start;
        if (waited >= ndshm__array_ready_wait_ns || (!op.creating && waited >= 10000000u))
            break;
        sleep_1ms();
    }
    if (rc)
        return rc;
    ndshm_array *a = malloc(sizeof *a); /* every field is set below */
    if (!a) {
        opened_close(&op);
        return NDSHM_E_NOMEM;
    }
    /* A3: best effort, see the top of the file */
    (void)ndshm__os->lock(op.fd, NDSHM__ARR_LOCK_ATTACH, NDSHM__RDLOCK);
    a->fd = op.fd;
    a->readonly = !writable;
    a->base = op.base;
    a->map_size = op.map_size;
    a->dev = op.st.dev;
    a->ino = op.st.ino;
    a->g = op.g;
    size_t len = strlen(name); /* <= NDSHM_NAME_MAX: checked */
    memcpy(a->name, name, len + 1);
    *out = a;
    return NDSHM_OK;
}

void *ndshm_array_data(ndshm_array *a)
{
    if (!a || a->readonly)
        return NULL;
    return (char *)a->base + a->g.data_offset;
}

const void *ndshm_array_cdata(const ndshm_array *a)
{
    if (!a)
        return NULL;
    return (const char *)a->base + a->g.data_offset;
}

static void fill_info(ndshm_array_info *ai, const char *name, const struct ndshm__arr_geom *g)
{
    memset(ai, 0, sizeof *ai);
    snprintf(ai->name, sizeof ai->name, "%s", name);
    ai->dtype = g->dtype;
    ai->ndim = g->ndim;
    ai->order = g->order;
    ai->mode = g->mode;
    memcpy(ai->shape, g->shape, sizeof ai->shape);
    ai->nbytes = g->nbytes;
    ai->created_ns = g->created_ns;
}

int ndshm_array_info_get(const ndshm_array *a, ndshm_array_info *out)
{
    if (!a || !out)
        return NDSHM_E_INVAL;
    ndshm_array_info ai;
    fill_info(&ai, a->name, &a->g);
    struct ndshm__fstat st;
    if (ndshm__os->fstat(a->fd, &st) == 0)
        ai.mode = st.mode & 07777; /* now: a chmod since attach shows */
    ai.attached = count_attached(a->dev, a->ino);
    ai.readonly = a->readonly;
    *out = ai;
    return NDSHM_OK;
}

int ndshm_array_detach(ndshm_array *a)
{
    if (!a)
        return NDSHM_OK;
    int rc = ndshm__os->munmap(a->base, a->map_size);
    NDSHM__INVARIANT(rc == 0); /* only fails for a bad address: our own bug */
    /* Closing drops the ATTACH lock (once no other descriptor of this open file is left:
     * a forked child's copy keeps it for the child). */
    ndshm__os->close(a->fd);
    free(a);
    return NDSHM_OK;
}

int ndshm_array_stat(const char *name, ndshm_array_info *out)
{
    int rc = ndshm__name_dir_check(name);
    if (rc)
        return rc;
    if (!out)
        return NDSHM_E_INVAL;
    struct opened op;
    if ((rc = open_array(name, 0, 0, &op)) != NDSHM_OK)
        return rc;
    ndshm_array_info ai;
    fill_info(&ai, name, &op.g);
    ai.attached = count_attached(op.st.dev, op.st.ino);
    opened_close(&op);
    *out = ai;
    return NDSHM_OK;
}

int ndshm__array_stat_entry(const char *name, ndshm_channel_info *out)
{
    struct opened op;
    int rc = open_array(name, 0, 0, &op);
    if (rc)
        return rc;
    ndshm_channel_info ci;
    memset(&ci, 0, sizeof ci);
    snprintf(ci.name, sizeof ci.name, "%s", name);
    ci.kind = NDSHM_KIND_ARRAY;
    ci.dtype = op.g.dtype;
    ci.ndim = op.g.ndim;
    ci.order = op.g.order;
    memcpy(ci.shape, op.g.shape, sizeof ci.shape);
    ci.mode = op.g.mode;
    ci.bytes = op.st.size;
    ci.nbytes = op.g.nbytes;
    ci.created_ns = op.g.created_ns;
    ci.attached = count_attached(op.st.dev, op.st.ino);
    ci.status = NDSHM_OK;
    opened_close(&op);
    *out = ci;
    return NDSHM_OK;
}

int ndshm_array_delete(const char *name)
{
    int rc = ndshm__name_dir_check(name);
    if (rc)
        return rc;
    char seg[NDSHM__SEG_MAX];
    ndshm__ctl_name(seg, name);
    /* Check what the name is, then unlink it if (dev, ino) is still that file. A name that
     * was replaced in between is looked at again (a few times). */
    for (int attempt = 0; attempt < 4; attempt++) {
        struct opened op;
        rc = open_array(name, 0, 0, &op);
        /* An array, ready or not, damaged or of another layout, is removed; a channel, a
         * foreign file or a header-less file (which could be a channel being created) is
         * not. */
        if (rc != NDSHM_OK && !op.array)
            return rc;
        if (rc == NDSHM_OK)
            opened_close(&op);
        struct ndshm__fstat now;
        int s = ndshm__os->stat(seg, &now);
        if (s)
            return ndshm__errno_status(s);
        if (now.dev != op.st.dev || now.ino != op.st.ino)
            continue;
        s = ndshm__os->unlink(seg);
        return s ? ndshm__errno_status(s) : NDSHM_OK;
    }
    return NDSHM_E_NOENT; /* replaced every time we looked: not reliably ours to remove */
}

int ndshm_array_publish(ndshm_writer *w, const ndshm_array *a, uint64_t *version)
{
    if (!w || !a)
        return NDSHM_E_INVAL;
    uint64_t shape[NDSHM_MAX_DIMS];
    uint32_t n = a->g.ndim;
    for (uint32_t i = 0; i < n; i++)
        shape[i] = a->g.order == NDSHM_ORDER_F ? a->g.shape[n - 1 - i] : a->g.shape[i];
    return ndshm_publish(w, a->g.dtype, n, shape, ndshm_array_cdata(a), version);
}
