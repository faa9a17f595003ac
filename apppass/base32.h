/*
 * Base32 (RFC 4648 section 6): the text form of TOTP secrets, as
 * authenticator apps show and take them.
 *
 * The encoder writes the upper-case alphabet without padding (what the
 * otpauth URI format asks for). The decoder takes what a person may type
 * or paste: upper or lower case, spaces anywhere (ignored), and the '='
 * padding of RFC 4648 either complete or absent; it refuses anything else,
 * including non-zero unused bits in the last symbol, so that every byte
 * string has exactly one accepted spelling up to case, spaces and padding.
 * The decoder is fed hostile input: it is pure (no allocation, I/O, logging
 * or clock) and fuzzed (tests/fuzz/fuzz_base32.c). What it decodes may be a
 * secret: never log it, and wipe it once used.
 */
#ifndef IG_APPPASS_BASE32_H
#define IG_APPPASS_BASE32_H

#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

/* Symbols written for len bytes, without padding or NUL. */
#define IG_BASE32_ENC_LEN(len) (((len) * 8 + 4) / 5)
/* Most bytes that n input characters can decode to. */
#define IG_BASE32_DEC_MAX(n) ((n) * 5 / 8)

/*
 * Encodes in[0..len) into out as NUL-terminated upper-case base32 without
 * padding. out needs IG_BASE32_ENC_LEN(len) + 1 bytes. Returns 0 and sets
 * *outlen to the number of symbols written (the NUL not counted), or
 * IG_ETOOLONG when out is too small: then *outlen is 0 and out, if outsz is
 * not 0, holds the empty string. in may be NULL when len is 0.
 */
int ig_base32_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen);

/*
 * Decodes in into out[0..outsz). Accepted: the symbols A-Z and 2-7 in
 * either case, ASCII spaces anywhere (ignored), then optionally the '='
 * padding that completes the last 8-symbol group, exactly as many as RFC
 * 4648 section 6 writes (1, 3, 4 or 6), and nothing but spaces after it.
 * The symbols of the last group must be a length the encoder produces (2,
 * 4, 5, 7 or 8) and the unused bits of its last symbol must be zero. An
 * empty input (or one of spaces only) decodes to zero bytes.
 *
 * Returns 0 and sets *outlen; IG_EINVAL when in is not such base32;
 * IG_ETOOLONG when it is but out is too small (checked before anything is
 * written). On failure *outlen is 0 and out is untouched. Never reads
 * outside in or writes outside out.
 */
int ig_base32_decode(struct ig_span in, uint8_t *out, size_t outsz, size_t *outlen);

#endif /* IG_APPPASS_BASE32_H */
