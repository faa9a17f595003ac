/*
 * The app passwords' hash: Argon2id (RFC 9106) from libargon2, stored as
 * its PHC string ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), so the
 * parameters travel with each hash: changing app_passwords.hash applies to
 * passwords issued from then on, and every stored hash is still verified
 * with the parameters it was made with.
 *
 * One computation costs what its parameters say (docs/APP_PASSWORDS.md has
 * the measured figures): the proxy runs it on libuv's thread pool, never
 * on a loop, behind the rate limiter and
 * app_passwords.max_concurrent_verifications.
 */
#ifndef IG_APPPASS_HASH_H
#define IG_APPPASS_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Argon2id's cost parameters. */
struct ig_apppass_hash_params {
	uint32_t memory_kib;             /* m: memory per computation, KiB */
	uint32_t iterations;             /* t: passes over that memory */
	uint32_t parallelism;            /* p: lanes (libargon2 runs one
	                                    thread per lane) */
};

/* The defaults: OWASP's minimum for Argon2id (Password Storage Cheat
 * Sheet): m = 19 MiB, t = 2, p = 1. */
#define IG_APPPASS_HASH_MEMORY_KIB (19u * 1024u)
#define IG_APPPASS_HASH_ITERATIONS 2u
#define IG_APPPASS_HASH_PARALLELISM 1u

/*
 * The most a hash may ask for: the configuration's upper bounds, and what
 * ig_apppass_verify() accepts from a stored hash (a store edited by hand
 * cannot make a login allocate more than 1 GiB or run longer than 16
 * passes).
 */
#define IG_APPPASS_HASH_MEMORY_MAX_KIB (1024u * 1024u) /* 1 GiB */
#define IG_APPPASS_HASH_ITERATIONS_MAX 16u
#define IG_APPPASS_HASH_PARALLELISM_MAX 8u

#define IG_APPPASS_HASH_SALT_LEN 16      /* bytes, from getrandom(2) */
#define IG_APPPASS_HASH_LEN 32           /* bytes of Argon2id output */
/* Longest PHC string accepted, NUL excluded (ours are about 100 bytes). */
#define IG_APPPASS_PHC_MAX 255

/* Stores the defaults above into p. */
void ig_apppass_hash_defaults(struct ig_apppass_hash_params *p);

/*
 * True when p can be used: at least 1 pass and 1 lane, at least 8 KiB per
 * lane (Argon2's minimum), and nothing above the *_MAX bounds. (The
 * configuration asks for more: at least 7 MiB; see config/apppass.c.)
 */
bool ig_apppass_hash_params_ok(const struct ig_apppass_hash_params *p);

/*
 * Hashes secret (len bytes) with a fresh random salt and params p into
 * phc, a NUL-terminated PHC string (phcsz >= IG_APPPASS_PHC_MAX + 1).
 * Blocks for the whole computation. Returns 0, IG_EINVAL (p not usable,
 * phc too small), IG_ENOMEM (Argon2's memory), or IG_EIO (no randomness).
 */
int ig_apppass_hash(const struct ig_apppass_hash_params *p, const char *secret, size_t len,
    char *phc, size_t phcsz);

/*
 * Checks secret (len bytes) against the PHC string phc with the
 * parameters phc carries, comparing in constant time (libargon2's verify).
 * Blocks for the whole computation. Returns 0 with *match set, IG_EINVAL
 * when phc is not an Argon2id PHC string or asks for parameters outside
 * ig_apppass_hash_params_ok() (nothing is computed then), or IG_ENOMEM.
 */
int ig_apppass_verify(const char *phc, const char *secret, size_t len, bool *match);

/*
 * Reads the parameters out of a PHC string without computing anything
 * (strict: "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH", base64 without padding,
 * at most IG_APPPASS_PHC_MAX bytes). Returns 0 with *out, or IG_EINVAL
 * (also for parameters outside ig_apppass_hash_params_ok()). Pure: the
 * store uses it to refuse a bad row, the proxy to tell a hash made with
 * older parameters.
 */
int ig_apppass_hash_params_of(const char *phc, struct ig_apppass_hash_params *out);

#endif /* IG_APPPASS_HASH_H */
