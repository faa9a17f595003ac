/*
 * Unit tests for proxy/conncount.c: address groups (IPv4 /32, IPv6 by
 * prefix, IPv4-mapped as IPv4), counting up and down with entries removed
 * at zero, the cap from limits.raised, and the table against a naive model
 * through growth and heavy churn (backward-shift deletion keeps every key
 * reachable), with memory bounded by the live entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "policy/cidr.h"
#include "proxy/conncount.h"
#include "util/err.h"

static const uint8_t key1[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* A sockaddr for a numeric address; 8 rotating buffers. */
static const struct sockaddr *
A(const char *s)
{
	static struct sockaddr_storage ring[8];
	static unsigned next;
	struct sockaddr_storage *ss = &ring[next++ % 8];
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

static struct ig_cc_key
K(const char *s, uint8_t v6prefix)
{
	struct ig_cc_key k;
	assert_true(ig_cc_key_from_addr(A(s), v6prefix, &k));
	return k;
}

/* {address, IPv6 prefix, the group as formatted} */
static const struct {
	const char *addr;
	uint8_t prefix;
	const char *group;
} group_rows[] = {
	{ "192.0.2.7", 64, "192.0.2.7" },
	{ "192.0.2.7", 0, "192.0.2.7" },            /* IPv4 is always /32 */
	{ "::ffff:192.0.2.7", 64, "192.0.2.7" },    /* mapped counts as IPv4 */
	{ "2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48" },
	{ "2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56" },
	{ "2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6" },
	{ "2001:db8:1:2:3:4:5:6", 0, "::/0" },
	{ "::1", 64, "::/64" },
};

static void
test_groups(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(group_rows) / sizeof(group_rows[0]); i++) {
		struct ig_cc_key k = K(group_rows[i].addr, group_rows[i].prefix);
		char buf[64];
		ig_cc_key_format(&k, buf, sizeof(buf));
		assert_string_equal(buf, group_rows[i].group);
	}
	struct ig_cc_key k;
	assert_false(ig_cc_key_from_addr(NULL, 64, &k));
	assert_int_equal(k.family, 0);
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	assert_false(ig_cc_key_from_addr((const struct sockaddr *)&un, 64, &k));
}

static void
test_count_up_and_down(void **state)
{
	(void)state;
	struct ig_cc *cc;
	assert_int_equal(ig_cc_new(key1, &cc), 0);
	struct ig_cc_key a = K("192.0.2.7", 64), b = K("2001:db8:1:2::1", 64);
	struct ig_cc_key b2 = K("2001:db8:1:2:ffff::9", 64);  /* same /64 as b */
	struct ig_cc_key m = K("::ffff:192.0.2.7", 64);       /* same as a */
	unsigned n = 0;
	for (unsigned i = 1; i <= 5; i++) {
		assert_int_equal(ig_cc_add(cc, &a, &n), 0);
		assert_int_equal(n, i);
	}
	assert_int_equal(ig_cc_add(cc, &m, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(ig_cc_add(cc, &b, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ig_cc_add(cc, &b2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ig_cc_entries(cc), 2);
	assert_int_equal(ig_cc_get(cc, &a), 6);

	for (unsigned i = 6; i > 0; i--) {
		assert_true(ig_cc_remove(cc, &a));
		assert_int_equal(ig_cc_get(cc, &a), i - 1);
	}
	assert_int_equal(ig_cc_entries(cc), 1);       /* gone at zero */
	assert_false(ig_cc_remove(cc, &a));           /* absent: ignored */
	assert_int_equal(ig_cc_get(cc, &b), 2);
	assert_true(ig_cc_remove(cc, &b2));
	assert_true(ig_cc_remove(cc, &b));
	assert_int_equal(ig_cc_entries(cc), 0);
	ig_cc_free(cc);
	ig_cc_free(NULL);
}

/* A deterministic generator (xorshift64*). */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

#define MODEL_KEYS 5000

/*
 * Random adds and removes over a few thousand groups, checked against
 * plain counters after every step: growth, collisions and backward-shift
 * deletion never lose or misplace a key. At the end everything is removed
 * and the table is empty.
 */
static void
test_against_model(void **state)
{
	(void)state;
	struct ig_cc *cc;
	assert_int_equal(ig_cc_new(key1, &cc), 0);
	static unsigned model[MODEL_KEYS];
	static struct ig_cc_key keys[MODEL_KEYS];
	memset(model, 0, sizeof(model));
	for (unsigned i = 0; i < MODEL_KEYS; i++) {
		char a[64];
		if (i % 2 == 0)
			snprintf(a, sizeof(a), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		else
			snprintf(a, sizeof(a), "2001:db8:%x:%x::1", i >> 8, i & 255);
		keys[i] = K(a, 64);
	}
	uint64_t s = 0x9e3779b97f4a7c15u;
	size_t live = 0, peak = 0;
	for (unsigned step = 0; step < 200000; step++) {
		/* Work on a moving window so entries come and go. */
		unsigned base = (step / 20000) * 400 % MODEL_KEYS;
		unsigned i = (base + (unsigned)(rnd(&s) % 1500)) % MODEL_KEYS;
		unsigned n = 0;
		if (rnd(&s) % 100 < 55) {
			assert_int_equal(ig_cc_add(cc, &keys[i], &n), 0);
			if (model[i]++ == 0)
				live++;
			assert_int_equal(n, model[i]);
		} else {
			assert_int_equal(ig_cc_remove(cc, &keys[i]), model[i] > 0);
			if (model[i] > 0 && --model[i] == 0)
				live--;
		}
		if (live > peak)
			peak = live;
		assert_int_equal(ig_cc_entries(cc), live);
		if (step % 997 == 0)
			for (unsigned j = 0; j < MODEL_KEYS; j++)
				assert_int_equal(ig_cc_get(cc, &keys[j]), model[j]);
	}
	/* Load at most one half, and no more slots than the peak needs. */
	assert_true(ig_cc_capacity(cc) >= 2 * peak);
	assert_true(ig_cc_capacity(cc) <= 4 * peak || ig_cc_capacity(cc) == 64);
	for (unsigned j = 0; j < MODEL_KEYS; j++) {
		while (model[j] > 0) {
			assert_true(ig_cc_remove(cc, &keys[j]));
			model[j]--;
		}
	}
	assert_int_equal(ig_cc_entries(cc), 0);
	for (unsigned j = 0; j < MODEL_KEYS; j++)
		assert_int_equal(ig_cc_get(cc, &keys[j]), 0);
	ig_cc_free(cc);
}

static void
set_add(struct ig_netset *set, const char *cidr)
{
	struct ig_cidr *v = realloc(set->v, (set->n + 1) * sizeof(*v));
	assert_non_null(v);
	set->v = v;
	assert_int_equal(ig_cidr_parse(cidr, &set->v[set->n]), 0);
	set->n++;
}

static void
test_limit_raised(void **state)
{
	(void)state;
	struct ig_conn_raise r[2];
	memset(r, 0, sizeof(r));
	set_add(&r[0].nets, "192.0.2.0/24");
	set_add(&r[0].nets, "2001:db8:20::/48");
	r[0].max_conn_per_address = 1000;
	set_add(&r[1].nets, "192.0.0.0/16");            /* first match wins */
	r[1].max_conn_per_address = 3;
	struct ig_limits lim = { .max_conn_per_address = 100, .raised = r, .nraised = 2 };
	assert_int_equal(ig_cc_limit(&lim, A("192.0.2.9")), 1000);
	assert_int_equal(ig_cc_limit(&lim, A("::ffff:192.0.2.9")), 1000);
	assert_int_equal(ig_cc_limit(&lim, A("2001:db8:20:5::1")), 1000);
	assert_int_equal(ig_cc_limit(&lim, A("192.0.3.1")), 3);
	assert_int_equal(ig_cc_limit(&lim, A("198.51.100.1")), 100);
	assert_int_equal(ig_cc_limit(&lim, A("2001:db8:21::1")), 100);
	lim.max_conn_per_address = 0;                    /* no cap */
	assert_int_equal(ig_cc_limit(&lim, A("198.51.100.1")), 0);
	free(r[0].nets.v);
	free(r[1].nets.v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_count_up_and_down),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_limit_raised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
