/*
 * The limiter's keyed hashes. Key identities are SipHash-2-4-128 values over
 * (kind, material) under a table key derived from the per-process key, so an
 * attacker can neither predict bucket chains nor forge set fingerprints.
 * Password hashes are HMAC-SHA-256 under the per-process key, computed with
 * precomputed inner and outer SHA-256 states (no allocation), truncated to
 * 16 bytes.
 */
#include "policy/rl_internal.h"

#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

/* SipHash-2-4-128 (Aumasson and Bernstein), incremental. */

struct rl_sip {
	uint64_t v0, v1, v2, v3, m;
	unsigned mlen;
	uint64_t total;
};

#define RL_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
/* A macro, not a function: this is the hot loop, also at -O0. */
#define RL_SIPROUND(s) do {                                              \
	(s)->v0 += (s)->v1; (s)->v1 = RL_ROTL((s)->v1, 13);               \
	(s)->v1 ^= (s)->v0; (s)->v0 = RL_ROTL((s)->v0, 32);               \
	(s)->v2 += (s)->v3; (s)->v3 = RL_ROTL((s)->v3, 16);               \
	(s)->v3 ^= (s)->v2;                                               \
	(s)->v0 += (s)->v3; (s)->v3 = RL_ROTL((s)->v3, 21);               \
	(s)->v3 ^= (s)->v0;                                               \
	(s)->v2 += (s)->v1; (s)->v1 = RL_ROTL((s)->v1, 17);               \
	(s)->v1 ^= (s)->v2; (s)->v2 = RL_ROTL((s)->v2, 32);               \
} while (0)

uint64_t
ig_rl_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	    (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static void
rl_sip_init(struct rl_sip *s, const uint8_t key[16])
{
	uint64_t k0 = ig_rl_le64(key), k1 = ig_rl_le64(key + 8);
	s->v0 = k0 ^ 0x736f6d6570736575ull;
	s->v1 = k1 ^ 0x646f72616e646f6dull ^ 0xee; /* 128-bit output */
	s->v2 = k0 ^ 0x6c7967656e657261ull;
	s->v3 = k1 ^ 0x7465646279746573ull;
	s->m = 0;
	s->mlen = 0;
	s->total = 0;
}

static void
rl_sip_update(struct rl_sip *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i = 0;
	s->total += len;
	if (s->mlen == 0) {
		for (; i + 8 <= len; i += 8) {
			uint64_t m = ig_rl_le64(p + i);
			s->v3 ^= m;
			RL_SIPROUND(s);
			RL_SIPROUND(s);
			s->v0 ^= m;
		}
	}
	for (; i < len; i++) {
		s->m |= (uint64_t)p[i] << (8 * s->mlen);
		if (++s->mlen == 8) {
			s->v3 ^= s->m;
			RL_SIPROUND(s);
			RL_SIPROUND(s);
			s->v0 ^= s->m;
			s->m = 0;
			s->mlen = 0;
		}
	}
}

static void
rl_sip_final(struct rl_sip *s, uint64_t out[2])
{
	uint64_t b = (s->total << 56) | s->m;
	s->v3 ^= b;
	RL_SIPROUND(s);
	RL_SIPROUND(s);
	s->v0 ^= b;
	s->v2 ^= 0xee;
	for (int i = 0; i < 4; i++)
		RL_SIPROUND(s);
	out[0] = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
	s->v1 ^= 0xdd;
	for (int i = 0; i < 4; i++)
		RL_SIPROUND(s);
	out[1] = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

void
ig_rl_siphash128(const uint8_t key[16], const void *data, size_t len, uint64_t out[2])
{
	struct rl_sip s;
	rl_sip_init(&s, key);
	rl_sip_update(&s, data, len);
	rl_sip_final(&s, out);
}

void
ig_rl_id(const struct ig_rl *rl, enum rl_kind kind, const struct rl_keys *k,
    bool with_addr, bool with_user, const uint8_t *extra, size_t extralen,
    uint64_t id[2])
{
	struct rl_sip s;
	uint8_t hdr[3] = { (uint8_t)(kind == RL_K_KNOWN ? RL_K_USER : kind), 0, 0 };
	rl_sip_init(&s, rl->tkey);
	if (with_addr) {
		hdr[1] = k->family;
		hdr[2] = k->plen;
	}
	rl_sip_update(&s, hdr, sizeof(hdr));
	if (with_addr)
		rl_sip_update(&s, k->ga, sizeof(k->ga));
	if (with_user)
		rl_sip_update(&s, k->user, k->ulen);
	if (extra != NULL)
		rl_sip_update(&s, extra, extralen);
	rl_sip_final(&s, id);
}

/* HMAC-SHA-256(hash_key, secret) truncated to 16 bytes; wipes temporaries. */
void
ig_rl_secret_hash(const struct ig_rl *rl, const uint8_t *secret, size_t len,
    uint8_t out[IG_RL_SECRET_HASH_LEN])
{
	mbedtls_sha256_context c;
	uint8_t inner[32], full[32];
	mbedtls_sha256_init(&c);
	mbedtls_sha256_clone(&c, &rl->hm_in);
	mbedtls_sha256_update(&c, secret, len);
	mbedtls_sha256_finish(&c, inner);
	mbedtls_sha256_clone(&c, &rl->hm_out);
	mbedtls_sha256_update(&c, inner, sizeof(inner));
	mbedtls_sha256_finish(&c, full);
	memcpy(out, full, 16);
	mbedtls_sha256_free(&c);
	mbedtls_platform_zeroize(inner, sizeof(inner));
	mbedtls_platform_zeroize(full, sizeof(full));
	mbedtls_platform_zeroize(&c, sizeof(c));
}

void
ig_rl_hash_init(struct ig_rl *rl, const uint8_t hash_key[32])
{
	/* HMAC inner and outer states for the password hash. */
	uint8_t pad[64];
	mbedtls_sha256_init(&rl->hm_in);
	mbedtls_sha256_init(&rl->hm_out);
	memset(pad, 0x36, sizeof(pad));
	for (int i = 0; i < 32; i++)
		pad[i] ^= hash_key[i];
	mbedtls_sha256_starts(&rl->hm_in, 0);
	mbedtls_sha256_update(&rl->hm_in, pad, sizeof(pad));
	memset(pad, 0x5c, sizeof(pad));
	for (int i = 0; i < 32; i++)
		pad[i] ^= hash_key[i];
	mbedtls_sha256_starts(&rl->hm_out, 0);
	mbedtls_sha256_update(&rl->hm_out, pad, sizeof(pad));
	mbedtls_platform_zeroize(pad, sizeof(pad));

	/* Table key = HMAC(hash_key, label): independent of the password key. */
	static const char label[] = "imapguard ratelimit table key";
	ig_rl_secret_hash(rl, (const uint8_t *)label, sizeof(label) - 1, rl->tkey);
	ig_rl_secret_hash(rl, (const uint8_t *)label, sizeof(label) - 2, rl->tkey + 16);
}
