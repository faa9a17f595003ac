/*
 * Private to the limiter's files (policy/ratelimit.c, rl_hash.c, rl_table.c,
 * rl_conf.c, rl_state.c): the entry layout, the limiter object and the parts
 * one file offers the others. Outside policy/ only tests/unit/test_rl_table.c
 * includes this (to test the parts alone); the API is policy/ratelimit.h.
 *
 *   rl_hash.c   keyed hashes: SipHash-2-4-128 key identities under the
 *               table key, HMAC-SHA-256 of secrets under the process key
 *   rl_table.c  the fixed table: buckets, the FREE/FAIL/BLOCKED/KNOWN LRU
 *               lists, lookup, eviction, pins, expiry of a block
 *   ratelimit.c the limiter: keys of an attempt, counters, sets, blocks,
 *               verdicts, lifecycle, operator view
 *   rl_conf.c   the configuration: defaults, validation, deep copy
 *   rl_state.c  the state file: snapshot, write, validation and load
 */
#ifndef IG_POLICY_RL_INTERNAL_H
#define IG_POLICY_RL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/sha256.h>

#include "policy/ratelimit.h"

#define RL_NIL UINT32_MAX
#define RL_USER_TEXT 48             /* stored user name bytes, NUL included */
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

/* ---- helpers ----------------------------------------------------------- */

static inline uint64_t
rl_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- rl_hash.c --------------------------------------------------------- */

/* Little-endian 64-bit load. */
uint64_t ig_rl_le64(const uint8_t *p);

/* SipHash-2-4 with 128-bit output of data under key (one shot). */
void ig_rl_siphash128(const uint8_t key[16], const void *data, size_t len, uint64_t out[2]);

/*
 * The identity of a key under the table key: SipHash of (kind, the group
 * when with_addr, the user when with_user, extra). A user's KNOWN entry
 * shares the USER id (lookups tell them apart by kind).
 */
void ig_rl_id(const struct ig_rl *rl, enum rl_kind kind, const struct rl_keys *k,
    bool with_addr, bool with_user, const uint8_t *extra, size_t extralen, uint64_t id[2]);

/*
 * Prepares rl's HMAC states from the process key (32 bytes) and derives the
 * table key from it. Temporaries are wiped.
 */
void ig_rl_hash_init(struct ig_rl *rl, const uint8_t hash_key[32]);

/* ---- rl_conf.c --------------------------------------------------------- */

/* True when c is a configuration the limiter can run (see ig_rl_new()). */
bool ig_rl_conf_ok(const struct ig_rl_conf *c);

/* Deep copy: exempt and raised become owned by dst. Returns 0 or IG_ENOMEM
 * (dst is then empty). */
int ig_rl_conf_copy(struct ig_rl_conf *dst, const struct ig_rl_conf *src);

/* Frees what ig_rl_conf_copy() gave dst and zeroes it. */
void ig_rl_conf_release(struct ig_rl_conf *c);

/* ---- rl_table.c -------------------------------------------------------- */

/* Puts entry i at the head of list which. */
void ig_rl_tab_push(struct ig_rl *rl, uint32_t i, enum rl_list which);

/* Moves entry i to the head of the list its state belongs to. */
void ig_rl_tab_touch(struct ig_rl *rl, uint32_t i);

/* The entry of (kind, id), or RL_NIL. */
uint32_t ig_rl_tab_find(const struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2]);

/* Unhashes and frees entry i (it goes to the FREE list, zeroed). */
void ig_rl_tab_remove(struct ig_rl *rl, uint32_t i);

/*
 * A free entry, unlinked from every list and bucket, evicting if needed: a
 * KNOWN entry for known_class once max_known are tracked, else an expired
 * BLOCKED tail, the FAIL tail, the BLOCKED tail, and only then a KNOWN one.
 * Pinned entries are never taken. RL_NIL only when everything is pinned.
 */
uint32_t ig_rl_tab_alloc(struct ig_rl *rl, bool known_class, uint64_t now);

/* Finds or creates (and touches and pins) the entry of (kind, id) for the
 * attempt keys k; RL_NIL if none can be had. Unpin with rl->npin = 0. */
uint32_t ig_rl_tab_get(struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2],
    const struct rl_keys *k, uint64_t now);

/* Clears a block that has run out; true when a block is still active. */
bool ig_rl_tab_block_active(struct ig_rl *rl, uint32_t i, uint64_t now);

/* Empties the table: every entry free, every bucket empty. */
void ig_rl_tab_reset(struct ig_rl *rl);

#endif /* IG_POLICY_RL_INTERNAL_H */
