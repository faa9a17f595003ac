/*
 * Unit tests for apppass/base32.c: RFC 4648 section 10's test vectors both
 * ways, what the decoder forgives (case, spaces, padding) and what it
 * refuses, buffer sizes, and round trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "apppass/base32.h"
#include "util/err.h"

/* A string literal with its length, NULs included. */
#define S(x) (x), (sizeof(x) - 1)

static struct ig_span
span(const char *p, size_t len)
{
	struct ig_span sp = { (const uint8_t *)p, len };
	return sp;
}

/* ---- RFC 4648 section 10 ---- */

struct vec_row {
	const char *plain;
	const char *padded; /* as the RFC writes it */
	const char *bare;   /* as ig_base32_encode writes it */
};

static const struct vec_row vec_rows[] = {
	{ "", "", "" },
	{ "f", "MY======", "MY" },
	{ "fo", "MZXQ====", "MZXQ" },
	{ "foo", "MZXW6===", "MZXW6" },
	{ "foob", "MZXW6YQ=", "MZXW6YQ" },
	{ "fooba", "MZXW6YTB", "MZXW6YTB" },
	{ "foobar", "MZXW6YTBOI======", "MZXW6YTBOI" },
	/* RFC 6238 appendix B's SHA-1 key, as authenticator apps take it */
	{ "12345678901234567890", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
	  "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" },
};

static void
test_rfc4648_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vec_rows) / sizeof(vec_rows[0]); i++) {
		const struct vec_row *r = &vec_rows[i];
		size_t len = strlen(r->plain), n = 99;
		char out[64];
		assert_int_equal(ig_base32_encode((const uint8_t *)r->plain, len, out,
		    sizeof(out), &n), 0);
		assert_string_equal(out, r->bare);
		assert_int_equal(n, strlen(r->bare));
		assert_int_equal(n, IG_BASE32_ENC_LEN(len));
	}
}

static void
test_rfc4648_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vec_rows) / sizeof(vec_rows[0]); i++) {
		const struct vec_row *r = &vec_rows[i];
		const char *forms[] = { r->padded, r->bare };
		for (size_t k = 0; k < 2; k++) {
			uint8_t out[64];
			size_t n = 99;
			assert_int_equal(ig_base32_decode(span(forms[k], strlen(forms[k])),
			    out, sizeof(out), &n), 0);
			assert_int_equal(n, strlen(r->plain));
			assert_memory_equal(out, r->plain, n);
			assert_true(n <= IG_BASE32_DEC_MAX(strlen(forms[k])));
		}
	}
}

/* ---- what the decoder takes and refuses ---- */

struct dec_row {
	const char *in;
	size_t len;
	int rc;
	const char *want; /* decoded bytes when rc is 0 */
	size_t wantlen;
};

#define OK(in, out) { S(in), 0, S(out) }
#define BAD(in) { S(in), IG_EINVAL, NULL, 0 }

static const struct dec_row dec_rows[] = {
	/* case and spaces */
	OK("mzxw6ytboi", "foobar"),
	OK("MzXw6YtBoI", "foobar"),
	OK("mzxw 6ytb oi", "foobar"),
	OK("  MZXW6YTBOI  ", "foobar"),
	OK("M Z X W 6 Y T B O I = = = = = =", "foobar"),
	OK("MY== ====", "f"),
	OK("MY======   ", "f"),
	OK("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", "12345678901234567890"),
	OK("", ""),
	OK("    ", ""),
	/* symbols outside the alphabet */
	BAD("MZXW6YT0"),
	BAD("MZXW6YT1"),
	BAD("MZXW6YT8"),
	BAD("MZXW6YT9"),
	BAD("MZXW6YTB\n"),
	BAD("MZXW\t6YTB"),
	BAD("MZXW-6YTB"),
	BAD("MZXW_6YTB"),
	BAD("MZXW6YT\0B"),
	BAD("MZXW6YT\xc3\xa9"),
	BAD("MZXW6YTB+"),
	BAD("MZXW6YTB/"),
	/* lengths no encoding ends with */
	BAD("M"),
	BAD("MZX"),
	BAD("MZXW6Y"),
	BAD("MZXW6YTBO"),
	BAD("M======="),
	/* padding: complete or absent, and last */
	BAD("MY="),
	BAD("MY====="),
	BAD("MY======="),
	BAD("MZXW6==="
	    "="),
	BAD("MZXW6YTB========"),
	BAD("="),
	BAD("========"),
	BAD("MY======MY"),
	BAD("MY======MY======"),
	BAD("MZ=XW6YTB"),
	/* unused bits of the last symbol must be zero */
	BAD("MZ"),
	BAD("MZ======"),
	BAD("MZXR"),
	BAD("MZXW7"),
	BAD("MZXW6YR"),
	BAD("MZXW6YTBOJ"),
};

static void
test_decode_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dec_rows) / sizeof(dec_rows[0]); i++) {
		const struct dec_row *r = &dec_rows[i];
		uint8_t out[64];
		memset(out, 0xa5, sizeof(out));
		size_t n = 99;
		int rc = ig_base32_decode(span(r->in, r->len), out, sizeof(out), &n);
		if (rc != r->rc)
			fail_msg("row %zu \"%s\": rc %d, want %d", i, r->in, rc, r->rc);
		if (rc != 0) {
			assert_int_equal(n, 0);
			/* nothing written for a refused input */
			for (size_t k = 0; k < sizeof(out); k++)
				assert_int_equal(out[k], 0xa5);
			continue;
		}
		assert_int_equal(n, r->wantlen);
		assert_memory_equal(out, r->want, n);
	}
}

/* With two symbols left, only values whose low two bits are zero end an
 * encoding; with seven, only those whose low three are. */
static void
test_decode_unused_bits(void **state)
{
	(void)state;
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	for (unsigned v = 0; v < 32; v++) {
		char two[3] = { 'M', alpha[v], '\0' };
		char seven[8] = { 'M', 'Z', 'X', 'W', '6', 'Y', alpha[v], '\0' };
		uint8_t out[8];
		size_t n;
		assert_int_equal(ig_base32_decode(span(two, 2), out, sizeof(out), &n),
		    (v & 3u) == 0 ? 0 : IG_EINVAL);
		assert_int_equal(ig_base32_decode(span(seven, 7), out, sizeof(out), &n),
		    (v & 7u) == 0 ? 0 : IG_EINVAL);
	}
}

/* ---- buffer sizes ---- */

static void
test_sizes(void **state)
{
	(void)state;
	uint8_t out[8];
	size_t n = 99;

	/* decode: exactly the decoded length is enough; one less is refused
	   before anything is written */
	memset(out, 0xa5, sizeof(out));
	assert_int_equal(ig_base32_decode(span(S("MZXW6YTBOI")), out, 5, &n), IG_ETOOLONG);
	assert_int_equal(n, 0);
	for (size_t k = 0; k < sizeof(out); k++)
		assert_int_equal(out[k], 0xa5);
	assert_int_equal(ig_base32_decode(span(S("MZXW6YTBOI")), out, 6, &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "foobar", 6);
	/* an input both bad and too long is bad */
	assert_int_equal(ig_base32_decode(span(S("MZXW6YTBO1")), out, 1, &n), IG_EINVAL);
	/* zero bytes fit anywhere */
	assert_int_equal(ig_base32_decode(span(NULL, 0), NULL, 0, &n), 0);
	assert_int_equal(n, 0);

	/* encode: the NUL needs its byte */
	char enc[16];
	memset(enc, 'x', sizeof(enc));
	n = 99;
	assert_int_equal(ig_base32_encode((const uint8_t *)"foobar", 6, enc, 10, &n),
	    IG_ETOOLONG);
	assert_int_equal(n, 0);
	assert_int_equal(enc[0], '\0');
	assert_int_equal(ig_base32_encode((const uint8_t *)"foobar", 6, enc, 11, &n), 0);
	assert_string_equal(enc, "MZXW6YTBOI");
	assert_int_equal(ig_base32_encode((const uint8_t *)"f", 1, NULL, 0, &n), IG_ETOOLONG);
	assert_int_equal(ig_base32_encode(NULL, 0, enc, 1, &n), 0);
	assert_string_equal(enc, "");
	assert_int_equal(ig_base32_encode(NULL, 0, enc, 0, &n), IG_ETOOLONG);
}

/* ---- round trips ---- */

static void
test_roundtrip(void **state)
{
	(void)state;
	uint8_t in[80], back[80];
	char enc[IG_BASE32_ENC_LEN(sizeof(in)) + 1];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37u + 11u);
	for (size_t len = 0; len <= sizeof(in); len++) {
		size_t el, dl;
		assert_int_equal(ig_base32_encode(in, len, enc, sizeof(enc), &el), 0);
		assert_int_equal(el, IG_BASE32_ENC_LEN(len));
		assert_int_equal(strlen(enc), el);
		for (size_t k = 0; k < el; k++)
			assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", enc[k]));
		assert_int_equal(ig_base32_decode(span(enc, el), back, len, &dl), 0);
		assert_int_equal(dl, len);
		assert_memory_equal(back, in, len);
	}
	/* every byte value, in every position of a group */
	for (unsigned b = 0; b < 256; b++) {
		for (size_t pos = 0; pos < 5; pos++) {
			uint8_t grp[5] = { 0 };
			size_t el, dl;
			grp[pos] = (uint8_t)b;
			assert_int_equal(ig_base32_encode(grp, 5, enc, sizeof(enc), &el), 0);
			assert_int_equal(ig_base32_decode(span(enc, el), back, 5, &dl), 0);
			assert_memory_equal(back, grp, 5);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_encode),
		cmocka_unit_test(test_rfc4648_decode),
		cmocka_unit_test(test_decode_rows),
		cmocka_unit_test(test_decode_unused_bits),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
