/*
 * The brute-force and password-spraying limiter: the only mutable policy
 * state. One limiter per worker loop, updated by the caller (the session)
 * around each login attempt; it does no I/O except ig_rl_save(),
 * ig_rl_snapshot_write() and ig_rl_load(), reads no clock (now_ms is passed
 * in: wall-clock milliseconds, so saved state means the same thing after a
 * restart) and never allocates after ig_rl_new() except in ig_rl_set_conf()
 * (conf copies), ig_rl_snapshot() (the file image) and ig_rl_load() (the
 * file buffer).
 *
 * What is counted, per failed login (the backend said NO):
 *   address         failures per client address (IPv4 /32 and IPv6 /64 by
 *                   default: the "address group")
 *   spray-address   distinct user names failing from one address group
 *   user            failures of one user from addresses not known for it
 *   user-address    failures per (user, address group)
 *   user-circuit    distinct unknown address groups failing for one user
 *   password-spray  distinct users failing with one password (a keyed
 *                   HMAC-SHA-256 of the secret, truncated to 16 bytes; the
 *                   secret itself is never stored)
 * Reaching a threshold blocks the key for that limit's block time.
 * "address" and "spray-address" refuse the address group for every user,
 * "user-address" refuses that user from that group, and the user-level
 * blocks ("user", "user-circuit", "password-spray") refuse only from
 * addresses that are not known for the user: a known address is one where
 * the user logged in successfully within known_ttl_ms. That is the defence
 * against lockout denial of service.
 *
 * A client repeating the same wrong password for the same user (a phone with
 * a stale password) counts once per window: each user keeps the last few
 * failed-password hashes, and a repeat is not counted toward the address,
 * user and user-address counters.
 *
 * Counters are sliding-window estimates (the current fixed window plus the
 * previous one weighted by its share still inside the sliding window): exact
 * for a burst inside one window. Distinct sets are exact up to
 * IG_RL_SET_SLOTS members and estimated above (the k-minimum-values
 * sketch), which only matters for thresholds raised above IG_RL_SET_SLOTS.
 *
 * Memory is fixed at ig_rl_new(): max_keys entries of ig_rl_entry_size()
 * bytes with least-recently-used eviction, O(1) per operation. Known
 * addresses live in their own entries that only a successful login creates,
 * capped at max_known, and failure keys never evict them, so an attacker
 * cycling through millions of keys cannot flush a user's known addresses.
 * Failure keys that carry an active block are evicted only after unblocked
 * ones.
 *
 * Several worker threads: each loop has its own limiter today; the
 * interface below (check / failure / success / blocks / lift / save / load)
 * is what a shared store would implement later.
 */
#ifndef IG_POLICY_RATELIMIT_H
#define IG_POLICY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/cidr_types.h"

#define IG_RL_SET_SLOTS 16    /* exact distinct members per set */
#define IG_RL_KNOWN_SLOTS 4   /* known address groups per user */
#define IG_RL_PW_SLOTS 4      /* recent failed-password hashes per user */

/* One limit: threshold reached within window_ms blocks for block_ms. */
struct ig_rl_limit {
	unsigned threshold;              /* count that blocks; 0 disables */
	unsigned window_ms;              /* counting window (> 0) */
	unsigned block_ms;               /* how long the block lasts */
};

/*
 * Raised per-address limits for networks shared by many users (NAT,
 * webmail). The per-user and per-(user, address) limits still apply there.
 */
struct ig_rl_raise {
	struct ig_netset nets;           /* copied by ig_rl_new/ig_rl_set_conf */
	unsigned address;                /* address threshold; 0 = unchanged */
	unsigned spray;                  /* spray-address threshold; 0 =
	                                    unchanged */
};

struct ig_rl_conf {
	bool enabled;                    /* default true */
	struct ig_rl_limit address;      /* 10 failures / 10 min -> 15 min */
	struct ig_rl_limit spray_address;/* 10 distinct users / 10 min -> 15 min */
	struct ig_rl_limit user;         /* 10 failures from unknown addresses
	                                    / 10 min -> 15 min */
	struct ig_rl_limit user_address; /* 5 failures / 10 min -> 15 min */
	struct ig_rl_limit user_circuit; /* 16 distinct unknown address groups
	                                    / 1 h -> 15 min */
	struct ig_rl_limit password_spray; /* 10 distinct users per password
	                                    / 10 min -> 1 h */
	uint8_t ipv4_prefix;             /* address group, IPv4 (default 32) */
	uint8_t ipv6_prefix;             /* address group, IPv6 (default 64) */
	struct ig_netset exempt;         /* never counted nor refused (default
	                                    empty: loopback is not exempt);
	                                    copied */
	const struct ig_rl_raise *raised;/* first match wins; copied */
	size_t nraised;
	uint64_t known_ttl_ms;           /* a known address expires this long
	                                    after the last success (30 days) */
	unsigned tarpit_base_ms;         /* delay after the 2nd failure (1 s),
	                                    doubling per failure */
	unsigned tarpit_max_ms;          /* delay cap (10 s); also the delay
	                                    for answering a refusal */
	unsigned max_conn_failures;      /* the session disconnects after this
	                                    many failures on one connection (3);
	                                    not enforced here */
	size_t max_keys;                 /* tracked keys in all (100000, >= 16);
	                                    fixed at ig_rl_new() */
	size_t max_known;                /* of which users with known addresses
	                                    (25000, < max_keys); 0 disables
	                                    known addresses */
};

#define IG_RL_SECRET_HASH_LEN 16

/* Fills c with the defaults above (exempt and raised empty). */
void ig_rl_conf_defaults(struct ig_rl_conf *c);

struct ig_rl; /* opaque; one per worker loop; not thread-safe by itself */

/*
 * Creates a limiter with every entry preallocated. hash_key is the
 * per-process random key (32 bytes) for the password HMAC and the table's
 * keyed hashes; it is copied. Returns 0 and *out, IG_EINVAL for a bad conf
 * (a zero window, a prefix out of range, max_keys < 16 or max_known >=
 * max_keys) or IG_ENOMEM.
 */
int ig_rl_new(const struct ig_rl_conf *conf, const uint8_t hash_key[32],
    struct ig_rl **out);

/* Frees rl and everything it owns; NULL is a no-op. */
void ig_rl_free(struct ig_rl *rl);

/*
 * Replaces the configuration and keeps the state (SIGHUP reload). Netsets
 * and the raised list are copied, so conf may be freed afterwards. max_keys
 * cannot change (the old capacity stays until a restart); a changed prefix
 * applies to new keys while the old ones age out. Returns 0, IG_EINVAL
 * (rl unchanged) or IG_ENOMEM (rl unchanged).
 */
int ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf);

/* The conf value the session enforces: failures before disconnecting. */
unsigned ig_rl_max_conn_failures(const struct ig_rl *rl);

struct ig_rl_attempt {
	const char *user;                /* normalised user name; NULL or ""
	                                    counts the address only */
	const struct sockaddr *addr;     /* client address (AF_INET, AF_INET6;
	                                    IPv4-mapped IPv6 counts as IPv4) */
	const uint8_t *secret;           /* the password or SASL secret; NULL
	                                    when there is none (then no
	                                    password checks); only hashed */
	size_t secret_len;
	uint64_t now_ms;                 /* wall clock, milliseconds */
	const uint8_t *secret_hash;      /* or its ig_rl_secret_hash(), taken
	                                    early so the secret itself need not
	                                    be kept (IG_RL_SECRET_HASH_LEN
	                                    bytes); used when not NULL */
};

struct ig_rl_verdict {
	bool refuse;                     /* answer NO [UNAVAILABLE] without
	                                    contacting the backend */
	bool started;                    /* ig_rl_failure(): this failure
	                                    started the block in `limit` */
	const char *limit;               /* refusing limit, stable: "address",
	                                    "spray-address", "user",
	                                    "user-address", "user-circuit",
	                                    "password-spray"; NULL otherwise */
	uint64_t until_ms;               /* block end (wall clock), 0 if none */
	unsigned count;                  /* count that fired; without a block,
	                                    the count that set the delay */
	unsigned threshold;              /* its threshold */
	bool known_address;              /* the address is known for the user */
	unsigned delay_ms;               /* wait this long before answering */
};

/*
 * The limiter's keyed hash of a secret (HMAC-SHA-256 under the limiter's
 * key, truncated), for ig_rl_attempt.secret_hash: a caller that hashes the
 * secret as soon as it reads it can wipe the secret at once. Temporaries are
 * wiped.
 */
void ig_rl_secret_hash(const struct ig_rl *rl, const uint8_t *secret, size_t len,
    uint8_t out[IG_RL_SECRET_HASH_LEN]);

/*
 * Before contacting the backend. Fills *v: refuse with the limit, its end
 * and counts, and for a refusal delay_ms = tarpit_max_ms (refusals are
 * answered slowly too). Updates nothing but lazily expired blocks.
 */
void ig_rl_check(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v);

/*
 * The backend refused the credentials: counts the failure and fills *v with
 * the tarpit delay (0 for the first failure, then tarpit_base_ms doubling up
 * to tarpit_max_ms, from the largest of the relevant counters) and the block
 * that now applies to this (user, address), with started set when this
 * failure started it. The secret is hashed and the temporaries wiped.
 */
void ig_rl_failure(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v);

/*
 * The backend accepted the credentials: remembers the address group as
 * known for the user (the IG_RL_KNOWN_SLOTS most recent) and forgives that
 * (user, address group): its counter and block are dropped. a->secret is
 * ignored.
 */
void ig_rl_success(struct ig_rl *rl, const struct ig_rl_attempt *a);

/*
 * Operator view. fn is called once per active block with the limit name
 * (as in ig_rl_verdict.limit), the key as text ("203.0.113.7",
 * "2001:db8:1:2::/64", "alice", "alice 203.0.113.7", "pw:<16 hex digits>"
 * for a password hash; user names longer than 47 bytes are shown cut), the
 * end and the count that fired. The strings live during the call only.
 */
typedef void ig_rl_block_fn(void *arg, const char *limit,
    const char *key_text, uint64_t until_ms, unsigned count);
void ig_rl_foreach_block(const struct ig_rl *rl, uint64_t now_ms,
    ig_rl_block_fn *fn, void *arg);

/*
 * Lifts the active block shown by ig_rl_foreach_block() as (limit,
 * key_text) and clears that key's counters, so the next failure does not
 * re-block at once. Returns 0 or IG_ENOTFOUND.
 */
int ig_rl_lift(struct ig_rl *rl, const char *limit, const char *key_text,
    uint64_t now_ms);

/*
 * How many changes worth saving the limiter has seen since ig_rl_new(): a
 * counter that only grows, for the caller to save the state when it moved
 * (the limiter does no I/O by itself). Bumped by every counted failure, by
 * a success that adds a known address, moves a known address's last
 * success by more than min(known_ttl_ms / 16, 1 h) or forgives a (user,
 * address) pair, and by a lift. Not by ig_rl_check(), ig_rl_set_conf() or
 * ig_rl_load(), nor by blocks running out: a block's end is saved as a
 * wall-clock time, so an expired one needs no save.
 */
uint64_t ig_rl_changes(const struct ig_rl *rl);

/*
 * Saving in two steps, so that the slow part can leave the event loop:
 * ig_rl_snapshot() copies the state into a file image it allocates (on the
 * limiter's thread; time and memory proportional to the tracked keys, about
 * ig_rl_entry_size() bytes each), and ig_rl_snapshot_write() computes its
 * checksum and writes it (on any thread: it touches only the snapshot and
 * the file system, never the limiter).
 *
 * Password-derived data (password-spray keys and the recent failed-password
 * hashes) is not saved, so the file reveals nothing about passwords; the
 * table key is saved (the file must stay private).
 */
struct ig_rl_snapshot;

/* Returns 0 and *out (free with ig_rl_snapshot_free()), or IG_ENOMEM. */
int ig_rl_snapshot(const struct ig_rl *rl, uint64_t now_ms,
    struct ig_rl_snapshot **out);

/*
 * Writes the snapshot to path atomically: path.tmp (mode 0600, created
 * anew, never through a link), fsync, rename over path, fsync of the
 * directory. Saves to one path must not overlap (the temporary name is
 * fixed, so a crash leaves at most one stale temporary behind, which the
 * next save replaces). Returns 0, or IG_EIO with errno telling why (the
 * temporary is removed).
 */
int ig_rl_snapshot_write(struct ig_rl_snapshot *snap, const char *path);

/*
 * The file image with its checksum (computed on first use), as
 * ig_rl_load_buf() takes it; *len is its size. The bytes live as long as
 * the snapshot. NULL only if hashing failed.
 */
const uint8_t *ig_rl_snapshot_bytes(struct ig_rl_snapshot *snap, size_t *len);

/* Wipes and frees; NULL is a no-op. */
void ig_rl_snapshot_free(struct ig_rl_snapshot *snap);

/*
 * ig_rl_snapshot() and ig_rl_snapshot_write() in one call, on the caller's
 * thread. Returns 0, IG_ENOMEM or IG_EIO.
 */
int ig_rl_save(const struct ig_rl *rl, const char *path, uint64_t now_ms);

/*
 * The largest state file this limiter loads: the header, max_keys entries
 * and the checksum, i.e. any file it could have written itself. A state
 * saved by a limiter with a larger max_keys may exceed it.
 */
size_t ig_rl_state_max_size(const struct ig_rl *rl);

/*
 * Loads a state saved by ig_rl_save() into an empty limiter (IG_EINVAL if
 * it already tracks keys) and adopts the saved table key, so the saved
 * keyed hashes keep their meaning. Every field is validated (magic, layout,
 * checksum, kinds, limits, counts, text); a file from another build layout
 * or a corrupt or truncated one is refused with IG_EINVAL and the limiter
 * stays empty. A file larger than ig_rl_state_max_size() is refused with
 * IG_ETOOLONG before anything is read from it, so its size costs neither
 * time nor memory. Returns 0, IG_ENOTFOUND when the file does not exist,
 * IG_EIO, IG_ENOMEM, IG_ETOOLONG or IG_EINVAL.
 */
int ig_rl_load(struct ig_rl *rl, const char *path, uint64_t now_ms);

/*
 * Same from a buffer (the fuzz target's entry point), without the size
 * limit: keys beyond max_keys are dropped, oldest first.
 */
int ig_rl_load_buf(struct ig_rl *rl, const uint8_t *buf, size_t len,
    uint64_t now_ms);

/* Tracked keys (failure keys and users with known addresses). */
size_t ig_rl_count(const struct ig_rl *rl);

/* Bytes per tracked key: the entry plus its share of the hash buckets. */
size_t ig_rl_entry_size(void);

#endif /* IG_POLICY_RATELIMIT_H */
