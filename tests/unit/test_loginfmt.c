/*
 * Unit tests for proxy/loginfmt.c: astrings as the backend gets them
 * (quoted with escapes, LITERAL+ literals, synchronizing literals that start
 * a segment), and the login as backend.master_login for a user in both
 * styles: LOGIN "user*master" "secret" with odd user names quoted or sent
 * as literals, and AUTHENTICATE PLAIN with the base64 of
 * authzid NUL authcid NUL secret, as SASL-IR or after "+". Rows of
 * {input, expected segments}.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "proxy/loginfmt.h"
#include "util/err.h"

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Segment i of f as a string (the test's bytes hold no NUL). */
static char *
seg(const struct ig_loginfmt *f, unsigned i)
{
	static char out[4096];
	size_t a = f->seg_off[i], b = ig_loginfmt_seg_end(f, i);
	assert_true(b >= a && b - a < sizeof(out));
	memcpy(out, f->buf + a, b - a);
	out[b - a] = '\0';
	return out;
}

/* Asserts f's segments are want[0..n) (NULL-terminated list). */
static void
assert_segments(const struct ig_loginfmt *f, const char *const want[4])
{
	unsigned n = 0;
	while (n < 4 && want[n] != NULL)
		n++;
	assert_int_equal(f->nseg, n);
	for (unsigned i = 0; i < n; i++)
		assert_string_equal(seg(f, i), want[i]);
}

static void
test_astring(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;              /* 0: strlen */
		bool literal_plus;
		const char *want[4];
	} rows[] = {
		{ "alice", 0, false, { "a LOGIN \"alice\"\r\n" } },
		{ "", 0, false, { "a LOGIN \"\"\r\n" } },
		{ "say \"hi\" \\o/", 0, false, { "a LOGIN \"say \\\"hi\\\" \\\\o/\"\r\n" } },
		{ "caf\xc3\xa9", 0, true, { "a LOGIN {5+}\r\ncaf\xc3\xa9\r\n" } },
		{ "caf\xc3\xa9", 0, false, { "a LOGIN {5}\r\n", "caf\xc3\xa9\r\n" } },
		{ "tab\there", 0, false, { "a LOGIN {8}\r\n", "tab\there\r\n" } },
	};
	for (size_t i = 0; i < NROWS(rows); i++) {
		uint8_t buf[256];
		struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };
		ig_loginfmt_start(&f, rows[i].literal_plus);
		size_t len = rows[i].len ? rows[i].len : strlen(rows[i].in);
		assert_true(ig_loginfmt_addf(&f, "%s LOGIN ", "a"));
		assert_true(ig_loginfmt_astring(&f, (const uint8_t *)rows[i].in, len));
		assert_true(ig_loginfmt_add(&f, "\r\n", 2));
		assert_segments(&f, rows[i].want);
	}

	/* Longer than 1024 printable bytes: a literal. */
	uint8_t buf[2048], big[1025];
	memset(big, 'x', sizeof(big));
	struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };
	ig_loginfmt_start(&f, true);
	assert_true(ig_loginfmt_astring(&f, big, sizeof(big)));
	assert_memory_equal(buf, "{1025+}\r\nxxx", 12);

	/* What does not fit is refused; so is a fourth segment. */
	f = (struct ig_loginfmt){ .buf = buf, .cap = 8 };
	ig_loginfmt_start(&f, false);
	assert_true(ig_loginfmt_add(&f, "12345678", 8));
	assert_false(ig_loginfmt_add(&f, "9", 1));
	f = (struct ig_loginfmt){ .buf = buf, .cap = sizeof(buf) };
	ig_loginfmt_start(&f, false);
	assert_true(ig_loginfmt_segment(&f));
	assert_true(ig_loginfmt_segment(&f));
	assert_false(ig_loginfmt_segment(&f));
}

/* A master login configuration, as the loader makes it. */
static struct ig_master_login
master(enum ig_master_style style, char sep, const char *user, const char *secret)
{
	struct ig_master_login m = { .on = true, .style = style };
	m.separator[0] = sep;
	snprintf(m.user, sizeof(m.user), "%s", user);
	m.secret = (uint8_t *)(uintptr_t)secret;
	m.secret_len = strlen(secret);
	return m;
}

/*
 * hi is how far the buffer was ever written: the wipe's extent. It stays
 * at its highest across a new start and a refused add, and never passes
 * the capacity.
 */
static void
test_high_water(void **state)
{
	(void)state;
	uint8_t buf[32];
	struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };
	ig_loginfmt_start(&f, false);
	assert_int_equal(f.hi, 0);
	assert_true(ig_loginfmt_addf(&f, "%s LOGIN ", "a"));
	assert_true(ig_loginfmt_astring(&f, (const uint8_t *)"secret", 6));
	assert_int_equal(f.hi, f.len);
	size_t first = f.len;
	ig_loginfmt_start(&f, false);
	assert_int_equal(f.len, 0);
	assert_int_equal(f.hi, first);
	assert_true(ig_loginfmt_add(&f, "xy", 2));
	assert_int_equal(f.hi, first);
	assert_false(ig_loginfmt_add(&f, "0123456789012345678901234567890123", 34));
	assert_int_equal(f.hi, first);
	assert_true(ig_loginfmt_add(&f, "012345678901234567890123456789", 30));
	assert_int_equal(f.hi, sizeof(buf));
}

static void
test_master_separator(void **state)
{
	(void)state;
	static const struct {
		const char *user;
		char sep;
		const char *master_user, *secret;
		bool literal_plus;
		const char *want[4];
	} rows[] = {
		{ "alice@example.com", '*', "imapguard-master", "m-secret", false,
		  { "a1 LOGIN \"alice@example.com*imapguard-master\" \"m-secret\"\r\n" } },
		{ "bob", '%', "proxy", "m-secret", false,
		  { "t LOGIN \"bob%proxy\" \"m-secret\"\r\n" } },
		/* Quotes, backslashes and spaces: quoted and escaped. */
		{ "o\"brien \\ x", '*', "m", "pa\"ss\\word with space", false,
		  { "t LOGIN \"o\\\"brien \\\\ x*m\" \"pa\\\"ss\\\\word with space\"\r\n" } },
		/* Non-ASCII names: literals, LITERAL+ or after "+". */
		{ "j\xc3\xb6rg@example.com", '*', "m", "m-secret", true,
		  { "t LOGIN {19+}\r\nj\xc3\xb6rg@example.com*m \"m-secret\"\r\n" } },
		{ "j\xc3\xb6rg@example.com", '*', "m", "m-secret", false,
		  { "t LOGIN {19}\r\n", "j\xc3\xb6rg@example.com*m \"m-secret\"\r\n" } },
		/* Both literals, without LITERAL+: three segments. */
		{ "j\xc3\xb6rg", '*', "m", "s\xc3\xa9same", false,
		  { "t LOGIN {7}\r\n", "j\xc3\xb6rg*m {7}\r\n", "s\xc3\xa9same\r\n" } },
	};
	for (size_t i = 0; i < NROWS(rows); i++) {
		struct ig_master_login m = master(IG_MASTER_SEPARATOR, rows[i].sep,
		    rows[i].master_user, rows[i].secret);
		uint8_t buf[512];
		struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };
		const char *tag = i == 0 ? "a1" : "t";
		assert_int_equal(ig_loginfmt_master(&f, tag, rows[i].user, &m, true,
		    rows[i].literal_plus), 0);
		assert_segments(&f, rows[i].want);
		assert_int_equal(f.literal_plus, rows[i].literal_plus);
	}
}

static void
test_master_authzid(void **state)
{
	(void)state;
	/* base64("alice@example.com\0imapguard-master\0m-secret") */
	static const char b64[] =
	    "YWxpY2VAZXhhbXBsZS5jb20AaW1hcGd1YXJkLW1hc3RlcgBtLXNlY3JldA==";
	struct ig_master_login m = master(IG_MASTER_AUTHZID, '*', "imapguard-master",
	    "m-secret");
	uint8_t buf[512];
	struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };

	/* SASL-IR: one line. */
	assert_int_equal(ig_loginfmt_master(&f, "a1", "alice@example.com", &m, true, false), 0);
	char want[256];
	snprintf(want, sizeof(want), "a1 AUTHENTICATE PLAIN %s\r\n", b64);
	const char *one[4] = { want };
	assert_segments(&f, one);

	/* No SASL-IR: the response after "+". */
	assert_int_equal(ig_loginfmt_master(&f, "a1", "alice@example.com", &m, false, false), 0);
	char resp[256];
	snprintf(resp, sizeof(resp), "%s\r\n", b64);
	const char *two[4] = { "a1 AUTHENTICATE PLAIN\r\n", resp };
	assert_segments(&f, two);

	/* The separator does not matter here, nor odd bytes in the name. */
	struct ig_master_login m2 = master(IG_MASTER_AUTHZID, '*', "m", "p w");
	assert_int_equal(ig_loginfmt_master(&f, "t", "a*b \xc3\xa9", &m2, true, false), 0);
	/* base64("a*b \xc3\xa9\0m\0p w") */
	const char *three[4] = { "t AUTHENTICATE PLAIN YSpiIMOpAG0AcCB3\r\n" };
	assert_segments(&f, three);
}

static void
test_master_refusals(void **state)
{
	(void)state;
	struct ig_master_login m = master(IG_MASTER_SEPARATOR, '*', "imapguard-master", "s");
	uint8_t buf[512];
	struct ig_loginfmt f = { .buf = buf, .cap = sizeof(buf) };

	/* A user with the separator would be split by the backend. */
	assert_int_equal(ig_loginfmt_master_check(&m, "a*b@example.com"), IG_EINVAL);
	assert_int_equal(ig_loginfmt_master(&f, "t", "a*b@example.com", &m, true, true),
	    IG_EINVAL);
	assert_int_equal(ig_loginfmt_master_check(&m, ""), IG_EINVAL);
	assert_int_equal(ig_loginfmt_master_check(&m, NULL), IG_EINVAL);
	assert_int_equal(ig_loginfmt_master_check(&m, "a%b@example.com"), 0);
	m.separator[0] = '%';
	assert_int_equal(ig_loginfmt_master_check(&m, "a%b@example.com"), IG_EINVAL);
	assert_int_equal(ig_loginfmt_master_check(&m, "a*b@example.com"), 0);
	struct ig_master_login az = master(IG_MASTER_AUTHZID, '*', "m", "s");
	assert_int_equal(ig_loginfmt_master_check(&az, "a*b@example.com"), 0);

	/* No master login configured. */
	struct ig_master_login off = { .on = false };
	assert_int_equal(ig_loginfmt_master(&f, "t", "alice", &off, true, true), IG_EINVAL);

	/* Too long for the buffer. */
	struct ig_loginfmt small = { .buf = buf, .cap = 20 };
	m.separator[0] = '*';
	assert_int_equal(ig_loginfmt_master(&small, "t", "alice@example.com", &m, true, true),
	    IG_ETOOLONG);
	small.cap = 20;
	assert_int_equal(ig_loginfmt_master(&small, "t", "alice@example.com", &az, true, true),
	    IG_ETOOLONG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_astring),
		cmocka_unit_test(test_high_water),
		cmocka_unit_test(test_master_separator),
		cmocka_unit_test(test_master_authzid),
		cmocka_unit_test(test_master_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
