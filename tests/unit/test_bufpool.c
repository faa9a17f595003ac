/*
 * Unit tests for proxy/bufpool.c: buffers handed out and back, the free
 * list bounded (what goes beyond it is freed: ASan would see a leak or a
 * double free), the cap refusing only a holder's first buffer
 * (IG_BP_START) and never one that carries bytes on (IG_BP_CARRY), dirty
 * bytes wiped on return, and the wait queue: FIFO order, each waiter told
 * once per put under the cap, cancel, a waiter that queues again from its
 * callback, and one that cancels another.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/bufpool.h"
#include "util/err.h"

#define BS 1024u

static struct ig_bufpool *
pool(size_t max_bytes, size_t free_max)
{
	struct ig_bufpool *p = NULL;
	assert_int_equal(ig_bufpool_new(BS, max_bytes, free_max, &p), 0);
	assert_non_null(p);
	return p;
}

static struct ig_bufpool_stats
stats(const struct ig_bufpool *p)
{
	struct ig_bufpool_stats st;
	ig_bufpool_stats(p, &st);
	return st;
}

static void
test_new_and_size(void **state)
{
	(void)state;
	struct ig_bufpool *p = NULL;
	assert_int_equal(ig_bufpool_new(0, 0, 0, &p), IG_EINVAL);
	assert_null(p);
	/* Tiny buffers still hold the free list's link. */
	assert_int_equal(ig_bufpool_new(1, 0, 4, &p), 0);
	assert_true(ig_bufpool_buf_size(p) >= sizeof(void *));
	uint8_t *b = ig_bufpool_get(p, IG_BP_START);
	assert_non_null(b);
	ig_bufpool_put(p, b, 1);
	ig_bufpool_free(p);
	ig_bufpool_free(NULL);

	p = pool(0, 2);
	assert_int_equal(ig_bufpool_buf_size(p), BS);
	struct ig_bufpool_stats st = stats(p);
	assert_int_equal(st.buf_size, BS);
	assert_int_equal(st.max_bytes, 0);
	assert_int_equal(st.in_use, 0);
	ig_bufpool_free(p);

	/* A cap is rounded up to whole buffers. */
	p = pool(BS + 1, 2);
	assert_int_equal(stats(p).max_bytes, 2 * BS);
	ig_bufpool_free(p);
}

/* Buffers come back through the free list, at most free_max of them. */
static void
test_free_list_bounded(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(0, 2);
	uint8_t *b[5];
	for (size_t i = 0; i < 5; i++) {
		b[i] = ig_bufpool_get(p, i % 2 ? IG_BP_CARRY : IG_BP_START);
		assert_non_null(b[i]);
		memset(b[i], (int)('a' + i), BS); /* ASan: the whole buffer is ours */
	}
	assert_int_equal(stats(p).in_use, 5);
	assert_int_equal(stats(p).in_use_peak, 5);
	for (size_t i = 0; i < 5; i++)
		ig_bufpool_put(p, b[i], BS);
	struct ig_bufpool_stats st = stats(p);
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.free, 2); /* three went back to the allocator */
	assert_int_equal(st.in_use_peak, 5);
	/* The next two come from the free list (the first two returned; the
	   list was full for the others; the last kept comes first). */
	uint8_t *x = ig_bufpool_get(p, IG_BP_START);
	uint8_t *y = ig_bufpool_get(p, IG_BP_START);
	assert_ptr_equal(x, b[1]);
	assert_ptr_equal(y, b[0]);
	assert_int_equal(stats(p).free, 0);
	ig_bufpool_put(p, x, 0);
	ig_bufpool_put(p, y, 0);
	ig_bufpool_put(p, NULL, 0); /* ignored */
	assert_int_equal(stats(p).in_use, 0);
	ig_bufpool_free(p); /* frees the free list: ASan checks */

	/* free_max 0: nothing is kept. */
	p = pool(0, 0);
	x = ig_bufpool_get(p, IG_BP_START);
	ig_bufpool_put(p, x, 0);
	assert_int_equal(stats(p).free, 0);
	ig_bufpool_free(p);
}

/* What a buffer held is wiped when it comes back: dirty bytes at least. */
static void
test_put_wipes(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(0, 4);
	uint8_t *b = ig_bufpool_get(p, IG_BP_START);
	memset(b, 'P', BS);
	ig_bufpool_put(p, b, 100);
	uint8_t *again = ig_bufpool_get(p, IG_BP_START);
	assert_ptr_equal(again, b);
	/* The free list's link may sit in the first bytes; past it, zeros up
	   to dirty, and the rest untouched. */
	for (size_t i = sizeof(void *); i < 100; i++)
		assert_int_equal(again[i], 0);
	assert_int_equal(again[100], 'P');
	/* dirty beyond the size is clamped. */
	memset(again, 'Q', BS);
	ig_bufpool_put(p, again, 10 * BS);
	again = ig_bufpool_get(p, IG_BP_START);
	for (size_t i = sizeof(void *); i < BS; i++)
		assert_int_equal(again[i], 0);
	ig_bufpool_put(p, again, 0);
	ig_bufpool_free(p);
}

/* The cap refuses a first buffer, never one that carries bytes on. */
static void
test_cap(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(2 * BS, 8);
	uint8_t *a = ig_bufpool_get(p, IG_BP_START);
	uint8_t *b = ig_bufpool_get(p, IG_BP_START);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(ig_bufpool_get(p, IG_BP_START));
	assert_null(ig_bufpool_get(p, IG_BP_START));
	assert_int_equal(stats(p).refused, 2);
	/* Carrying bytes on is not refused at the cap. */
	uint8_t *c = ig_bufpool_get(p, IG_BP_CARRY);
	assert_non_null(c);
	assert_int_equal(stats(p).in_use, 3);
	assert_null(ig_bufpool_get(p, IG_BP_COUNT));
	/* Under the cap again only once two have come back. */
	ig_bufpool_put(p, c, 0);
	assert_null(ig_bufpool_get(p, IG_BP_START));
	ig_bufpool_put(p, b, 0);
	b = ig_bufpool_get(p, IG_BP_START);
	assert_non_null(b);
	ig_bufpool_put(p, a, 0);
	ig_bufpool_put(p, b, 0);
	assert_int_equal(stats(p).in_use, 0);
	ig_bufpool_free(p);
}

/* A waiter records the order it was told in. */
struct waiter {
	struct ig_bufpool_waiter w;
	struct ig_bufpool *p;
	int id;
	int told;
	int *log;               /* ids in the order told */
	size_t *nlog;
	bool again;             /* queue again from the callback */
	struct waiter *cancel;  /* cancel this one from the callback */
	uint8_t *got;           /* take a buffer from the callback */
	bool take;
};

static void
waiter_fn(struct ig_bufpool_waiter *w)
{
	struct waiter *x = (struct waiter *)(void *)w;
	assert_false(w->queued);
	x->told++;
	x->log[(*x->nlog)++] = x->id;
	if (x->take && x->got == NULL)
		x->got = ig_bufpool_get(x->p, IG_BP_START);
	if (x->again)
		ig_bufpool_wait(x->p, &x->w);
	if (x->cancel != NULL)
		ig_bufpool_cancel(x->p, &x->cancel->w);
}

static void
waiter_init(struct waiter *x, struct ig_bufpool *p, int id, int *log, size_t *nlog)
{
	memset(x, 0, sizeof(*x));
	x->w.fn = waiter_fn;
	x->p = p;
	x->id = id;
	x->log = log;
	x->nlog = nlog;
}

/* Waiters are told in FIFO order when a buffer comes back under the cap. */
static void
test_wait_queue(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(BS, 4);
	int log[16];
	size_t nlog = 0;
	struct waiter w[3];
	for (int i = 0; i < 3; i++)
		waiter_init(&w[i], p, i + 1, log, &nlog);
	uint8_t *a = ig_bufpool_get(p, IG_BP_START);
	assert_null(ig_bufpool_get(p, IG_BP_START));
	ig_bufpool_wait(p, &w[0].w);
	ig_bufpool_wait(p, &w[1].w);
	ig_bufpool_wait(p, &w[1].w); /* idempotent */
	ig_bufpool_wait(p, &w[2].w);
	assert_int_equal(stats(p).waiting, 3);
	/* A carry buffer back: still at the cap, nobody is told. */
	uint8_t *c = ig_bufpool_get(p, IG_BP_CARRY);
	ig_bufpool_put(p, c, 0);
	assert_int_equal(nlog, 0);
	/* The second is cancelled (its connection closed). */
	ig_bufpool_cancel(p, &w[1].w);
	ig_bufpool_cancel(p, &w[1].w); /* idempotent */
	assert_false(w[1].w.queued);
	assert_int_equal(stats(p).waiting, 2);
	/* Under the cap: the rest are told, in order, once each. The first
	   takes the buffer; the third, finding none, queues again. */
	w[0].take = true;
	w[2].take = true;
	w[2].again = true;
	ig_bufpool_put(p, a, 0);
	assert_int_equal(nlog, 2);
	assert_int_equal(log[0], 1);
	assert_int_equal(log[1], 3);
	assert_non_null(w[0].got);
	assert_null(w[2].got);
	assert_int_equal(w[1].told, 0);
	assert_true(w[2].w.queued);
	assert_int_equal(stats(p).waiting, 1);
	/* The first gives its buffer back: the third is told and takes it. */
	w[2].again = false;
	ig_bufpool_put(p, w[0].got, 0);
	assert_int_equal(nlog, 3);
	assert_int_equal(log[2], 3);
	assert_non_null(w[2].got);
	assert_int_equal(stats(p).waiting, 0);
	ig_bufpool_put(p, w[2].got, 0);
	/* Nobody waits: a put tells nobody. */
	a = ig_bufpool_get(p, IG_BP_START);
	ig_bufpool_put(p, a, 0);
	assert_int_equal(nlog, 3);
	ig_bufpool_free(p);
}

/* A callback that cancels a later waiter takes it out of the round, and a
   callback that queues again is told only at a later put. */
static void
test_wait_callbacks(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(BS, 4);
	int log[16];
	size_t nlog = 0;
	struct waiter w[3];
	for (int i = 0; i < 3; i++)
		waiter_init(&w[i], p, i + 1, log, &nlog);
	uint8_t *a = ig_bufpool_get(p, IG_BP_START);
	for (int i = 0; i < 3; i++)
		ig_bufpool_wait(p, &w[i].w);
	w[0].cancel = &w[1];
	w[0].again = true;
	ig_bufpool_put(p, a, 0);
	/* 1 told (cancels 2, queues again), 3 told; 1 not told twice. */
	assert_int_equal(nlog, 2);
	assert_int_equal(log[0], 1);
	assert_int_equal(log[1], 3);
	assert_int_equal(w[1].told, 0);
	assert_true(w[0].w.queued);
	assert_int_equal(stats(p).waiting, 1);
	ig_bufpool_cancel(p, &w[0].w);
	assert_int_equal(stats(p).waiting, 0);
	ig_bufpool_free(p);
}

/* No cap: never refused, and a put tells waiters anyway (one that waited
   because memory ran out). */
static void
test_no_cap(void **state)
{
	(void)state;
	struct ig_bufpool *p = pool(0, 1);
	uint8_t *b[64];
	for (size_t i = 0; i < 64; i++) {
		b[i] = ig_bufpool_get(p, IG_BP_START);
		assert_non_null(b[i]);
	}
	int log[4];
	size_t nlog = 0;
	struct waiter w;
	waiter_init(&w, p, 7, log, &nlog);
	ig_bufpool_wait(p, &w.w);
	for (size_t i = 0; i < 64; i++)
		ig_bufpool_put(p, b[i], 0);
	assert_int_equal(nlog, 1);
	assert_int_equal(stats(p).refused, 0);
	assert_int_equal(stats(p).free, 1);
	ig_bufpool_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_size),
		cmocka_unit_test(test_free_list_bounded),
		cmocka_unit_test(test_put_wipes),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_wait_queue),
		cmocka_unit_test(test_wait_callbacks),
		cmocka_unit_test(test_no_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
