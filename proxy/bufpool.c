/*
 * The buffer pool: a counter of buffers out, a free list threaded through
 * the free buffers themselves (their first bytes hold the link), and a
 * FIFO of waiters. See bufpool.h for the two kinds of request and why only
 * the first buffer of a holder is refused at the cap.
 */
#include "proxy/bufpool.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "util/err.h"

struct bp_free {
	struct bp_free *next;
};

struct ig_bufpool {
	size_t buf_size;               /* bytes per buffer (>= a link) */
	size_t max_bufs;               /* cap on IG_BP_START (0: none) */
	size_t free_max;               /* longest free list */
	size_t in_use;                 /* buffers handed out */
	size_t in_use_peak;
	struct bp_free *free;          /* the free list */
	size_t nfree;
	struct ig_bufpool_waiter *wait_head, *wait_tail;
	size_t nwaiting;
	uint64_t wait_seq;             /* waits so far */
	uint64_t refused;
};

int
ig_bufpool_new(size_t buf_size, size_t max_bytes, size_t free_max, struct ig_bufpool **out)
{
	*out = NULL;
	if (buf_size == 0)
		return IG_EINVAL;
	struct ig_bufpool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return IG_ENOMEM;
	/* The free list's link lives in the buffer. */
	p->buf_size = buf_size < sizeof(struct bp_free) ? sizeof(struct bp_free) : buf_size;
	p->max_bufs = max_bytes == 0 ? 0 : (max_bytes + p->buf_size - 1) / p->buf_size;
	p->free_max = free_max;
	*out = p;
	return 0;
}

void
ig_bufpool_free(struct ig_bufpool *p)
{
	if (p == NULL)
		return;
	struct bp_free *f = p->free;
	while (f != NULL) {
		struct bp_free *next = f->next;
		free(f);
		f = next;
	}
	free(p);
}

size_t
ig_bufpool_buf_size(const struct ig_bufpool *p)
{
	return p->buf_size;
}

static bool
bufpool_under_cap(const struct ig_bufpool *p)
{
	return p->max_bufs == 0 || p->in_use < p->max_bufs;
}

uint8_t *
ig_bufpool_get(struct ig_bufpool *p, enum ig_bufpool_use use)
{
	switch (use) {
	case IG_BP_START:
		if (!bufpool_under_cap(p)) {
			p->refused++;
			return NULL;
		}
		break;
	case IG_BP_CARRY:
		break;
	case IG_BP_COUNT:
		return NULL;
	}
	uint8_t *b;
	if (p->free != NULL) {
		struct bp_free *f = p->free;
		p->free = f->next;
		p->nfree--;
		f->next = NULL;
		b = (uint8_t *)f;
	} else {
		b = malloc(p->buf_size);
		if (b == NULL)
			return NULL;
	}
	p->in_use++;
	if (p->in_use > p->in_use_peak)
		p->in_use_peak = p->in_use;
	return b;
}

/*
 * Tells the waiters queued now, in order: each is taken off the queue
 * before its callback runs. A callback that queues again (its own waiter
 * or another) goes behind them and waits for a later put; one that cancels
 * a waiter still queued takes it out of this round.
 */
static void
bufpool_wake(struct ig_bufpool *p)
{
	uint64_t before = p->wait_seq;
	while (p->wait_head != NULL && p->wait_head->seq < before) {
		struct ig_bufpool_waiter *w = p->wait_head;
		ig_bufpool_cancel(p, w);
		w->fn(w);
	}
}

void
ig_bufpool_put(struct ig_bufpool *p, uint8_t *buf, size_t dirty)
{
	if (buf == NULL)
		return;
	if (dirty > p->buf_size)
		dirty = p->buf_size;
	if (dirty > 0)
		mbedtls_platform_zeroize(buf, dirty);
	p->in_use--;
	if (p->nfree < p->free_max) {
		struct bp_free *f = (struct bp_free *)(void *)buf;
		f->next = p->free;
		p->free = f;
		p->nfree++;
	} else {
		free(buf);
	}
	if (p->wait_head != NULL && bufpool_under_cap(p))
		bufpool_wake(p);
}

void
ig_bufpool_wait(struct ig_bufpool *p, struct ig_bufpool_waiter *w)
{
	if (w->queued)
		return;
	w->queued = true;
	w->seq = p->wait_seq++;
	w->next = NULL;
	w->prev = p->wait_tail;
	if (p->wait_tail != NULL)
		p->wait_tail->next = w;
	else
		p->wait_head = w;
	p->wait_tail = w;
	p->nwaiting++;
}

void
ig_bufpool_cancel(struct ig_bufpool *p, struct ig_bufpool_waiter *w)
{
	if (!w->queued)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		p->wait_head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		p->wait_tail = w->prev;
	w->prev = w->next = NULL;
	w->queued = false;
	p->nwaiting--;
}

void
ig_bufpool_stats(const struct ig_bufpool *p, struct ig_bufpool_stats *st)
{
	*st = (struct ig_bufpool_stats){
		.buf_size = p->buf_size,
		.max_bytes = p->max_bufs * p->buf_size,
		.in_use = p->in_use,
		.in_use_peak = p->in_use_peak,
		.free = p->nfree,
		.waiting = p->nwaiting,
		.refused = p->refused,
	};
}
