/*
 * Unit tests for policy/ratelimit.c with an injected clock: every limit's
 * threshold, window and block expiry (one table row per limit), IPv6
 * grouping, exemptions, raised limits for a NAT, the known-address defence
 * against lockout, password spraying, stale-password repeats, the tarpit,
 * the operator view, the state file, and bounded memory under a million
 * distinct keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>
#include <malloc.h>
#include <cmocka.h>

#include <mbedtls/sha256.h>

#include "policy/cidr.h"
#include "policy/ratelimit.h"
#include "util/err.h"

#if defined(__SANITIZE_ADDRESS__)
#define RL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RL_ASAN 1
#endif
#endif
#ifdef RL_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define T0 1700000000000ull
#define SEC 1000ull
#define MIN (60 * SEC)

static const uint8_t key1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t key2[32] = { 42 };

/* ---- helpers ---------------------------------------------------------- */

/* A sockaddr for a numeric address; 16 rotating buffers. */
static const struct sockaddr *
A(const char *s)
{
	static struct sockaddr_storage ring[16];
	static unsigned next;
	struct sockaddr_storage *ss = &ring[next++ % 16];
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

/* f with its "%u" (decimal) or "%x" (hex) replaced by i; 8 rotating
 * buffers. Not printf: the formats come from tables. */
static const char *
fmt(const char *f, unsigned i)
{
	static char ring[8][64];
	static unsigned next;
	char *b = ring[next++ % 8];
	const char *p = strchr(f, '%');
	if (p == NULL) {
		snprintf(b, 64, "%s", f);
		return b;
	}
	snprintf(b, 64, p[1] == 'x' ? "%.*s%x%s" : "%.*s%u%s", (int)(p - f), f,
	    i, p + 2);
	return b;
}

static struct ig_rl_attempt
att(const char *user, const struct sockaddr *sa, const char *pw, uint64_t now)
{
	struct ig_rl_attempt a = { user, sa, (const uint8_t *)pw,
	    pw != NULL ? strlen(pw) : 0, now, NULL };
	return a;
}

static struct ig_rl_verdict
failed(struct ig_rl *rl, const char *user, const char *addr, const char *pw,
    uint64_t now)
{
	struct ig_rl_verdict v;
	struct ig_rl_attempt a = att(user, A(addr), pw, now);
	ig_rl_failure(rl, &a, &v);
	return v;
}

static struct ig_rl_verdict
check(struct ig_rl *rl, const char *user, const char *addr, const char *pw,
    uint64_t now)
{
	struct ig_rl_verdict v;
	struct ig_rl_attempt a = att(user, A(addr), pw, now);
	ig_rl_check(rl, &a, &v);
	return v;
}

static void
ok(struct ig_rl *rl, const char *user, const char *addr, uint64_t now)
{
	struct ig_rl_attempt a = att(user, A(addr), NULL, now);
	ig_rl_success(rl, &a);
}

static struct ig_rl *
mk(const struct ig_rl_conf *c, const uint8_t *key)
{
	struct ig_rl *rl = NULL;
	assert_int_equal(ig_rl_new(c, key, &rl), 0);
	assert_non_null(rl);
	return rl;
}

static void
all_off(struct ig_rl_conf *c)
{
	c->address.threshold = 0;
	c->spray_address.threshold = 0;
	c->user.threshold = 0;
	c->user_address.threshold = 0;
	c->user_circuit.threshold = 0;
	c->password_spray.threshold = 0;
}

static void
netset1(struct ig_netset *ns, struct ig_cidr *c, const char *cidr)
{
	assert_int_equal(ig_cidr_parse(cidr, c), 0);
	ns->v = c;
	ns->n = 1;
}

/* ---- defaults and conf ------------------------------------------------ */

static void
test_defaults(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	assert_true(c.enabled);
	assert_int_equal(c.address.threshold, 10);
	assert_int_equal(c.address.window_ms, 10 * MIN);
	assert_int_equal(c.address.block_ms, 15 * MIN);
	assert_int_equal(c.spray_address.threshold, 10);
	assert_int_equal(c.user.threshold, 10);
	assert_int_equal(c.user.block_ms, 15 * MIN);
	assert_int_equal(c.user_address.threshold, 5);
	assert_int_equal(c.user_circuit.threshold, 16);
	assert_int_equal(c.user_circuit.window_ms, 60 * MIN);
	assert_int_equal(c.password_spray.threshold, 10);
	assert_int_equal(c.password_spray.block_ms, 60 * MIN);
	assert_int_equal(c.ipv4_prefix, 32);
	assert_int_equal(c.ipv6_prefix, 64);
	assert_int_equal(c.exempt.n, 0);
	assert_int_equal(c.known_ttl_ms, 30 * 24 * 60 * MIN);
	assert_int_equal(c.max_conn_failures, 3);
	assert_int_equal(c.max_keys, 100000);

	struct ig_rl *rl = mk(&c, key1);
	assert_int_equal(ig_rl_max_conn_failures(rl), 3);
	assert_int_equal(ig_rl_count(rl), 0);
	assert_true(ig_rl_entry_size() >= 256 && ig_rl_entry_size() <= 320);
	ig_rl_free(rl);
	ig_rl_free(NULL);
}

static void
test_bad_conf(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	struct ig_rl *rl = (struct ig_rl *)&c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 8;
	assert_int_equal(ig_rl_new(&c, key1, &rl), IG_EINVAL);
	assert_null(rl);
	ig_rl_conf_defaults(&c);
	c.max_known = c.max_keys;
	assert_int_equal(ig_rl_new(&c, key1, &rl), IG_EINVAL);
	ig_rl_conf_defaults(&c);
	c.ipv6_prefix = 129;
	assert_int_equal(ig_rl_new(&c, key1, &rl), IG_EINVAL);
	ig_rl_conf_defaults(&c);
	c.user.window_ms = 0;
	assert_int_equal(ig_rl_new(&c, key1, &rl), IG_EINVAL);
	ig_rl_conf_defaults(&c);
	c.address.threshold = 70000;
	assert_int_equal(ig_rl_new(&c, key1, &rl), IG_EINVAL);

	/* A rejected reload keeps the old conf. */
	ig_rl_conf_defaults(&c);
	c.max_keys = 64;
	c.max_known = 8;
	rl = mk(&c, key1);
	c.ipv4_prefix = 33;
	assert_int_equal(ig_rl_set_conf(rl, &c), IG_EINVAL);
	ig_rl_free(rl);
}

/* ---- one row per limit: threshold, window, block, expiry --------------- */

struct limit_row {
	const char *name;                /* expected verdict.limit */
	struct ig_rl_limit *(*pick)(struct ig_rl_conf *);
	/* The i-th failure (distinct for the limit). */
	const char *user_f, *addr_f, *pw_f;
	/* An attempt the block refuses, and one it does not. */
	const char *in_user, *in_addr, *in_pw;
	const char *out_user, *out_addr, *out_pw;
};

static struct ig_rl_limit *pick_address(struct ig_rl_conf *c) { return &c->address; }
static struct ig_rl_limit *pick_spray(struct ig_rl_conf *c) { return &c->spray_address; }
static struct ig_rl_limit *pick_user(struct ig_rl_conf *c) { return &c->user; }
static struct ig_rl_limit *pick_ua(struct ig_rl_conf *c) { return &c->user_address; }
static struct ig_rl_limit *pick_circuit(struct ig_rl_conf *c) { return &c->user_circuit; }
static struct ig_rl_limit *pick_pw(struct ig_rl_conf *c) { return &c->password_spray; }

static const struct limit_row limit_rows[] = {
	{ "address", pick_address, "alice", "192.0.2.1", "pw%u",
	  "bob", "192.0.2.1", "x", "alice", "192.0.2.2", "x" },
	{ "spray-address", pick_spray, "user%u", "192.0.2.1", "pw%u",
	  "zed", "192.0.2.1", "x", "zed", "192.0.2.2", "x" },
	{ "user", pick_user, "alice", "198.51.100.%u", "pw%u",
	  "alice", "203.0.113.9", "x", "bob", "198.51.100.1", "x" },
	{ "user-address", pick_ua, "alice", "192.0.2.1", "pw%u",
	  "alice", "192.0.2.1", "x", "bob", "192.0.2.1", "x" },
	{ "user-circuit", pick_circuit, "alice", "198.51.100.%u", "pw%u",
	  "alice", "203.0.113.9", "x", "bob", "198.51.100.1", "x" },
	{ "password-spray", pick_pw, "user%u", "198.51.100.%u", "Winter2024!",
	  "zed", "203.0.113.9", "Winter2024!", "zed", "203.0.113.9", "Summer2024!" },
};

static struct ig_rl *
row_rl(const struct limit_row *r, unsigned *thr, unsigned *win, unsigned *blk)
{
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	struct ig_rl_limit keep = *r->pick(&c);
	all_off(&c);
	*r->pick(&c) = keep;
	c.max_keys = 1024;
	c.max_known = 64;
	*thr = keep.threshold;
	*win = keep.window_ms;
	*blk = keep.block_ms;
	return mk(&c, key1);
}

static void
row_fail(struct ig_rl *rl, const struct limit_row *r, unsigned i, uint64_t now,
    struct ig_rl_verdict *v)
{
	*v = failed(rl, fmt(r->user_f, i), fmt(r->addr_f, i + 1), fmt(r->pw_f, i), now);
}

static void
test_limit_rows(void **state)
{
	(void)state;
	for (size_t n = 0; n < sizeof(limit_rows) / sizeof(limit_rows[0]); n++) {
		const struct limit_row *r = &limit_rows[n];
		unsigned thr, win, blk;
		struct ig_rl_verdict v;
		struct ig_rl *rl = row_rl(r, &thr, &win, &blk);
		print_message("limit %s: %u in %u s -> %u s\n", r->name, thr,
		    win / 1000, blk / 1000);

		/* thr - 1 failures: nothing refused. */
		uint64_t now = T0;
		for (unsigned i = 0; i + 1 < thr; i++, now += SEC) {
			row_fail(rl, r, i, now, &v);
			assert_false(v.refuse);
			assert_false(v.started);
		}
		v = check(rl, r->in_user, r->in_addr, r->in_pw, now);
		assert_false(v.refuse);

		/* The thr-th starts the block. */
		row_fail(rl, r, thr - 1, now, &v);
		assert_true(v.refuse);
		assert_true(v.started);
		assert_string_equal(v.limit, r->name);
		assert_int_equal(v.until_ms, now + blk);
		assert_int_equal(v.threshold, thr);
		assert_true(v.count >= thr);
		uint64_t until = v.until_ms;

		v = check(rl, r->in_user, r->in_addr, r->in_pw, now + 1);
		assert_true(v.refuse);
		assert_string_equal(v.limit, r->name);
		assert_int_equal(v.until_ms, until);
		assert_int_equal(v.delay_ms, 10000);
		v = check(rl, r->out_user, r->out_addr, r->out_pw, now + 1);
		assert_false(v.refuse);
		v = check(rl, r->in_user, r->in_addr, r->in_pw, until - 1);
		assert_true(v.refuse);
		/* The lock expires. */
		v = check(rl, r->in_user, r->in_addr, r->in_pw, until);
		assert_false(v.refuse);
		ig_rl_free(rl);

		/* Failures spread wider than the window never block. */
		rl = row_rl(r, &thr, &win, &blk);
		now = T0;
		for (unsigned i = 0; i < 3 * thr; i++) {
			row_fail(rl, r, i, now, &v);
			assert_false(v.refuse);
			if (i % (thr - 1) == thr - 2)
				now += 2 * (uint64_t)win + 2 * SEC;
			else
				now += SEC;
		}
		ig_rl_free(rl);
	}
}

/* The defaults together: an address failing 10 times for different users
 * with different passwords is blocked by "address" and "spray-address"
 * both at the 10th; one of them fires. */
static void
test_defaults_combined(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 1024;
	c.max_known = 64;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;
	for (unsigned i = 0; i < 9; i++) {
		v = failed(rl, fmt("u%u", i), "192.0.2.7", fmt("p%u", i), T0 + i);
		assert_false(v.refuse);
	}
	v = failed(rl, "u9", "192.0.2.7", "p9", T0 + 9);
	assert_true(v.refuse && v.started);
	assert_true(strcmp(v.limit, "address") == 0 ||
	    strcmp(v.limit, "spray-address") == 0);
	/* Loopback is not exempt by default. */
	for (unsigned i = 0; i < 10; i++)
		v = failed(rl, "alice", "127.0.0.1", fmt("p%u", i), T0 + i);
	assert_true(check(rl, "bob", "127.0.0.1", NULL, T0 + 20).refuse);
	ig_rl_free(rl);
}

/* ---- address groups --------------------------------------------------- */

struct blocks {
	unsigned n;
	char limit[8][32];
	char key[8][128];
	uint64_t until[8];
	unsigned count[8];
};

static void
collect(void *arg, const char *limit, const char *key, uint64_t until,
    unsigned count)
{
	struct blocks *b = arg;
	if (b->n < 8) {
		snprintf(b->limit[b->n], sizeof(b->limit[0]), "%s", limit);
		snprintf(b->key[b->n], sizeof(b->key[0]), "%s", key);
		b->until[b->n] = until;
		b->count[b->n] = count;
	}
	b->n++;
}

static void
test_ipv6_grouping(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	all_off(&c);
	c.address.threshold = 10;
	c.max_keys = 256;
	c.max_known = 16;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;
	/* Ten addresses of one /64 count as one. */
	for (unsigned i = 1; i <= 10; i++)
		v = failed(rl, "alice", fmt("2001:db8:1:2::%x", i), fmt("p%u", i), T0);
	assert_true(v.refuse && v.started);
	assert_string_equal(v.limit, "address");
	assert_true(check(rl, "bob", "2001:db8:1:2:ffff::1", NULL, T0).refuse);
	assert_false(check(rl, "bob", "2001:db8:1:3::1", NULL, T0).refuse);
	struct blocks b = { 0 };
	ig_rl_foreach_block(rl, T0, collect, &b);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.key[0], "2001:db8:1:2::/64");

	/* IPv4 is per address, and IPv4-mapped IPv6 is the same address. */
	for (unsigned i = 1; i <= 9; i++)
		assert_false(failed(rl, "alice", fmt("192.0.2.%u", i), "p", T0).refuse);
	for (unsigned i = 1; i <= 9; i++)
		assert_false(failed(rl, "alice", "::ffff:198.51.100.1", fmt("q%u", i), T0).refuse);
	assert_true(failed(rl, "alice", "198.51.100.1", "q10", T0).refuse);
	assert_true(check(rl, "bob", "::ffff:198.51.100.1", NULL, T0).refuse);
	ig_rl_free(rl);

	/* A /48 grouping and IPv4 /24 grouping when configured. */
	c.ipv6_prefix = 48;
	c.ipv4_prefix = 24;
	rl = mk(&c, key1);
	for (unsigned i = 1; i <= 10; i++) {
		failed(rl, "alice", fmt("2001:db8:1:%x::1", i), fmt("v6-%u", i), T0);
		failed(rl, "alice", fmt("203.0.113.%u", i), fmt("v4-%u", i), T0);
	}
	assert_true(check(rl, "bob", "2001:db8:1:ff::1", NULL, T0).refuse);
	assert_false(check(rl, "bob", "2001:db8:2::1", NULL, T0).refuse);
	assert_true(check(rl, "bob", "203.0.113.200", NULL, T0).refuse);
	memset(&b, 0, sizeof(b));
	ig_rl_foreach_block(rl, T0, collect, &b);
	assert_int_equal(b.n, 2);
	assert_true(strcmp(b.key[0], "203.0.113.0/24") == 0 ||
	    strcmp(b.key[1], "203.0.113.0/24") == 0);
	assert_true(strcmp(b.key[0], "2001:db8:1::/48") == 0 ||
	    strcmp(b.key[1], "2001:db8:1::/48") == 0);
	ig_rl_free(rl);
}

static void
test_exempt(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	struct ig_cidr cidr;
	ig_rl_conf_defaults(&c);
	c.max_keys = 256;
	c.max_known = 16;
	netset1(&c.exempt, &cidr, "127.0.0.0/8");
	struct ig_rl *rl = mk(&c, key1);
	for (unsigned i = 0; i < 50; i++) {
		struct ig_rl_verdict v = failed(rl, fmt("u%u", i), "127.0.0.1",
		    fmt("p%u", i), T0 + i);
		assert_false(v.refuse);
		assert_int_equal(v.delay_ms, 0);
	}
	assert_int_equal(ig_rl_count(rl), 0);
	assert_false(check(rl, "u1", "127.0.0.1", "p1", T0 + 60).refuse);

	/* The conf was copied: reload with a new exempt set, old one gone. */
	struct ig_cidr cidr2;
	netset1(&c.exempt, &cidr2, "192.0.2.0/24");
	assert_int_equal(ig_rl_set_conf(rl, &c), 0);
	memset(&cidr2, 0, sizeof(cidr2));
	for (unsigned i = 0; i < 10; i++)
		failed(rl, "alice", "127.0.0.1", fmt("p%u", i), T0 + i);
	assert_true(check(rl, "alice", "127.0.0.1", NULL, T0 + 20).refuse);
	ig_rl_free(rl);
}

/* A NAT with raised address limits: many users fail there without a
 * site-wide block, but the per-(user, address) and per-user limits hold. */
static void
test_raised_nat(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	struct ig_cidr cidr;
	struct ig_rl_raise raise = { { NULL, 0 }, 1000, 500 };
	ig_rl_conf_defaults(&c);
	c.max_keys = 4096;
	c.max_known = 64;
	netset1(&raise.nets, &cidr, "203.0.113.0/24");
	c.raised = &raise;
	c.nraised = 1;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;

	for (unsigned i = 0; i < 200; i++) {
		v = failed(rl, fmt("user%u", i), "203.0.113.5", fmt("pw%u", i), T0 + i);
		assert_false(v.refuse);
	}
	assert_false(check(rl, "newbie", "203.0.113.5", NULL, T0 + 300).refuse);
	/* The same outside the NAT is an address (or spray) block. */
	for (unsigned i = 0; i < 10; i++)
		v = failed(rl, fmt("user%u", i), "192.0.2.5", fmt("zz%u", i), T0 + i);
	assert_true(v.refuse);

	/* Per (user, address) still applies in the NAT. */
	for (unsigned i = 0; i < 5; i++)
		v = failed(rl, "alice", "203.0.113.5", fmt("x%u", i), T0 + 400 + i);
	assert_true(v.refuse && v.started);
	assert_string_equal(v.limit, "user-address");
	assert_true(check(rl, "alice", "203.0.113.5", NULL, T0 + 410).refuse);
	assert_false(check(rl, "bob", "203.0.113.5", NULL, T0 + 410).refuse);

	/* Per user too, from several NAT addresses. */
	for (unsigned i = 0; i < 10; i++)
		v = failed(rl, "carol", fmt("203.0.113.%u", 100 + i), fmt("y%u", i),
		    T0 + 500 + i);
	assert_true(v.refuse && v.started);
	assert_string_equal(v.limit, "user");
	assert_true(check(rl, "carol", "203.0.113.200", NULL, T0 + 600).refuse);
	assert_false(check(rl, "bob", "203.0.113.200", NULL, T0 + 600).refuse);
	ig_rl_free(rl);
}

/* ---- lockout DoS, spraying, stale passwords --------------------------- */

static void
test_known_address(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 4096;
	c.max_known = 64;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;

	ok(rl, "alice", "192.0.2.10", T0);
	/* An attacker fails 50 times against alice from other addresses. */
	for (unsigned i = 0; i < 50; i++)
		failed(rl, "alice", fmt("198.51.100.%u", i + 1), fmt("guess%u", i),
		    T0 + SEC + i);
	v = check(rl, "alice", "192.0.2.10", "right", T0 + MIN);
	assert_false(v.refuse);
	assert_true(v.known_address);
	v = check(rl, "alice", "192.0.2.99", "right", T0 + MIN);
	assert_true(v.refuse);
	assert_false(v.known_address);
	assert_true(strcmp(v.limit, "user") == 0 ||
	    strcmp(v.limit, "user-circuit") == 0);

	/* Alice failing at her known address does not touch the user counter
	 * and the known address itself is judged by its own behaviour. */
	v = failed(rl, "alice", "192.0.2.10", "typo", T0 + MIN);
	assert_false(v.refuse);
	assert_true(v.known_address);
	assert_int_equal(v.delay_ms, 0);
	for (unsigned i = 0; i < 4; i++)
		v = failed(rl, "alice", "192.0.2.10", fmt("typo%u", i), T0 + MIN + i);
	assert_true(v.refuse);
	assert_string_equal(v.limit, "user-address");
	/* A success forgives (user, address). */
	ok(rl, "alice", "192.0.2.10", T0 + 2 * MIN);
	assert_false(check(rl, "alice", "192.0.2.10", NULL, T0 + 2 * MIN).refuse);

	/* Known addresses expire (30 days after the last success). */
	uint64_t later = T0 + 2 * MIN + c.known_ttl_ms;
	for (unsigned i = 0; i < 10; i++)
		failed(rl, "alice", fmt("198.51.100.%u", 100 + i), fmt("g%u", i), later + i);
	v = check(rl, "alice", "192.0.2.10", NULL, later + 20);
	assert_false(v.known_address);
	assert_true(v.refuse);
	ig_rl_free(rl);
}

static void
test_password_spray(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 4096;
	c.max_known = 64;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;
	ok(rl, "alice", "192.0.2.10", T0);

	/* One password across 10 users from 10 addresses. */
	for (unsigned i = 0; i < 10; i++)
		v = failed(rl, fmt("user%u", i), fmt("198.51.100.%u", i + 1),
		    "Spring2025!", T0 + SEC * i);
	assert_true(v.refuse && v.started);
	assert_string_equal(v.limit, "password-spray");
	assert_int_equal(v.until_ms, T0 + 9 * SEC + 60 * MIN);
	v = check(rl, "alice", "203.0.113.1", "Spring2025!", T0 + MIN);
	assert_true(v.refuse);
	assert_string_equal(v.limit, "password-spray");
	/* Not from alice's known address, and not another password. */
	assert_false(check(rl, "alice", "192.0.2.10", "Spring2025!", T0 + MIN).refuse);
	assert_false(check(rl, "alice", "203.0.113.1", "Spring2026!", T0 + MIN).refuse);
	/* The block shows a hash, never the password. */
	struct blocks b = { 0 };
	ig_rl_foreach_block(rl, T0 + MIN, collect, &b);
	assert_int_equal(b.n, 1);
	assert_int_equal(strncmp(b.key[0], "pw:", 3), 0);
	assert_int_equal(strlen(b.key[0]), 19);
	assert_null(strstr(b.key[0], "Spring"));
	/* An hour later it is gone. */
	assert_false(check(rl, "alice", "203.0.113.1", "Spring2025!",
	    T0 + 9 * SEC + 60 * MIN).refuse);
	ig_rl_free(rl);
}

/*
 * A caller may hash the secret as soon as it reads it (a SASL step) and pass
 * only the hash: the accounting is the same as with the secret itself.
 */
static void
test_secret_hash(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 4096;
	c.max_known = 64;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v = { 0 };
	uint8_t h[IG_RL_SECRET_HASH_LEN], h2[IG_RL_SECRET_HASH_LEN];
	ig_rl_secret_hash(rl, (const uint8_t *)"Autumn2025!", 11, h);
	ig_rl_secret_hash(rl, (const uint8_t *)"Autumn2025?", 11, h2);
	assert_memory_not_equal(h, h2, sizeof(h));
	/* Five users fail with the secret, five with only its hash. */
	for (unsigned i = 0; i < 10; i++) {
		struct ig_rl_attempt a = att(fmt("user%u", i), A(fmt("198.51.100.%u", i + 1)),
		    i < 5 ? "Autumn2025!" : NULL, T0 + SEC * i);
		if (i >= 5)
			a.secret_hash = h;
		ig_rl_failure(rl, &a, &v);
	}
	assert_true(v.refuse && v.started);
	assert_string_equal(v.limit, "password-spray");
	struct ig_rl_attempt a = att("alice", A("203.0.113.1"), NULL, T0 + MIN);
	a.secret_hash = h;
	ig_rl_check(rl, &a, &v);
	assert_true(v.refuse);
	a.secret_hash = h2;
	ig_rl_check(rl, &a, &v);
	assert_false(v.refuse);
	ig_rl_free(rl);
}

static void
test_stale_password(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 4096;
	c.max_known = 64;
	struct ig_rl *rl = mk(&c, key1);
	struct ig_rl_verdict v;

	/* A phone retrying the old password every 30 s for 5 minutes. */
	for (unsigned i = 0; i < 10; i++) {
		v = failed(rl, "alice", "192.0.2.10", "old-password", T0 + 30 * SEC * i);
		assert_false(v.refuse);
		assert_int_equal(v.count, 1);
		assert_int_equal(v.delay_ms, 0);
	}
	/* A different password counts. */
	v = failed(rl, "alice", "192.0.2.10", "other", T0 + 5 * MIN);
	assert_int_equal(v.count, 2);
	assert_int_equal(v.delay_ms, 1000);
	/* And the phone keeps at it for an hour, from two addresses. */
	for (unsigned i = 0; i < 240; i++) {
		v = failed(rl, "alice", i % 2 ? "192.0.2.10" : "198.51.100.4",
		    "old-password", T0 + 5 * MIN + 15 * SEC * i);
		assert_false(v.refuse);
		assert_true(v.count <= 2);
		assert_true(v.delay_ms <= 1000);
	}
	assert_false(check(rl, "alice", "192.0.2.10", "new", T0 + 66 * MIN).refuse);
	assert_false(check(rl, "bob", "192.0.2.10", "x", T0 + 66 * MIN).refuse);
	ig_rl_free(rl);

	/* Secrets without a password (NULL) always count. */
	rl = mk(&c, key1);
	for (unsigned i = 0; i < 5; i++)
		v = failed(rl, "alice", "192.0.2.10", NULL, T0 + i);
	assert_true(v.refuse);
	assert_string_equal(v.limit, "user-address");
	ig_rl_free(rl);
}

/* ---- tarpit ----------------------------------------------------------- */

static const struct {
	unsigned nth;
	unsigned delay_ms;
} tarpit_rows[] = {
	{ 1, 0 }, { 2, 1000 }, { 3, 2000 }, { 4, 4000 }, { 5, 8000 },
	{ 6, 10000 }, { 7, 10000 }, { 40, 10000 },
};

static void
test_tarpit(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	all_off(&c);
	c.max_keys = 256;
	c.max_known = 16;
	struct ig_rl *rl = mk(&c, key1);
	unsigned n = 0, row = 0;
	while (row < sizeof(tarpit_rows) / sizeof(tarpit_rows[0])) {
		n++;
		struct ig_rl_verdict v = failed(rl, "alice", "192.0.2.1",
		    fmt("p%u", n), T0 + n);
		assert_false(v.refuse);
		if (tarpit_rows[row].nth == n) {
			assert_int_equal(v.delay_ms, tarpit_rows[row].delay_ms);
			row++;
		}
	}
	/* A fresh address for a fresh user starts at 0 again, but the same
	 * user from elsewhere carries the user's count. */
	assert_int_equal(failed(rl, "bob", "192.0.2.2", "x", T0).delay_ms, 0);
	assert_int_equal(failed(rl, "alice", "192.0.2.3", "y", T0 + 50).delay_ms, 10000);
	ig_rl_free(rl);
}

/* ---- operator view ---------------------------------------------------- */

static void
test_lift_foreach(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 256;
	c.max_known = 16;
	struct ig_rl *rl = mk(&c, key1);
	for (unsigned i = 0; i < 5; i++)
		failed(rl, "alice", "192.0.2.1", fmt("a%u", i), T0 + i);
	for (unsigned i = 0; i < 10; i++)
		failed(rl, fmt("u%u", i), "198.51.100.7", fmt("b%u", i), T0 + i);
	struct blocks b = { 0 };
	ig_rl_foreach_block(rl, T0 + SEC, collect, &b);
	assert_int_equal(b.n, 2);
	bool saw_ua = false, saw_addr = false;
	for (unsigned i = 0; i < b.n; i++) {
		if (strcmp(b.limit[i], "user-address") == 0) {
			assert_string_equal(b.key[i], "alice 192.0.2.1");
			assert_int_equal(b.count[i], 5);
			assert_int_equal(b.until[i], T0 + 4 + 15 * MIN);
			saw_ua = true;
		} else {
			assert_true(strcmp(b.limit[i], "address") == 0 ||
			    strcmp(b.limit[i], "spray-address") == 0);
			assert_string_equal(b.key[i], "198.51.100.7");
			saw_addr = true;
		}
	}
	assert_true(saw_ua && saw_addr);

	assert_int_equal(ig_rl_lift(rl, "user-address", "alice 192.0.2.1", T0 + SEC), 0);
	assert_false(check(rl, "alice", "192.0.2.1", NULL, T0 + SEC).refuse);
	assert_int_equal(ig_rl_lift(rl, "user-address", "alice 192.0.2.1", T0 + SEC),
	    IG_ENOTFOUND);
	assert_int_equal(ig_rl_lift(rl, "user", "198.51.100.7", T0 + SEC), IG_ENOTFOUND);
	assert_int_equal(ig_rl_lift(rl, "address", "192.0.2.99", T0 + SEC), IG_ENOTFOUND);
	/* Lifting clears the counters: one more failure does not re-block. */
	assert_false(failed(rl, "alice", "192.0.2.1", "again", T0 + 2 * SEC).refuse);
	memset(&b, 0, sizeof(b));
	ig_rl_foreach_block(rl, T0 + SEC, collect, &b);
	assert_int_equal(b.n, 1);
	assert_int_equal(ig_rl_lift(rl, b.limit[0], b.key[0], T0 + SEC), 0);
	assert_false(check(rl, "x", "198.51.100.7", NULL, T0 + SEC).refuse);
	memset(&b, 0, sizeof(b));
	ig_rl_foreach_block(rl, T0 + SEC, collect, &b);
	assert_int_equal(b.n, 0);
	ig_rl_free(rl);
}

/* ---- state file ------------------------------------------------------- */

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	fclose(f);
}

static void
state_fixture(struct ig_rl *rl)
{
	ok(rl, "alice", "192.0.2.10", T0);
	/* No secrets here: the one password-derived key is the spray below. */
	for (unsigned i = 0; i < 10; i++)
		failed(rl, "alice", fmt("198.51.100.%u", i + 1), NULL, T0 + i);
	for (unsigned i = 0; i < 5; i++)
		failed(rl, "bob", "2001:db8::1", NULL, T0 + i);
	for (unsigned i = 0; i < 10; i++)
		failed(rl, fmt("s%u", i), "203.0.113.3", "Spray!", T0 + i);
}

static unsigned
nblocks(const struct ig_rl *rl, uint64_t now)
{
	struct blocks b = { 0 };
	ig_rl_foreach_block(rl, now, collect, &b);
	return b.n;
}

static void
test_save_load(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_ratelimit.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], bad[128];
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);

	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 512;
	c.max_known = 32;
	struct ig_rl *rl = mk(&c, key1);
	state_fixture(rl);
	uint64_t now = T0 + MIN;
	/* user (alice), user-address (bob), address or spray (203.0.113.3),
	 * password-spray (not saved). */
	assert_int_equal(nblocks(rl, now), 4);
	size_t before = ig_rl_count(rl);
	assert_int_equal(ig_rl_save(rl, path, now), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	ig_rl_free(rl);

	/* A new process: another random key, same state. */
	rl = mk(&c, key2);
	assert_int_equal(ig_rl_load(rl, path, now), 0);
	assert_int_equal(ig_rl_count(rl), before - 1);
	assert_int_equal(nblocks(rl, now), 3);
	struct ig_rl_verdict v = check(rl, "alice", "192.0.2.10", NULL, now);
	assert_false(v.refuse);
	assert_true(v.known_address);
	assert_true(check(rl, "alice", "192.0.2.11", NULL, now).refuse);
	assert_true(check(rl, "bob", "2001:db8::99", NULL, now).refuse);
	assert_true(check(rl, "zed", "203.0.113.3", NULL, now).refuse);
	/* Counters survive: bob's next failure elsewhere in his /64 still
	 * sits on the same user-address key. */
	assert_int_equal(ig_rl_load(rl, path, now), IG_EINVAL); /* not empty */
	ig_rl_free(rl);

	/* Blocks expire after a restart as they would have. */
	rl = mk(&c, key2);
	assert_int_equal(ig_rl_load(rl, path, now + 15 * MIN), 0);
	assert_int_equal(nblocks(rl, now + 15 * MIN), 0);
	ig_rl_free(rl);

	/* Missing file. */
	rl = mk(&c, key2);
	assert_int_equal(ig_rl_load(rl, "/nonexistent/state", now), IG_ENOTFOUND);

	/* Truncations, a flipped byte, trailing garbage: refused, empty. */
	size_t len;
	uint8_t *good = slurp(path, &len);
	const size_t cuts[] = { 0, 1, 8, 71, 72, 104, len / 2, len - 33, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		spit(bad, good, cuts[i]);
		assert_int_equal(ig_rl_load(rl, bad, now), IG_EINVAL);
		assert_int_equal(ig_rl_count(rl), 0);
	}
	uint8_t *copy = malloc(len + 1);
	assert_non_null(copy);
	for (size_t off = 0; off < len; off += 97) {
		memcpy(copy, good, len);
		copy[off] ^= 0x40;
		spit(bad, copy, len);
		assert_int_equal(ig_rl_load(rl, bad, now), IG_EINVAL);
		assert_int_equal(ig_rl_count(rl), 0);
	}
	memcpy(copy, good, len);
	copy[len] = 0;
	spit(bad, copy, len + 1);
	assert_int_equal(ig_rl_load(rl, bad, now), IG_EINVAL);

	/* Corruption behind a valid checksum is caught by validation: every
	 * byte of the first entry, flipped, with the checksum fixed. */
	size_t esz = (len - 72 - 32) / (before - 1);
	unsigned refused = 0, accepted = 0;
	for (size_t off = 72; off < 72 + esz; off++) {
		memcpy(copy, good, len);
		copy[off] ^= 0x81;
		assert_int_equal(mbedtls_sha256(copy, len - 32, copy + len - 32, 0), 0);
		ig_rl_free(rl);
		rl = mk(&c, key2);
		int rc = ig_rl_load_buf(rl, copy, len, now);
		assert_true(rc == 0 || rc == IG_EINVAL);
		if (rc == 0) {
			accepted++;
		} else {
			refused++;
			assert_int_equal(ig_rl_count(rl), 0);
		}
		/* Whatever was accepted is usable. */
		ig_rl_foreach_block(rl, now, collect, &(struct blocks){ 0 });
		check(rl, "alice", "192.0.2.10", "x", now);
		failed(rl, "alice", "192.0.2.10", "x", now);
	}
	print_message("first entry byte flips: %u refused, %u accepted\n",
	    refused, accepted);
	assert_true(refused > 64);
	/* Still loads the good one afterwards. */
	ig_rl_free(rl);
	rl = mk(&c, key2);
	assert_int_equal(ig_rl_load_buf(rl, good, len, now), 0);
	ig_rl_free(rl);

	/* A smaller limiter keeps the most recent keys. */
	c.max_keys = 16;
	c.max_known = 4;
	rl = mk(&c, key2);
	assert_int_equal(ig_rl_load_buf(rl, good, len, now), 0);
	assert_true(ig_rl_count(rl) <= 16);
	ig_rl_free(rl);

	free(copy);
	free(good);
	unlink(path);
	unlink(bad);
	rmdir(dir);
}

/*
 * The state file's size is checked before it is read: a file larger than
 * any this limiter could have written (header, max_keys entries, checksum)
 * is refused at once, whether it is a sparse gigabyte or a valid state
 * saved with a larger max_keys; the largest file it could write loads.
 */
static void
test_state_size_limit(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_ratelimit.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/state", dir);

	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 16;
	c.max_known = 4;
	struct ig_rl *rl = mk(&c, key1);
	const size_t esz = ig_rl_entry_size() - 2 * sizeof(uint32_t);
	assert_int_equal(ig_rl_state_max_size(rl), 72 + 16 * esz + 32);

	/* A sparse gigabyte: refused without being read. */
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)1 << 30), 0);
	fclose(f);
	assert_int_equal(ig_rl_load(rl, path, T0), IG_ETOOLONG);
	assert_int_equal(ig_rl_count(rl), 0);
	/* One byte over the limit. */
	assert_int_equal(truncate(path, (off_t)ig_rl_state_max_size(rl) + 1), 0);
	assert_int_equal(ig_rl_load(rl, path, T0), IG_ETOOLONG);

	/* A valid state from a larger limiter: refused by size as a file, still
	 * taken (newest keys) from a buffer. */
	struct ig_rl_conf big = c;
	big.max_keys = 64;
	struct ig_rl *rl2 = mk(&big, key2);
	for (unsigned i = 0; i < 40; i++)
		failed(rl2, NULL, fmt("192.0.2.%u", i + 1), NULL, T0 + i);
	assert_int_equal(ig_rl_save(rl2, path, T0 + SEC), 0);
	ig_rl_free(rl2);
	assert_int_equal(ig_rl_load(rl, path, T0 + SEC), IG_ETOOLONG);
	assert_int_equal(ig_rl_count(rl), 0);
	size_t len;
	uint8_t *buf = slurp(path, &len);
	assert_true(len > ig_rl_state_max_size(rl));
	assert_int_equal(ig_rl_load_buf(rl, buf, len, T0 + SEC), 0);
	assert_int_equal(ig_rl_count(rl), 16);
	free(buf);
	ig_rl_free(rl);

	/* The largest file a limiter writes (max_keys saved entries) loads. */
	rl = mk(&c, key1);
	for (unsigned i = 0; i < 40; i++)
		failed(rl, NULL, fmt("198.51.100.%u", i + 1), NULL, T0 + i);
	assert_int_equal(ig_rl_count(rl), 16);
	assert_int_equal(ig_rl_save(rl, path, T0 + SEC), 0);
	ig_rl_free(rl);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	rl = mk(&c, key2);
	assert_int_equal((size_t)st.st_size, ig_rl_state_max_size(rl));
	assert_int_equal(ig_rl_load(rl, path, T0 + SEC), 0);
	assert_int_equal(ig_rl_count(rl), 16);
	ig_rl_free(rl);

	unlink(path);
	rmdir(dir);
}

/*
 * The change counter moves with what a crash would lose, and only then:
 * one row per operation, applied in order to one limiter.
 */
enum chg_op { CHG_CHECK, CHG_FAIL, CHG_OK, CHG_LIFT, CHG_SNAPSHOT, CHG_SETCONF };

static const struct {
	const char *what;
	enum chg_op op;
	const char *user, *addr;
	uint64_t at;                    /* ms after T0 */
	bool moves;
} chg_rows[] = {
	{ "a check", CHG_CHECK, "alice", "192.0.2.1", 0, false },
	{ "a failure", CHG_FAIL, "alice", "192.0.2.1", 1, true },
	{ "a check after it", CHG_CHECK, "alice", "192.0.2.1", 2, false },
	{ "a repeated failure", CHG_FAIL, "alice", "192.0.2.1", 3, true },
	{ "a success forgiving the pair", CHG_OK, "alice", "192.0.2.1", 4, true },
	{ "a success again", CHG_OK, "alice", "192.0.2.1", 5, false },
	{ "a success a minute later", CHG_OK, "alice", "192.0.2.1", MIN, false },
	{ "a success at a new address", CHG_OK, "alice", "192.0.2.2", MIN, true },
	{ "a success two hours later", CHG_OK, "alice", "192.0.2.1", 120 * MIN, true },
	{ "a success without address", CHG_OK, "alice", NULL, 121 * MIN, false },
	{ "a failure from an exempt address", CHG_FAIL, "bob", "10.1.2.3", 122 * MIN, false },
	{ "a snapshot", CHG_SNAPSHOT, NULL, NULL, 122 * MIN, false },
	{ "a reload", CHG_SETCONF, NULL, NULL, 122 * MIN, false },
	{ "the failure that blocks", CHG_FAIL, "bob", "198.51.100.1", 123 * MIN, true },
	{ "a refused check", CHG_CHECK, "bob", "198.51.100.1", 124 * MIN, false },
	{ "a lift", CHG_LIFT, "bob", "198.51.100.1", 125 * MIN, true },
	{ "a lift of nothing", CHG_LIFT, "bob", "198.51.100.1", 126 * MIN, false },
	{ "the block running out", CHG_CHECK, "carol", "203.0.113.9", 127 * MIN, false },
};

static void
test_changes(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 64;
	c.max_known = 8;
	c.address.threshold = 100;
	c.user_address.threshold = 1; /* bob blocked at once, for 15 min */
	struct ig_cidr ex;
	assert_int_equal(ig_cidr_parse("10.0.0.0/8", &ex), 0);
	c.exempt.v = &ex;
	c.exempt.n = 1;
	struct ig_rl *rl = mk(&c, key1);
	assert_true(ig_rl_changes(rl) == 0);
	/* carol's block, started long before the rows, runs out in them. */
	failed(rl, "carol", "203.0.113.9", NULL, T0 + 100 * MIN);
	assert_true(check(rl, "carol", "203.0.113.9", NULL, T0 + 101 * MIN).refuse);

	for (size_t r = 0; r < sizeof(chg_rows) / sizeof(chg_rows[0]); r++) {
		uint64_t before = ig_rl_changes(rl), now = T0 + chg_rows[r].at;
		struct ig_rl_snapshot *snap;
		struct ig_rl_attempt a = att(chg_rows[r].user,
		    chg_rows[r].addr ? A(chg_rows[r].addr) : NULL, "pw", now);
		struct ig_rl_verdict v;
		switch (chg_rows[r].op) {
		case CHG_CHECK:
			ig_rl_check(rl, &a, &v);
			break;
		case CHG_FAIL:
			ig_rl_failure(rl, &a, &v);
			break;
		case CHG_OK:
			ig_rl_success(rl, &a);
			break;
		case CHG_LIFT:
			ig_rl_lift(rl, "user-address", "bob 198.51.100.1", now);
			break;
		case CHG_SNAPSHOT:
			assert_int_equal(ig_rl_snapshot(rl, now, &snap), 0);
			ig_rl_snapshot_free(snap);
			break;
		case CHG_SETCONF:
			assert_int_equal(ig_rl_set_conf(rl, &c), 0);
			break;
		}
		uint64_t after = ig_rl_changes(rl);
		if (chg_rows[r].moves ? after <= before : after != before)
			fail_msg("row %zu (%s): changes %" PRIu64 " -> %" PRIu64,
			    r, chg_rows[r].what, before, after);
	}
	assert_false(check(rl, "carol", "203.0.113.9", NULL, T0 + 127 * MIN).refuse);
	ig_rl_free(rl);
}

/*
 * Saving in two steps gives the same file as ig_rl_save(); the image loads
 * from memory; the write is atomic through one fixed temporary that a
 * crash may leave behind (replaced) or an attacker may plant as a link
 * (never followed).
 */
static void
test_snapshot(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_ratelimit.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], tmp[128], other[128], victim[128];
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);

	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 512;
	c.max_known = 32;
	struct ig_rl *rl = mk(&c, key1);
	state_fixture(rl);
	uint64_t now = T0 + MIN;
	struct ig_rl_snapshot *snap;
	assert_int_equal(ig_rl_snapshot(rl, now, &snap), 0);
	/* The limiter moves on; the snapshot does not. */
	for (unsigned i = 0; i < 20; i++)
		failed(rl, fmt("later%u", i), "192.0.2.77", NULL, now + i);

	/* A stale temporary from a crash is replaced. */
	spit(tmp, (const uint8_t *)"crashed mid-save", 16);
	assert_int_equal(ig_rl_snapshot_write(snap, path), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t len, blen;
	uint8_t *file = slurp(path, &len);
	const uint8_t *bytes = ig_rl_snapshot_bytes(snap, &blen);
	assert_non_null(bytes);
	assert_int_equal(blen, len);
	assert_memory_equal(bytes, file, len);
	ig_rl_snapshot_free(snap);

	/* The image loads as it is, without the later keys. */
	struct ig_rl *rl2 = mk(&c, key2);
	assert_int_equal(ig_rl_load_buf(rl2, file, len, now), 0);
	assert_int_equal(nblocks(rl2, now), 3);
	assert_false(check(rl2, "x", "192.0.2.77", NULL, now).refuse);
	ig_rl_free(rl2);
	/* Same bytes as a one-step save of the same history. */
	rl2 = mk(&c, key1);
	state_fixture(rl2);
	assert_int_equal(ig_rl_save(rl2, other, now), 0);
	ig_rl_free(rl2);
	size_t len2;
	uint8_t *file2 = slurp(other, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(file2, file, len);
	free(file2);
	free(file);

	/* A link planted at the temporary name is not followed. */
	spit(victim, (const uint8_t *)"keep", 4);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(ig_rl_save(rl, path, now), 0);
	size_t vlen;
	uint8_t *v = slurp(victim, &vlen);
	assert_int_equal(vlen, 4);
	assert_memory_equal(v, "keep", 4);
	free(v);
	rl2 = mk(&c, key2);
	assert_int_equal(ig_rl_load(rl2, path, now), 0);
	assert_true(check(rl2, "x", "192.0.2.77", NULL, now + 30).refuse);
	ig_rl_free(rl2);

	/* A failed write reports it and leaves the old file. */
	char nodir[160];
	snprintf(nodir, sizeof(nodir), "%s/absent/state", dir);
	assert_int_equal(ig_rl_save(rl, nodir, now), IG_EIO);
	ig_rl_free(rl);

	unlink(path);
	unlink(other);
	unlink(victim);
	unlink(tmp);
	rmdir(dir);
}

/* ---- eviction --------------------------------------------------------- */

static void
test_eviction_keeps_blocks_and_known(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 64;
	c.max_known = 8;
	struct ig_rl *rl = mk(&c, key1);
	ok(rl, "alice", "192.0.2.10", T0);
	for (unsigned i = 0; i < 10; i++)
		failed(rl, "mallory", "192.0.2.66", fmt("p%u", i), T0 + i);
	assert_true(check(rl, "x", "192.0.2.66", NULL, T0 + SEC).refuse);
	/* Churn far more unblocked keys than fit. */
	for (unsigned i = 0; i < 5000; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		failed(rl, fmt("churn%u", i), a, NULL, T0 + SEC + i);
		assert_true(ig_rl_count(rl) <= 64);
	}
	assert_true(check(rl, "x", "192.0.2.66", NULL, T0 + 10 * SEC).refuse);
	assert_true(check(rl, "alice", "192.0.2.10", NULL, T0 + 10 * SEC).known_address);
	/* Known users are capped at max_known, oldest out. */
	for (unsigned i = 0; i < 20; i++)
		ok(rl, fmt("k%u", i), "192.0.2.20", T0 + 20 * SEC + i);
	assert_false(check(rl, "alice", "192.0.2.10", NULL, T0 + MIN).known_address);
	assert_true(check(rl, "k19", "192.0.2.20", NULL, T0 + MIN).known_address);
	assert_true(ig_rl_count(rl) <= 64);
	ig_rl_free(rl);
}

static void
test_disabled(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.enabled = false;
	c.max_keys = 64;
	c.max_known = 8;
	struct ig_rl *rl = mk(&c, key1);
	for (unsigned i = 0; i < 100; i++)
		assert_false(failed(rl, "alice", "192.0.2.1", fmt("p%u", i), T0 + i).refuse);
	assert_false(check(rl, "alice", "192.0.2.1", NULL, T0 + 200).refuse);
	assert_int_equal(ig_rl_count(rl), 0);
	/* Turned on by a reload, it counts from there. */
	c.enabled = true;
	assert_int_equal(ig_rl_set_conf(rl, &c), 0);
	for (unsigned i = 0; i < 5; i++)
		failed(rl, "alice", "192.0.2.1", fmt("p%u", i), T0 + i);
	assert_true(check(rl, "alice", "192.0.2.1", NULL, T0 + 200).refuse);
	/* No user and no address: counted under "unknown", no crash. */
	struct ig_rl_attempt a = { NULL, NULL, NULL, 0, T0, NULL };
	struct ig_rl_verdict v;
	ig_rl_failure(rl, &a, &v);
	ig_rl_check(rl, &a, &v);
	ig_rl_success(rl, &a);
	ig_rl_free(rl);
}

/* ---- a million distinct keys ------------------------------------------ */

static size_t
heap_in_use(void)
{
#ifdef RL_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

static void
test_million_keys(void **state)
{
	(void)state;
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = 20000;
	c.max_known = 2000;
	struct ig_rl *rl = mk(&c, key1);
	ok(rl, "alice", "192.0.2.10", T0);
	size_t heap0 = heap_in_use();
	size_t maxcount = 0;
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	s6.sin6_addr.s6_addr[0] = 0x20;
	s6.sin6_addr.s6_addr[1] = 0x01;
	char user[32];
	uint8_t pw[8];
	for (uint32_t i = 0; i < 1000000; i++) {
		uint64_t now = T0 + i;
		snprintf(user, sizeof(user), "u%" PRIu32 "@example.org", i);
		struct ig_rl_attempt a = { user, NULL, NULL, 0, now, NULL };
		if (i & 1) {
			s4.sin_addr.s_addr = htonl(0x0a000000u + i);
			a.addr = (const struct sockaddr *)&s4;
		} else {
			memcpy(s6.sin6_addr.s6_addr + 4, &i, sizeof(i));
			a.addr = (const struct sockaddr *)&s6;
		}
		if (i % 8 == 0) {
			memcpy(pw, &i, sizeof(i));
			memcpy(pw + 4, "pass", 4);
			a.secret = pw;
			a.secret_len = sizeof(pw);
		}
		struct ig_rl_verdict v;
		if (i % 4 == 0) /* keeps the test fast under sanitizers */
			ig_rl_check(rl, &a, &v);
		ig_rl_failure(rl, &a, &v);
		size_t n = ig_rl_count(rl);
		if (n > maxcount)
			maxcount = n;
		if (n > c.max_keys)
			fail_msg("count %zu > max_keys at %" PRIu32, n, i);
	}
	size_t heap1 = heap_in_use();
	print_message("1M attempts: max count %zu of %zu, heap %zu -> %zu bytes, "
	    "%zu bytes/key\n", maxcount, c.max_keys, heap0, heap1,
	    ig_rl_entry_size());
	assert_int_equal(maxcount, c.max_keys);
	assert_true(heap1 <= heap0);
	/* Alice's known address survived the flood. */
	struct ig_rl_attempt a = { "alice", A("192.0.2.10"), NULL, 0, T0 + 1000001, NULL };
	struct ig_rl_verdict v;
	ig_rl_check(rl, &a, &v);
	assert_true(v.known_address);
	ig_rl_free(rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_conf),
		cmocka_unit_test(test_limit_rows),
		cmocka_unit_test(test_defaults_combined),
		cmocka_unit_test(test_ipv6_grouping),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_raised_nat),
		cmocka_unit_test(test_known_address),
		cmocka_unit_test(test_password_spray),
		cmocka_unit_test(test_secret_hash),
		cmocka_unit_test(test_stale_password),
		cmocka_unit_test(test_tarpit),
		cmocka_unit_test(test_lift_foreach),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_state_size_limit),
		cmocka_unit_test(test_changes),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_eviction_keeps_blocks_and_known),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_million_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
