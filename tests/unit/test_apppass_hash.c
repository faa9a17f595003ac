/*
 * Unit tests for apppass/hash.c: a hash verifies its secret and nothing
 * else, the PHC string carries the parameters it was made with (and
 * verification uses those, whatever the defaults are now), salts differ,
 * the parameter bounds, and the strict reading of stored strings (a
 * string asking for too much is refused before anything is computed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "util/err.h"

/* Cheap parameters for the tests (the defaults cost ~19 MiB each). */
static const struct ig_apppass_hash_params cheap = { 64, 1, 1 };

#define SECRET "xm9vhpt4wae3nbzr8fcu"

static void
test_round_trip(void **state)
{
	char phc[IG_APPPASS_PHC_MAX + 1];
	bool match;
	(void)state;
	assert_int_equal(ig_apppass_hash(&cheap, SECRET, strlen(SECRET), phc, sizeof(phc)), 0);
	assert_int_equal(ig_apppass_verify(phc, SECRET, strlen(SECRET), &match), 0);
	assert_true(match);
	/* One symbol off, one short, one more, empty: no match. */
	static const char *const wrong[] = {
		"xm9vhpt4wae3nbzr8fcv", "xm9vhpt4wae3nbzr8fc", SECRET "2", "", "XM9VHPT4WAE3NBZR8FCU",
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		match = true;
		assert_int_equal(ig_apppass_verify(phc, wrong[i], strlen(wrong[i]), &match), 0);
		assert_false(match);
	}
}

/* The string states the parameters; the same secret twice gets two salts. */
static void
test_phc_carries_parameters(void **state)
{
	char a[IG_APPPASS_PHC_MAX + 1], b[IG_APPPASS_PHC_MAX + 1];
	struct ig_apppass_hash_params p = { 96, 3, 2 }, got;
	bool match;
	(void)state;
	assert_int_equal(ig_apppass_hash(&p, SECRET, strlen(SECRET), a, sizeof(a)), 0);
	assert_int_equal(strncmp(a, "$argon2id$v=19$m=96,t=3,p=2$", 28), 0);
	assert_int_equal(ig_apppass_hash_params_of(a, &got), 0);
	assert_int_equal(got.memory_kib, 96);
	assert_int_equal(got.iterations, 3);
	assert_int_equal(got.parallelism, 2);
	assert_int_equal(ig_apppass_hash(&p, SECRET, strlen(SECRET), b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	/* Verification needs no parameters of its own: a hash made with others
	   than the current ones still verifies. */
	assert_int_equal(ig_apppass_verify(a, SECRET, strlen(SECRET), &match), 0);
	assert_true(match);
	assert_int_equal(ig_apppass_verify(b, SECRET, strlen(SECRET), &match), 0);
	assert_true(match);
	/* Changing a parameter in the string changes the result: the
	   parameters are bound into the hash, not just written next to it. */
	char c[IG_APPPASS_PHC_MAX + 1];
	snprintf(c, sizeof(c), "%s", a);
	c[strlen("$argon2id$v=19$m=96,t=")] = '2';
	assert_int_equal(ig_apppass_verify(c, SECRET, strlen(SECRET), &match), 0);
	assert_false(match);
}

/* The defaults are OWASP's minimum and produce the expected string. */
static void
test_defaults(void **state)
{
	struct ig_apppass_hash_params d, got;
	char phc[IG_APPPASS_PHC_MAX + 1];
	bool match;
	(void)state;
	ig_apppass_hash_defaults(&d);
	assert_int_equal(d.memory_kib, 19456);
	assert_int_equal(d.iterations, 2);
	assert_int_equal(d.parallelism, 1);
	assert_int_equal(ig_apppass_hash(&d, SECRET, strlen(SECRET), phc, sizeof(phc)), 0);
	assert_int_equal(strncmp(phc, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0);
	assert_int_equal(ig_apppass_hash_params_of(phc, &got), 0);
	assert_memory_equal(&got, &d, sizeof(d));
	assert_true(strlen(phc) < IG_APPPASS_PHC_MAX);
	assert_int_equal(ig_apppass_verify(phc, SECRET, strlen(SECRET), &match), 0);
	assert_true(match);
}

struct params_row {
	uint32_t m, t, p;
	bool ok;
};

static const struct params_row params_rows[] = {
	{ 8, 1, 1, true },                 /* Argon2's floor: 8 KiB per lane */
	{ 7, 1, 1, false },
	{ 64, 1, 8, true },
	{ 63, 1, 8, false },
	{ 64, 1, 9, false },               /* IG_APPPASS_HASH_PARALLELISM_MAX */
	{ 64, 0, 1, false },
	{ 64, 16, 1, true },
	{ 64, 17, 1, false },              /* IG_APPPASS_HASH_ITERATIONS_MAX */
	{ 1048576, 1, 1, true },           /* 1 GiB */
	{ 1048577, 1, 1, false },
	{ 64, 1, 0, false },
};

static void
test_params_bounds(void **state)
{
	char phc[IG_APPPASS_PHC_MAX + 1];
	(void)state;
	for (size_t i = 0; i < sizeof(params_rows) / sizeof(params_rows[0]); i++) {
		const struct params_row *r = &params_rows[i];
		struct ig_apppass_hash_params p = { r->m, r->t, r->p };
		assert_int_equal(ig_apppass_hash_params_ok(&p), r->ok);
		/* Refused parameters are never computed (the big ones would
		   take a GiB). */
		if (!r->ok)
			assert_int_equal(ig_apppass_hash(&p, SECRET, strlen(SECRET), phc, sizeof(phc)),
			    IG_EINVAL);
	}
	/* A buffer too small for the string. */
	assert_int_equal(ig_apppass_hash(&cheap, SECRET, strlen(SECRET), phc, 64), IG_EINVAL);
}

struct phc_row {
	const char *phc;
	bool ok;
};

#define SALT "c29tZXNhbHRzb21lc2FsdA"
#define OUT "dGhpcyBpcyAzMiBieXRlcyBvZiBvdXRwdXQgISEhISE"

static const struct phc_row phc_rows[] = {
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT "$" OUT, true },
	{ "$argon2i$v=19$m=64,t=1,p=1$" SALT "$" OUT, false },    /* not id */
	{ "$argon2d$v=19$m=64,t=1,p=1$" SALT "$" OUT, false },
	{ "$argon2id$v=16$m=64,t=1,p=1$" SALT "$" OUT, false },   /* old version */
	{ "$argon2id$m=64,t=1,p=1$" SALT "$" OUT, false },        /* no version */
	{ "$argon2id$v=19$t=1,m=64,p=1$" SALT "$" OUT, false },   /* order */
	{ "$argon2id$v=19$m=064,t=1,p=1$" SALT "$" OUT, false },  /* leading zero */
	{ "$argon2id$v=19$m=-64,t=1,p=1$" SALT "$" OUT, false },
	{ "$argon2id$v=19$m=4294967296,t=1,p=1$" SALT "$" OUT, false },
	{ "$argon2id$v=19$m=2097152,t=1,p=1$" SALT "$" OUT, false }, /* 2 GiB */
	{ "$argon2id$v=19$m=64,t=4294967295,p=1$" SALT "$" OUT, false },
	{ "$argon2id$v=19$m=64,t=1,p=16$" SALT "$" OUT, false },
	{ "$argon2id$v=19$m=64,t=1,p=1$" "c2FsdA" "$" OUT, false }, /* salt < 8 */
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT "$" "c2hvcnQ", false }, /* short out */
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT "=$" OUT, false },  /* padding */
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT "$" OUT "$", false },
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT, false },
	{ "$argon2id$v=19$m=64,t=1,p=1$$" OUT, false },
	{ "$argon2id$v=19$m=64,t=1,p=1$" SALT "$" OUT "AB", false }, /* 1 mod 4 */
	{ "", false },
};

static void
test_phc_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(phc_rows) / sizeof(phc_rows[0]); i++) {
		struct ig_apppass_hash_params p;
		bool match = true;
		int want = phc_rows[i].ok ? 0 : IG_EINVAL;
		assert_int_equal(ig_apppass_hash_params_of(phc_rows[i].phc, &p), want);
		if (!phc_rows[i].ok) {
			assert_int_equal(ig_apppass_verify(phc_rows[i].phc, SECRET, strlen(SECRET),
			    &match), IG_EINVAL);
			assert_false(match);
		}
	}
	struct ig_apppass_hash_params p;
	assert_int_equal(ig_apppass_hash_params_of(NULL, &p), IG_EINVAL);
	/* Longer than IG_APPPASS_PHC_MAX. */
	char big[IG_APPPASS_PHC_MAX + 64];
	int n = snprintf(big, sizeof(big), "$argon2id$v=19$m=64,t=1,p=1$" SALT "$");
	memset(big + n, 'A', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ig_apppass_hash_params_of(big, &p), IG_EINVAL);
}

/*
 * A stored string asking for 2 GiB is refused without computing: the call
 * returns at once (well under the time one 1 GiB computation would take).
 */
static void
test_verify_refuses_before_computing(void **state)
{
	struct timespec a, b;
	bool match;
	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ig_apppass_verify("$argon2id$v=19$m=2097152,t=16,p=1$" SALT "$" OUT,
		    SECRET, strlen(SECRET), &match), IG_EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	assert_true(s < 1.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_phc_carries_parameters),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_params_bounds),
		cmocka_unit_test(test_phc_rows),
		cmocka_unit_test(test_verify_refuses_before_computing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
