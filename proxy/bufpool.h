/*
 * A per-worker pool of fixed-size buffers, after HAProxy's b_alloc() and
 * its buffer wait queue: sessions take a buffer when bytes arrive and give
 * it back as soon as it is empty and no write on it is pending, so that an
 * idle session holds none.
 *
 * Two kinds of request. A buffer that starts moving bytes (a session that
 * holds none yet reads from the network: IG_BP_START) is refused once the
 * pool has max_bytes out, and the caller waits (ig_bufpool_wait) until a
 * buffer comes back. A buffer that carries bytes already taken in onwards
 * (the plaintext, the outbound side: IG_BP_CARRY) is refused only when
 * memory runs out: refusing it could leave sessions each holding a buffer
 * and waiting for one another's. Only holders that started under the cap
 * move bytes, so what the pool hands out beyond max_bytes is bounded by
 * the buffers each of them can hold (a session: six).
 *
 * Returned buffers go on a free list of at most free_max entries; beyond
 * that they are freed, so that memory goes back after a burst.
 *
 * Pure: no I/O, no loop, no locking (one pool per worker thread). Waiters
 * are told through a callback, from inside ig_bufpool_put().
 */
#ifndef IG_PROXY_BUFPOOL_H
#define IG_PROXY_BUFPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ig_bufpool;

enum ig_bufpool_use {
	IG_BP_START,   /* the first buffer of a holder: refused at the cap */
	IG_BP_CARRY,   /* the holder moves bytes it has: refused only without
	                  memory */
	IG_BP_COUNT
};

/*
 * Someone waiting for a buffer (embedded in its owner). fn is called once,
 * from ig_bufpool_put(), when a buffer came back under the cap; the waiter
 * is off the queue by then. fn must not free the pool; it may call
 * ig_bufpool_get/_put/_wait (a new wait is served by a later put), and
 * normally only restarts reading.
 */
struct ig_bufpool_waiter {
	struct ig_bufpool_waiter *prev, *next;
	bool queued;                   /* on the pool's queue */
	uint64_t seq;                  /* when it queued (the pool's count) */
	void (*fn)(struct ig_bufpool_waiter *w);
};

struct ig_bufpool_stats {
	size_t buf_size;               /* bytes per buffer */
	size_t max_bytes;              /* the cap on IG_BP_START (0: none) */
	size_t in_use;                 /* buffers handed out */
	size_t in_use_peak;            /* most at once */
	size_t free;                   /* on the free list */
	size_t waiting;                /* waiters queued */
	uint64_t refused;              /* IG_BP_START requests refused at the cap */
};

/*
 * Creates a pool of buf_size-byte buffers (> 0): at most max_bytes handed
 * out for IG_BP_START requests (0: no cap; a cap under one buffer is one
 * buffer), at most free_max kept on the free list. Returns 0 and *out, or
 * IG_EINVAL / IG_ENOMEM.
 */
int ig_bufpool_new(size_t buf_size, size_t max_bytes, size_t free_max,
    struct ig_bufpool **out);

/*
 * Frees the pool and its free list. Every buffer must have come back and
 * nobody may be waiting. NULL is ignored.
 */
void ig_bufpool_free(struct ig_bufpool *p);

/* Bytes per buffer. */
size_t ig_bufpool_buf_size(const struct ig_bufpool *p);

/*
 * Takes a buffer of ig_bufpool_buf_size() bytes (its content is
 * unspecified). Returns NULL when use is IG_BP_START and the pool is at
 * its cap, or when memory runs out; the caller may then wait.
 */
uint8_t *ig_bufpool_get(struct ig_bufpool *p, enum ig_bufpool_use use);

/*
 * Gives buf back (from ig_bufpool_get() of this pool; NULL is ignored),
 * wiping its first dirty bytes (what it held: at most the buffer size)
 * with mbedtls_platform_zeroize. Then, if the pool is under its cap, tells
 * every queued waiter (in the order they queued); waiters that lose the
 * race wait again.
 */
void ig_bufpool_put(struct ig_bufpool *p, uint8_t *buf, size_t dirty);

/*
 * Queues w (w->fn set) to be told when a buffer comes back. Idempotent
 * while queued.
 */
void ig_bufpool_wait(struct ig_bufpool *p, struct ig_bufpool_waiter *w);

/* Takes w off the queue if it is on it (idempotent). */
void ig_bufpool_cancel(struct ig_bufpool *p, struct ig_bufpool_waiter *w);

/* Fills *st. */
void ig_bufpool_stats(const struct ig_bufpool *p, struct ig_bufpool_stats *st);

#endif /* IG_PROXY_BUFPOOL_H */
