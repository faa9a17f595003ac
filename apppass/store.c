/*
 * The app password store over SQLite (see apppass/store.h): opening and the
 * schema, the changes (each one transaction), the listing, and snapshots
 * with their change check.
 */
#include "apppass/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "apppass/hash.h"
#include "apppass/totp.h"
#include "util/err.h"

#define STORE_SCHEMA_VERSION 2
/* Draws of a new id when the first is taken (25 bits each: a store would
 * need millions of rows before two draws in a row collide). */
#define STORE_ID_TRIES 32

_Static_assert(IG_APPPASS_TOTP_SECRET_MAX == IG_TOTP_SECRET_MAX,
    "the store keeps every secret the verifier takes");

/*
 * The schema of version 1, as the first imapguard with a store wrote it: a
 * new store is made with it and then brought up to date by the migrations
 * below, so that a new store and an old one upgraded in place are the same
 * (and every migration runs in every test that creates a store).
 *
 * Every column is typed (STRICT); a row is never deleted by imapguard
 * (revocation sets "revoked"). store_state.generation counts the changes
 * that matter to a snapshot: triggers raise it on every insert, delete and
 * update of a column a snapshot holds, whoever makes it (a hand edit with
 * sqlite3(1) included), and a recorded use (last_used, last_address)
 * leaves it alone.
 */
static const char store_schema_v1[] =
    "CREATE TABLE app_passwords ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " user TEXT NOT NULL,"
    " label TEXT NOT NULL,"
    " hash TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL DEFAULT 0,"
    " networks TEXT NOT NULL DEFAULT '',"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " last_used INTEGER NOT NULL DEFAULT 0,"
    " last_address TEXT NOT NULL DEFAULT ''"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX app_passwords_by_user ON app_passwords (user, created);"
    "CREATE TABLE store_state ("
    " one INTEGER PRIMARY KEY CHECK (one = 1),"
    " generation INTEGER NOT NULL"
    ") STRICT;"
    "INSERT INTO store_state VALUES (1, 0);"
    "CREATE TRIGGER app_passwords_added AFTER INSERT ON app_passwords"
    " BEGIN UPDATE store_state SET generation = generation + 1; END;"
    "CREATE TRIGGER app_passwords_removed AFTER DELETE ON app_passwords"
    " BEGIN UPDATE store_state SET generation = generation + 1; END;"
    "CREATE TRIGGER app_passwords_changed"
    " AFTER UPDATE OF id, user, hash, expires, networks, revoked ON app_passwords"
    " BEGIN UPDATE store_state SET generation = generation + 1; END;"
    "PRAGMA user_version = 1;";

/*
 * The migrations: store_migrations[v - 1] takes a store from version v to
 * v + 1, inside the transaction that checked v, and ends by setting
 * user_version. They only add: an older imapguard refuses the upgraded file
 * ("written by a newer imapguard") rather than misread it.
 *
 * 1 -> 2: TOTP enrolments (the second factor asked before an app password
 * is issued). The secret is kept as it is, not hashed: the verifier needs
 * it to compute the codes. No trigger: an enrolment is not something a
 * snapshot holds, so it does not raise store_state.generation (the proxy's
 * change check reads that one row again after such a commit, and finds no
 * change).
 */
static const char *const store_migrations[STORE_SCHEMA_VERSION - 1] = {
	"CREATE TABLE totp ("
	" user TEXT PRIMARY KEY NOT NULL,"
	" secret BLOB NOT NULL,"
	" created INTEGER NOT NULL,"
	" last_step INTEGER NOT NULL DEFAULT 0"
	") STRICT, WITHOUT ROWID;"
	"PRAGMA user_version = 2;",
};

struct ig_apppass_store {
	sqlite3 *db;
	char err[IG_APPPASS_ERR_MAX];    /* last failure, "" when none */
	bool seen;                       /* dv_seen and gen_seen are set */
	int64_t dv_seen;                 /* PRAGMA data_version at the last
	                                    generation read */
	int64_t gen_seen;                /* store_state.generation then */
};

/* An immutable snapshot: sorted arrays and one block of strings. */
struct ig_apppass_snapshot {
	atomic_uint refs;
	uint64_t generation;
	struct ig_apppass_snap_entry *v; /* by id */
	size_t n;
	char (*revoked)[IG_APPPASS_ID_LEN + 1]; /* sorted */
	size_t nrevoked;
	size_t invalid;
	char *strings;                   /* user, phc, networks of every entry */
};

/* ---- errors ------------------------------------------------------------- */

static void __attribute__((format(printf, 2, 3)))
store_fail(struct ig_apppass_store *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
}

/* Records SQLite's message for what failed; returns the IG_E* code. */
static int
store_sqlerr(struct ig_apppass_store *st, int rc, const char *what)
{
	store_fail(st, "%s: %s", what, sqlite3_errmsg(st->db));
	return (rc & 0xff) == SQLITE_NOMEM ? IG_ENOMEM : IG_EIO;
}

const char *
ig_apppass_store_error(const struct ig_apppass_store *st)
{
	return st->err;
}

/* ---- statements --------------------------------------------------------- */

/* Prepares sql; returns 0 or the IG_E* code (error recorded). */
static int
store_prepare(struct ig_apppass_store *st, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
	if (rc != SQLITE_OK) {
		*out = NULL;
		return store_sqlerr(st, rc, "prepare");
	}
	return 0;
}

/* Runs statements without results (BEGIN, COMMIT, a schema). */
static int
store_exec(struct ig_apppass_store *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(st, rc, what);
}

/* Ends a transaction that failed (nothing it did stays). */
static void
store_rollback(struct ig_apppass_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs a one-row, one-integer query (a pragma, a count). */
static int
store_int(struct ig_apppass_store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = store_prepare(st, sql, &s);
	if (rc != 0)
		return rc;
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_INTEGER) {
		*out = sqlite3_column_int64(s, 0);
		rc = 0;
	} else if (step == SQLITE_ROW) {
		store_fail(st, "%s: not an integer", sql);
		rc = IG_EIO;
	} else {
		rc = store_sqlerr(st, step == SQLITE_DONE ? SQLITE_CORRUPT : step, sql);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Copies column col's text into out (outsz bytes, truncated, "" for NULL). */
static void
store_col_text(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	snprintf(out, outsz, "%s", t != NULL ? (const char *)t : "");
}

/* ---- checks on fields --------------------------------------------------- */

/* 1..max bytes, no control bytes (C0, DEL): shown in a terminal, logged. */
static bool
store_text_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strnlen(s, max + 1) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/*
 * The networks text: "" or blocks separated by ',', each of hex digits,
 * '.' and ':' with one "/prefix"; at most IG_APPPASS_NETWORKS_MAX blocks.
 * Only the shape: the CIDR parse is the caller's (policy/cidr.h).
 */
static bool
store_networks_ok(const char *s)
{
	size_t blocks = 0;
	if (s == NULL || strnlen(s, IG_APPPASS_NETWORKS_TEXT_MAX + 1) > IG_APPPASS_NETWORKS_TEXT_MAX)
		return false;
	if (*s == '\0')
		return true;
	for (const char *p = s;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p), slash = 0;
		if (len == 0 || ++blocks > IG_APPPASS_NETWORKS_MAX)
			return false;
		for (size_t i = 0; i < len; i++) {
			char ch = p[i];
			if (ch == '/')
				slash++;
			else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
			    (ch >= 'A' && ch <= 'F') || ch == '.' || ch == ':'))
				return false;
		}
		if (slash != 1 || p[len - 1] == '/')
			return false;
		if (end == NULL)
			return true;
		p = end;
	}
}

/* ---- open, close -------------------------------------------------------- */

/*
 * Brings the schema to STORE_SCHEMA_VERSION in one transaction: creates it
 * in an empty database (user_version 0, no tables), then runs the
 * migrations from the version found. Another process may be doing the same:
 * the version is read again under the write lock, and whoever comes second
 * finds nothing to do.
 */
static int
store_upgrade(struct ig_apppass_store *st)
{
	int64_t v, tables;
	int rc = store_exec(st, "BEGIN IMMEDIATE", "begin");
	if (rc != 0)
		return rc;
	if ((rc = store_int(st, "PRAGMA user_version", &v)) != 0 ||
	    (rc = store_int(st, "SELECT count(*) FROM sqlite_schema", &tables)) != 0)
		goto fail;
	if ((v == 0 && tables != 0) || v < 0) {
		store_fail(st, "not an imapguard app password store (it has tables, but no "
		    "schema version)");
		rc = IG_EINVAL;
		goto fail;
	}
	if (v > STORE_SCHEMA_VERSION) { /* upgraded by a newer one since we looked */
		store_fail(st, "written by a newer imapguard (schema version %lld; this one "
		    "reads %d)", (long long)v, STORE_SCHEMA_VERSION);
		rc = IG_EINVAL;
		goto fail;
	}
	if (v == 0) {
		if ((rc = store_exec(st, store_schema_v1, "create the schema")) != 0)
			goto fail;
		v = 1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		char what[48];
		snprintf(what, sizeof(what), "upgrade the schema from version %lld",
		    (long long)v);
		if ((rc = store_exec(st, store_migrations[v - 1], what)) != 0)
			goto fail;
	}
	if ((rc = store_exec(st, "COMMIT", "commit")) != 0)
		goto fail;
	return 0;
fail:
	store_rollback(st);
	return rc;
}

int
ig_apppass_store_open(const char *path, unsigned flags, unsigned busy_ms,
    struct ig_apppass_store **out, char *err, size_t errsz)
{
	struct ig_apppass_store *st = NULL;
	struct stat sb;
	int rc;
	char tmp[IG_APPPASS_ERR_MAX] = "";

	*out = NULL;
	if (flags & IG_APS_CREATE) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
		    0600);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST) {
			snprintf(tmp, sizeof(tmp), "cannot create: %s", strerror(errno));
			rc = IG_EIO;
			goto fail;
		}
	}
	if (lstat(path, &sb) != 0) {
		snprintf(tmp, sizeof(tmp), "%s", strerror(errno));
		rc = errno == ENOENT ? IG_ENOTFOUND : IG_EIO;
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(tmp, sizeof(tmp), "not a regular file");
		rc = IG_EINVAL;
		goto fail;
	}
	if (sb.st_mode & 0007) {
		snprintf(tmp, sizeof(tmp), "other users may access it (mode %04o): make it "
		    "0600 (chmod 600)", (unsigned)(sb.st_mode & 07777));
		rc = IG_EINVAL;
		goto fail;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		rc = IG_ENOMEM;
		snprintf(tmp, sizeof(tmp), "out of memory");
		goto fail;
	}
	int src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
	    SQLITE_OPEN_FULLMUTEX, NULL);
	if (src != SQLITE_OK) {
		snprintf(tmp, sizeof(tmp), "%s", st->db != NULL ? sqlite3_errmsg(st->db) :
		    sqlite3_errstr(src));
		rc = src == SQLITE_NOMEM ? IG_ENOMEM : IG_EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, busy_ms > INT32_MAX ? INT32_MAX : (int)busy_ms);
	/* No writes to sqlite_schema, no functions from the schema: a store
	   edited by hand cannot make us run more than our statements. */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
	int64_t version;
	if ((rc = store_int(st, "PRAGMA user_version", &version)) != 0) {
		/* SQLITE_NOTADB and friends: not ours, or damaged beyond reading. */
		snprintf(tmp, sizeof(tmp), "%s", st->err);
		goto fail;
	}
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(tmp, sizeof(tmp), "written by a newer imapguard (schema version %lld; "
		    "this one reads %d)", (long long)version, STORE_SCHEMA_VERSION);
		rc = IG_EINVAL;
		goto fail;
	}
	/* WAL first (it is recorded in the file), then the schema. */
	sqlite3_stmt *s;
	if ((rc = store_prepare(st, "PRAGMA journal_mode = WAL", &s)) != 0) {
		snprintf(tmp, sizeof(tmp), "%s", st->err);
		goto fail;
	}
	int step = sqlite3_step(s);
	const unsigned char *mode = step == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	bool wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
	if (!wal)
		snprintf(tmp, sizeof(tmp), "cannot use the WAL journal: %s", step == SQLITE_ROW ?
		    (mode != NULL ? (const char *)mode : "?") : sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	if (!wal) {
		rc = IG_EIO;
		goto fail;
	}
	/* secure_delete: a replaced or removed TOTP secret is overwritten in
	   the file's pages, not left in free space. */
	if ((rc = store_exec(st, "PRAGMA synchronous = FULL", "synchronous")) != 0 ||
	    (rc = store_exec(st, "PRAGMA secure_delete = ON", "secure_delete")) != 0 ||
	    (version < STORE_SCHEMA_VERSION && (rc = store_upgrade(st)) != 0)) {
		snprintf(tmp, sizeof(tmp), "%s", st->err);
		goto fail;
	}
	*out = st;
	return 0;
fail:
	if (err != NULL && errsz > 0)
		snprintf(err, errsz, "%s", tmp);
	ig_apppass_store_close(st);
	return rc;
}

void
ig_apppass_store_close(struct ig_apppass_store *st)
{
	if (st == NULL)
		return;
	sqlite3_close_v2(st->db);
	free(st);
}

/* ---- changes ------------------------------------------------------------ */

int
ig_apppass_store_add(struct ig_apppass_store *st, const struct ig_apppass_new *n,
    char id[static IG_APPPASS_ID_LEN + 1])
{
	struct ig_apppass_hash_params hp;
	const char *bad = !ig_apppass_id_valid(id) ? "id" :
	    !store_text_ok(n->user, IG_USER_MAX) ? "user" :
	    !store_text_ok(n->label, IG_APPPASS_LABEL_MAX) ? "label" :
	    !store_networks_ok(n->networks) ? "networks" :
	    ig_apppass_hash_params_of(n->phc, &hp) != 0 ? "hash" :
	    n->created <= 0 ? "created" :
	    n->expires < 0 || (n->expires != 0 && n->expires <= n->created) ? "expires" : NULL;
	if (bad != NULL) {
		store_fail(st, "invalid %s", bad);
		return IG_EINVAL;
	}
	sqlite3_stmt *s;
	int rc = store_prepare(st, "INSERT INTO app_passwords (id, user, label, hash, created, "
	    "expires, networks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &s);
	if (rc != 0)
		return rc;
	if ((rc = store_exec(st, "BEGIN IMMEDIATE", "begin")) != 0) {
		sqlite3_finalize(s);
		return rc;
	}
	for (int tries = 0;; tries++) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, n->user, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, n->label, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, n->phc, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, n->created);
		sqlite3_bind_int64(s, 6, n->expires);
		sqlite3_bind_text(s, 7, n->networks, -1, SQLITE_STATIC);
		int step = sqlite3_step(s);
		sqlite3_reset(s);
		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_CONSTRAINT_PRIMARYKEY || tries == STORE_ID_TRIES) {
			rc = store_sqlerr(st, step, "insert");
			goto fail;
		}
		if (ig_apppass_generate_id(id) != 0) {
			store_fail(st, "no randomness for a new id");
			rc = IG_EIO;
			goto fail;
		}
	}
	sqlite3_finalize(s);
	/* data_version does not move for this connection's own commits. */
	st->seen = false;
	return store_exec(st, "COMMIT", "commit") == 0 ? 0 : (store_rollback(st), IG_EIO);
fail:
	sqlite3_finalize(s);
	store_rollback(st);
	return rc;
}

int
ig_apppass_store_revoke(struct ig_apppass_store *st, const char *id, int64_t now,
    int64_t *revoked_at, bool *already)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int rc;
	if (already != NULL)
		*already = false;
	if (now <= 0) {
		store_fail(st, "invalid time");
		return IG_EINVAL;
	}
	if ((rc = store_prepare(st, "SELECT revoked FROM app_passwords WHERE id = ?1", &sel)) != 0 ||
	    (rc = store_prepare(st, "UPDATE app_passwords SET revoked = ?2 WHERE id = ?1",
	        &upd)) != 0 ||
	    (rc = store_exec(st, "BEGIN IMMEDIATE", "begin")) != 0)
		goto out;
	sqlite3_bind_text(sel, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(sel);
	if (step == SQLITE_DONE) {
		store_fail(st, "no app password with id %.*s", IG_APPPASS_ID_LEN + 1, id);
		rc = IG_ENOTFOUND;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = store_sqlerr(st, step, "select");
		goto out;
	}
	int64_t was = sqlite3_column_int64(sel, 0);
	if (was != 0) {
		if (revoked_at != NULL)
			*revoked_at = was;
		if (already != NULL)
			*already = true;
		goto out; /* (rc 0: the rollback below changes nothing) */
	}
	sqlite3_bind_text(upd, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 2, now);
	if ((step = sqlite3_step(upd)) != SQLITE_DONE) {
		rc = store_sqlerr(st, step, "update");
		goto out;
	}
	st->seen = false; /* (our own commit: see ig_apppass_store_add) */
	if ((rc = store_exec(st, "COMMIT", "commit")) != 0)
		goto out;
	if (revoked_at != NULL)
		*revoked_at = now;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	store_rollback(st);
	return rc;
}

int
ig_apppass_store_revoke_user(struct ig_apppass_store *st, const char *user, int64_t now,
    size_t *count)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int rc;
	if (now <= 0) {
		store_fail(st, "invalid time");
		return IG_EINVAL;
	}
	if ((rc = store_prepare(st, "SELECT count(*) FROM app_passwords WHERE user = ?1",
	        &sel)) != 0 ||
	    (rc = store_prepare(st, "UPDATE app_passwords SET revoked = ?2 "
	        "WHERE user = ?1 AND revoked = 0", &upd)) != 0 ||
	    (rc = store_exec(st, "BEGIN IMMEDIATE", "begin")) != 0)
		goto out;
	sqlite3_bind_text(sel, 1, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(sel);
	if (step != SQLITE_ROW) {
		rc = store_sqlerr(st, step, "select");
		goto out;
	}
	if (sqlite3_column_int64(sel, 0) == 0) {
		store_fail(st, "no app password for that user");
		rc = IG_ENOTFOUND;
		goto out;
	}
	sqlite3_bind_text(upd, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 2, now);
	if ((step = sqlite3_step(upd)) != SQLITE_DONE) {
		rc = store_sqlerr(st, step, "update");
		goto out;
	}
	size_t changed = (size_t)sqlite3_changes(st->db);
	st->seen = false; /* (our own commit: see ig_apppass_store_add) */
	if ((rc = store_exec(st, "COMMIT", "commit")) != 0)
		goto out;
	if (count != NULL)
		*count = changed;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	store_rollback(st);
	return rc;
}

int
ig_apppass_store_record_use(struct ig_apppass_store *st, const char *id, int64_t when,
    const char *address)
{
	sqlite3_stmt *s;
	if (when <= 0 || !store_text_ok(address, IG_APPPASS_ADDRESS_MAX)) {
		store_fail(st, "invalid time or address");
		return IG_EINVAL;
	}
	int rc = store_prepare(st, "UPDATE app_passwords SET last_used = ?2, last_address = ?3 "
	    "WHERE id = ?1", &s);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, when);
	sqlite3_bind_text(s, 3, address, -1, SQLITE_STATIC);
	int step = sqlite3_step(s);
	if (step != SQLITE_DONE)
		rc = store_sqlerr(st, step, "update");
	else if (sqlite3_changes(st->db) == 0) {
		store_fail(st, "no app password with that id");
		rc = IG_ENOTFOUND;
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- TOTP enrolments ---------------------------------------------------- */

int
ig_apppass_store_totp_enroll(struct ig_apppass_store *st, const char *user,
    const uint8_t *secret, size_t len, int64_t now, bool replace)
{
	const char *bad = !store_text_ok(user, IG_USER_MAX) ? "user" :
	    secret == NULL || len < IG_TOTP_SECRET_MIN || len > IG_TOTP_SECRET_MAX ? "secret" :
	    now <= 0 ? "time" : NULL;
	if (bad != NULL) {
		store_fail(st, "invalid %s", bad);
		return IG_EINVAL;
	}
	sqlite3_stmt *s;
	/* One statement: its own transaction. Replacing starts the new secret
	   with no step used (its codes have nothing to do with the old one's). */
	int rc = store_prepare(st, replace ?
	    "INSERT INTO totp (user, secret, created, last_step) VALUES (?1, ?2, ?3, 0) "
	    "ON CONFLICT (user) DO UPDATE SET secret = excluded.secret, "
	    "created = excluded.created, last_step = 0" :
	    "INSERT INTO totp (user, secret, created, last_step) VALUES (?1, ?2, ?3, 0)", &s);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, secret, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	int step = sqlite3_step(s);
	if (step == SQLITE_CONSTRAINT_PRIMARYKEY && !replace) {
		store_fail(st, "already enrolled");
		rc = IG_EEXIST;
	} else if (step != SQLITE_DONE) {
		rc = store_sqlerr(st, step, "enroll");
	}
	/* The statement held the secret only through our buffer (SQLITE_STATIC). */
	sqlite3_finalize(s);
	return rc;
}

int
ig_apppass_store_totp_get(struct ig_apppass_store *st, const char *user,
    uint8_t secret[static IG_APPPASS_TOTP_SECRET_MAX], size_t *len, uint64_t *last_step)
{
	sqlite3_stmt *s;
	*len = 0;
	int rc = store_prepare(st, "SELECT secret, last_step FROM totp WHERE user = ?1", &s);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(s);
	if (step == SQLITE_DONE) {
		store_fail(st, "not enrolled");
		rc = IG_ENOTFOUND;
	} else if (step != SQLITE_ROW) {
		rc = store_sqlerr(st, step, "select");
	} else {
		/* A row edited by hand into something else is refused, not used. */
		const void *b = sqlite3_column_blob(s, 0);
		int n = sqlite3_column_bytes(s, 0);
		int64_t last = sqlite3_column_int64(s, 1);
		if (sqlite3_column_type(s, 0) != SQLITE_BLOB || b == NULL ||
		    n < IG_TOTP_SECRET_MIN || n > IG_TOTP_SECRET_MAX || last < 0) {
			store_fail(st, "the TOTP enrolment of that user is damaged (secret of "
			    "%d bytes, last step %lld): enroll again", n, (long long)last);
			rc = IG_EIO;
		} else {
			memcpy(secret, b, (size_t)n);
			*len = (size_t)n;
			if (last_step != NULL)
				*last_step = (uint64_t)last;
		}
	}
	/* SQLite's own copy of the row goes with the statement; we cannot wipe
	   it (its page cache holds the page as long as it likes). */
	sqlite3_finalize(s);
	return rc;
}

int
ig_apppass_store_totp_accept(struct ig_apppass_store *st, const char *user, uint64_t step)
{
	sqlite3_stmt *upd = NULL, *sel = NULL;
	if (step == 0 || step > INT64_MAX) {
		store_fail(st, "invalid step");
		return IG_EINVAL;
	}
	/* The check and the write are one statement: of two commands with the
	   same code, exactly one changes the row. */
	int rc = store_prepare(st, "UPDATE totp SET last_step = ?2 "
	    "WHERE user = ?1 AND last_step < ?2", &upd);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(upd, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 2, (int64_t)step);
	int res = sqlite3_step(upd);
	if (res != SQLITE_DONE) {
		rc = store_sqlerr(st, res, "update");
		goto out;
	}
	if (sqlite3_changes(st->db) == 1)
		goto out;
	/* Refused: say whether for a used step or a missing enrolment. */
	if ((rc = store_prepare(st, "SELECT 1 FROM totp WHERE user = ?1", &sel)) != 0)
		goto out;
	sqlite3_bind_text(sel, 1, user, -1, SQLITE_STATIC);
	res = sqlite3_step(sel);
	if (res == SQLITE_ROW) {
		store_fail(st, "that step, or a later one, was accepted already");
		rc = IG_EEXIST;
	} else if (res == SQLITE_DONE) {
		store_fail(st, "not enrolled");
		rc = IG_ENOTFOUND;
	} else {
		rc = store_sqlerr(st, res, "select");
	}
out:
	sqlite3_finalize(upd);
	sqlite3_finalize(sel);
	return rc;
}

int
ig_apppass_store_totp_remove(struct ig_apppass_store *st, const char *user)
{
	sqlite3_stmt *s;
	int rc = store_prepare(st, "DELETE FROM totp WHERE user = ?1", &s);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(s);
	if (step != SQLITE_DONE)
		rc = store_sqlerr(st, step, "delete");
	else if (sqlite3_changes(st->db) == 0) {
		store_fail(st, "not enrolled");
		rc = IG_ENOTFOUND;
	}
	sqlite3_finalize(s);
	return rc;
}

int
ig_apppass_store_totp_list(struct ig_apppass_store *st, const char *user,
    ig_apppass_totp_list_fn fn, void *arg, size_t *count)
{
	sqlite3_stmt *s;
	struct ig_apppass_totp_entry e;
	size_t n = 0;
	int rc = store_prepare(st, user != NULL ?
	    "SELECT user, created, last_step FROM totp WHERE user = ?1" :
	    "SELECT user, created, last_step FROM totp ORDER BY user", &s);
	if (rc != 0)
		return rc;
	if (user != NULL)
		sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_col_text(s, 0, e.user, sizeof(e.user));
		e.created = sqlite3_column_int64(s, 1);
		int64_t last = sqlite3_column_int64(s, 2);
		e.last_step = last > 0 ? (uint64_t)last : 0;
		n++;
		if ((rc = fn(&e, arg)) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = store_sqlerr(st, step, "list");
	sqlite3_finalize(s);
	if (count != NULL)
		*count = n;
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

int
ig_apppass_store_list(struct ig_apppass_store *st, const char *user, ig_apppass_list_fn fn,
    void *arg, size_t *count)
{
	sqlite3_stmt *s;
	size_t n = 0;
	int rc = store_prepare(st, user != NULL ?
	    "SELECT id, user, label, networks, created, expires, revoked, last_used, "
	    "last_address FROM app_passwords WHERE user = ?1 ORDER BY user, created, id" :
	    "SELECT id, user, label, networks, created, expires, revoked, last_used, "
	    "last_address FROM app_passwords ORDER BY user, created, id", &s);
	if (rc != 0)
		return rc;
	if (user != NULL)
		sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	struct ig_apppass_entry *e = malloc(sizeof(*e));
	if (e == NULL) {
		sqlite3_finalize(s);
		store_fail(st, "out of memory");
		return IG_ENOMEM;
	}
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_col_text(s, 0, e->id, sizeof(e->id));
		store_col_text(s, 1, e->user, sizeof(e->user));
		store_col_text(s, 2, e->label, sizeof(e->label));
		store_col_text(s, 3, e->networks, sizeof(e->networks));
		e->created = sqlite3_column_int64(s, 4);
		e->expires = sqlite3_column_int64(s, 5);
		e->revoked = sqlite3_column_int64(s, 6);
		e->last_used = sqlite3_column_int64(s, 7);
		store_col_text(s, 8, e->last_address, sizeof(e->last_address));
		n++;
		if ((rc = fn(e, arg)) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = store_sqlerr(st, step, "list");
	free(e);
	sqlite3_finalize(s);
	/* A list that stopped early (fn, error) leaves the read transaction
	   open until the statement is finalized: done above. */
	if (count != NULL)
		*count = n;
	return rc;
}

int
ig_apppass_store_check(struct ig_apppass_store *st)
{
	sqlite3_stmt *s;
	int rc = store_prepare(st, "PRAGMA integrity_check", &s);
	if (rc != 0)
		return rc;
	int step = sqlite3_step(s);
	const unsigned char *t = step == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	if (t != NULL && strcmp((const char *)t, "ok") == 0)
		rc = 0;
	else if (t != NULL) {
		store_fail(st, "integrity check: %s", (const char *)t);
		rc = IG_EIO;
	} else {
		rc = store_sqlerr(st, step, "integrity check");
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- snapshots ---------------------------------------------------------- */

/* The strings of a snapshot's entries while it is loaded: offsets into a
 * growing block, made pointers once it stops moving. */
struct snap_build {
	char *buf;
	size_t len, cap;
	size_t *offs;                    /* 3 per entry: user, phc, networks */
	size_t ncap;                     /* entries the arrays hold */
};

/* Appends s (with its NUL) to the block; returns its offset or SIZE_MAX. */
static size_t
snap_add_str(struct snap_build *b, const char *s)
{
	size_t n = strlen(s) + 1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (nb == NULL)
			return SIZE_MAX;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	return b->len - n;
}

/* Makes room for one more entry (and its three offsets). */
static bool
snap_grow(struct ig_apppass_snapshot *snap, struct snap_build *b)
{
	if (snap->n < b->ncap)
		return true;
	size_t cap = b->ncap ? b->ncap * 2 : 64;
	struct ig_apppass_snap_entry *v = realloc(snap->v, cap * sizeof(*v));
	if (v == NULL)
		return false;
	snap->v = v;
	size_t *offs = realloc(b->offs, cap * 3 * sizeof(*offs));
	if (offs == NULL)
		return false;
	b->offs = offs;
	b->ncap = cap;
	return true;
}

static bool
snap_add_revoked(struct ig_apppass_snapshot *snap, size_t *cap, const char *id)
{
	if (snap->nrevoked == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char (*r)[IG_APPPASS_ID_LEN + 1] = realloc(snap->revoked, ncap * sizeof(*r));
		if (r == NULL)
			return false;
		snap->revoked = r;
		*cap = ncap;
	}
	memcpy(snap->revoked[snap->nrevoked++], id, IG_APPPASS_ID_LEN + 1);
	return true;
}

static void
snap_free(struct ig_apppass_snapshot *snap)
{
	free(snap->v);
	free(snap->revoked);
	free(snap->strings);
	free(snap);
}

/* Reads the rows of one read transaction into snap and b. */
static int
snap_read(struct ig_apppass_store *st, struct ig_apppass_snapshot *snap, struct snap_build *b)
{
	sqlite3_stmt *s;
	int64_t gen;
	size_t rcap = 0;
	int rc = store_int(st, "SELECT generation FROM store_state", &gen);
	if (rc != 0)
		return rc;
	snap->generation = (uint64_t)gen;
	if ((rc = store_prepare(st, "SELECT id, user, hash, expires, networks, revoked "
	    "FROM app_passwords ORDER BY id", &s)) != 0)
		return rc;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		const char *user = (const char *)sqlite3_column_text(s, 1);
		const char *phc = (const char *)sqlite3_column_text(s, 2);
		int64_t expires = sqlite3_column_int64(s, 3);
		const char *nets = (const char *)sqlite3_column_text(s, 4);
		int64_t revoked = sqlite3_column_int64(s, 5);
		struct ig_apppass_hash_params hp;
		bool id_ok = id != NULL && ig_apppass_id_valid(id);
		bool ok = id_ok && store_text_ok(user, IG_USER_MAX) && phc != NULL &&
		    ig_apppass_hash_params_of(phc, &hp) == 0 && expires >= 0 &&
		    store_networks_ok(nets) && revoked >= 0;
		if (!ok)
			snap->invalid++;
		if (!ok || revoked != 0) {
			if (id_ok && !snap_add_revoked(snap, &rcap, id))
				goto nomem;
			continue;
		}
		if (!snap_grow(snap, b))
			goto nomem;
		struct ig_apppass_snap_entry *e = &snap->v[snap->n];
		memcpy(e->id, id, sizeof(e->id));
		e->expires = expires;
		e->user = e->phc = e->networks = NULL;
		size_t *o = &b->offs[snap->n * 3];
		if ((o[0] = snap_add_str(b, user)) == SIZE_MAX ||
		    (o[1] = snap_add_str(b, phc)) == SIZE_MAX ||
		    (o[2] = snap_add_str(b, nets)) == SIZE_MAX)
			goto nomem;
		snap->n++;
	}
	rc = step == SQLITE_DONE ? 0 : store_sqlerr(st, step, "read the store");
	sqlite3_finalize(s);
	return rc;
nomem:
	sqlite3_finalize(s);
	store_fail(st, "out of memory");
	return IG_ENOMEM;
}

int
ig_apppass_store_snapshot(struct ig_apppass_store *st, struct ig_apppass_snapshot **out)
{
	struct snap_build b = { 0 };
	int64_t dv;
	*out = NULL;
	struct ig_apppass_snapshot *snap = calloc(1, sizeof(*snap));
	if (snap == NULL) {
		store_fail(st, "out of memory");
		return IG_ENOMEM;
	}
	atomic_init(&snap->refs, 1u);
	/* data_version before the read: a commit in between makes the next
	   ig_apppass_store_changed() read the generation again, never miss it. */
	int rc = store_int(st, "PRAGMA data_version", &dv);
	if (rc == 0 && (rc = store_exec(st, "BEGIN", "begin")) == 0) {
		rc = snap_read(st, snap, &b);
		if (rc == 0)
			rc = store_exec(st, "COMMIT", "commit");
		store_rollback(st);
	}
	if (rc != 0) {
		free(b.buf);
		free(b.offs);
		snap_free(snap);
		return rc;
	}
	snap->strings = b.buf;
	for (size_t i = 0; i < snap->n; i++) {
		snap->v[i].user = b.buf + b.offs[i * 3];
		snap->v[i].phc = b.buf + b.offs[i * 3 + 1];
		snap->v[i].networks = b.buf + b.offs[i * 3 + 2];
	}
	free(b.offs);
	/* SQLite's ORDER BY id compares bytes (BINARY), as strcmp does; the
	   revoked ids came in the same order. */
	st->seen = true;
	st->dv_seen = dv;
	st->gen_seen = (int64_t)snap->generation;
	*out = snap;
	return 0;
}

int
ig_apppass_store_changed(struct ig_apppass_store *st, const struct ig_apppass_snapshot *snap)
{
	int64_t dv, gen;
	int rc = store_int(st, "PRAGMA data_version", &dv);
	if (rc != 0)
		return rc;
	if (!st->seen || dv != st->dv_seen) {
		if ((rc = store_int(st, "SELECT generation FROM store_state", &gen)) != 0)
			return rc;
		st->seen = true;
		st->dv_seen = dv;
		st->gen_seen = gen;
	}
	return (uint64_t)st->gen_seen != snap->generation ? 1 : 0;
}

static int
snap_cmp_id(const void *key, const void *elem)
{
	return strcmp(key, ((const struct ig_apppass_snap_entry *)elem)->id);
}

static int
snap_cmp_revoked(const void *key, const void *elem)
{
	return strcmp(key, elem);
}

const struct ig_apppass_snap_entry *
ig_apppass_snapshot_find(const struct ig_apppass_snapshot *snap, const char *user,
    const char *id)
{
	if (snap->n == 0 || !ig_apppass_id_valid(id))
		return NULL;
	const struct ig_apppass_snap_entry *e = bsearch(id, snap->v, snap->n, sizeof(*snap->v),
	    snap_cmp_id);
	return e != NULL && strcmp(e->user, user) == 0 ? e : NULL;
}

const struct ig_apppass_snap_entry *
ig_apppass_snapshot_at(const struct ig_apppass_snapshot *snap, size_t i)
{
	return i < snap->n ? &snap->v[i] : NULL;
}

bool
ig_apppass_snapshot_knows(const struct ig_apppass_snapshot *snap, const char *id)
{
	if (ig_apppass_snapshot_is_revoked(snap, id))
		return true;
	return snap->n > 0 && ig_apppass_id_valid(id) &&
	    bsearch(id, snap->v, snap->n, sizeof(*snap->v), snap_cmp_id) != NULL;
}

bool
ig_apppass_snapshot_is_revoked(const struct ig_apppass_snapshot *snap, const char *id)
{
	return snap->nrevoked > 0 && ig_apppass_id_valid(id) &&
	    bsearch(id, snap->revoked, snap->nrevoked, sizeof(*snap->revoked),
	        snap_cmp_revoked) != NULL;
}

size_t
ig_apppass_snapshot_count(const struct ig_apppass_snapshot *snap)
{
	return snap->n;
}

size_t
ig_apppass_snapshot_revoked(const struct ig_apppass_snapshot *snap)
{
	return snap->nrevoked;
}

size_t
ig_apppass_snapshot_invalid(const struct ig_apppass_snapshot *snap)
{
	return snap->invalid;
}

uint64_t
ig_apppass_snapshot_generation(const struct ig_apppass_snapshot *snap)
{
	return snap->generation;
}

struct ig_apppass_snapshot *
ig_apppass_snapshot_ref(struct ig_apppass_snapshot *snap)
{
	atomic_fetch_add_explicit(&snap->refs, 1u, memory_order_relaxed);
	return snap;
}

void
ig_apppass_snapshot_unref(struct ig_apppass_snapshot *snap)
{
	if (snap != NULL && atomic_fetch_sub_explicit(&snap->refs, 1u, memory_order_acq_rel) == 1u)
		snap_free(snap);
}
