/*
 * Unit tests for the limiter's parts on their own (policy/rl_internal.h):
 * the keyed hash against the SipHash-2-4-128 reference vectors, and the
 * fixed table's least-recently-used eviction order (FAIL before BLOCKED,
 * an expired block first, KNOWN entries only by KNOWN ones, pinned entries
 * never).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/ratelimit.h"
#include "policy/rl_internal.h"

#define T0 1700000000000ull

static const uint8_t key1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

/* SipHash-2-4 with 128-bit output, key 00..0f, message 00..len-1: the first
 * vectors of the reference implementation (vectors.h, vectors_sip128). */
static const uint8_t sip128_vectors[][16] = {
	{ 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
	  0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 },
	{ 0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44,
	  0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45 },
};

static void
test_siphash_vectors(void **state)
{
	(void)state;
	uint8_t key[16], msg[16];
	for (unsigned i = 0; i < 16; i++)
		key[i] = msg[i] = (uint8_t)i;
	for (size_t n = 0; n < sizeof(sip128_vectors) / sizeof(sip128_vectors[0]); n++) {
		uint64_t out[2];
		uint8_t bytes[16];
		ig_rl_siphash128(key, msg, n, out);
		for (unsigned i = 0; i < 8; i++) {
			bytes[i] = (uint8_t)(out[0] >> (8 * i));
			bytes[8 + i] = (uint8_t)(out[1] >> (8 * i));
		}
		print_message("vector %zu\n", n);
		assert_memory_equal(bytes, sip128_vectors[n], 16);
	}
}

/* A limiter of 16 entries, at most 4 of them KNOWN. */
static struct ig_rl *
small_table(void)
{
	struct ig_rl_conf c;
	struct ig_rl *rl;
	ig_rl_conf_defaults(&c);
	c.max_keys = 16;
	c.max_known = 4;
	assert_int_equal(ig_rl_new(&c, key1, &rl), 0);
	return rl;
}

/* Entry number n of kind: its id is (n + 1, kind), its keys a user "u". */
static uint32_t
get(struct ig_rl *rl, enum rl_kind kind, unsigned n, uint64_t now)
{
	struct rl_keys k;
	memset(&k, 0, sizeof(k));
	k.user = "u";
	k.ulen = 1;
	uint64_t id[2] = { n + 1, kind };
	uint32_t i = ig_rl_tab_get(rl, kind, id, &k, now);
	rl->npin = 0;
	return i;
}

static bool
has(const struct ig_rl *rl, enum rl_kind kind, unsigned n)
{
	uint64_t id[2] = { n + 1, kind };
	return ig_rl_tab_find(rl, kind, id) != RL_NIL;
}

static void
test_lru_order(void **state)
{
	(void)state;
	struct ig_rl *rl = small_table();
	for (unsigned n = 0; n < 16; n++)
		assert_int_not_equal(get(rl, RL_K_ADDR, n, T0), RL_NIL);
	assert_int_equal(ig_rl_count(rl), 16);
	/* Touch 0: the least recently used is now 1, then 2. */
	get(rl, RL_K_ADDR, 0, T0);
	get(rl, RL_K_ADDR, 100, T0);
	assert_false(has(rl, RL_K_ADDR, 1));
	assert_true(has(rl, RL_K_ADDR, 0));
	get(rl, RL_K_ADDR, 101, T0);
	assert_false(has(rl, RL_K_ADDR, 2));
	assert_int_equal(ig_rl_count(rl), 16);
	ig_rl_free(rl);
}

static void
test_blocked_after_fail(void **state)
{
	(void)state;
	struct ig_rl *rl = small_table();
	/* Entry 0 (the oldest) carries a block for an hour, entry 1 one that
	 * ends at T0 + 1 s. */
	uint32_t b0 = get(rl, RL_K_ADDR, 0, T0);
	uint32_t b1 = get(rl, RL_K_ADDR, 1, T0);
	rl->e[b0].block_until = T0 + 3600 * 1000;
	rl->e[b0].limit = RL_L_ADDRESS;
	ig_rl_tab_touch(rl, b0);
	rl->e[b1].block_until = T0 + 1000;
	rl->e[b1].limit = RL_L_ADDRESS;
	ig_rl_tab_touch(rl, b1);
	for (unsigned n = 2; n < 16; n++)
		get(rl, RL_K_ADDR, n, T0);
	assert_int_equal(rl->list[RL_BLOCKED].n, 2);
	/* While both blocks hold, failure keys go first. */
	get(rl, RL_K_ADDR, 100, T0);
	assert_false(has(rl, RL_K_ADDR, 2));
	assert_true(has(rl, RL_K_ADDR, 0) && has(rl, RL_K_ADDR, 1));
	/* Entry 1's block is over, but only the BLOCKED tail is looked at,
	 * and that is entry 0, still blocked: FAIL entries still go first. */
	get(rl, RL_K_ADDR, 101, T0 + 2000);
	assert_false(has(rl, RL_K_ADDR, 3));
	/* Entry 0's block over too: the BLOCKED tail (0) goes before FAIL. */
	get(rl, RL_K_ADDR, 102, T0 + 3600 * 1000);
	assert_false(has(rl, RL_K_ADDR, 0));
	assert_true(has(rl, RL_K_ADDR, 4));
	/* An expired block found by lookup is cleared and moves to FAIL. */
	assert_false(ig_rl_tab_block_active(rl, b1, T0 + 3600 * 1000));
	assert_int_equal(rl->e[b1].block_until, 0);
	assert_int_equal(rl->e[b1].list, RL_FAIL);
	ig_rl_free(rl);
}

static void
test_known_kept(void **state)
{
	(void)state;
	struct ig_rl *rl = small_table();
	for (unsigned n = 0; n < 4; n++)
		get(rl, RL_K_KNOWN, n, T0);
	/* Failure keys churning through the table never take a KNOWN entry. */
	for (unsigned n = 0; n < 100; n++)
		assert_int_not_equal(get(rl, RL_K_ADDR, n, T0), RL_NIL);
	for (unsigned n = 0; n < 4; n++)
		assert_true(has(rl, RL_K_KNOWN, n));
	assert_int_equal(rl->list[RL_KNOWN].n, 4);
	/* A fifth KNOWN entry (max_known 4) replaces the oldest KNOWN one. */
	get(rl, RL_K_KNOWN, 4, T0);
	assert_false(has(rl, RL_K_KNOWN, 0));
	assert_true(has(rl, RL_K_KNOWN, 4));
	assert_int_equal(rl->list[RL_KNOWN].n, 4);
	ig_rl_free(rl);
}

static void
test_pinned_kept(void **state)
{
	(void)state;
	struct ig_rl *rl = small_table();
	struct rl_keys k;
	memset(&k, 0, sizeof(k));
	for (unsigned n = 0; n < 16; n++)
		get(rl, RL_K_ADDR, n, T0);
	/* One operation pins what it got: 0 and 1 are the oldest but stay. */
	uint64_t id0[2] = { 1, RL_K_ADDR }, id1[2] = { 2, RL_K_ADDR }, idn[2] = { 200, RL_K_ADDR };
	uint32_t i0 = ig_rl_tab_get(rl, RL_K_ADDR, id0, &k, T0);
	assert_int_not_equal(ig_rl_tab_get(rl, RL_K_ADDR, id1, &k, T0), RL_NIL);
	/* Touched by get: make them the oldest again. */
	for (unsigned n = 2; n < 16; n++)
		ig_rl_tab_touch(rl, ig_rl_tab_find(rl, RL_K_ADDR, (uint64_t[2]){ n + 1, RL_K_ADDR }));
	assert_int_equal(rl->list[RL_FAIL].tail, i0);
	uint32_t in = ig_rl_tab_get(rl, RL_K_ADDR, idn, &k, T0);
	assert_int_not_equal(in, RL_NIL);
	assert_true(has(rl, RL_K_ADDR, 0));
	assert_true(has(rl, RL_K_ADDR, 1));
	assert_false(has(rl, RL_K_ADDR, 2));
	rl->npin = 0;
	ig_rl_free(rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_blocked_after_fail),
		cmocka_unit_test(test_known_kept),
		cmocka_unit_test(test_pinned_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
