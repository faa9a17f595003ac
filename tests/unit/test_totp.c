/*
 * Unit tests for apppass/totp.c: RFC 4226 appendix D's HOTP values, RFC
 * 6238 appendix B's SHA-1 TOTP values, the verifier's window, replay
 * refusal and malformed codes, new secrets, and the otpauth URI.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "apppass/base32.h"
#include "apppass/totp.h"
#include "util/err.h"

/* RFC 4226 appendix D and RFC 6238 appendix B (SHA-1): the ASCII string
 * "12345678901234567890", 20 bytes. */
static const uint8_t rfc_key[] = "12345678901234567890";
#define RFC_KEY_LEN 20

static struct ig_span
span(const char *p, size_t len)
{
	struct ig_span sp = { (const uint8_t *)p, len };
	return sp;
}

static struct ig_span
str(const char *s)
{
	return span(s, strlen(s));
}

/* ---- HOTP: RFC 4226 appendix D ---- */

struct hotp_row {
	uint64_t count;
	uint32_t truncated; /* the 31-bit value after dynamic truncation */
	uint32_t code6;
};

static const struct hotp_row hotp_rows[] = {
	{ 0, 1284755224u, 755224 },
	{ 1, 1094287082u, 287082 },
	{ 2, 137359152u, 359152 },
	{ 3, 1726969429u, 969429 },
	{ 4, 1640338314u, 338314 },
	{ 5, 868254676u, 254676 },
	{ 6, 1918287922u, 287922 },
	{ 7, 82162583u, 162583 },
	{ 8, 673399871u, 399871 },
	{ 9, 645520489u, 520489 },
};

static void
test_hotp_rfc4226(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hotp_rows) / sizeof(hotp_rows[0]); i++) {
		const struct hotp_row *r = &hotp_rows[i];
		uint32_t code = 0;
		assert_int_equal(ig_hotp(rfc_key, RFC_KEY_LEN, r->count, 6, &code), 0);
		assert_int_equal(code, r->code6);
		/* every number of digits is the same truncated value's tail */
		for (unsigned d = IG_HOTP_DIGITS_MIN; d <= IG_HOTP_DIGITS_MAX; d++) {
			uint32_t mod = 1;
			for (unsigned k = 0; k < d; k++)
				mod *= 10u;
			assert_int_equal(ig_hotp(rfc_key, RFC_KEY_LEN, r->count, d, &code), 0);
			assert_int_equal(code, r->truncated % mod);
		}
	}
}

static void
test_hotp_args(void **state)
{
	(void)state;
	uint8_t key[IG_TOTP_SECRET_MAX + 1];
	memset(key, 7, sizeof(key));
	uint32_t code = 4242;
	assert_int_equal(ig_hotp(key, IG_TOTP_SECRET_MIN - 1, 0, 6, &code), IG_EINVAL);
	assert_int_equal(ig_hotp(key, IG_TOTP_SECRET_MAX + 1, 0, 6, &code), IG_EINVAL);
	assert_int_equal(ig_hotp(NULL, 20, 0, 6, &code), IG_EINVAL);
	assert_int_equal(ig_hotp(key, 20, 0, 5, &code), IG_EINVAL);
	assert_int_equal(ig_hotp(key, 20, 0, 9, &code), IG_EINVAL);
	assert_int_equal(code, 4242);
	assert_int_equal(ig_hotp(key, IG_TOTP_SECRET_MIN, 0, 6, &code), 0);
	assert_int_equal(ig_hotp(key, IG_TOTP_SECRET_MAX, UINT64_MAX, 8, &code), 0);
	assert_true(code < 100000000u);
}

/* ---- TOTP: RFC 6238 appendix B, SHA-1 ---- */

struct totp_row {
	uint64_t now;  /* seconds since the epoch */
	uint64_t step; /* the RFC's T */
	const char *code8;
};

static const struct totp_row totp_rows[] = {
	{ 59, 0x1, "94287082" },
	{ 1111111109, 0x23523EC, "07081804" },
	{ 1111111111, 0x23523ED, "14050471" },
	{ 1234567890, 0x273EF07, "89005924" },
	{ 2000000000, 0x3F940AA, "69279037" },
	{ 20000000000u, 0x27BC86AA, "65353130" },
};

static void
test_totp_rfc6238(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(totp_rows) / sizeof(totp_rows[0]); i++) {
		const struct totp_row *r = &totp_rows[i];
		assert_int_equal(ig_totp_step(r->now), r->step);
		/* the RFC's 8 digits, through the step and HOTP */
		uint32_t v = 0;
		char buf[16];
		assert_int_equal(ig_hotp(rfc_key, RFC_KEY_LEN, ig_totp_step(r->now), 8, &v), 0);
		snprintf(buf, sizeof(buf), "%08u", (unsigned)v);
		assert_string_equal(buf, r->code8);
		/* our 6 digits are their last 6, leading zeroes kept */
		char code[IG_TOTP_DIGITS + 1];
		assert_int_equal(ig_totp_code(rfc_key, RFC_KEY_LEN, r->now, code), 0);
		assert_string_equal(code, r->code8 + 2);
		/* and the verifier takes them at that time */
		uint64_t m = 0;
		assert_int_equal(ig_totp_verify(rfc_key, RFC_KEY_LEN, str(r->code8 + 2),
		    r->now, 0, &m), 0);
		assert_int_equal(m, r->step);
	}
	char code[IG_TOTP_DIGITS + 1] = "xxxxxx";
	assert_int_equal(ig_totp_code(rfc_key, 3, 59, code), IG_EINVAL);
	assert_string_equal(code, "");
}

static void
test_totp_step(void **state)
{
	(void)state;
	assert_int_equal(ig_totp_step(0), 0);
	assert_int_equal(ig_totp_step(29), 0);
	assert_int_equal(ig_totp_step(30), 1);
	assert_int_equal(ig_totp_step(59), 1);
	assert_int_equal(ig_totp_step(60), 2);
	assert_int_equal(ig_totp_step(UINT64_MAX), UINT64_MAX / 30);
}

/* ---- the verifier ---- */

/* The code of step s under the RFC key. */
static void
code_at(uint64_t s, char out[IG_TOTP_DIGITS + 1])
{
	assert_int_equal(ig_totp_code(rfc_key, RFC_KEY_LEN, s * IG_TOTP_PERIOD, out), 0);
}

static int
verify(const char *code, uint64_t now, uint64_t last, uint64_t *m)
{
	*m = 777;
	return ig_totp_verify(rfc_key, RFC_KEY_LEN, str(code), now, last, m);
}

/* The window is the step of now and one either side, whatever second of
 * its step now is. */
static void
test_verify_window(void **state)
{
	(void)state;
	const uint64_t t = 0x23523ED; /* 1111111111 */
	char c[5][IG_TOTP_DIGITS + 1]; /* steps t-2 .. t+2 */
	for (int k = 0; k < 5; k++)
		code_at(t - 2 + (uint64_t)k, c[k]);
	for (int a = 0; a < 5; a++)
		for (int b = a + 1; b < 5; b++)
			assert_string_not_equal(c[a], c[b]);

	const uint64_t nows[] = { t * 30, t * 30 + 1, t * 30 + 15, t * 30 + 29 };
	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		uint64_t m;
		assert_int_equal(verify(c[0], nows[i], 0, &m), IG_ENOTFOUND);
		assert_int_equal(m, 777); /* untouched on failure */
		assert_int_equal(verify(c[1], nows[i], 0, &m), 0);
		assert_int_equal(m, t - 1);
		assert_int_equal(verify(c[2], nows[i], 0, &m), 0);
		assert_int_equal(m, t);
		assert_int_equal(verify(c[3], nows[i], 0, &m), 0);
		assert_int_equal(m, t + 1);
		assert_int_equal(verify(c[4], nows[i], 0, &m), IG_ENOTFOUND);
	}
	/* one second past the window's end, the oldest step falls out */
	uint64_t m;
	assert_int_equal(verify(c[1], (t + 1) * 30, 0, &m), IG_ENOTFOUND);
	assert_int_equal(verify(c[2], (t + 1) * 30, 0, &m), 0);
	/* one second before its start, the newest is not in yet */
	assert_int_equal(verify(c[3], t * 30 - 1, 0, &m), IG_ENOTFOUND);
	assert_int_equal(verify(c[2], t * 30 - 1, 0, &m), 0);
	/* a wrong code of the right shape */
	char wrong[IG_TOTP_DIGITS + 1];
	memcpy(wrong, c[2], sizeof(wrong));
	wrong[5] = wrong[5] == '9' ? '0' : (char)(wrong[5] + 1);
	assert_int_equal(verify(wrong, t * 30, 0, &m), IG_ENOTFOUND);
}

/* A code is never accepted twice, nor one of a step before the last used. */
static void
test_verify_replay(void **state)
{
	(void)state;
	const uint64_t t = 0x273EF07, now = 1234567890;
	char prev[IG_TOTP_DIGITS + 1], cur[IG_TOTP_DIGITS + 1], next[IG_TOTP_DIGITS + 1];
	code_at(t - 1, prev);
	code_at(t, cur);
	code_at(t + 1, next);
	uint64_t m, last = 0;

	assert_int_equal(verify(cur, now, last, &m), 0);
	assert_int_equal(m, t);
	last = m;
	assert_int_equal(verify(cur, now, last, &m), IG_ENOTFOUND);
	assert_int_equal(m, 777);
	assert_int_equal(verify(cur, now + 29, last, &m), IG_ENOTFOUND);
	assert_int_equal(verify(prev, now, last, &m), IG_ENOTFOUND);
	/* the next step's code still works, once */
	assert_int_equal(verify(next, now, last, &m), 0);
	assert_int_equal(m, t + 1);
	last = m;
	assert_int_equal(verify(next, now + 30, last, &m), IG_ENOTFOUND);
	assert_int_equal(verify(cur, now, last, &m), IG_ENOTFOUND);
	/* a last used step ahead of the window (clock set back) refuses all */
	assert_int_equal(verify(next, now, t + 5, &m), IG_ENOTFOUND);
	/* a last used step just before the current one leaves it usable */
	assert_int_equal(verify(cur, now, t - 1, &m), 0);
	assert_int_equal(m, t);
	assert_int_equal(verify(prev, now, t - 1, &m), IG_ENOTFOUND);
	assert_int_equal(verify(prev, now, t - 2, &m), 0);
	assert_int_equal(m, t - 1);
}

/* Steps 57017782 and 57017784 have the same code under the RFC key (found
 * by search): in the window around 57017783 it matches twice, and the
 * later step is the one reported, so the same string cannot be replayed
 * against the later step. */
static void
test_verify_collision(void **state)
{
	(void)state;
	const uint64_t t = 57017783;
	char lo[IG_TOTP_DIGITS + 1], hi[IG_TOTP_DIGITS + 1];
	code_at(t - 1, lo);
	code_at(t + 1, hi);
	assert_string_equal(lo, "882938");
	assert_string_equal(hi, "882938");
	uint64_t m;
	assert_int_equal(verify("882938", t * 30, 0, &m), 0);
	assert_int_equal(m, t + 1);
	assert_int_equal(verify("882938", t * 30, t + 1, &m), IG_ENOTFOUND);
	assert_int_equal(verify("882938", t * 30, t - 1, &m), 0);
	assert_int_equal(m, t + 1);
	assert_int_equal(verify("882938", (t - 1) * 30, 0, &m), 0);
	assert_int_equal(m, t - 1);
}

/* Near the epoch: step 0 is never accepted (0 means "none used"). */
static void
test_verify_epoch(void **state)
{
	(void)state;
	char c0[IG_TOTP_DIGITS + 1], c1[IG_TOTP_DIGITS + 1];
	code_at(0, c0);
	code_at(1, c1);
	uint64_t m;
	assert_int_equal(verify(c0, 0, 0, &m), IG_ENOTFOUND);
	assert_int_equal(verify(c0, 29, 0, &m), IG_ENOTFOUND);
	assert_int_equal(verify(c1, 0, 0, &m), 0);
	assert_int_equal(m, 1);
	/* and at the end of time, nothing overflows */
	char cz[IG_TOTP_DIGITS + 1];
	uint64_t tz = ig_totp_step(UINT64_MAX);
	code_at(tz, cz);
	assert_int_equal(verify(cz, UINT64_MAX, 0, &m), 0);
	assert_int_equal(m, tz);
}

struct bad_code_row {
	const char *code;
	size_t len;
};

#define B(x) { (x), sizeof(x) - 1 }

static const struct bad_code_row bad_codes[] = {
	B(""),
	B("5"),
	B("05047"),
	B("0504710"),
	B("050471 "),
	B(" 050471"),
	B("050 471"),
	B("050-471"),
	B("05047a"),
	B("O50471"),
	B("+50471"),
	B("-50471"),
	B("05047\0"),
	B("\0" "50471"),
	B("0504\xd9\xa1"), /* ARABIC-INDIC DIGIT ONE */
	B("05047\n"),
	B("050471050471"),
};

static void
test_verify_malformed(void **state)
{
	(void)state;
	/* well-formed, this one would be accepted: refusals are about form */
	uint64_t m = 777;
	assert_int_equal(verify("050471", 1111111111, 0, &m), 0);
	for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
		m = 777;
		int rc = ig_totp_verify(rfc_key, RFC_KEY_LEN,
		    span(bad_codes[i].code, bad_codes[i].len), 1111111111, 0, &m);
		if (rc != IG_EINVAL)
			fail_msg("row %zu: rc %d", i, rc);
		assert_int_equal(m, 777);
	}
	assert_int_equal(ig_totp_verify(rfc_key, RFC_KEY_LEN, span(NULL, 6), 1111111111, 0, &m),
	    IG_EINVAL);
	/* a secret of a length we do not take */
	assert_int_equal(ig_totp_verify(rfc_key, IG_TOTP_SECRET_MIN - 1, str("050471"),
	    1111111111, 0, &m), IG_EINVAL);
	assert_int_equal(ig_totp_verify(NULL, RFC_KEY_LEN, str("050471"), 1111111111, 0, &m),
	    IG_EINVAL);
	assert_int_equal(m, 777);
}

/* ---- new secrets ---- */

static void
test_secret_new(void **state)
{
	(void)state;
	uint8_t a[IG_TOTP_SECRET_LEN], b[IG_TOTP_SECRET_LEN], zero[IG_TOTP_SECRET_LEN];
	memset(zero, 0, sizeof(zero));
	assert_int_equal(ig_totp_secret_new(a), 0);
	assert_int_equal(ig_totp_secret_new(b), 0);
	/* 160 bits each: equal, or zero, only if getrandom is broken */
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	/* and one is a secret the rest takes */
	char code[IG_TOTP_DIGITS + 1];
	assert_int_equal(ig_totp_code(a, sizeof(a), 1700000000, code), 0);
	uint64_t m;
	assert_int_equal(ig_totp_verify(a, sizeof(a), str(code), 1700000000, 0, &m), 0);
}

/* ---- the otpauth URI ---- */

struct uri_row {
	const char *issuer, *user;
	const char *want; /* the URI, or NULL when refused (IG_EINVAL) */
};

#define RFC_B32 "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
#define TAIL "&algorithm=SHA1&digits=6&period=30"

static const struct uri_row uri_rows[] = {
	{ "imapguard", "alice@example.com",
	  "otpauth://totp/imapguard:alice@example.com?secret=" RFC_B32
	  "&issuer=imapguard" TAIL },
	{ "mail.example.org", "bob",
	  "otpauth://totp/mail.example.org:bob?secret=" RFC_B32
	  "&issuer=mail.example.org" TAIL },
	/* spaces as %20, reserved and other bytes as %XX (upper case) */
	{ "Mail & Co/Ops?#%+", "j\xc3\xb6rg+x@ex.org",
	  "otpauth://totp/Mail%20%26%20Co%2FOps%3F%23%25%2B:j%C3%B6rg%2Bx@ex.org?secret="
	  RFC_B32 "&issuer=Mail%20%26%20Co%2FOps%3F%23%25%2B" TAIL },
	{ "a=b", "~u_v-w.x",
	  "otpauth://totp/a%3Db:~u_v-w.x?secret=" RFC_B32 "&issuer=a%3Db" TAIL },
	/* refused: a colon, an empty part, a control character */
	{ "Ex:ample", "alice", NULL },
	{ "Example", "alice:x", NULL },
	{ "", "alice", NULL },
	{ "Example", "", NULL },
	{ NULL, "alice", NULL },
	{ "Example", NULL, NULL },
	{ "Example", "ali\nce", NULL },
	{ "Exa\tmple", "alice", NULL },
	{ "Example", "alice\x7f", NULL },
};

static void
test_uri_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(uri_rows) / sizeof(uri_rows[0]); i++) {
		const struct uri_row *r = &uri_rows[i];
		char out[512];
		size_t n = 99;
		memset(out, 'x', sizeof(out));
		int rc = ig_totp_uri(r->issuer, r->user, rfc_key, RFC_KEY_LEN, out, sizeof(out),
		    &n);
		if (r->want == NULL) {
			if (rc != IG_EINVAL)
				fail_msg("row %zu: rc %d", i, rc);
			assert_int_equal(n, 0);
			assert_string_equal(out, "");
			continue;
		}
		if (rc != 0)
			fail_msg("row %zu: rc %d", i, rc);
		assert_string_equal(out, r->want);
		assert_int_equal(n, strlen(r->want));
	}
}

/* The Key Uri Format's own example comes out byte for byte, and its
 * secret decodes back to the key. */
static void
test_uri_keyuri_example(void **state)
{
	(void)state;
	static const char b32[] = "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ";
	uint8_t key[IG_TOTP_SECRET_MAX];
	size_t klen, n;
	assert_int_equal(ig_base32_decode(str(b32), key, sizeof(key), &klen), 0);
	assert_int_equal(klen, 20);
	char out[256];
	assert_int_equal(ig_totp_uri("ACME Co", "john.doe@email.com", key, klen, out,
	    sizeof(out), &n), 0);
	assert_string_equal(out,
	    "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"
	    "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30");
}

static void
test_uri_sizes(void **state)
{
	(void)state;
	char out[512];
	size_t n = 99, len;
	assert_int_equal(ig_totp_uri("imapguard", "alice", rfc_key, RFC_KEY_LEN, out,
	    sizeof(out), &len), 0);
	/* exactly len + 1 bytes fit; one less is refused and wiped */
	assert_int_equal(ig_totp_uri("imapguard", "alice", rfc_key, RFC_KEY_LEN, out, len + 1,
	    &n), 0);
	assert_int_equal(n, len);
	memset(out, 'x', sizeof(out));
	assert_int_equal(ig_totp_uri("imapguard", "alice", rfc_key, RFC_KEY_LEN, out, len, &n),
	    IG_ETOOLONG);
	assert_int_equal(n, 0);
	for (size_t k = 0; k < len; k++)
		assert_int_equal(out[k], '\0');
	assert_int_equal(out[len], 'x');
	assert_int_equal(ig_totp_uri("imapguard", "alice", rfc_key, RFC_KEY_LEN, NULL, 0, &n),
	    IG_ETOOLONG);

	/* IG_TOTP_URI_MAX holds the worst case: every byte encoded, the
	   longest secret */
	char issuer[40], user[60];
	memset(issuer, '/', sizeof(issuer) - 1);
	issuer[sizeof(issuer) - 1] = '\0';
	memset(user, ' ', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	uint8_t key[IG_TOTP_SECRET_MAX];
	memset(key, 0xff, sizeof(key));
	char big[IG_TOTP_URI_MAX(sizeof(issuer) - 1, sizeof(user) - 1)];
	assert_int_equal(ig_totp_uri(issuer, user, key, sizeof(key), big, sizeof(big), &n), 0);
	assert_true(n < sizeof(big));
	/* secrets of a length we do not take */
	assert_int_equal(ig_totp_uri("i", "u", key, IG_TOTP_SECRET_MIN - 1, out, sizeof(out),
	    &n), IG_EINVAL);
	assert_int_equal(ig_totp_uri("i", "u", key, IG_TOTP_SECRET_MAX + 1, out, sizeof(out),
	    &n), IG_EINVAL);
	assert_int_equal(ig_totp_uri("i", "u", NULL, 20, out, sizeof(out), &n), IG_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hotp_rfc4226),
		cmocka_unit_test(test_hotp_args),
		cmocka_unit_test(test_totp_rfc6238),
		cmocka_unit_test(test_totp_step),
		cmocka_unit_test(test_verify_window),
		cmocka_unit_test(test_verify_replay),
		cmocka_unit_test(test_verify_collision),
		cmocka_unit_test(test_verify_epoch),
		cmocka_unit_test(test_verify_malformed),
		cmocka_unit_test(test_secret_new),
		cmocka_unit_test(test_uri_rows),
		cmocka_unit_test(test_uri_keyuri_example),
		cmocka_unit_test(test_uri_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
