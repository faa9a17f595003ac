/*
 * App passwords: their format, their generation and the parser of what a
 * client typed.
 *
 * A password is 25 symbols of a 32-symbol alphabet that is easy to type on
 * a phone (lower-case letters and digits without 0, o, 1 and l), printed in
 * five groups of five:
 *
 *     k7dq2-xm9vh-pt4wa-e3nbz-r8fcu
 *     ^^^^^ the id: not secret, the store's key (the proxy finds the one
 *           entry to verify with a single hash computation)
 *           ^^^^^^^^^^^^^^^^^^^^^^^ the secret: 20 symbols, 100 bits
 *
 * The parser is fed hostile input (any LOGIN or AUTHENTICATE password): it
 * is pure (no allocation, I/O, logging or clock) and fuzzed
 * (tests/fuzz/fuzz_apppass.c). The secret is never logged; callers wipe it
 * (ig_apppass_wipe()) once used.
 */
#ifndef IG_APPPASS_PASSWORD_H
#define IG_APPPASS_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The symbols, in value order (symbol i encodes the 5 bits of i). */
#define IG_APPPASS_ALPHABET "23456789abcdefghijkmnpqrstuvwxyz"
#define IG_APPPASS_SYMBOL_BITS 5         /* 32 symbols */
#define IG_APPPASS_GROUP_LEN 5           /* symbols per printed group */
#define IG_APPPASS_ID_LEN 5              /* the first group */
#define IG_APPPASS_SECRET_LEN 20         /* the four other groups */
#define IG_APPPASS_SYMBOLS (IG_APPPASS_ID_LEN + IG_APPPASS_SECRET_LEN)
/* The secret alone, drawn uniformly from getrandom(2): 100 bits. */
#define IG_APPPASS_SECRET_BITS (IG_APPPASS_SECRET_LEN * IG_APPPASS_SYMBOL_BITS)
/* The id: 25 bits, unique in a store (a collision draws another). */
#define IG_APPPASS_ID_BITS (IG_APPPASS_ID_LEN * IG_APPPASS_SYMBOL_BITS)
/* Printed form: the symbols and a '-' between groups (29 bytes). */
#define IG_APPPASS_TEXT_LEN \
	(IG_APPPASS_SYMBOLS + IG_APPPASS_SYMBOLS / IG_APPPASS_GROUP_LEN - 1)
/* Longest input the parser looks at (bytes, separators included); any
 * longer password is not an app password. */
#define IG_APPPASS_INPUT_MAX 128

_Static_assert(sizeof(IG_APPPASS_ALPHABET) - 1 == 1u << IG_APPPASS_SYMBOL_BITS,
    "one symbol per value of IG_APPPASS_SYMBOL_BITS bits");
_Static_assert(IG_APPPASS_SECRET_BITS >= 100, "the secret part carries at least 100 bits");
_Static_assert(IG_APPPASS_SYMBOLS % IG_APPPASS_GROUP_LEN == 0 &&
    IG_APPPASS_ID_LEN == IG_APPPASS_GROUP_LEN, "the id is the first whole group");

/* A password split into its two parts, normalised (lower case, no
 * separators), NUL-terminated. The secret must be wiped after use. */
struct ig_apppass_pw {
	char id[IG_APPPASS_ID_LEN + 1];
	char secret[IG_APPPASS_SECRET_LEN + 1];
};

/*
 * Draws a new password: id and secret from getrandom(2), every symbol
 * uniform (5 random bits each, no modulo bias). Returns 0, or IG_EIO when
 * the kernel gives no randomness (out is then wiped).
 */
int ig_apppass_generate(struct ig_apppass_pw *out);

/*
 * Draws a new id only (after a collision in the store). Returns 0 or
 * IG_EIO, like ig_apppass_generate().
 */
int ig_apppass_generate_id(char id[static IG_APPPASS_ID_LEN + 1]);

/*
 * Writes pw in its printed form ("xxxxx-xxxxx-xxxxx-xxxxx-xxxxx") into text,
 * NUL-terminated. The text holds the secret: wipe it after use.
 */
void ig_apppass_format(const struct ig_apppass_pw *pw,
    char text[static IG_APPPASS_TEXT_LEN + 1]);

/*
 * Parses what a client sent as its password. Separators ('-' and ' ') are
 * ignored wherever they are and letters are taken in either case; what is
 * left must be exactly IG_APPPASS_SYMBOLS symbols of the alphabet. Pure.
 * Returns 0 with out filled (an app password), or IG_EINVAL ("not an app
 * password": any other byte, another count of symbols, or more than
 * IG_APPPASS_INPUT_MAX bytes), with out wiped. buf may be NULL when len is
 * 0.
 */
int ig_apppass_parse(const uint8_t *buf, size_t len, struct ig_apppass_pw *out);

/* True when id is IG_APPPASS_ID_LEN symbols of the alphabet (lower case)
 * and nothing more. */
bool ig_apppass_id_valid(const char *id);

/* Wipes pw (explicit_bzero: not optimised away). */
void ig_apppass_wipe(struct ig_apppass_pw *pw);

#endif /* IG_APPPASS_PASSWORD_H */
