/*
 * Base32 (RFC 4648 section 6): encoder without padding, and a strict
 * decoder that takes case, spaces and optional padding. See base32.h.
 */
#include "apppass/base32.h"

#include <stdbool.h>

#include "util/err.h"

static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The value of a symbol in either case, or -1. */
static int
base32_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* The '=' that complete a last group of n symbols (n in 0..7), or -1 when
 * no encoding ends with n symbols in its last group. */
static int
base32_pad_for(size_t n)
{
	switch (n) {
	case 0:
		return 0;
	case 2:
		return 6;
	case 4:
		return 4;
	case 5:
		return 3;
	case 7:
		return 1;
	default:
		return -1;
	}
}

int
ig_base32_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
	*outlen = 0;
	if (len > (SIZE_MAX - 4) / 8 || outsz < IG_BASE32_ENC_LEN(len) + 1) {
		if (outsz > 0)
			out[0] = '\0';
		return IG_ETOOLONG;
	}
	size_t o = 0;
	uint32_t acc = 0;  /* pending bits, the oldest highest */
	unsigned nbits = 0; /* how many of acc's low bits are pending */
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		nbits += 8;
		while (nbits >= 5) {
			nbits -= 5;
			out[o++] = base32_alphabet[(acc >> nbits) & 31u];
		}
		acc &= (1u << nbits) - 1u;
	}
	if (nbits > 0)
		out[o++] = base32_alphabet[(acc << (5 - nbits)) & 31u];
	out[o] = '\0';
	*outlen = o;
	return 0;
}

int
ig_base32_decode(struct ig_span in, uint8_t *out, size_t outsz, size_t *outlen)
{
	*outlen = 0;

	/* First pass: validate and count, so that nothing is written for an
	   input that is refused. */
	size_t nsym = 0, npad = 0;
	int last = 0;
	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];
		if (c == ' ')
			continue;
		if (c == '=') {
			npad++;
			continue;
		}
		int v = base32_value(c);
		if (v < 0 || npad > 0)
			return IG_EINVAL;
		last = v;
		nsym++;
	}
	int pad = base32_pad_for(nsym % 8);
	if (pad < 0 || (npad != 0 && npad != (size_t)pad))
		return IG_EINVAL;
	/* The bits of the last symbol past the last whole byte must be zero:
	   one spelling per byte string. */
	unsigned unused = (unsigned)((nsym % 8) * 5 % 8);
	if (((unsigned)last & ((1u << unused) - 1u)) != 0)
		return IG_EINVAL;
	size_t n = nsym / 8 * 5 + (nsym % 8) * 5 / 8;
	if (n > outsz)
		return IG_ETOOLONG;

	size_t o = 0;
	uint32_t acc = 0;
	unsigned nbits = 0;
	for (size_t i = 0; i < in.len && o < n; i++) {
		int v = base32_value(in.p[i]);
		if (v < 0)
			continue; /* a space: '=' comes only after the last symbol */
		acc = (acc << 5) | (uint32_t)v;
		nbits += 5;
		if (nbits >= 8) {
			nbits -= 8;
			out[o++] = (uint8_t)(acc >> nbits);
			acc &= (1u << nbits) - 1u;
		}
	}
	*outlen = n;
	return 0;
}
