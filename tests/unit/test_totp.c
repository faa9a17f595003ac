/*
 * Unit tests for apppass/totp.c: RFC 4226 appendix D's HOTP values, RFC
 * 6238 appendix B's SHA-1 TOTP values, the verifier's window, replay
 * refusal and malformed codes, new secrets, and the otpauth URI; and
 * apppass/qr.c, whose drawing is read back into modules and compared with
 * libqrencode's (and, when zbar-tools is installed, scanned by zbarimg).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <qrencode.h>

#include "apppass/base32.h"
#include "apppass/qr.h"
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

/* ---- the QR code ---- */

#define QR_ON "\033[30;107m"
#define QR_OFF "\033[0m"

/* A drawing read back: which modules are dark, quiet zone included. */
struct drawing {
	int size;      /* modules across (and down) */
	int lines;     /* text lines */
	uint8_t *dark; /* size * size, row by row */
};

/* Reads the text drawn with flags back into modules; fails the test on
 * anything qr.h does not promise (a stray byte, a ragged line, ink in the
 * half line below the drawing). */
static void
drawing_read(const char *text, unsigned flags, struct drawing *d)
{
	static const char *const glyph[4] = { " ", "\xe2\x96\x80", "\xe2\x96\x84",
		"\xe2\x96\x88" };
	bool ansi = (flags & IG_QRF_ANSI) != 0;
	bool ink_dark = ansi || (flags & IG_QRF_INVERT) != 0;
	uint8_t *ink = NULL; /* 2 * lines rows of size */
	int width = -1, lines = 0;
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		if (ansi) {
			assert_memory_equal(p, QR_ON, strlen(QR_ON));
			p += strlen(QR_ON);
			assert_true(nl - p >= (ptrdiff_t)strlen(QR_OFF));
			assert_memory_equal(nl - strlen(QR_OFF), QR_OFF, strlen(QR_OFF));
		}
		const char *end = ansi ? nl - strlen(QR_OFF) : nl;
		int x = 0;
		uint8_t row[2][512];
		while (p < end) {
			int g = -1;
			for (int k = 0; k < 4 && g < 0; k++)
				if (strncmp(p, glyph[k], strlen(glyph[k])) == 0)
					g = k;
			if (g < 0)
				fail_msg("line %d, column %d: not a glyph of ours", lines, x);
			p += strlen(glyph[g]);
			assert_true(x < 512);
			row[0][x] = (uint8_t)(g & 1);
			row[1][x] = (uint8_t)((g >> 1) & 1);
			x++;
		}
		assert_ptr_equal(p, end);
		if (width < 0)
			width = x;
		assert_int_equal(x, width);
		ink = realloc(ink, (size_t)(lines + 1) * 2 * (size_t)width);
		assert_non_null(ink);
		memcpy(ink + (size_t)lines * 2 * (size_t)width, row[0], (size_t)width);
		memcpy(ink + ((size_t)lines * 2 + 1) * (size_t)width, row[1], (size_t)width);
		lines++;
		p = nl + 1;
	}
	assert_true(width > 0);
	assert_int_equal(lines, (width + 1) / 2);
	d->size = width;
	d->lines = lines;
	d->dark = malloc((size_t)width * (size_t)width);
	assert_non_null(d->dark);
	for (int y = 0; y < 2 * lines; y++) {
		for (int x = 0; x < width; x++) {
			bool in = ink[(size_t)y * (size_t)width + (size_t)x] != 0;
			if (y >= width) {
				assert_false(in); /* the half line below: blank */
				continue;
			}
			d->dark[(size_t)y * (size_t)width + (size_t)x] = (uint8_t)(in == ink_dark);
		}
	}
	free(ink);
}

/* The drawing is libqrencode's symbol of text with its quiet zone. */
static void
drawing_check(const struct drawing *d, const char *text)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	assert_non_null(qr);
	assert_int_equal(qr->width, 17 + 4 * qr->version);
	assert_int_equal(d->size, qr->width + 2 * IG_QR_QUIET);
	for (int y = 0; y < d->size; y++) {
		for (int x = 0; x < d->size; x++) {
			int mx = x - IG_QR_QUIET, my = y - IG_QR_QUIET;
			bool want = mx >= 0 && my >= 0 && mx < qr->width && my < qr->width &&
			    (qr->data[my * qr->width + mx] & 1) != 0;
			if ((d->dark[y * d->size + x] != 0) != want)
				fail_msg("module (%d, %d): %d, want %d", mx, my,
				    d->dark[y * d->size + x], want);
		}
	}
	QRcode_free(qr);
}

static char *
render(const char *text, unsigned flags, size_t *len)
{
	size_t need = 0;
	assert_int_equal(ig_qr_render_buf(text, flags, NULL, 0, &need), IG_ETOOLONG);
	assert_true(need > 0);
	char *out = malloc(need + 1);
	assert_non_null(out);
	assert_int_equal(ig_qr_render_buf(text, flags, out, need + 1, len), 0);
	assert_int_equal(*len, need);
	assert_int_equal(strlen(out), need);
	return out;
}

static const char *const qr_texts[] = {
	"A", /* version 1 */
	"otpauth://totp/imapguard:alice@example.com?secret=" RFC_B32 "&issuer=imapguard" TAIL,
	"otpauth://totp/Mail%20%26%20Co%2FOps:j%C3%B6rg%2Bx@ex.org?secret="
	"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	"&issuer=Mail%20%26%20Co%2FOps" TAIL,
};

static void
test_qr_roundtrip(void **state)
{
	(void)state;
	static const unsigned flag_sets[] = { 0, IG_QRF_INVERT, IG_QRF_ANSI,
		IG_QRF_ANSI | IG_QRF_INVERT };
	for (size_t i = 0; i < sizeof(qr_texts) / sizeof(qr_texts[0]); i++) {
		for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
			size_t len;
			char *out = render(qr_texts[i], flag_sets[f], &len);
			struct drawing d;
			drawing_read(out, flag_sets[f], &d);
			drawing_check(&d, qr_texts[i]);
			free(d.dark);
			free(out);
		}
	}
}

/* Sizes: version 1 is 21 modules, 29 with the quiet zone, 15 lines. */
static void
test_qr_size(void **state)
{
	(void)state;
	size_t len;
	char *out = render("A", 0, &len);
	struct drawing d;
	drawing_read(out, 0, &d);
	assert_int_equal(d.size, 21 + 2 * IG_QR_QUIET);
	assert_int_equal(d.lines, 15);
	/* the top quiet zone, light modules as ink: two lines of full blocks */
	const char *full = "\xe2\x96\x88";
	for (int x = 0; x < d.size; x++)
		assert_memory_equal(out + 3 * x, full, 3);
	free(d.dark);
	free(out);

	/* the otpauth URI of a 20-byte secret: about 120 bytes, version 6 at
	   level L, within 80 columns and 25 lines */
	out = render(qr_texts[1], 0, &len);
	drawing_read(out, 0, &d);
	QRcode *qr = QRcode_encodeString(qr_texts[1], 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	assert_non_null(qr);
	assert_int_equal(d.size, 17 + 4 * qr->version + 2 * IG_QR_QUIET);
	assert_true(d.size <= 80 && d.lines <= 25);
	QRcode_free(qr);
	free(d.dark);
	free(out);
}

/* The FILE form writes the same bytes as the buffer form. */
static void
test_qr_file(void **state)
{
	(void)state;
	size_t len;
	char *want = render(qr_texts[1], IG_QRF_ANSI, &len);
	char *got = NULL;
	size_t got_len = 0;
	FILE *f = open_memstream(&got, &got_len);
	assert_non_null(f);
	assert_int_equal(ig_qr_render(f, qr_texts[1], IG_QRF_ANSI), 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, want, len);
	free(got);
	free(want);

	/* a stream that cannot be written */
	f = fopen("/dev/null", "r");
	assert_non_null(f);
	assert_int_equal(ig_qr_render(f, "A", 0), IG_EIO);
	fclose(f);
}

static void
test_qr_errors(void **state)
{
	(void)state;
	char out[64];
	size_t n = 99;
	memset(out, 'x', sizeof(out));
	assert_int_equal(ig_qr_render_buf("", 0, out, sizeof(out), &n), IG_EINVAL);
	assert_int_equal(n, 0);
	assert_string_equal(out, "");
	assert_int_equal(ig_qr_render_buf(NULL, 0, out, sizeof(out), &n), IG_EINVAL);
	assert_int_equal(ig_qr_render_buf("A", 0x4, out, sizeof(out), &n), IG_EINVAL);
	assert_int_equal(ig_qr_render(stdout, "", 0), IG_EINVAL);

	/* more than a version 40 symbol holds (2953 bytes at level L) */
	char *big = malloc(4000);
	assert_non_null(big);
	memset(big, 'a', 3999);
	big[3999] = '\0';
	n = 99;
	assert_int_equal(ig_qr_render_buf(big, 0, out, sizeof(out), &n), IG_ETOOLONG);
	assert_int_equal(n, 0);
	assert_int_equal(ig_qr_render(stdout, big, 0), IG_ETOOLONG);
	free(big);

	/* a buffer too small: refused, wiped, and the size needed told */
	size_t need;
	assert_int_equal(ig_qr_render_buf("A", 0, NULL, 0, &need), IG_ETOOLONG);
	char *buf = malloc(need + 1);
	assert_non_null(buf);
	memset(buf, 'x', need + 1);
	assert_int_equal(ig_qr_render_buf("A", 0, buf, need, &n), IG_ETOOLONG);
	assert_int_equal(n, need);
	for (size_t k = 0; k < need; k++)
		assert_int_equal(buf[k], '\0');
	assert_int_equal(buf[need], 'x');
	assert_int_equal(ig_qr_render_buf("A", 0, buf, need + 1, &n), 0);
	assert_int_equal(n, need);
	free(buf);
}

/* The program named, found in PATH. */
static bool
in_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		return false;
	char *copy = strdup(path), *save = NULL;
	assert_non_null(copy);
	bool found = false;
	for (char *dir = strtok_r(copy, ":", &save); dir != NULL && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		char full[4096];
		snprintf(full, sizeof(full), "%s/%s", dir, prog);
		found = access(full, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* A scanner reads what we drew: the drawing, read back, written as a
 * greyscale image (PGM, 4 pixels per module) for zbarimg (Debian's
 * zbar-tools; skipped when it is absent). The key is the RFC's, not a
 * secret. */
static void
test_qr_zbarimg(void **state)
{
	(void)state;
	if (!in_path("zbarimg"))
		skip();
	const unsigned flag_sets[] = { 0, IG_QRF_INVERT };
	for (size_t f = 0; f < 2; f++) {
		size_t len;
		char *out = render(qr_texts[1], flag_sets[f], &len);
		struct drawing d;
		drawing_read(out, flag_sets[f], &d);
		free(out);

		const char *tmp = getenv("TMPDIR");
		char path[4096];
		snprintf(path, sizeof(path), "%s/test_totp_qr_XXXXXX", tmp != NULL ? tmp : "/tmp");
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		FILE *img = fdopen(fd, "wb");
		assert_non_null(img);
		const int scale = 4, px = d.size * scale;
		fprintf(img, "P5\n%d %d\n255\n", px, px);
		for (int y = 0; y < px; y++)
			for (int x = 0; x < px; x++)
				fputc(d.dark[(y / scale) * d.size + x / scale] ? 0 : 255, img);
		assert_int_equal(fclose(img), 0);
		free(d.dark);

		char cmd[4200], got[1024] = "";
		snprintf(cmd, sizeof(cmd), "zbarimg -q --raw '%s' 2>/dev/null", path);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		size_t n = fread(got, 1, sizeof(got) - 1, p);
		got[n] = '\0';
		int st = pclose(p);
		unlink(path);
		assert_int_equal(st, 0);
		if (n > 0 && got[n - 1] == '\n')
			got[n - 1] = '\0';
		assert_string_equal(got, qr_texts[1]);
	}
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
		cmocka_unit_test(test_qr_roundtrip),
		cmocka_unit_test(test_qr_size),
		cmocka_unit_test(test_qr_file),
		cmocka_unit_test(test_qr_errors),
		cmocka_unit_test(test_qr_zbarimg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
