/*
 * Argon2id over libargon2, PHC strings (see apppass/hash.h).
 */
#include "apppass/hash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <argon2.h>

#include "util/err.h"

/* Argon2's own floor: 8 KiB (two blocks per slice, four slices) per lane. */
#define HASH_MEMORY_PER_LANE_MIN_KIB 8u
/* Shortest salt and hash (base64 symbols) a stored string may carry:
 * Argon2's 8-byte salt minimum, and 16 bytes of output. */
#define HASH_SALT_B64_MIN 11u
#define HASH_OUT_B64_MIN 22u

void
ig_apppass_hash_defaults(struct ig_apppass_hash_params *p)
{
	p->memory_kib = IG_APPPASS_HASH_MEMORY_KIB;
	p->iterations = IG_APPPASS_HASH_ITERATIONS;
	p->parallelism = IG_APPPASS_HASH_PARALLELISM;
}

bool
ig_apppass_hash_params_ok(const struct ig_apppass_hash_params *p)
{
	return p->iterations >= 1 && p->iterations <= IG_APPPASS_HASH_ITERATIONS_MAX &&
	    p->parallelism >= 1 && p->parallelism <= IG_APPPASS_HASH_PARALLELISM_MAX &&
	    p->memory_kib >= HASH_MEMORY_PER_LANE_MIN_KIB * p->parallelism &&
	    p->memory_kib <= IG_APPPASS_HASH_MEMORY_MAX_KIB;
}

/* Reads a decimal without sign or leading zero, up to UINT32_MAX, then
 * expects the byte end. Advances *s. Returns 0 or IG_EINVAL. */
static int
hash_u32(const char **s, char end, uint32_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	size_t n = 0;
	while (p[n] >= '0' && p[n] <= '9') {
		v = v * 10 + (uint64_t)(p[n] - '0');
		if (++n > 10 || v > UINT32_MAX)
			return IG_EINVAL;
	}
	if (n == 0 || (n > 1 && p[0] == '0') || p[n] != end)
		return IG_EINVAL;
	*out = (uint32_t)v;
	*s = p + n + 1;
	return 0;
}

/* Counts base64 symbols (no padding) up to end; returns the count, or 0
 * when another byte comes first. */
static size_t
hash_b64_run(const char *s, char end)
{
	size_t n = 0;
	for (; s[n] != end; n++) {
		char ch = s[n];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
			return 0;
	}
	/* A length of 1 mod 4 encodes no whole byte. */
	return n % 4 == 1 ? 0 : n;
}

int
ig_apppass_hash_params_of(const char *phc, struct ig_apppass_hash_params *out)
{
	static const char prefix[] = "$argon2id$v=19$m=";
	struct ig_apppass_hash_params p;
	if (phc == NULL || strnlen(phc, IG_APPPASS_PHC_MAX + 1) > IG_APPPASS_PHC_MAX ||
	    strncmp(phc, prefix, sizeof(prefix) - 1) != 0)
		return IG_EINVAL;
	const char *s = phc + sizeof(prefix) - 1;
	if (hash_u32(&s, ',', &p.memory_kib) != 0 || strncmp(s, "t=", 2) != 0)
		return IG_EINVAL;
	s += 2;
	if (hash_u32(&s, ',', &p.iterations) != 0 || strncmp(s, "p=", 2) != 0)
		return IG_EINVAL;
	s += 2;
	if (hash_u32(&s, '$', &p.parallelism) != 0)
		return IG_EINVAL;
	size_t salt = hash_b64_run(s, '$');
	if (salt < HASH_SALT_B64_MIN)
		return IG_EINVAL;
	size_t out_len = hash_b64_run(s + salt + 1, '\0');
	if (out_len < HASH_OUT_B64_MIN || !ig_apppass_hash_params_ok(&p))
		return IG_EINVAL;
	*out = p;
	return 0;
}

int
ig_apppass_hash(const struct ig_apppass_hash_params *p, const char *secret, size_t len,
    char *phc, size_t phcsz)
{
	uint8_t salt[IG_APPPASS_HASH_SALT_LEN];
	if (!ig_apppass_hash_params_ok(p) || phcsz < IG_APPPASS_PHC_MAX + 1 ||
	    argon2_encodedlen(p->iterations, p->memory_kib, p->parallelism, sizeof(salt),
	        IG_APPPASS_HASH_LEN, Argon2_id) > phcsz)
		return IG_EINVAL;
	for (size_t got = 0; got < sizeof(salt);) {
		ssize_t n = getrandom(salt + got, sizeof(salt) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return IG_EIO;
		got += (size_t)n;
	}
	int rc = argon2id_hash_encoded(p->iterations, p->memory_kib, p->parallelism, secret, len,
	    salt, sizeof(salt), IG_APPPASS_HASH_LEN, phc, phcsz);
	explicit_bzero(salt, sizeof(salt));
	if (rc == ARGON2_OK)
		return 0;
	phc[0] = '\0';
	return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? IG_ENOMEM : IG_EINVAL;
}

int
ig_apppass_verify(const char *phc, const char *secret, size_t len, bool *match)
{
	struct ig_apppass_hash_params p;
	*match = false;
	/* The parameters are checked before libargon2 allocates what they ask. */
	if (ig_apppass_hash_params_of(phc, &p) != 0)
		return IG_EINVAL;
	int rc = argon2id_verify(phc, secret, len);
	switch (rc) {
	case ARGON2_OK:
		*match = true;
		return 0;
	case ARGON2_VERIFY_MISMATCH:
		return 0;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
		return IG_ENOMEM;
	default:
		return IG_EINVAL;
	}
}
