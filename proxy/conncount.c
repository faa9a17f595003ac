/*
 * Live connections per address group: an open-addressing hash table with
 * linear probing and backward-shift deletion (no tombstones, so probe
 * sequences never degrade however often groups come and go). The load is
 * kept at most one half; the table doubles when it would exceed that and
 * never holds more entries than live connections.
 */
#include "proxy/conncount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/cidr.h"
#include "util/err.h"

#define CC_MIN_SLOTS 64u
#define CC_MAX_SLOTS (1u << 26) /* 64 Mi slots: far above any fd limit */

struct cc_slot {
	uint64_t hash;                   /* of key, under the table key */
	uint32_t count;                  /* 0: empty slot */
	struct ig_cc_key key;
};

struct ig_cc {
	struct cc_slot *slots;
	size_t cap;                      /* power of two */
	size_t n;                        /* used slots */
	uint64_t k0, k1;                 /* SipHash key */
};

/* ---- SipHash-2-4 (Aumasson, Bernstein) over a short key ---------------- */

#define CC_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define CC_SIPROUND \
	do { \
		v0 += v1; v1 = CC_ROTL(v1, 13); v1 ^= v0; v0 = CC_ROTL(v0, 32); \
		v2 += v3; v3 = CC_ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = CC_ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = CC_ROTL(v1, 17); v1 ^= v2; v2 = CC_ROTL(v2, 32); \
	} while (0)

static uint64_t
cc_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
cc_siphash(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
	size_t full = len - len % 8;
	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = cc_le64(in + i);
		v3 ^= m;
		CC_SIPROUND;
		CC_SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = full; i < len; i++)
		b |= (uint64_t)in[i] << (8 * (i - full));
	v3 ^= b;
	CC_SIPROUND;
	CC_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	CC_SIPROUND;
	CC_SIPROUND;
	CC_SIPROUND;
	CC_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- keys -------------------------------------------------------------- */

bool
ig_cc_key_from_addr(const struct sockaddr *sa, uint8_t ipv6_prefix, struct ig_cc_key *out)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(out->addr, &s4->sin_addr, 4);
		out->family = AF_INET;
		out->plen = 32;
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(out->addr, s6->sin6_addr.s6_addr + 12, 4);
		out->family = AF_INET;
		out->plen = 32;
		return true;
	}
	memcpy(out->addr, s6->sin6_addr.s6_addr, 16);
	out->family = AF_INET6;
	out->plen = ipv6_prefix > 128 ? 128 : ipv6_prefix;
	ig_cidr_mask(out->addr, 16, out->plen);
	return true;
}

void
ig_cc_key_format(const struct ig_cc_key *k, char *out, size_t outsz)
{
	char a[INET6_ADDRSTRLEN] = "?";
	if (k->family == AF_INET) {
		inet_ntop(AF_INET, k->addr, a, sizeof(a));
		snprintf(out, outsz, "%s", a);
	} else if (k->family == AF_INET6) {
		inet_ntop(AF_INET6, k->addr, a, sizeof(a));
		if (k->plen == 128)
			snprintf(out, outsz, "%s", a);
		else
			snprintf(out, outsz, "%s/%u", a, k->plen);
	} else {
		snprintf(out, outsz, "-");
	}
}

unsigned
ig_cc_limit(const struct ig_limits *lim, const struct sockaddr *sa)
{
	for (size_t i = 0; i < lim->nraised; i++)
		if (ig_netset_contains(&lim->raised[i].nets, sa))
			return lim->raised[i].max_conn_per_address;
	return lim->max_conn_per_address;
}

/* ---- the table --------------------------------------------------------- */

static uint64_t
cc_hash(const struct ig_cc *cc, const struct ig_cc_key *k)
{
	uint8_t b[2 + 16];
	b[0] = k->family;
	b[1] = k->plen;
	memcpy(b + 2, k->addr, 16);
	return cc_siphash(cc->k0, cc->k1, b, sizeof(b));
}

static bool
cc_key_eq(const struct ig_cc_key *a, const struct ig_cc_key *b)
{
	return a->family == b->family && a->plen == b->plen &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* The slot holding k, or the empty slot where it would go. */
static size_t
cc_find(const struct ig_cc *cc, const struct ig_cc_key *k, uint64_t h)
{
	size_t mask = cc->cap - 1;
	size_t i = (size_t)h & mask;
	while (cc->slots[i].count != 0 &&
	    !(cc->slots[i].hash == h && cc_key_eq(&cc->slots[i].key, k)))
		i = (i + 1) & mask;
	return i;
}

int
ig_cc_new(const uint8_t hash_key[16], struct ig_cc **out)
{
	*out = NULL;
	struct ig_cc *cc = calloc(1, sizeof(*cc));
	if (cc == NULL)
		return IG_ENOMEM;
	cc->slots = calloc(CC_MIN_SLOTS, sizeof(*cc->slots));
	if (cc->slots == NULL) {
		free(cc);
		return IG_ENOMEM;
	}
	cc->cap = CC_MIN_SLOTS;
	cc->k0 = cc_le64(hash_key);
	cc->k1 = cc_le64(hash_key + 8);
	*out = cc;
	return 0;
}

void
ig_cc_free(struct ig_cc *cc)
{
	if (cc == NULL)
		return;
	free(cc->slots);
	free(cc);
}

static int
cc_grow(struct ig_cc *cc)
{
	if (cc->cap >= CC_MAX_SLOTS)
		return IG_ENOMEM;
	size_t ncap = cc->cap * 2;
	struct cc_slot *ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return IG_ENOMEM;
	struct cc_slot *old = cc->slots;
	size_t ocap = cc->cap;
	cc->slots = ns;
	cc->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i].count == 0)
			continue;
		size_t j = cc_find(cc, &old[i].key, old[i].hash);
		cc->slots[j] = old[i];
	}
	free(old);
	return 0;
}

int
ig_cc_add(struct ig_cc *cc, const struct ig_cc_key *k, unsigned *count)
{
	uint64_t h = cc_hash(cc, k);
	size_t i = cc_find(cc, k, h);
	if (cc->slots[i].count != 0) {
		if (cc->slots[i].count < UINT32_MAX)
			cc->slots[i].count++;
		*count = cc->slots[i].count;
		return 0;
	}
	if ((cc->n + 1) * 2 > cc->cap) {
		int rc = cc_grow(cc);
		if (rc != 0)
			return rc;
		i = cc_find(cc, k, h);
	}
	cc->slots[i].hash = h;
	cc->slots[i].key = *k;
	cc->slots[i].count = 1;
	cc->n++;
	*count = 1;
	return 0;
}

bool
ig_cc_remove(struct ig_cc *cc, const struct ig_cc_key *k)
{
	uint64_t h = cc_hash(cc, k);
	size_t i = cc_find(cc, k, h);
	if (cc->slots[i].count == 0)
		return false;
	if (--cc->slots[i].count > 0)
		return true;
	/* Backward shift: pull later members of the cluster into the hole
	   unless their home slot lies cyclically in (hole, their slot]. */
	size_t mask = cc->cap - 1;
	size_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (cc->slots[j].count == 0)
			break;
		size_t home = (size_t)cc->slots[j].hash & mask;
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		cc->slots[hole] = cc->slots[j];
		hole = j;
	}
	memset(&cc->slots[hole], 0, sizeof(cc->slots[hole]));
	cc->n--;
	return true;
}

unsigned
ig_cc_get(const struct ig_cc *cc, const struct ig_cc_key *k)
{
	return cc->slots[cc_find(cc, k, cc_hash(cc, k))].count;
}

size_t
ig_cc_entries(const struct ig_cc *cc)
{
	return cc->n;
}

size_t
ig_cc_capacity(const struct ig_cc *cc)
{
	return cc->cap;
}
