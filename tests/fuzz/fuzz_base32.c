/*
 * Fuzz target for apppass/base32.c. The bytes are decoded as hostile text
 * (a pasted TOTP secret) into a buffer of exactly the size needed, so that
 * ASan sees any overrun; what is accepted must be the canonical encoding up
 * to case, spaces and padding, and what is refused must leave the buffer
 * untouched. The same bytes are then encoded and decoded back in the
 * spellings the decoder promises to take. Any violation abort()s, so the
 * replay build catches it too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apppass/base32.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* The input without spaces and '=', upper-cased, into a fresh buffer. */
static char *
fz_canonical(const uint8_t *data, size_t size, size_t *len)
{
	char *c = malloc(size + 1);
	CHECK(c != NULL);
	size_t n = 0;
	for (size_t i = 0; i < size; i++) {
		uint8_t b = data[i];
		if (b == ' ' || b == '=')
			continue;
		c[n++] = (char)(b >= 'a' && b <= 'z' ? b - 'a' + 'A' : b);
	}
	c[n] = '\0';
	*len = n;
	return c;
}

static void
fz_decode(const uint8_t *data, size_t size)
{
	struct ig_span in = { data, size };
	size_t cap = IG_BASE32_DEC_MAX(size);
	uint8_t *out = malloc(cap + 1);
	CHECK(out != NULL);
	memset(out, 0xa5, cap + 1);
	size_t n = 12345;

	int rc = ig_base32_decode(in, out, cap, &n);
	CHECK(rc == 0 || rc == IG_EINVAL);
	if (rc != 0) {
		CHECK(n == 0);
		for (size_t i = 0; i < cap + 1; i++)
			CHECK(out[i] == 0xa5);
		free(out);
		return;
	}
	CHECK(n <= cap && out[cap] == 0xa5);

	/* Accepted means canonical: encoding the bytes gives the symbols. */
	size_t clen;
	char *canon = fz_canonical(data, size, &clen);
	char *enc = malloc(IG_BASE32_ENC_LEN(n) + 1);
	CHECK(enc != NULL);
	size_t el = 0;
	CHECK(ig_base32_encode(out, n, enc, IG_BASE32_ENC_LEN(n) + 1, &el) == 0);
	CHECK(el == clen && memcmp(enc, canon, clen) == 0);

	/* The exact size is enough and one byte less is refused untouched. */
	if (n > 0) {
		uint8_t *exact = malloc(n);
		CHECK(exact != NULL);
		size_t n2 = 1;
		memset(exact, 0x5a, n);
		CHECK(ig_base32_decode(in, exact, n - 1, &n2) == IG_ETOOLONG && n2 == 0);
		for (size_t i = 0; i < n; i++)
			CHECK(exact[i] == 0x5a);
		CHECK(ig_base32_decode(in, exact, n, &n2) == 0 && n2 == n);
		CHECK(memcmp(exact, out, n) == 0);
		free(exact);
	}
	free(enc);
	free(canon);
	free(out);
}

/* Decodes text and checks that it gives want[0..len). */
static void
fz_expect(const char *text, size_t tlen, const uint8_t *want, size_t len)
{
	struct ig_span sp = { (const uint8_t *)text, tlen };
	uint8_t *back = malloc(len + 1);
	CHECK(back != NULL);
	size_t dl = 12345;
	CHECK(ig_base32_decode(sp, back, len, &dl) == 0);
	CHECK(dl == len && (len == 0 || memcmp(back, want, len) == 0));
	free(back);
}

static void
fz_roundtrip(const uint8_t *data, size_t size)
{
	size_t need = IG_BASE32_ENC_LEN(size) + 1;
	char *enc = malloc(need);
	CHECK(enc != NULL);
	size_t el = 12345;
	CHECK(ig_base32_encode(data, size, enc, need - 1, &el) == IG_ETOOLONG);
	CHECK(el == 0 && (need == 1 || enc[0] == '\0'));
	CHECK(ig_base32_encode(data, size, enc, need, &el) == 0);
	CHECK(el == need - 1 && strlen(enc) == el);
	fz_expect(enc, el, data, size);

	/* Lower case, a space every 4 symbols and the padding: the same. */
	size_t pad = (8 - el % 8) % 8;
	char *loose = malloc(el * 2 + pad + 1);
	CHECK(loose != NULL);
	size_t n = 0;
	for (size_t i = 0; i < el; i++) {
		if (i > 0 && i % 4 == 0)
			loose[n++] = ' ';
		char c = enc[i];
		loose[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	for (size_t i = 0; i < pad; i++)
		loose[n++] = '=';
	fz_expect(loose, n, data, size);
	free(loose);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_decode(data, size);
	if (size <= 4096)
		fz_roundtrip(data, size);
	return 0;
}
