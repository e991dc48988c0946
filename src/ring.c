/*
 * The slot protocol of ndshm: a ring of N seqlocked slots per data segment.
 *
 * LAYOUT (layout version 1; all integers little-endian, fixed width, naturally aligned)
 *
 *   Control segment "<dir>/ndshm.<name>", 4096 bytes, lives as long as the channel:
 *     line 0  magic "NSHMCTL1", layout, ctl_size, ready, mode, created_ns  (immutable)
 *     line 1  writer identity, takeovers, reallocs                  (writer, on takeover)
 *     line 2  head, gen                                               (writer, each publish)
 *     line 3  notify (futex word)                                     (writer, each publish)
 *     line 4  waiters                                                 (sleeping readers)
 *     line 5+ name                                                    (immutable)
 *   Data segment "<dir>/ndshm.<name>@<gen>":
 *     header  magic "RSHDATA1", layout, generation, first_version, sizes, slot geometry;
 *             sealed = last version published into this segment once the writer moved on
 *     slots   N x stride; slot = header, then the payload at payload_offset (64-byte
 *             aligned, >= 320; page aligned when the capacity is >= 64 KiB). Header, 296 bytes:
 *               0 seq  8 version  16 publish_ns  24 nbytes  32 dtype (i32)  36 ndim (u32)
 *              40 shape[32] (u64)
 *             Bytes 0-63 (seq ... shape[2]) are the slot's first cache line. Only
 *             shape[0..ndim) is written and read; later entries hold stale values.
 *
 * WRITER (one per channel; publish of version v = head + 1 into slot v % N)
 *   W1  seq := seq + 1 (odd), relaxed; release fence.        -> slot_begin()
 *   W2  write header fields (shape[0..ndim) only) and payload (racy by design).
 *                                                             -> slot_fill(), store_payload()
 *   W3  seq := seq + 1 (even), release.                       -> slot_end()
 *   W4  if the version went to a new data segment: old.sealed := v - 1 (release).
 *   W5  head := v (release); then, after a re-allocation, gen := g + 1 (release).
 *   W6  notify += 1 (seq_cst); if waiters > 0 (seq_cst load): FUTEX_WAKE.  -> wait.c
 *   The writer never reads anything a reader writes except `waiters`, never waits, and its
 *   work does not depend on the number of readers: publishing is wait-free.
 *
 * READER, one attempt at version `want` in slot want % N             -> slot_read()
 *   R1  s1 := seq (acquire). Odd -> BUSY.
 *   R2  copy the slot header (racy): the fixed fields, then shape[0..ndim) with ndim taken
 *       from that private copy and clamped to NDSHM_MAX_DIMS; version != want -> NEWER /
 *       OLDER; check every header value against the segment geometry (a torn header must
 *       never drive a copy) -> BAD.
 *   R3  copy the payload (racy, ndshm__load_payload).
 *   R4  acquire fence; s2 := seq (relaxed). s1 != s2 -> BUSY. Otherwise the copy is exactly
 *       version `want`.
 *   Why R4 is enough: if any load in R2/R3 saw a store of W2 of a later write, the acquire
 *   fence synchronises with the release fence of W1 of that write, so s2 sees at least its
 *   odd value and differs from s1. Failure to fence lets a reader accept a torn copy.
 *   Read-latest wants head (loaded with acquire after gen, pairing with W5); read-next wants
 *   cursor + 1; both retry BUSY a bounded number of times (lock-free, never blocking) and then
 *   report NDSHM_CONTENDED. With N slots a reader has N - 1 publish periods to finish a copy.
 *
 * RE-ALLOCATION (a version that does not fit, or ndshm_writer_reserve())
 *   The writer creates "<name>@<g+1>" (O_EXCL, pages reserved), writes version v into it
 *   (W1-W3), seals the old segment at v - 1 (W4), publishes head := v then gen := g + 1 (W5)
 *   and unlinks the old segment at once. Readers still mapped to the old segment keep a valid
 *   mapping (unlink semantics); they see gen change and re-map. Since head is stored before
 *   gen, a reader that sees the new gen (acquire) finds head inside the new segment; a reader
 *   that sees a new head with an old gen finds OLDER in the old segment and retries.
 *   Read-next across generations: versions <= sealed are read from the old mapping; versions
 *   below the new segment's first_version that no mapping holds any more are counted as
 *   dropped. Nothing is lost without being counted.
 *
 * INVARIANTS
 *   I1  A version number is never reused: head only grows, also across takeover.
 *   I2  A slot's seq is odd exactly while the writer writes it; a reader accepts only a copy
 *       bracketed by the same even seq with version == want.
 *   I3  head = v implies slot v % N of segment gen holds v, or a later version.
 *   I4  A data segment, once published, is never modified after it is sealed.
 *
 * CRASH
 *   A writer killed between W1 and W3 leaves one slot odd: readers see BUSY/NEWER there and
 *   never accept it. A new writer (ndshm_writer_open) takes over only if the recorded writer is
 *   dead (pid and start time), marks odd slots invalid (version 0, seq even), unlinks data
 *   segments of unpublished generations, and continues at head + 1.
 *
 * MEMORY MODEL
 *   The payload and header copies under the seqlock race with the writer by design (Boehm,
 *   "Can seqlocks get along with programming language memory models?", 2012). They are
 *   confined to ndshm__load_payload()/ndshm__store_payload() below. Built with
 *   NDSHM_TSAN_COPY (the ThreadSanitizer build), both copy with relaxed atomic accesses so the
 *   sanitizer checks the protocol itself instead of being silenced.
 */
#include <string.h>

#include "internal.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the shared layout is little-endian");

/* ----- header words: relaxed atomic 64-bit accesses in every build ---------------------------
 * The slot header is copied word by word with relaxed atomic loads (and written with relaxed
 * atomic stores): each word is fetched exactly once, whatever the optimiser does, so a value
 * checked is the value used. Header words are 8-byte aligned (slots are 64-byte aligned). */
static inline void hdr_load(uint64_t *dst, const void *src, size_t words)
{
    _Atomic uint64_t *s = (_Atomic uint64_t *)(uintptr_t)src;
    for (size_t i = 0; i < words; i++)
        dst[i] = atomic_load_explicit(&s[i], memory_order_relaxed);
}

static inline void hdr_store(void *dst, const uint64_t *src, size_t words)
{
    _Atomic uint64_t *d = dst;
    for (size_t i = 0; i < words; i++)
        atomic_store_explicit(&d[i], src[i], memory_order_relaxed);
}

/* ----- the only intentionally racy routines: payload and metadata bytes -------------------- */
#ifdef NDSHM_TSAN_COPY
/* Relaxed atomic copies: same semantics under the seqlock, visible to ThreadSanitizer. */
static void racy_copy(void *dst, const void *src, uint64_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n && ((uintptr_t)s & 7)) {
        *d++ = atomic_load_explicit((_Atomic unsigned char *)s, memory_order_relaxed);
        s++;
        n--;
    }
    for (; n >= 8; n -= 8, s += 8, d += 8) {
        uint64_t v = atomic_load_explicit((_Atomic uint64_t *)s, memory_order_relaxed);
        memcpy(d, &v, 8);
    }
    while (n--)
        *d++ = atomic_load_explicit((_Atomic unsigned char *)s++, memory_order_relaxed);
}
static void racy_store(void *dst, const void *src, uint64_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n && ((uintptr_t)d & 7)) {
        atomic_store_explicit((_Atomic unsigned char *)d, *s++, memory_order_relaxed);
        d++;
        n--;
    }
    for (; n >= 8; n -= 8, s += 8, d += 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        atomic_store_explicit((_Atomic uint64_t *)d, v, memory_order_relaxed);
    }
    while (n--)
        atomic_store_explicit((_Atomic unsigned char *)d++, *s++, memory_order_relaxed);
}
#else
/* RACY BY DESIGN: reads shared memory the writer may be rewriting. The caller validates the
 * result with the slot's seq (R4) before trusting any byte. */
__attribute__((no_sanitize("thread"))) static void racy_copy(void *dst, const void *src, uint64_t n)
{
    if (n)
        memcpy(dst, src, (size_t)n);
}
__attribute__((no_sanitize("thread"))) static void racy_store(void *dst, const void *src,
                                                              uint64_t n)
{
    if (n)
        memcpy(dst, src, (size_t)n);
}
#endif

void ndshm__store_payload(void *dst, const void *src, uint64_t n)
{
    racy_store(dst, src, n);
}

#if defined(__x86_64__) && !defined(NDSHM_TSAN_COPY)
#include <emmintrin.h>
/* Non-temporal (streaming) stores: the payload goes to memory without filling the writer's
 * caches, which pays only when the ring does not fit the last-level cache anyway (the
 * writer's caller decides). RACY BY DESIGN like racy_store(). The sfence orders the streaming
 * stores before the release store of seq in W3 (x86 orders them with nothing else). */
__attribute__((no_sanitize("thread"))) void ndshm__store_payload_nt(void *dst, const void *src,
                                                                    uint64_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t head = (size_t)(-(uintptr_t)d & 15);
    if (head > n)
        head = (size_t)n;
    memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(const void *)(s + 48));
        _mm_stream_si128((__m128i *)(void *)d, a);
        _mm_stream_si128((__m128i *)(void *)(d + 16), b);
        _mm_stream_si128((__m128i *)(void *)(d + 32), c);
        _mm_stream_si128((__m128i *)(void *)(d + 48), e);
    }
    if (n)
        memcpy(d, s, (size_t)n);
    _mm_sfence();
}
#else
void ndshm__store_payload_nt(void *dst, const void *src, uint64_t n)
{
    racy_store(dst, src, n);
}
#endif

/* Word indices of the slot header (after seq). */
enum {
    HW_VERSION = 0,
    HW_PUBLISH = 1,
    HW_XFLAGS_METALEN = 2, /* xflags | meta_len << 32 */
    HW_DTYPE_NDIM = 3,     /* (uint32)dtype | ndim << 32 */
    HW_SHAPE = 4,
    HW_LINE = HW_SHAPE + NDSHM__SLOT_LINE_DIMS, /* words of the first cache line after seq */
};
static_assert(offsetof(struct ndshm__slot, xflags) == 8 + 8 * HW_XFLAGS_METALEN &&
                  offsetof(struct ndshm__slot, meta_len) ==
                      offsetof(struct ndshm__slot, xflags) + 4 &&
                  offsetof(struct ndshm__slot, dtype) == 8 + 8 * HW_DTYPE_NDIM &&
                  offsetof(struct ndshm__slot, ndim) == offsetof(struct ndshm__slot, dtype) + 4 &&
                  offsetof(struct ndshm__slot, shape) == 8 + 8 * HW_SHAPE,
              "header word map");

/* ----- writer side --------------------------------------------------------------------------- */

int ndshm__slot_begin(struct ndshm__slot *s)
{
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    /* Only the writer stores seq, and it always leaves it even (repair guarantees it): odd
     * means another process is writing this channel. Stop; never abort. */
    if (seq & 1)
        return NDSHM_E_SUPERSEDED;
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    /* W1. Pairs with the acquire fence of R4 in ndshm__slot_read(): a reader that sees any
     * store made after this fence also sees the odd seq. Failure to fence lets a reader
     * accept a torn copy. */
    atomic_thread_fence(memory_order_release);
    return NDSHM_OK;
}

void ndshm__slot_fill(struct ndshm__slot *s, const struct ndshm__meta *m, const void *meta_bytes)
{
    /* The words after seq up to shape[ndim) only (ndim was validated by the caller): a 1- to
     * 3-D header is one cache line. publish_ns is stored by slot_end(), as late as possible. */
    NDSHM__INVARIANT(m->ndim <= NDSHM_MAX_DIMS);
    _Atomic uint64_t *d = (_Atomic uint64_t *)(void *)&s->version;
    atomic_store_explicit(&d[HW_VERSION], m->version, memory_order_relaxed);
    atomic_store_explicit(&d[HW_PUBLISH], 0, memory_order_relaxed);
    atomic_store_explicit(&d[HW_XFLAGS_METALEN], (uint64_t)m->xflags | (uint64_t)m->meta_len << 32,
                          memory_order_relaxed);
    atomic_store_explicit(&d[HW_DTYPE_NDIM], (uint64_t)(uint32_t)m->dtype | (uint64_t)m->ndim << 32,
                          memory_order_relaxed);
    hdr_store(&d[HW_SHAPE], m->shape, m->ndim);
    if (m->xflags & NDSHM__X_EXTRA) {
        uint64_t x[4] = {m->user_ns, m->user_tag, m->origin_version, m->origin_ns};
        hdr_store(&s->user_ns, x, 4);
    }
    if (m->meta_len && meta_bytes) /* NULL: the bytes are in place already (carry) */
        racy_store((char *)s + NDSHM__SLOT_HDR, meta_bytes, m->meta_len);
}

int ndshm__slot_end(struct ndshm__slot *s, uint64_t publish_ns)
{
    uint64_t w = publish_ns;
    hdr_store(&s->publish_ns, &w, 1);
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    if (!(seq & 1))
        return NDSHM_E_SUPERSEDED; /* someone else ended our write */
    /* W3. Pairs with the acquire load of s1 in R1: a reader that sees this even value sees
     * the whole header and payload written before it. */
    atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
    return NDSHM_OK;
}

void ndshm__slot_seed(struct ndshm__slot *s, uint64_t publish_ns)
{
    uint64_t w = publish_ns;
    hdr_store(&s->publish_ns, &w, 1);
    /* Relaxed: the segment becomes visible only through the release store of gen (W5). */
    atomic_store_explicit(&s->seq, 2, memory_order_relaxed);
}

void ndshm__slot_invalidate(struct ndshm__slot *s)
{
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    if (!(seq & 1)) {
        atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release); /* as W1 */
    }
    uint64_t zero = 0;
    hdr_store(&s->version, &zero, 1);
    seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, (seq | 1) + 1, memory_order_release); /* as W3 */
}

/* ----- reader side --------------------------------------------------------------------------- */

int ndshm__meta_check(struct ndshm__meta *m, uint64_t capacity, uint32_t meta_capacity)
{
    uint64_t n;
    if (m->ndim > NDSHM_MAX_DIMS || m->meta_len > meta_capacity)
        return 0;
    if (!ndshm__nbytes(m->dtype, m->ndim, m->shape, &n) || n > capacity)
        return 0;
    m->nbytes = n;
    return 1;
}

enum ndshm__try ndshm__slot_read(const struct ndshm__slot *s, const struct ndshm__geom *g,
                                 uint64_t want, const struct ndshm__dest *d,
                                 struct ndshm__meta *meta, uint64_t *seq_out)
{
    struct ndshm__slot *ss = (struct ndshm__slot *)s;
    /* R1. Pairs with the release store of seq in ndshm__slot_end() (W3). */
    uint64_t s1 = atomic_load_explicit(&ss->seq, memory_order_acquire);
    if (s1 & 1)
        return NDSHM__BUSY;
    /* R2: the first cache line's words in one pass, then the rest of shape[0..ndim) only.
     * ndim comes from shared memory (torn or hostile): it is read once into a private copy
     * and clamped before it sizes the second pass; a value above NDSHM_MAX_DIMS stays above
     * it so that meta_check() rejects it. */
    uint64_t w[HW_LINE];
    hdr_load(w, &ss->version, HW_LINE);
    meta->version = w[HW_VERSION];
    meta->publish_ns = w[HW_PUBLISH];
    meta->xflags = (uint32_t)w[HW_XFLAGS_METALEN];
    meta->meta_len = (uint32_t)(w[HW_XFLAGS_METALEN] >> 32);
    meta->dtype = (int32_t)(uint32_t)w[HW_DTYPE_NDIM];
    uint32_t ndim = (uint32_t)(w[HW_DTYPE_NDIM] >> 32);
    for (int i = 0; i < NDSHM__SLOT_LINE_DIMS; i++)
        meta->shape[i] = w[HW_SHAPE + i];
    if (ndim > NDSHM_MAX_DIMS)
        ndim = NDSHM_MAX_DIMS + 1;
    else if (ndim > NDSHM__SLOT_LINE_DIMS)
        hdr_load(meta->shape + NDSHM__SLOT_LINE_DIMS, &ss->shape[NDSHM__SLOT_LINE_DIMS],
                 ndim - NDSHM__SLOT_LINE_DIMS);
    meta->ndim = ndim;
    if (meta->xflags & NDSHM__X_EXTRA) {
        uint64_t x[4];
        hdr_load(x, &ss->user_ns, 4);
        meta->user_ns = x[0];
        meta->user_tag = x[1];
        meta->origin_version = x[2];
        meta->origin_ns = x[3];
    } else {
        meta->user_ns = meta->user_tag = meta->origin_version = meta->origin_ns = 0;
    }
    meta->nbytes = 0;
    enum ndshm__try res = NDSHM__GOT;
    if (meta->version != want) {
        res = meta->version > want ? NDSHM__NEWER : NDSHM__OLDER;
    } else if (!ndshm__meta_check(meta, g->slot_capacity, g->meta_capacity)) {
        res = NDSHM__BAD; /* decided after R4: torn, or really corrupt */
    } else if (d) {
        /* R3. Lengths come from the checked private copy, never from shared memory again. */
        if (d->dst && meta->nbytes <= d->dst_size)
            racy_copy(d->dst, (const char *)s + g->payload_offset, meta->nbytes);
        if (d->meta && meta->meta_len <= d->meta_size)
            racy_copy(d->meta, (const char *)s + NDSHM__SLOT_HDR, meta->meta_len);
    }
    /* R4. Pairs with the release fence in ndshm__slot_begin() (W1). */
    atomic_thread_fence(memory_order_acquire);
    uint64_t s2 = atomic_load_explicit(&ss->seq, memory_order_relaxed);
    if (s1 != s2)
        return NDSHM__BUSY;
    *seq_out = s1;
    return res;
}

int ndshm__slot_still(const struct ndshm__slot *s, uint64_t seq)
{
    /* As R4: everything the caller read from the slot before this call was written before the
     * writer's next W1 if seq is unchanged. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&((struct ndshm__slot *)s)->seq, memory_order_relaxed) == seq;
}
