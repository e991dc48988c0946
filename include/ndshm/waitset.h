/*
 * ndshm waitsets: one wait for many channels (included by ndshm/ndshm.h).
 *
 * A waitset holds reader handles ("members"), each with a key of the caller's choosing.
 * ndshm_waitset_wait() sleeps until at least one member has a version newer than its handle's
 * last read and says which (their keys), like iceoryx's WaitSet or epoll. The writer of a
 * member's channel rings the waitset's doorbell as part of its publish, so a waitset with
 * thousands of idle members wakes for one publish as fast as ndshm_wait() does for one
 * channel, and a writer nobody waits for makes no syscall. ndshm_waitset_fd() gives a file
 * descriptor that is readable while a member has something new, for epoll, select or asyncio.
 * Protocol and trust: docs/protocol.md, "Waitsets".
 */
#ifndef NDSHM_WAITSET_H
#define NDSHM_WAITSET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ndshm_waitset ndshm_waitset;

#define NDSHM_WAITSET_MAX 16384u /* members per waitset */

/** A new, empty waitset. */
NDSHM_API int ndshm_waitset_create(ndshm_waitset **ws /* out */);
/** Add reader r with `key` (returned by ndshm_waitset_wait when r has something new).
 *  NDSHM_E_EXISTS if r is a member already, NDSHM_E_LIMIT past NDSHM_WAITSET_MAX members. The
 *  reader handle must stay open while it is a member. Channels whose wait page cannot be
 *  used (no System V shared memory, all its registration entries taken) are polled instead,
 *  every 2 ms while the waitset sleeps. */
NDSHM_API int ndshm_waitset_add(ndshm_waitset *ws, ndshm_reader *r, uint64_t key);
/** Remove reader r (NDSHM_E_NOENT if it is not a member). */
NDSHM_API int ndshm_waitset_remove(ndshm_waitset *ws, ndshm_reader *r);
/** Number of members. */
NDSHM_API size_t ndshm_waitset_size(const ndshm_waitset *ws);
/** Wait until at least one member has a version newer than its handle's last read (its
 *  ndshm_read_latest / read_next would return a version), for at most timeout_ns (negative =
 *  forever, 0 = only look). NDSHM_OK: keys[0..*count) are the keys of the members that have
 *  something new (at most max of them; the others are reported by the next call), in no
 *  particular order. NDSHM_TIMEOUT: none (*count = 0). Level-triggered: a member that still
 *  has something new is reported again by the next call. A member whose writer closed or died
 *  is not reported for that (its reads say so). One thread at a time per waitset. */
NDSHM_API int ndshm_waitset_wait(ndshm_waitset *ws, int64_t timeout_ns, uint64_t *keys, size_t max,
                                 size_t *count /* out */);
/** A file descriptor (an eventfd) that is readable while at least one member has something
 *  new: poll it, then call ndshm_waitset_wait(ws, 0, ...). Started on the first call (a
 *  helper thread watches the doorbell); owned by the waitset (do not close it; do not read
 *  from it: ndshm_waitset_wait resets it). *fd is -1 on failure. */
NDSHM_API int ndshm_waitset_fd(ndshm_waitset *ws, int *fd /* out */);
/** Close: unregister from every member's channel, stop the helper thread. NULL is a no-op. */
NDSHM_API int ndshm_waitset_close(ndshm_waitset *ws);

#ifdef __cplusplus
}
#endif
#endif /* NDSHM_WAITSET_H */
