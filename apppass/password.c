/*
 * App passwords: format, generation (getrandom(2)) and the parser of client
 * input (see apppass/password.h).
 */
#include "apppass/password.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/err.h"

/*
 * Symbol values by byte, plus one: 1..32 for the alphabet (upper-case
 * letters like lower-case ones), PW_SEP for separators, 0 for anything
 * else. The unit tests check it against IG_APPPASS_ALPHABET.
 */
#define PW_SEP 33
static const uint8_t pw_value[256] = {
	[' '] = PW_SEP, ['-'] = PW_SEP,
	['2'] = 1, ['3'] = 2, ['4'] = 3, ['5'] = 4, ['6'] = 5, ['7'] = 6, ['8'] = 7, ['9'] = 8,
	['a'] = 9, ['b'] = 10, ['c'] = 11, ['d'] = 12, ['e'] = 13, ['f'] = 14, ['g'] = 15,
	['h'] = 16, ['i'] = 17, ['j'] = 18, ['k'] = 19, ['m'] = 20, ['n'] = 21, ['p'] = 22,
	['q'] = 23, ['r'] = 24, ['s'] = 25, ['t'] = 26, ['u'] = 27, ['v'] = 28, ['w'] = 29,
	['x'] = 30, ['y'] = 31, ['z'] = 32,
	['A'] = 9, ['B'] = 10, ['C'] = 11, ['D'] = 12, ['E'] = 13, ['F'] = 14, ['G'] = 15,
	['H'] = 16, ['I'] = 17, ['J'] = 18, ['K'] = 19, ['M'] = 20, ['N'] = 21, ['P'] = 22,
	['Q'] = 23, ['R'] = 24, ['S'] = 25, ['T'] = 26, ['U'] = 27, ['V'] = 28, ['W'] = 29,
	['X'] = 30, ['Y'] = 31, ['Z'] = 32,
};

static const char pw_alphabet[] = IG_APPPASS_ALPHABET;

/* Fills buf from getrandom(2). Returns 0 or IG_EIO. */
static int
pw_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return IG_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes n symbols into out, 5 bits of rnd (LSB first) each. */
static void
pw_symbols(const uint8_t *rnd, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		size_t bit = i * IG_APPPASS_SYMBOL_BITS;
		unsigned v = rnd[bit / 8] | (unsigned)rnd[bit / 8 + 1] << 8;
		out[i] = pw_alphabet[(v >> (bit % 8)) & 31u];
	}
	out[n] = '\0';
}

int
ig_apppass_generate(struct ig_apppass_pw *out)
{
	/* 125 bits of symbols (and one spare byte for pw_symbols' reads). */
	uint8_t rnd[(IG_APPPASS_SYMBOLS * IG_APPPASS_SYMBOL_BITS + 7) / 8 + 1];
	char sym[IG_APPPASS_SYMBOLS + 1];
	int rc = pw_random(rnd, sizeof(rnd));
	if (rc == 0) {
		pw_symbols(rnd, IG_APPPASS_SYMBOLS, sym);
		memcpy(out->id, sym, IG_APPPASS_ID_LEN);
		out->id[IG_APPPASS_ID_LEN] = '\0';
		memcpy(out->secret, sym + IG_APPPASS_ID_LEN, IG_APPPASS_SECRET_LEN);
		out->secret[IG_APPPASS_SECRET_LEN] = '\0';
	} else {
		ig_apppass_wipe(out);
	}
	explicit_bzero(rnd, sizeof(rnd));
	explicit_bzero(sym, sizeof(sym));
	return rc;
}

int
ig_apppass_generate_id(char id[static IG_APPPASS_ID_LEN + 1])
{
	uint8_t rnd[(IG_APPPASS_ID_LEN * IG_APPPASS_SYMBOL_BITS + 7) / 8 + 1];
	int rc = pw_random(rnd, sizeof(rnd));
	if (rc == 0)
		pw_symbols(rnd, IG_APPPASS_ID_LEN, id);
	else
		memset(id, 0, IG_APPPASS_ID_LEN + 1);
	return rc;
}

void
ig_apppass_format(const struct ig_apppass_pw *pw, char text[static IG_APPPASS_TEXT_LEN + 1])
{
	size_t o = 0;
	for (size_t i = 0; i < IG_APPPASS_SYMBOLS; i++) {
		if (i > 0 && i % IG_APPPASS_GROUP_LEN == 0)
			text[o++] = '-';
		text[o++] = i < IG_APPPASS_ID_LEN ? pw->id[i] : pw->secret[i - IG_APPPASS_ID_LEN];
	}
	text[o] = '\0';
}

int
ig_apppass_parse(const uint8_t *buf, size_t len, struct ig_apppass_pw *out)
{
	size_t n = 0;
	ig_apppass_wipe(out);
	if (len > IG_APPPASS_INPUT_MAX)
		return IG_EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned v = pw_value[buf[i]];
		if (v == PW_SEP)
			continue;
		if (v == 0 || n == IG_APPPASS_SYMBOLS) {
			ig_apppass_wipe(out);
			return IG_EINVAL;
		}
		if (n < IG_APPPASS_ID_LEN)
			out->id[n] = pw_alphabet[v - 1];
		else
			out->secret[n - IG_APPPASS_ID_LEN] = pw_alphabet[v - 1];
		n++;
	}
	if (n != IG_APPPASS_SYMBOLS) {
		ig_apppass_wipe(out);
		return IG_EINVAL;
	}
	return 0;
}

bool
ig_apppass_id_valid(const char *id)
{
	for (size_t i = 0; i < IG_APPPASS_ID_LEN; i++) {
		unsigned char ch = (unsigned char)id[i];
		/* Lower case only: ids are stored and compared normalised. */
		if (pw_value[ch] == 0 || pw_value[ch] == PW_SEP || (ch >= 'A' && ch <= 'Z'))
			return false;
	}
	return id[IG_APPPASS_ID_LEN] == '\0';
}

void
ig_apppass_wipe(struct ig_apppass_pw *pw)
{
	explicit_bzero(pw, sizeof(*pw));
}
