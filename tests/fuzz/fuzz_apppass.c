/*
 * Fuzz target for apppass/password.c and apppass/hash.c: the same bytes go
 * to the app password parser (what any client may send as a password) and
 * to the reader of stored PHC strings (what a store edited by hand may
 * hold). Invariants are checked and any violation abort()s, so the replay
 * build catches them too:
 *  - a parse succeeds exactly when the input, without '-' and ' ', is 25
 *    symbols of the alphabet in either case (and at most 128 bytes); the
 *    result is those symbols in lower case, and it prints and parses back
 *    to itself; a refusal leaves nothing of the input behind;
 *  - a PHC string accepted by the reader has parameters within bounds, and
 *    libargon2's verify on it (cheap ones only) returns without crashing.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static const char alphabet[] = IG_APPPASS_ALPHABET;

/* The expected result, computed the slow and obvious way. */
static bool
fz_expect(const uint8_t *data, size_t size, char sym[IG_APPPASS_SYMBOLS + 1])
{
	size_t n = 0;
	if (size > IG_APPPASS_INPUT_MAX)
		return false;
	for (size_t i = 0; i < size; i++) {
		uint8_t c = data[i];
		if (c == '-' || c == ' ')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (c == 0 || strchr(alphabet, c) == NULL || n == IG_APPPASS_SYMBOLS)
			return false;
		sym[n++] = (char)c;
	}
	sym[n] = '\0';
	return n == IG_APPPASS_SYMBOLS;
}

static void
fz_parse(const uint8_t *data, size_t size)
{
	struct ig_apppass_pw pw, back, zero;
	char sym[IG_APPPASS_SYMBOLS + 1], text[IG_APPPASS_TEXT_LEN + 1];
	memset(&pw, 0xa5, sizeof(pw));
	memset(&zero, 0, sizeof(zero));
	int rc = ig_apppass_parse(data, size, &pw);
	bool want = fz_expect(data, size, sym);
	CHECK(rc == 0 || rc == IG_EINVAL);
	CHECK((rc == 0) == want);
	if (rc != 0) {
		CHECK(memcmp(&pw, &zero, sizeof(pw)) == 0);
		return;
	}
	CHECK(strlen(pw.id) == IG_APPPASS_ID_LEN && strlen(pw.secret) == IG_APPPASS_SECRET_LEN);
	CHECK(memcmp(pw.id, sym, IG_APPPASS_ID_LEN) == 0);
	CHECK(memcmp(pw.secret, sym + IG_APPPASS_ID_LEN, IG_APPPASS_SECRET_LEN) == 0);
	CHECK(ig_apppass_id_valid(pw.id));
	ig_apppass_format(&pw, text);
	CHECK(strlen(text) == IG_APPPASS_TEXT_LEN);
	CHECK(ig_apppass_parse((const uint8_t *)text, strlen(text), &back) == 0);
	CHECK(memcmp(&back, &pw, sizeof(pw)) == 0);
	ig_apppass_wipe(&pw);
	ig_apppass_wipe(&back);
}

static void
fz_phc(const uint8_t *data, size_t size)
{
	static char s[IG_APPPASS_PHC_MAX + 64];
	struct ig_apppass_hash_params p;
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	int rc = ig_apppass_hash_params_of(s, &p);
	CHECK(rc == 0 || rc == IG_EINVAL);
	if (rc != 0)
		return;
	CHECK(ig_apppass_hash_params_ok(&p));
	CHECK(strncmp(s, "$argon2id$v=19$m=", 17) == 0);
	CHECK(strlen(s) <= IG_APPPASS_PHC_MAX);
	/* libargon2's own decoder on what ours let through, when computing is
	   cheap (a fuzzer must not allocate a GiB per input). */
	if (p.memory_kib <= 256 && p.iterations <= 2 && p.parallelism <= 2) {
		bool match = true;
		rc = ig_apppass_verify(s, "xm9vhpt4wae3nbzr8fcu", 20, &match);
		CHECK(rc == 0 || rc == IG_EINVAL || rc == IG_ENOMEM);
		CHECK(rc == 0 || !match);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_parse(data, size);
	fz_phc(data, size);
	return 0;
}
