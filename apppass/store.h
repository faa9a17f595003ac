/*
 * The app password store: one SQLite database (app_passwords.store) shared
 * by `imapguard apppass` (which adds and revokes) and the running proxy
 * (which reads snapshots and records each password's last use).
 *
 * Why SQLite rather than a file replaced atomically: two processes write
 * it (the command line adds and revokes, the proxy records last uses), and
 * a replaced file would lose whichever write came second. SQLite's WAL
 * journal lets the proxy read while the command line writes, every change
 * is one transaction (synchronous=FULL: a committed change survives a
 * crash, an interrupted one leaves the old state), and the proxy learns of
 * a change from PRAGMA data_version without reading the table again.
 *
 * The file is created with mode 0600 and refused when others may access
 * it (mode & 0007). Schema version: PRAGMA user_version (2; a store of
 * version 1 is upgraded in place when opened, and a newer one refused).
 * Times are seconds since the epoch (UTC), 0 meaning never/none.
 *
 * The same file keeps the TOTP enrolments (the second factor that
 * `imapguard apppass add` asks for before it issues a password to an
 * enrolled user): the secret in clear, since the verifier needs it, and the
 * last step accepted. They are no concern of the proxy's: its snapshots do
 * not read them, and an enrolment change is not a change for
 * ig_apppass_store_changed().
 *
 * Contract for the proxy (issue 17):
 *  - open once with ig_apppass_store_open() (no IG_APS_CREATE needed: the
 *    command line creates the file; IG_ENOTFOUND until it exists), on a
 *    thread where blocking is allowed (libuv's pool): every function here
 *    may wait up to the busy timeout for a writer, and none is for a loop;
 *  - load a snapshot (ig_apppass_store_snapshot()), then every 500 ms ask
 *    ig_apppass_store_changed() (one PRAGMA, and one row read when another
 *    connection committed something) and load a new snapshot when it says
 *    so; on an error keep the last good snapshot and log it;
 *  - at a login: ig_apppass_snapshot_find(snap, user, id), check expires
 *    and networks, then ig_apppass_verify() (apppass/hash.h) on the pool;
 *    record the use with ig_apppass_store_record_use() (it does not count
 *    as a change for ig_apppass_store_changed());
 *  - after a swap, end the sessions whose id ig_apppass_snapshot_find() no
 *    longer finds for their user (revoked, or a row that became invalid);
 *    ig_apppass_snapshot_is_revoked() says which were revoked, for the log.
 *
 * A struct ig_apppass_store is one SQLite connection: use it from one
 * thread at a time. A snapshot is immutable and reference counted: any
 * thread may read it and drop its reference.
 */
#ifndef IG_APPPASS_STORE_H
#define IG_APPPASS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apppass/password.h"
#include "util/sasl.h"

struct ig_apppass_store;
struct ig_apppass_snapshot;

/* ig_apppass_store_open() flags. */
enum {
	IG_APS_CREATE = 1u << 0, /* create the file (mode 0600) when missing */
};

#define IG_APPPASS_LABEL_MAX 64          /* bytes of a label */
#define IG_APPPASS_NETWORKS_MAX 64       /* CIDR blocks in a networks list */
/* Longest networks text: IG_APPPASS_NETWORKS_MAX blocks of at most 43
 * bytes ("xxxx:...:xxxx/128") and their commas. */
#define IG_APPPASS_NETWORKS_TEXT_MAX (IG_APPPASS_NETWORKS_MAX * 44)
#define IG_APPPASS_ADDRESS_MAX 45        /* INET6_ADDRSTRLEN - 1 */
#define IG_APPPASS_ERR_MAX 256           /* ig_apppass_store_error() text */
#define IG_APPPASS_TOTP_SECRET_MAX 64    /* bytes of a TOTP secret (totp.h's
                                            IG_TOTP_SECRET_MAX) */

/* One row, as ig_apppass_store_list() shows it. */
struct ig_apppass_entry {
	char id[IG_APPPASS_ID_LEN + 1];
	char user[IG_USER_MAX + 1];      /* normalised as the backend sees it */
	char label[IG_APPPASS_LABEL_MAX + 1];
	char networks[IG_APPPASS_NETWORKS_TEXT_MAX + 1]; /* "a/n,b/m" (CIDR
	                                    blocks, comma-separated); "" = from
	                                    anywhere */
	int64_t created;                 /* seconds */
	int64_t expires;                 /* seconds; 0 = never */
	int64_t revoked;                 /* seconds; 0 = not revoked */
	int64_t last_used;               /* seconds; 0 = never used */
	char last_address[IG_APPPASS_ADDRESS_MAX + 1]; /* "" = never used */
};

/* A new row for ig_apppass_store_add(). */
struct ig_apppass_new {
	const char *user;                /* normalised (ig_user_normalize()):
	                                    1..IG_USER_MAX bytes, no control
	                                    bytes */
	const char *label;               /* 1..IG_APPPASS_LABEL_MAX bytes, no
	                                    control bytes */
	const char *networks;            /* "" or canonical CIDR blocks
	                                    separated by ',' (the caller checks
	                                    them; see below) */
	const char *phc;                 /* ig_apppass_hash() of the secret */
	int64_t created;                 /* now */
	int64_t expires;                 /* 0 = never, else > created */
};

/*
 * Opens the store at path: mode read-write (SQLite), WAL journal,
 * synchronous=FULL, busy timeout busy_ms (how long a call waits for a
 * writer before failing), and the schema (created in an empty file). With
 * IG_APS_CREATE a missing file is created with mode 0600 (as the caller's
 * user: `imapguard apppass` becomes the proxy's user first).
 *
 * Returns 0 with *out (close with ig_apppass_store_close()), or:
 * IG_ENOTFOUND (no file, without IG_APS_CREATE), IG_EINVAL (not a regular
 * file, accessible to others, not an imapguard store, or written by a
 * newer imapguard), IG_EIO (SQLite could not open or read it), IG_ENOMEM.
 * On failure err (errsz bytes, may be NULL) says why in one line.
 */
int ig_apppass_store_open(const char *path, unsigned flags, unsigned busy_ms,
    struct ig_apppass_store **out, char *err, size_t errsz);

/* Closes the connection (NULL is allowed). Snapshots stay valid. */
void ig_apppass_store_close(struct ig_apppass_store *st);

/* The last failure's text (SQLite's message or ours); "" when none. */
const char *ig_apppass_store_error(const struct ig_apppass_store *st);

/*
 * Adds a row with id *id (in, from ig_apppass_generate()), in one
 * transaction. When the id is taken, draws others until one is free and
 * writes it back into id (the printed password must use it; the hash
 * covers the secret alone, so it stays valid). Checks the fields (lengths,
 * control bytes, the PHC string's form, networks' characters and count).
 * Returns 0, IG_EINVAL (a field; the error text names it), IG_EIO (SQLite;
 * nothing was written), IG_ENOMEM.
 */
int ig_apppass_store_add(struct ig_apppass_store *st, const struct ig_apppass_new *n,
    char id[static IG_APPPASS_ID_LEN + 1]);

/* Called by ig_apppass_store_list() once per row; a non-zero return stops
 * the listing and becomes its return value. */
typedef int (*ig_apppass_list_fn)(const struct ig_apppass_entry *e, void *arg);

/*
 * Calls fn for every row (user NULL) or every row of user, revoked ones
 * included, ordered by user, then creation time, then id. *count (may be
 * NULL) gets the number of rows passed to fn. Returns 0, fn's non-zero
 * return, or IG_EIO (a row that cannot be read: corrupt store).
 */
int ig_apppass_store_list(struct ig_apppass_store *st, const char *user, ig_apppass_list_fn fn,
    void *arg, size_t *count);

/*
 * Revokes id at time now, in one transaction. Returns 0 with *revoked_at
 * (may be NULL) the revocation time and *already (may be NULL) whether it
 * was revoked before this call: then nothing changes and *revoked_at is
 * the earlier time. IG_ENOTFOUND: no such id. IG_EINVAL: now <= 0. IG_EIO:
 * SQLite.
 */
int ig_apppass_store_revoke(struct ig_apppass_store *st, const char *id, int64_t now,
    int64_t *revoked_at, bool *already);

/*
 * Revokes every unrevoked row of user at time now, in one transaction:
 * all of them or none. Returns 0 with *count (may be NULL) the rows
 * revoked now (0 when all were revoked already), IG_ENOTFOUND when user has
 * no row at all, IG_EIO.
 */
int ig_apppass_store_revoke_user(struct ig_apppass_store *st, const char *user, int64_t now,
    size_t *count);

/*
 * Records a successful login with id: its time and the client's address
 * (text, at most IG_APPPASS_ADDRESS_MAX bytes). Not a change for
 * ig_apppass_store_changed(). Returns 0, IG_ENOTFOUND, IG_EINVAL (address),
 * IG_EIO.
 */
int ig_apppass_store_record_use(struct ig_apppass_store *st, const char *id, int64_t when,
    const char *address);

/* ---- TOTP enrolments ---------------------------------------------------- */

/*
 * Enrols user (normalised, as for ig_apppass_store_add()) with the TOTP
 * secret[0..len) (IG_TOTP_SECRET_MIN..IG_TOTP_SECRET_MAX bytes, apppass/
 * totp.h) at time now, no step used yet. The caller wipes its secret.
 * An enrolled user is refused with IG_EEXIST unless replace is true: then
 * the new secret replaces the old one (whose codes stop working) and the
 * used step starts again from none. Returns 0, IG_EEXIST, IG_EINVAL (user,
 * length, now <= 0), IG_EIO.
 */
int ig_apppass_store_totp_enroll(struct ig_apppass_store *st, const char *user,
    const uint8_t *secret, size_t len, int64_t now, bool replace);

/*
 * Copies user's TOTP secret into secret (the caller wipes it once used,
 * mbedtls_platform_zeroize()) and its length into *len, and into
 * *last_step (may be NULL) the last step accepted (0 when none): pass it
 * to ig_totp_verify() as last_used_step. Returns 0, IG_ENOTFOUND (not
 * enrolled; *len is 0), IG_EIO (SQLite, or a row edited into a secret of
 * the wrong length).
 */
int ig_apppass_store_totp_get(struct ig_apppass_store *st, const char *user,
    uint8_t secret[static IG_APPPASS_TOTP_SECRET_MAX], size_t *len, uint64_t *last_step);

/*
 * Records step (from ig_totp_verify(); >= 1) as user's last accepted one,
 * only if it is greater than the one recorded: the check and the write are
 * one UPDATE, so of two commands that verified the same code at the same
 * time exactly one gets 0. Call it after the code verified and before
 * acting on it. Returns 0 (recorded: go on), IG_EEXIST (this step or a
 * later one was accepted already: the code is a replay, refuse it),
 * IG_ENOTFOUND (not enrolled, e.g. removed meanwhile), IG_EINVAL (step),
 * IG_EIO.
 */
int ig_apppass_store_totp_accept(struct ig_apppass_store *st, const char *user, uint64_t step);

/* Removes user's enrolment. Returns 0, IG_ENOTFOUND (not enrolled), IG_EIO. */
int ig_apppass_store_totp_remove(struct ig_apppass_store *st, const char *user);

/* An enrolment as ig_apppass_store_totp_list() shows it (no secret). */
struct ig_apppass_totp_entry {
	char user[IG_USER_MAX + 1];      /* normalised */
	int64_t created;                 /* seconds */
	uint64_t last_step;              /* last accepted TOTP step; 0 = none */
};

/* Called once per enrolment; a non-zero return stops the listing and
 * becomes its return value. */
typedef int (*ig_apppass_totp_list_fn)(const struct ig_apppass_totp_entry *e, void *arg);

/*
 * Calls fn for every enrolment (user NULL, ordered by user) or user's.
 * *count (may be NULL) gets the number passed to fn. Returns 0, fn's
 * non-zero return, or IG_EIO.
 */
int ig_apppass_store_totp_list(struct ig_apppass_store *st, const char *user,
    ig_apppass_totp_list_fn fn, void *arg, size_t *count);

/*
 * PRAGMA integrity_check over the whole file. Returns 0 when SQLite finds
 * it sound, IG_EIO otherwise (the error text has SQLite's first finding).
 */
int ig_apppass_store_check(struct ig_apppass_store *st);

/*
 * Loads a snapshot: every unrevoked row that is well formed (user, id,
 * hash, expires, networks), and the ids of the revoked ones, read in one
 * read transaction. A row that is not well formed (edited by hand: a bad
 * id, an unreadable hash or one asking for more than apppass/hash.h
 * allows, bad networks text) is left out, its id counted among the
 * revoked ones when it has one, and counted by
 * ig_apppass_snapshot_invalid(). Returns 0 with *out (one reference), or
 * IG_EIO (unreadable or corrupt store: keep the last good snapshot),
 * IG_ENOMEM.
 */
int ig_apppass_store_snapshot(struct ig_apppass_store *st, struct ig_apppass_snapshot **out);

/*
 * Whether the store changed since snap was loaded (from any store
 * object): an added, revoked or otherwise edited row, by any connection
 * (SQL triggers count every change but a recorded use; TOTP enrolments are
 * not rows of app_passwords and never count). Costs one PRAGMA
 * data_version when no other connection committed since the last call,
 * plus one row read otherwise. Returns 1 (changed: load a new snapshot),
 * 0 (same), or IG_EIO.
 */
int ig_apppass_store_changed(struct ig_apppass_store *st,
    const struct ig_apppass_snapshot *snap);

/* ---- snapshots ---------------------------------------------------------- */

/* One usable row of a snapshot. Strings live as long as the snapshot. */
struct ig_apppass_snap_entry {
	char id[IG_APPPASS_ID_LEN + 1];
	const char *user;                /* normalised */
	const char *phc;                 /* for ig_apppass_verify() */
	const char *networks;            /* "" = anywhere, else CIDR blocks
	                                    separated by ','; parse them with
	                                    policy/cidr.h, and refuse the login
	                                    when one does not parse */
	int64_t expires;                 /* seconds; 0 = never. The caller
	                                    compares with its clock: expiry is
	                                    not a change of the store */
};

/*
 * The usable row of user with id, or NULL (no such id, revoked, invalid,
 * or another user's). Valid while the caller holds its reference. O(log n).
 */
const struct ig_apppass_snap_entry *ig_apppass_snapshot_find(
    const struct ig_apppass_snapshot *snap, const char *user, const char *id);

/* The i-th usable row (i < ig_apppass_snapshot_count()), in id order. */
const struct ig_apppass_snap_entry *ig_apppass_snapshot_at(
    const struct ig_apppass_snapshot *snap, size_t i);

/* True when id is any user's usable row or a revoked id in snap. O(log n). */
bool ig_apppass_snapshot_knows(const struct ig_apppass_snapshot *snap, const char *id);

/* True when id was revoked (or its row is invalid) in snap. O(log n). */
bool ig_apppass_snapshot_is_revoked(const struct ig_apppass_snapshot *snap, const char *id);

/* Usable rows, revoked ids, rows left out as invalid. */
size_t ig_apppass_snapshot_count(const struct ig_apppass_snapshot *snap);
size_t ig_apppass_snapshot_revoked(const struct ig_apppass_snapshot *snap);
size_t ig_apppass_snapshot_invalid(const struct ig_apppass_snapshot *snap);

/* The store's change counter when snap was read (for logs). */
uint64_t ig_apppass_snapshot_generation(const struct ig_apppass_snapshot *snap);

/* Takes one more reference (atomic; any thread); returns snap. */
struct ig_apppass_snapshot *ig_apppass_snapshot_ref(struct ig_apppass_snapshot *snap);

/* Drops one reference (any thread); the last frees it. NULL is allowed. */
void ig_apppass_snapshot_unref(struct ig_apppass_snapshot *snap);

#endif /* IG_APPPASS_STORE_H */
