/*
 * The brute-force and password-spraying limiter (see ratelimit.h for what is
 * counted and why).
 *
 * Layout: one array of max_keys fixed-size entries (struct rl_entry, 288
 * bytes on LP64) allocated by ig_rl_new(), a power-of-two array of 32-bit
 * bucket heads chained through the entries, and four doubly linked lists
 * through the same entries: FREE, FAIL (failure keys without an active
 * block, most recently used first), BLOCKED (failure keys that carry a
 * block) and KNOWN (users' known addresses). Eviction takes an expired
 * BLOCKED tail, else the FAIL tail, else the BLOCKED tail; KNOWN entries are
 * evicted only by other KNOWN entries once max_known are tracked.
 *
 * Key identities are SipHash-2-4-128 values over (kind, material) under a
 * table key derived from the per-process key, so an attacker can neither
 * predict bucket chains nor forge set fingerprints. Password hashes are
 * HMAC-SHA-256 under the per-process key, computed with precomputed inner
 * and outer SHA-256 states (no allocation), truncated to 16 bytes.
 */
#include "policy/ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "policy/cidr.h"
#include "util/err.h"

#define RL_NIL UINT32_MAX
#define RL_USER_TEXT 48             /* stored user name bytes, NUL included */
#define RL_MAX_KEYS ((size_t)1 << 26)
#define RL_THRESHOLD_MAX 65535u     /* counters are 16-bit, saturating */
#define RL_BLOCK_HORIZON_MS (400ull * 24 * 3600 * 1000) /* load sanity */
#define RL_PINS 8

enum rl_kind {
	RL_K_NONE,
	RL_K_ADDR,                  /* failures and distinct users per group */
	RL_K_USER,                  /* failures from unknown groups, distinct
	                               unknown groups, recent password hashes */
	RL_K_USERADDR,              /* failures per (user, group) */
	RL_K_PASS,                  /* distinct users per password hash */
	RL_K_KNOWN,                 /* a user's known groups */
	RL_K_COUNT
};

enum rl_list {
	RL_FREE,
	RL_FAIL,
	RL_BLOCKED,
	RL_KNOWN,
	RL_LIST_COUNT
};

enum rl_lim {
	RL_L_NONE,
	RL_L_ADDRESS,
	RL_L_SPRAY,
	RL_L_USER,
	RL_L_USER_ADDRESS,
	RL_L_CIRCUIT,
	RL_L_PWSPRAY,
	RL_L_COUNT
};

static const char *const rl_lim_names[RL_L_COUNT] = {
	[RL_L_NONE] = NULL,
	[RL_L_ADDRESS] = "address",
	[RL_L_SPRAY] = "spray-address",
	[RL_L_USER] = "user",
	[RL_L_USER_ADDRESS] = "user-address",
	[RL_L_CIRCUIT] = "user-circuit",
	[RL_L_PWSPRAY] = "password-spray",
};

enum {
	RL_EF_USER_CUT = 1u << 0,   /* user[] holds a cut name */
};

/* Distinct members with their last-seen time (wall clock seconds). */
struct rl_set {
	uint32_t fp[IG_RL_SET_SLOTS];
	uint32_t t[IG_RL_SET_SLOTS];
};

struct rl_entry {
	uint64_t id[2];             /* keyed hash of (kind, material) */
	uint64_t block_until;       /* ms; 0 = no block */
	uint64_t win_start;         /* ms; start of the current window */
	uint32_t hnext;             /* bucket chain */
	uint32_t lprev, lnext;      /* list links */
	uint16_t cur, prev;         /* failures in the current and previous
	                               window (saturating) */
	uint32_t block_count;       /* count when the block started */
	uint32_t block_thr;         /* its threshold */
	uint8_t kind;               /* enum rl_kind */
	uint8_t list;               /* enum rl_list */
	uint8_t limit;              /* enum rl_lim of the block */
	uint8_t nset;               /* members in u.set / u.user.addrs */
	uint8_t n2;                 /* u.user.pw or u.known members */
	uint8_t family;             /* AF_INET, AF_INET6, 0 = unknown */
	uint8_t plen;               /* group prefix length */
	uint8_t flags;              /* RL_EF_* */
	uint8_t addr[16];           /* address group; PASS: password hash */
	char user[RL_USER_TEXT];    /* user name (cut), NUL-terminated */
	union {
		struct rl_set set;  /* ADDR, PASS: users */
		struct {
			struct rl_set addrs;    /* unknown groups (circuit) */
			uint32_t pw[IG_RL_PW_SLOTS];   /* failed-password fps */
			uint32_t pw_t[IG_RL_PW_SLOTS]; /* seconds */
		} user;
		struct {
			uint64_t fp[IG_RL_KNOWN_SLOTS]; /* group fingerprints */
			uint64_t t[IG_RL_KNOWN_SLOTS];  /* last success, ms */
		} known;
	} u;
};

struct rl_listhead {
	uint32_t head, tail;
	size_t n;
};

struct ig_rl {
	struct ig_rl_conf conf;         /* exempt and raised are owned copies */
	struct rl_entry *e;             /* cap entries */
	size_t cap;
	uint32_t *bucket;               /* mask + 1 heads */
	uint32_t mask;
	struct rl_listhead list[RL_LIST_COUNT];
	uint8_t tkey[32];               /* table key: SipHash key (first 16
	                                   bytes; the rest is reserved) */
	mbedtls_sha256_context hm_in;   /* HMAC state after key ^ ipad */
	mbedtls_sha256_context hm_out;  /* HMAC state after key ^ opad */
	uint32_t pin[RL_PINS];          /* entries in use by this operation */
	unsigned npin;
	uint64_t changes;               /* mutations worth saving (see
	                                   ig_rl_changes()) */
};

/* The keys of one attempt. */
struct rl_keys {
	uint8_t family, plen;
	uint8_t ga[16];                 /* address group */
	uint64_t addr_id[2];
	bool has_user;
	const char *user;
	size_t ulen;
	uint64_t user_id[2], ua_id[2], known_id[2];
	bool has_pw;
	uint8_t pw[16];                 /* HMAC-SHA-256(secret), truncated */
	uint64_t pass_id[2];
};

/* ---- SipHash-2-4-128 (Aumasson and Bernstein), incremental ---------- */

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

static uint64_t
rl_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	    (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static void
rl_sip_init(struct rl_sip *s, const uint8_t key[16])
{
	uint64_t k0 = rl_le64(key), k1 = rl_le64(key + 8);
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
			uint64_t m = rl_le64(p + i);
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

/*
 * id of (kind, group?, user?, bytes?) under the table key. A user's KNOWN
 * entry shares the USER id (find() tells them apart by kind).
 */
static void
rl_id(const struct ig_rl *rl, enum rl_kind kind, const struct rl_keys *k,
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

/* ---- small helpers ---------------------------------------------------- */

static uint64_t
rl_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t
rl_secs(uint64_t ms)
{
	uint64_t s = ms / 1000;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* The address group of sa; family 0 when there is no usable address. */
static void
rl_group(const struct ig_rl_conf *c, const struct sockaddr *sa,
    struct rl_keys *k)
{
	memset(k->ga, 0, sizeof(k->ga));
	k->family = 0;
	k->plen = 0;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(k->ga, &s4->sin_addr, 4);
		k->family = AF_INET;
		k->plen = c->ipv4_prefix;
		ig_cidr_mask(k->ga, 4, k->plen);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(k->ga, s6->sin6_addr.s6_addr + 12, 4);
			k->family = AF_INET;
			k->plen = c->ipv4_prefix;
			ig_cidr_mask(k->ga, 4, k->plen);
		} else {
			memcpy(k->ga, s6->sin6_addr.s6_addr, 16);
			k->family = AF_INET6;
			k->plen = c->ipv6_prefix;
			ig_cidr_mask(k->ga, 16, k->plen);
		}
	}
}

/* HMAC-SHA-256(hash_key, secret) truncated to 16 bytes; wipes temporaries. */
static void
rl_pw_hash(const struct ig_rl *rl, const uint8_t *secret, size_t len,
    uint8_t out[16])
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
ig_rl_secret_hash(const struct ig_rl *rl, const uint8_t *secret, size_t len,
    uint8_t out[IG_RL_SECRET_HASH_LEN])
{
	rl_pw_hash(rl, secret, len, out);
}

static void
rl_keys(const struct ig_rl *rl, const struct ig_rl_attempt *a, bool want_pw,
    struct rl_keys *k)
{
	memset(k, 0, sizeof(*k));
	rl_group(&rl->conf, a->addr, k);
	rl_id(rl, RL_K_ADDR, k, true, false, NULL, 0, k->addr_id);
	k->has_user = a->user != NULL && a->user[0] != '\0';
	if (!k->has_user)
		return;
	k->user = a->user;
	k->ulen = strlen(a->user);
	rl_id(rl, RL_K_USER, k, false, true, NULL, 0, k->user_id);
	rl_id(rl, RL_K_USERADDR, k, true, true, NULL, 0, k->ua_id);
	k->known_id[0] = k->user_id[0];
	k->known_id[1] = k->user_id[1];
	if (want_pw && (a->secret_hash != NULL || a->secret != NULL)) {
		k->has_pw = true;
		if (a->secret_hash != NULL)
			memcpy(k->pw, a->secret_hash, sizeof(k->pw));
		else
			rl_pw_hash(rl, a->secret, a->secret_len, k->pw);
		rl_id(rl, RL_K_PASS, k, false, false, k->pw, sizeof(k->pw),
		    k->pass_id);
	}
}

static void
rl_keys_wipe(struct rl_keys *k)
{
	mbedtls_platform_zeroize(k, sizeof(*k));
}

/* Set fingerprints: independent of the bucket index (id[0]). */
static uint32_t
rl_fp32(const uint64_t id[2])
{
	return (uint32_t)(id[1] >> 32);
}

/* ---- lists and table -------------------------------------------------- */

static void
rl_list_unlink(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	struct rl_listhead *l = &rl->list[e->list];
	if (e->lprev != RL_NIL)
		rl->e[e->lprev].lnext = e->lnext;
	else
		l->head = e->lnext;
	if (e->lnext != RL_NIL)
		rl->e[e->lnext].lprev = e->lprev;
	else
		l->tail = e->lprev;
	e->lprev = e->lnext = RL_NIL;
	l->n--;
}

static void
rl_list_push(struct ig_rl *rl, uint32_t i, enum rl_list which)
{
	struct rl_entry *e = &rl->e[i];
	struct rl_listhead *l = &rl->list[which];
	e->list = (uint8_t)which;
	e->lprev = RL_NIL;
	e->lnext = l->head;
	if (l->head != RL_NIL)
		rl->e[l->head].lprev = i;
	else
		l->tail = i;
	l->head = i;
	l->n++;
}

/* Moves entry i to the head of the list its state belongs to. */
static void
rl_touch(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	enum rl_list want = e->kind == RL_K_KNOWN ? RL_KNOWN :
	    e->block_until != 0 ? RL_BLOCKED : RL_FAIL;
	rl_list_unlink(rl, i);
	rl_list_push(rl, i, want);
}

static uint32_t
rl_find(const struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2])
{
	for (uint32_t i = rl->bucket[id[0] & rl->mask]; i != RL_NIL;
	    i = rl->e[i].hnext) {
		const struct rl_entry *e = &rl->e[i];
		if (e->id[0] == id[0] && e->id[1] == id[1] && e->kind == kind)
			return i;
	}
	return RL_NIL;
}

static void
rl_remove(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	uint32_t *pp = &rl->bucket[e->id[0] & rl->mask];
	while (*pp != i)
		pp = &rl->e[*pp].hnext;
	*pp = e->hnext;
	rl_list_unlink(rl, i);
	memset(e, 0, sizeof(*e));
	e->hnext = e->lprev = e->lnext = RL_NIL;
	rl_list_push(rl, i, RL_FREE);
}

static bool
rl_pinned(const struct ig_rl *rl, uint32_t i)
{
	for (unsigned p = 0; p < rl->npin; p++)
		if (rl->pin[p] == i)
			return true;
	return false;
}

/* The least recently used unpinned entry of a list, or RL_NIL. */
static uint32_t
rl_lru(const struct ig_rl *rl, enum rl_list which)
{
	uint32_t i = rl->list[which].tail;
	while (i != RL_NIL && rl_pinned(rl, i))
		i = rl->e[i].lprev;
	return i;
}

/* A free entry, evicting if needed; RL_NIL only when everything is pinned. */
static uint32_t
rl_alloc(struct ig_rl *rl, bool known_class, uint64_t now)
{
	uint32_t v;
	if (known_class && rl->list[RL_KNOWN].n >= rl->conf.max_known &&
	    (v = rl_lru(rl, RL_KNOWN)) != RL_NIL)
		rl_remove(rl, v);
	if (rl->list[RL_FREE].head != RL_NIL) {
		v = rl->list[RL_FREE].head;
		rl_list_unlink(rl, v);
		return v;
	}
	v = rl_lru(rl, RL_BLOCKED);
	if (v == RL_NIL || rl->e[v].block_until > now)
		v = rl_lru(rl, RL_FAIL);
	if (v == RL_NIL)
		v = rl_lru(rl, RL_BLOCKED);
	if (v == RL_NIL)
		v = rl_lru(rl, RL_KNOWN); /* only after max_known shrank */
	if (v == RL_NIL)
		return RL_NIL;
	rl_remove(rl, v);
	rl_list_unlink(rl, v);
	return v;
}

static void
rl_pin(struct ig_rl *rl, uint32_t i)
{
	if (i != RL_NIL && rl->npin < RL_PINS)
		rl->pin[rl->npin++] = i;
}

/* Clears a block that has run out; true when a block is still active. */
static bool
rl_block_active(struct ig_rl *rl, uint32_t i, uint64_t now)
{
	struct rl_entry *e = &rl->e[i];
	if (e->block_until == 0)
		return false;
	if (e->block_until > now)
		return true;
	e->block_until = 0;
	e->limit = RL_L_NONE;
	e->block_count = e->block_thr = 0;
	rl_touch(rl, i);
	return false;
}

/* Finds or creates (and touches) the entry; RL_NIL if none can be had. */
static uint32_t
rl_get(struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2],
    const struct rl_keys *k, uint64_t now)
{
	uint32_t i = rl_find(rl, kind, id);
	if (i != RL_NIL) {
		rl_block_active(rl, i, now);
		rl_touch(rl, i);
		rl_pin(rl, i);
		return i;
	}
	i = rl_alloc(rl, kind == RL_K_KNOWN, now);
	if (i == RL_NIL)
		return RL_NIL;
	struct rl_entry *e = &rl->e[i];
	memset(e, 0, sizeof(*e));
	e->id[0] = id[0];
	e->id[1] = id[1];
	e->kind = (uint8_t)kind;
	if (kind == RL_K_ADDR || kind == RL_K_USERADDR) {
		e->family = k->family;
		e->plen = k->plen;
		memcpy(e->addr, k->ga, sizeof(e->addr));
	} else if (kind == RL_K_PASS) {
		memcpy(e->addr, k->pw, sizeof(e->addr));
	}
	if (kind == RL_K_USER || kind == RL_K_USERADDR || kind == RL_K_KNOWN) {
		size_t n = k->ulen;
		if (n >= sizeof(e->user)) {
			n = sizeof(e->user) - 1;
			e->flags |= RL_EF_USER_CUT;
		}
		memcpy(e->user, k->user, n);
	}
	e->hnext = rl->bucket[id[0] & rl->mask];
	rl->bucket[id[0] & rl->mask] = i;
	rl_list_push(rl, i, kind == RL_K_KNOWN ? RL_KNOWN : RL_FAIL);
	rl_pin(rl, i);
	return i;
}

/* ---- counters and sets ------------------------------------------------ */

/* Sliding-window estimate of the failures in the last window_ms. */
static unsigned
rl_ctr_value(const struct rl_entry *e, uint64_t now, unsigned window)
{
	if (window == 0)
		return e->cur;
	uint64_t w = window;
	uint64_t el = now > e->win_start ? now - e->win_start : 0;
	if (el >= 2 * w)
		return 0;
	if (el >= w)
		return (unsigned)((uint64_t)e->cur * (2 * w - el) / w);
	return e->cur + (unsigned)((uint64_t)e->prev * (w - el) / w);
}

static void
rl_ctr_add(struct rl_entry *e, uint64_t now, unsigned window)
{
	uint64_t w = window;
	uint64_t el = now > e->win_start ? now - e->win_start : 0;
	if (e->win_start == 0 || w == 0 || el >= 2 * w) {
		e->cur = e->prev = 0;
		e->win_start = now;
	} else if (el >= w) {
		e->prev = e->cur;
		e->cur = 0;
		e->win_start += w;
	}
	if (e->cur < UINT16_MAX)
		e->cur++;
}

static void
rl_ctr_clear(struct rl_entry *e)
{
	e->cur = e->prev = 0;
	e->win_start = 0;
}

static void
rl_set_purge(struct rl_set *s, uint8_t *n, uint64_t now, unsigned window)
{
	unsigned j = 0;
	for (unsigned i = 0; i < *n; i++) {
		if ((uint64_t)s->t[i] * 1000 + window > now) {
			s->fp[j] = s->fp[i];
			s->t[j] = s->t[i];
			j++;
		}
	}
	*n = (uint8_t)j;
}

/*
 * Adds fp (k-minimum-values: when full, keep the smallest fingerprints) and
 * returns the distinct count in the window: exact below IG_RL_SET_SLOTS,
 * estimated from the largest kept fingerprint at and above it.
 */
static unsigned
rl_set_add(struct rl_set *s, uint8_t *n, uint32_t fp, uint64_t now,
    unsigned window)
{
	rl_set_purge(s, n, now, window);
	uint32_t t = rl_secs(now);
	unsigned i, max = 0;
	for (i = 0; i < *n; i++) {
		if (s->fp[i] == fp) {
			s->t[i] = t;
			break;
		}
		if (s->fp[i] > s->fp[max])
			max = i;
	}
	if (i == *n) {
		if (*n < IG_RL_SET_SLOTS) {
			s->fp[*n] = fp;
			s->t[*n] = t;
			(*n)++;
		} else if (fp < s->fp[max]) {
			s->fp[max] = fp;
			s->t[max] = t;
		}
	}
	if (*n < IG_RL_SET_SLOTS)
		return *n;
	uint32_t top = 0;
	for (i = 0; i < *n; i++)
		if (s->fp[i] > top)
			top = s->fp[i];
	uint64_t est = ((uint64_t)(IG_RL_SET_SLOTS - 1) << 32) / ((uint64_t)top + 1);
	if (est < IG_RL_SET_SLOTS)
		est = IG_RL_SET_SLOTS;
	return est > UINT_MAX ? UINT_MAX : (unsigned)est;
}

/* Records a failed password for a user; true when it is a recent repeat. */
static bool
rl_pw_repeat(struct rl_entry *u, uint32_t fp, uint64_t now, unsigned window)
{
	uint32_t t = rl_secs(now);
	for (unsigned i = 0; i < u->n2; i++) {
		bool alive = (uint64_t)u->u.user.pw_t[i] * 1000 + window > now;
		if (u->u.user.pw[i] == fp) {
			u->u.user.pw_t[i] = t;
			return alive;
		}
	}
	/* First in, first out: the oldest distinct password leaves. */
	if (u->n2 == IG_RL_PW_SLOTS) {
		memmove(u->u.user.pw, u->u.user.pw + 1,
		    sizeof(u->u.user.pw[0]) * (IG_RL_PW_SLOTS - 1));
		memmove(u->u.user.pw_t, u->u.user.pw_t + 1,
		    sizeof(u->u.user.pw_t[0]) * (IG_RL_PW_SLOTS - 1));
		u->n2--;
	}
	u->u.user.pw[u->n2] = fp;
	u->u.user.pw_t[u->n2] = t;
	u->n2++;
	return false;
}

/*
 * How far a known address's last success must move before the change is
 * worth saving: a sixteenth of known_ttl_ms, at most an hour. Every other
 * success at a known address changes nothing that a crash could lose.
 */
static uint64_t
rl_known_refresh(const struct ig_rl_conf *c)
{
	uint64_t r = c->known_ttl_ms / 16;
	return r < 3600u * 1000u ? r : 3600u * 1000u;
}

static bool
rl_is_known(const struct ig_rl *rl, const struct rl_keys *k, uint64_t now)
{
	if (!k->has_user || k->family == 0)
		return false;
	uint32_t i = rl_find(rl, RL_K_KNOWN, k->known_id);
	if (i == RL_NIL)
		return false;
	const struct rl_entry *e = &rl->e[i];
	for (unsigned s = 0; s < e->n2 && s < IG_RL_KNOWN_SLOTS; s++)
		if (e->u.known.fp[s] == k->addr_id[1] &&
		    rl_add_sat(e->u.known.t[s], rl->conf.known_ttl_ms) > now)
			return true;
	return false;
}

/* ---- blocks and verdicts ---------------------------------------------- */

/* Starts a block on entry i unless one is active; true when it started. */
static bool
rl_block(struct ig_rl *rl, uint32_t i, enum rl_lim lim, unsigned count,
    unsigned thr, unsigned block_ms, uint64_t now)
{
	struct rl_entry *e = &rl->e[i];
	if (rl_block_active(rl, i, now) || block_ms == 0)
		return false;
	e->block_until = now + block_ms;
	e->limit = (uint8_t)lim;
	e->block_count = count;
	e->block_thr = thr;
	rl_touch(rl, i);
	return true;
}

static void
rl_fill(const struct rl_entry *e, struct ig_rl_verdict *v)
{
	v->refuse = true;
	v->limit = rl_lim_names[e->limit];
	v->until_ms = e->block_until;
	v->count = e->block_count;
	v->threshold = e->block_thr;
}

/* The block that applies to this attempt, in a fixed order; true if any. */
static bool
rl_eval(struct ig_rl *rl, const struct rl_keys *k, bool known, uint64_t now,
    struct ig_rl_verdict *v)
{
	uint32_t i = rl_find(rl, RL_K_ADDR, k->addr_id);
	if (i != RL_NIL && rl_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (!k->has_user)
		return false;
	i = rl_find(rl, RL_K_USERADDR, k->ua_id);
	if (i != RL_NIL && rl_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (known)
		return false;
	i = rl_find(rl, RL_K_USER, k->user_id);
	if (i != RL_NIL && rl_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (k->has_pw) {
		i = rl_find(rl, RL_K_PASS, k->pass_id);
		if (i != RL_NIL && rl_block_active(rl, i, now)) {
			rl_fill(&rl->e[i], v);
			return true;
		}
	}
	return false;
}

static const struct ig_rl_raise *
rl_raised(const struct ig_rl *rl, const struct sockaddr *sa)
{
	for (size_t i = 0; i < rl->conf.nraised; i++)
		if (ig_netset_contains(&rl->conf.raised[i].nets, sa))
			return &rl->conf.raised[i];
	return NULL;
}

static bool
rl_exempt(const struct ig_rl *rl, const struct sockaddr *sa)
{
	return sa != NULL && rl->conf.exempt.n > 0 &&
	    ig_netset_contains(&rl->conf.exempt, sa);
}

static unsigned
rl_tarpit(const struct ig_rl_conf *c, unsigned n)
{
	if (n <= 1 || c->tarpit_base_ms == 0)
		return 0;
	unsigned shift = n - 2 > 20 ? 20 : n - 2;
	uint64_t d = (uint64_t)c->tarpit_base_ms << shift;
	return d > c->tarpit_max_ms ? c->tarpit_max_ms : (unsigned)d;
}

/* ---- public: conf ----------------------------------------------------- */

void
ig_rl_conf_defaults(struct ig_rl_conf *c)
{
	const unsigned min = 60u * 1000u;
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->address = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->spray_address = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->user = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->user_address = (struct ig_rl_limit){ 5, 10 * min, 15 * min };
	c->user_circuit = (struct ig_rl_limit){ 16, 60 * min, 15 * min };
	c->password_spray = (struct ig_rl_limit){ 10, 10 * min, 60 * min };
	c->ipv4_prefix = 32;
	c->ipv6_prefix = 64;
	c->known_ttl_ms = 30ull * 24 * 3600 * 1000;
	c->tarpit_base_ms = 1000;
	c->tarpit_max_ms = 10000;
	c->max_conn_failures = 3;
	c->max_keys = 100000;
	c->max_known = 25000;
}

static bool
rl_limit_ok(const struct ig_rl_limit *l)
{
	return l->threshold <= RL_THRESHOLD_MAX &&
	    (l->threshold == 0 || l->window_ms > 0);
}

static bool
rl_conf_ok(const struct ig_rl_conf *c)
{
	if (!rl_limit_ok(&c->address) || !rl_limit_ok(&c->spray_address) ||
	    !rl_limit_ok(&c->user) || !rl_limit_ok(&c->user_address) ||
	    !rl_limit_ok(&c->user_circuit) || !rl_limit_ok(&c->password_spray))
		return false;
	if (c->ipv4_prefix > 32 || c->ipv6_prefix > 128)
		return false;
	if (c->max_keys < 16 || c->max_keys > RL_MAX_KEYS ||
	    c->max_known >= c->max_keys)
		return false;
	if ((c->exempt.n > 0 && c->exempt.v == NULL) ||
	    (c->nraised > 0 && c->raised == NULL))
		return false;
	for (size_t i = 0; i < c->nraised; i++)
		if (c->raised[i].address > RL_THRESHOLD_MAX ||
		    c->raised[i].spray > RL_THRESHOLD_MAX ||
		    (c->raised[i].nets.n > 0 && c->raised[i].nets.v == NULL))
			return false;
	return true;
}

static void
rl_conf_release(struct ig_rl_conf *c)
{
	free(c->exempt.v);
	for (size_t i = 0; i < c->nraised; i++)
		free(c->raised[i].nets.v);
	free((void *)c->raised);
	memset(c, 0, sizeof(*c));
}

static int
rl_netset_dup(struct ig_netset *dst, const struct ig_netset *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*src->v));
	if (dst->v == NULL)
		return IG_ENOMEM;
	memcpy(dst->v, src->v, src->n * sizeof(*src->v));
	dst->n = src->n;
	return 0;
}

/* Deep copy: exempt and raised become owned by dst. */
static int
rl_conf_copy(struct ig_rl_conf *dst, const struct ig_rl_conf *src)
{
	*dst = *src;
	dst->raised = NULL;
	dst->nraised = 0;
	if (rl_netset_dup(&dst->exempt, &src->exempt) != 0)
		goto fail;
	if (src->nraised > 0) {
		struct ig_rl_raise *r = calloc(src->nraised, sizeof(*r));
		if (r == NULL)
			goto fail;
		dst->raised = r;
		for (size_t i = 0; i < src->nraised; i++) {
			r[i] = src->raised[i];
			r[i].nets.v = NULL;
			r[i].nets.n = 0;
			dst->nraised = i + 1;
			if (rl_netset_dup(&r[i].nets, &src->raised[i].nets) != 0)
				goto fail;
		}
	}
	return 0;
fail:
	rl_conf_release(dst);
	return IG_ENOMEM;
}

/* ---- public: lifecycle ------------------------------------------------ */

static void
rl_reset(struct ig_rl *rl)
{
	memset(rl->e, 0, rl->cap * sizeof(*rl->e));
	for (size_t b = 0; b <= rl->mask; b++)
		rl->bucket[b] = RL_NIL;
	for (int l = 0; l < RL_LIST_COUNT; l++)
		rl->list[l] = (struct rl_listhead){ RL_NIL, RL_NIL, 0 };
	for (size_t i = rl->cap; i-- > 0;) {
		rl->e[i].hnext = rl->e[i].lprev = rl->e[i].lnext = RL_NIL;
		rl_list_push(rl, (uint32_t)i, RL_FREE);
	}
}

int
ig_rl_new(const struct ig_rl_conf *conf, const uint8_t hash_key[32],
    struct ig_rl **out)
{
	*out = NULL;
	if (conf == NULL || hash_key == NULL || !rl_conf_ok(conf))
		return IG_EINVAL;
	struct ig_rl *rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return IG_ENOMEM;
	if (rl_conf_copy(&rl->conf, conf) != 0) {
		free(rl);
		return IG_ENOMEM;
	}
	size_t nb = 16;
	while (nb < conf->max_keys)
		nb <<= 1;
	rl->cap = conf->max_keys;
	rl->mask = (uint32_t)(nb - 1);
	rl->e = calloc(rl->cap, sizeof(*rl->e));
	rl->bucket = calloc(nb, sizeof(*rl->bucket));
	if (rl->e == NULL || rl->bucket == NULL) {
		ig_rl_free(rl);
		return IG_ENOMEM;
	}
	rl_reset(rl);

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
	rl_pw_hash(rl, (const uint8_t *)label, sizeof(label) - 1, rl->tkey);
	rl_pw_hash(rl, (const uint8_t *)label, sizeof(label) - 2, rl->tkey + 16);
	*out = rl;
	return 0;
}

void
ig_rl_free(struct ig_rl *rl)
{
	if (rl == NULL)
		return;
	rl_conf_release(&rl->conf);
	free(rl->e);
	free(rl->bucket);
	mbedtls_sha256_free(&rl->hm_in);
	mbedtls_sha256_free(&rl->hm_out);
	mbedtls_platform_zeroize(rl, sizeof(*rl));
	free(rl);
}

int
ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf)
{
	struct ig_rl_conf c;
	if (conf == NULL || !rl_conf_ok(conf))
		return IG_EINVAL;
	if (rl_conf_copy(&c, conf) != 0)
		return IG_ENOMEM;
	c.max_keys = rl->cap;
	if (c.max_known >= c.max_keys)
		c.max_known = c.max_keys - 1;
	rl_conf_release(&rl->conf);
	rl->conf = c;
	return 0;
}

unsigned
ig_rl_max_conn_failures(const struct ig_rl *rl)
{
	return rl->conf.max_conn_failures;
}

size_t
ig_rl_count(const struct ig_rl *rl)
{
	return rl->cap - rl->list[RL_FREE].n;
}

uint64_t
ig_rl_changes(const struct ig_rl *rl)
{
	return rl->changes;
}

size_t
ig_rl_entry_size(void)
{
	/* Buckets are the next power of two: at most two heads per key. */
	return sizeof(struct rl_entry) + 2 * sizeof(uint32_t);
}

/* ---- public: attempts ------------------------------------------------- */

void
ig_rl_check(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (!rl->conf.enabled || rl_exempt(rl, a->addr))
		return;
	struct rl_keys k;
	rl_keys(rl, a, true, &k);
	bool known = rl_is_known(rl, &k, a->now_ms);
	v->known_address = known;
	if (rl_eval(rl, &k, known, a->now_ms, v))
		v->delay_ms = rl->conf.tarpit_max_ms;
	rl_keys_wipe(&k);
}

void
ig_rl_failure(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v)
{
	const struct ig_rl_conf *c = &rl->conf;
	memset(v, 0, sizeof(*v));
	if (!c->enabled || rl_exempt(rl, a->addr))
		return;
	uint64_t now = a->now_ms;
	struct rl_keys k;
	rl_keys(rl, a, true, &k);
	rl->npin = 0;
	rl->changes++; /* counters at least */
	bool known = rl_is_known(rl, &k, now);
	v->known_address = known;

	const struct ig_rl_raise *r = rl_raised(rl, a->addr);
	unsigned thr_addr = r != NULL && r->address ? r->address : c->address.threshold;
	unsigned thr_spray = r != NULL && r->spray ? r->spray : c->spray_address.threshold;
	enum rl_lim started = RL_L_NONE;
	unsigned n_addr = 0, n_user = 0, n_ua = 0;

	/* A recent repeat of the same wrong password counts once. */
	bool repeat = false;
	uint32_t ue = RL_NIL;
	if (k.has_user) {
		ue = rl_get(rl, RL_K_USER, k.user_id, &k, now);
		if (ue != RL_NIL && k.has_pw)
			repeat = rl_pw_repeat(&rl->e[ue], (uint32_t)rl_le64(k.pw + 8),
			    now, c->user.window_ms);
	}

	uint32_t ae = rl_get(rl, RL_K_ADDR, k.addr_id, &k, now);
	if (ae != RL_NIL) {
		struct rl_entry *e = &rl->e[ae];
		if (!repeat)
			rl_ctr_add(e, now, c->address.window_ms);
		n_addr = rl_ctr_value(e, now, c->address.window_ms);
		if (thr_addr != 0 && n_addr >= thr_addr &&
		    rl_block(rl, ae, RL_L_ADDRESS, n_addr, thr_addr, c->address.block_ms, now))
			started = RL_L_ADDRESS;
		if (k.has_user) {
			unsigned d = rl_set_add(&e->u.set, &e->nset, rl_fp32(k.user_id),
			    now, c->spray_address.window_ms);
			if (thr_spray != 0 && d >= thr_spray &&
			    rl_block(rl, ae, RL_L_SPRAY, d, thr_spray,
			    c->spray_address.block_ms, now))
				started = RL_L_SPRAY;
		}
	}

	if (k.has_user) {
		uint32_t ua = rl_get(rl, RL_K_USERADDR, k.ua_id, &k, now);
		if (ua != RL_NIL) {
			struct rl_entry *e = &rl->e[ua];
			if (!repeat)
				rl_ctr_add(e, now, c->user_address.window_ms);
			n_ua = rl_ctr_value(e, now, c->user_address.window_ms);
			unsigned t = c->user_address.threshold;
			if (t != 0 && n_ua >= t &&
			    rl_block(rl, ua, RL_L_USER_ADDRESS, n_ua, t,
			    c->user_address.block_ms, now))
				started = RL_L_USER_ADDRESS;
		}
	}

	if (ue != RL_NIL && !known) {
		struct rl_entry *e = &rl->e[ue];
		if (!repeat)
			rl_ctr_add(e, now, c->user.window_ms);
		n_user = rl_ctr_value(e, now, c->user.window_ms);
		unsigned t = c->user.threshold;
		if (t != 0 && n_user >= t &&
		    rl_block(rl, ue, RL_L_USER, n_user, t, c->user.block_ms, now))
			started = RL_L_USER;
		if (k.family != 0) {
			unsigned d = rl_set_add(&e->u.user.addrs, &e->nset,
			    rl_fp32(k.addr_id), now, c->user_circuit.window_ms);
			t = c->user_circuit.threshold;
			if (t != 0 && d >= t &&
			    rl_block(rl, ue, RL_L_CIRCUIT, d, t,
			    c->user_circuit.block_ms, now))
				started = RL_L_CIRCUIT;
		}
	}

	if (k.has_pw && k.has_user) {
		uint32_t pe = rl_get(rl, RL_K_PASS, k.pass_id, &k, now);
		if (pe != RL_NIL) {
			struct rl_entry *e = &rl->e[pe];
			unsigned d = rl_set_add(&e->u.set, &e->nset, rl_fp32(k.user_id),
			    now, c->password_spray.window_ms);
			unsigned t = c->password_spray.threshold;
			if (t != 0 && d >= t &&
			    rl_block(rl, pe, RL_L_PWSPRAY, d, t,
			    c->password_spray.block_ms, now))
				started = RL_L_PWSPRAY;
		}
	}

	/* Tarpit from the largest relevant counter. */
	unsigned n = n_ua, thr = c->user_address.threshold;
	if (r == NULL && n_addr > n) {
		n = n_addr;
		thr = thr_addr;
	}
	if (!known && n_user > n) {
		n = n_user;
		thr = c->user.threshold;
	}
	v->delay_ms = rl_tarpit(c, n);
	if (rl_eval(rl, &k, known, now, v)) {
		v->started = started != RL_L_NONE && v->limit == rl_lim_names[started];
	} else {
		v->count = n;
		v->threshold = thr;
	}
	rl->npin = 0;
	rl_keys_wipe(&k);
}

void
ig_rl_success(struct ig_rl *rl, const struct ig_rl_attempt *a)
{
	if (!rl->conf.enabled)
		return;
	struct rl_keys k;
	rl_keys(rl, a, false, &k);
	uint64_t now = a->now_ms;
	bool changed = false;
	rl->npin = 0;
	if (k.has_user && k.family != 0 && rl->conf.max_known > 0) {
		uint32_t i = rl_get(rl, RL_K_KNOWN, k.known_id, &k, now);
		if (i != RL_NIL) {
			struct rl_entry *e = &rl->e[i];
			unsigned s, oldest = 0;
			for (s = 0; s < e->n2; s++) {
				if (e->u.known.fp[s] == k.addr_id[1])
					break;
				if (e->u.known.t[s] < e->u.known.t[oldest])
					oldest = s;
			}
			if (s == e->n2) {
				s = e->n2 < IG_RL_KNOWN_SLOTS ? e->n2++ : oldest;
				changed = true; /* a new known address */
			} else if (now > e->u.known.t[s] &&
			    now - e->u.known.t[s] >= rl_known_refresh(&rl->conf)) {
				changed = true;
			}
			e->u.known.fp[s] = k.addr_id[1];
			e->u.known.t[s] = now;
		}
	}
	if (k.has_user) {
		uint32_t i = rl_find(rl, RL_K_USERADDR, k.ua_id);
		if (i != RL_NIL) {
			rl_remove(rl, i);
			changed = true; /* forgiven */
		}
	}
	if (changed)
		rl->changes++;
	rl->npin = 0;
	rl_keys_wipe(&k);
}

/* ---- public: operator view -------------------------------------------- */

static void
rl_addr_text(const struct rl_entry *e, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN];
	unsigned full = e->family == AF_INET ? 32 : 128;
	if (e->family == 0 ||
	    inet_ntop(e->family, e->addr, a, sizeof(a)) == NULL) {
		snprintf(buf, sz, "unknown");
		return;
	}
	if (e->plen < full)
		snprintf(buf, sz, "%s/%u", a, (unsigned)e->plen);
	else
		snprintf(buf, sz, "%s", a);
}

static void
rl_key_text(const struct rl_entry *e, char *buf, size_t sz)
{
	char a[64];
	switch ((enum rl_kind)e->kind) {
	case RL_K_ADDR:
		rl_addr_text(e, buf, sz);
		return;
	case RL_K_USERADDR:
		rl_addr_text(e, a, sizeof(a));
		snprintf(buf, sz, "%s %s", e->user, a);
		return;
	case RL_K_USER:
	case RL_K_KNOWN:
		snprintf(buf, sz, "%s", e->user);
		return;
	case RL_K_PASS:
		snprintf(buf, sz, "pw:");
		for (size_t i = 0; i < 8 && 3 + 2 * i + 2 < sz; i++)
			snprintf(buf + 3 + 2 * i, sz - 3 - 2 * i, "%02x", e->addr[i]);
		return;
	case RL_K_NONE:
	case RL_K_COUNT:
		break;
	}
	snprintf(buf, sz, "?");
}

void
ig_rl_foreach_block(const struct ig_rl *rl, uint64_t now_ms,
    ig_rl_block_fn *fn, void *arg)
{
	char text[128];
	for (uint32_t i = rl->list[RL_BLOCKED].head; i != RL_NIL;) {
		const struct rl_entry *e = &rl->e[i];
		uint32_t next = e->lnext;
		if (e->block_until > now_ms && e->limit < RL_L_COUNT &&
		    e->limit != RL_L_NONE) {
			rl_key_text(e, text, sizeof(text));
			fn(arg, rl_lim_names[e->limit], text, e->block_until,
			    e->block_count);
		}
		i = next;
	}
}

int
ig_rl_lift(struct ig_rl *rl, const char *limit, const char *key_text,
    uint64_t now_ms)
{
	char text[128];
	if (limit == NULL || key_text == NULL)
		return IG_ENOTFOUND;
	for (uint32_t i = rl->list[RL_BLOCKED].head; i != RL_NIL;) {
		struct rl_entry *e = &rl->e[i];
		uint32_t next = e->lnext;
		if (e->block_until > now_ms && e->limit != RL_L_NONE &&
		    e->limit < RL_L_COUNT &&
		    strcmp(rl_lim_names[e->limit], limit) == 0) {
			rl_key_text(e, text, sizeof(text));
			if (strcmp(text, key_text) == 0) {
				e->block_until = 0;
				e->limit = RL_L_NONE;
				e->block_count = e->block_thr = 0;
				rl_ctr_clear(e);
				if (e->kind == RL_K_ADDR || e->kind == RL_K_USER ||
				    e->kind == RL_K_PASS)
					e->nset = 0;
				rl_touch(rl, i);
				rl->changes++;
				return 0;
			}
		}
		i = next;
	}
	return IG_ENOTFOUND;
}

/* ---- public: state file ----------------------------------------------- */

/*
 * File: header, nentries raw entries (this build's layout, links zeroed),
 * SHA-256 of everything before it. Host byte order: the file belongs to
 * the host and build that wrote it, and anything else is refused.
 */
#define RL_MAGIC "IGRLSTAT"
#define RL_VERSION 1u
#define RL_HDR_SIZE 72

struct rl_hdr {
	uint32_t version, entry_size, set_slots, known_slots, pw_slots, nentries;
	uint64_t saved_ms;
	uint8_t tkey[32];
};

static void
rl_hdr_encode(const struct rl_hdr *h, uint8_t out[RL_HDR_SIZE])
{
	memcpy(out, RL_MAGIC, 8);
	memcpy(out + 8, &h->version, 4);
	memcpy(out + 12, &h->entry_size, 4);
	memcpy(out + 16, &h->set_slots, 4);
	memcpy(out + 20, &h->known_slots, 4);
	memcpy(out + 24, &h->pw_slots, 4);
	memcpy(out + 28, &h->nentries, 4);
	memcpy(out + 32, &h->saved_ms, 8);
	memcpy(out + 40, h->tkey, 32);
}

static bool
rl_hdr_decode(const uint8_t in[RL_HDR_SIZE], struct rl_hdr *h)
{
	if (memcmp(in, RL_MAGIC, 8) != 0)
		return false;
	memcpy(&h->version, in + 8, 4);
	memcpy(&h->entry_size, in + 12, 4);
	memcpy(&h->set_slots, in + 16, 4);
	memcpy(&h->known_slots, in + 20, 4);
	memcpy(&h->pw_slots, in + 24, 4);
	memcpy(&h->nentries, in + 28, 4);
	memcpy(&h->saved_ms, in + 32, 8);
	memcpy(h->tkey, in + 40, 32);
	return h->version == RL_VERSION &&
	    h->entry_size == sizeof(struct rl_entry) &&
	    h->set_slots == IG_RL_SET_SLOTS &&
	    h->known_slots == IG_RL_KNOWN_SLOTS &&
	    h->pw_slots == IG_RL_PW_SLOTS;
}

static bool
rl_saved_kind(const struct rl_entry *e)
{
	return e->kind != RL_K_PASS; /* password-derived: never saved */
}

/* The entry as saved: links cleared, password hashes dropped. */
static void
rl_save_copy(const struct rl_entry *e, struct rl_entry *o)
{
	*o = *e;
	o->hnext = o->lprev = o->lnext = 0;
	o->list = 0;
	if (o->kind == RL_K_USER) {
		memset(o->u.user.pw, 0, sizeof(o->u.user.pw));
		memset(o->u.user.pw_t, 0, sizeof(o->u.user.pw_t));
		o->n2 = 0;
	}
}

struct ig_rl_snapshot {
	uint8_t *buf;                   /* the whole file: header, entries,
	                                   checksum (ig_rl_snapshot_bytes()) */
	size_t len;
	bool sealed;                    /* the checksum is in place */
};

int
ig_rl_snapshot(const struct ig_rl *rl, uint64_t now_ms,
    struct ig_rl_snapshot **out)
{
	static const enum rl_list order[] = { RL_KNOWN, RL_FAIL, RL_BLOCKED };
	const size_t esz = sizeof(struct rl_entry);
	*out = NULL;
	struct rl_hdr h = { RL_VERSION, (uint32_t)esz, IG_RL_SET_SLOTS,
	    IG_RL_KNOWN_SLOTS, IG_RL_PW_SLOTS, 0, now_ms, { 0 } };
	for (size_t l = 0; l < sizeof(order) / sizeof(order[0]); l++)
		for (uint32_t i = rl->list[order[l]].head; i != RL_NIL; i = rl->e[i].lnext)
			if (rl_saved_kind(&rl->e[i]))
				h.nentries++;
	memcpy(h.tkey, rl->tkey, sizeof(h.tkey));

	struct ig_rl_snapshot *snap = calloc(1, sizeof(*snap));
	if (snap == NULL)
		return IG_ENOMEM;
	snap->len = RL_HDR_SIZE + (size_t)h.nentries * esz + 32;
	snap->buf = malloc(snap->len);
	if (snap->buf == NULL) {
		free(snap);
		mbedtls_platform_zeroize(&h, sizeof(h));
		return IG_ENOMEM;
	}
	rl_hdr_encode(&h, snap->buf);
	mbedtls_platform_zeroize(&h, sizeof(h));
	/* Oldest first, so that loading (which pushes at the head) keeps the
	 * recency order and drops the oldest when the capacity is smaller. */
	uint8_t *p = snap->buf + RL_HDR_SIZE;
	for (size_t l = 0; l < sizeof(order) / sizeof(order[0]); l++) {
		for (uint32_t i = rl->list[order[l]].tail; i != RL_NIL;
		    i = rl->e[i].lprev) {
			struct rl_entry o;
			if (!rl_saved_kind(&rl->e[i]))
				continue;
			rl_save_copy(&rl->e[i], &o);
			memcpy(p, &o, esz);
			p += esz;
		}
	}
	memset(p, 0, 32);
	*out = snap;
	return 0;
}

const uint8_t *
ig_rl_snapshot_bytes(struct ig_rl_snapshot *snap, size_t *len)
{
	if (!snap->sealed) {
		if (mbedtls_sha256(snap->buf, snap->len - 32,
		    snap->buf + snap->len - 32, 0) != 0)
			return NULL;
		snap->sealed = true;
	}
	*len = snap->len;
	return snap->buf;
}

static int
rl_write_all(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0)
			errno = EIO;
		if (w <= 0)
			return IG_EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Makes a rename in path's directory durable; best effort (some file
 * systems refuse fsync on a directory, and the rename is done anyway). */
static void
rl_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
	} else if (slash == path) {
		snprintf(dir, sizeof(dir), "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)fsync(fd);
	close(fd);
}

int
ig_rl_snapshot_write(struct ig_rl_snapshot *snap, const char *path)
{
	char tmp[PATH_MAX];
	size_t len;
	const uint8_t *b = ig_rl_snapshot_bytes(snap, &len);
	if (b == NULL) {
		errno = EIO;
		return IG_EIO;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return IG_EIO;
	}
	/* One fixed temporary name: a save cut short by a crash leaves at
	 * most one stale file, which the next save replaces. Never followed
	 * if something else put a link there. */
	if (unlink(tmp) != 0 && errno != ENOENT)
		return IG_EIO;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return IG_EIO;
	int rc = fchmod(fd, 0600) == 0 ? 0 : IG_EIO;
	if (rc == 0)
		rc = rl_write_all(fd, b, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = IG_EIO;
	if (close(fd) != 0 && rc == 0)
		rc = IG_EIO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = IG_EIO;
	if (rc != 0) {
		int e = errno; /* the reason, for the caller's log */
		unlink(tmp);
		errno = e;
	} else {
		rl_sync_dir(path);
	}
	return rc;
}

void
ig_rl_snapshot_free(struct ig_rl_snapshot *snap)
{
	if (snap == NULL)
		return;
	mbedtls_platform_zeroize(snap->buf, snap->len);
	free(snap->buf);
	free(snap);
}

int
ig_rl_save(const struct ig_rl *rl, const char *path, uint64_t now_ms)
{
	struct ig_rl_snapshot *snap;
	int rc = ig_rl_snapshot(rl, now_ms, &snap);
	if (rc != 0)
		return rc;
	rc = ig_rl_snapshot_write(snap, path);
	ig_rl_snapshot_free(snap);
	return rc;
}

static bool
rl_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* Validates one saved entry; fills the keys its id is recomputed from. */
static bool
rl_entry_valid(const struct ig_rl *rl, const struct rl_entry *e, uint64_t now)
{
	const void *uend = memchr(e->user, '\0', sizeof(e->user));
	size_t ulen = uend == NULL ? 0 : (size_t)((const char *)uend - e->user);
	bool has_addr = e->kind == RL_K_ADDR || e->kind == RL_K_USERADDR;
	bool has_user = e->kind == RL_K_USER || e->kind == RL_K_USERADDR ||
	    e->kind == RL_K_KNOWN;

	if (e->kind != RL_K_ADDR && e->kind != RL_K_USER &&
	    e->kind != RL_K_USERADDR && e->kind != RL_K_KNOWN)
		return false;
	if (uend == NULL || (e->flags & ~RL_EF_USER_CUT) != 0)
		return false;
	if (!rl_zero(e->user + ulen, sizeof(e->user) - ulen))
		return false;
	if (e->hnext != 0 || e->lprev != 0 || e->lnext != 0 || e->list != 0)
		return false;
	if (has_user ? ulen == 0 : (ulen != 0 || e->flags != 0))
		return false;
	if ((e->flags & RL_EF_USER_CUT) && ulen != sizeof(e->user) - 1)
		return false;
	if (has_addr) {
		if (e->family == AF_INET) {
			if (e->plen > 32 || !rl_zero(e->addr + 4, 12))
				return false;
		} else if (e->family == AF_INET6) {
			if (e->plen > 128)
				return false;
		} else if (e->family != 0 || e->plen != 0 ||
		    !rl_zero(e->addr, sizeof(e->addr))) {
			return false;
		}
		uint8_t m[16];
		memcpy(m, e->addr, sizeof(m));
		ig_cidr_mask(m, e->family == AF_INET ? 4 : 16, e->plen);
		if (memcmp(m, e->addr, sizeof(m)) != 0)
			return false;
	} else if (e->family != 0 || e->plen != 0 ||
	    !rl_zero(e->addr, sizeof(e->addr))) {
		return false;
	}

	/* Blocks: a limit that belongs to the kind, within a sane horizon. */
	if (e->block_until == 0) {
		if (e->limit != RL_L_NONE || e->block_count != 0 || e->block_thr != 0)
			return false;
	} else {
		bool ok = false;
		switch ((enum rl_lim)e->limit) {
		case RL_L_ADDRESS:
		case RL_L_SPRAY:
			ok = e->kind == RL_K_ADDR;
			break;
		case RL_L_USER:
		case RL_L_CIRCUIT:
			ok = e->kind == RL_K_USER;
			break;
		case RL_L_USER_ADDRESS:
			ok = e->kind == RL_K_USERADDR;
			break;
		case RL_L_PWSPRAY:
		case RL_L_NONE:
		case RL_L_COUNT:
			ok = false;
			break;
		}
		if (!ok || e->block_until > rl_add_sat(now, RL_BLOCK_HORIZON_MS))
			return false;
	}
	if (e->kind == RL_K_KNOWN) {
		if (e->nset != 0 || e->n2 > IG_RL_KNOWN_SLOTS ||
		    e->cur != 0 || e->prev != 0 || e->win_start != 0)
			return false;
	} else if (e->kind == RL_K_ADDR || e->kind == RL_K_USER) {
		if (e->nset > IG_RL_SET_SLOTS || e->n2 != 0)
			return false;
	} else if (e->nset != 0 || e->n2 != 0) {
		return false;
	}

	/* The identity must be the one this material hashes to (a cut user
	 * name cannot be rehashed: its id is taken as saved). */
	if (!(has_user && (e->flags & RL_EF_USER_CUT))) {
		struct rl_keys k;
		uint64_t id[2];
		memset(&k, 0, sizeof(k));
		k.family = e->family;
		k.plen = e->plen;
		memcpy(k.ga, e->addr, sizeof(k.ga));
		k.user = e->user;
		k.ulen = ulen;
		rl_id(rl, (enum rl_kind)e->kind, &k, has_addr, has_user, NULL, 0, id);
		if (id[0] != e->id[0] || id[1] != e->id[1])
			return false;
	}
	return true;
}

int
ig_rl_load_buf(struct ig_rl *rl, const uint8_t *buf, size_t len,
    uint64_t now_ms)
{
	struct rl_hdr h;
	const size_t esz = sizeof(struct rl_entry);
	if (ig_rl_count(rl) != 0)
		return IG_EINVAL;
	if (buf == NULL || len < RL_HDR_SIZE + 32 || !rl_hdr_decode(buf, &h))
		return IG_EINVAL;
	if ((len - RL_HDR_SIZE - 32) % esz != 0 ||
	    (len - RL_HDR_SIZE - 32) / esz != h.nentries)
		return IG_EINVAL;
	uint8_t digest[32];
	if (mbedtls_sha256(buf, len - 32, digest, 0) != 0 ||
	    memcmp(digest, buf + len - 32, 32) != 0)
		return IG_EINVAL;

	uint8_t old_key[32];
	memcpy(old_key, rl->tkey, sizeof(old_key));
	memcpy(rl->tkey, h.tkey, sizeof(rl->tkey));
	int rc = 0;
	for (uint32_t n = 0; n < h.nentries; n++) {
		struct rl_entry e;
		memcpy(&e, buf + RL_HDR_SIZE + (size_t)n * esz, esz);
		if (!rl_entry_valid(rl, &e, now_ms) ||
		    rl_find(rl, (enum rl_kind)e.kind, e.id) != RL_NIL) {
			rc = IG_EINVAL;
			break;
		}
		rl->npin = 0;
		uint32_t i = rl_alloc(rl, e.kind == RL_K_KNOWN, now_ms);
		if (i == RL_NIL) {
			rc = IG_EINVAL;
			break;
		}
		e.hnext = rl->bucket[e.id[0] & rl->mask];
		rl->bucket[e.id[0] & rl->mask] = i;
		e.lprev = e.lnext = RL_NIL;
		rl->e[i] = e;
		rl_list_push(rl, i, e.kind == RL_K_KNOWN ? RL_KNOWN :
		    e.block_until > now_ms ? RL_BLOCKED : RL_FAIL);
		if (e.block_until != 0 && e.block_until <= now_ms)
			rl_block_active(rl, i, now_ms);
	}
	rl->npin = 0;
	if (rc != 0) {
		rl_reset(rl);
		memcpy(rl->tkey, old_key, sizeof(rl->tkey));
	}
	mbedtls_platform_zeroize(old_key, sizeof(old_key));
	return rc;
}

size_t
ig_rl_state_max_size(const struct ig_rl *rl)
{
	return RL_HDR_SIZE + rl->cap * sizeof(struct rl_entry) + 32;
}

int
ig_rl_load(struct ig_rl *rl, const char *path, uint64_t now_ms)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? IG_ENOTFOUND : IG_EIO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return IG_EIO;
	}
	/* Checked before reading: a file larger than any this limiter could
	 * have written is refused without costing its size in time or memory. */
	if (st.st_size < 0 || (uint64_t)st.st_size > ig_rl_state_max_size(rl)) {
		close(fd);
		return IG_ETOOLONG;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len > 0 ? len : 1);
	if (buf == NULL) {
		close(fd);
		return IG_ENOMEM;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	int rc = got == len ? ig_rl_load_buf(rl, buf, len, now_ms) : IG_EIO;
	mbedtls_platform_zeroize(buf, len);
	free(buf);
	return rc;
}
