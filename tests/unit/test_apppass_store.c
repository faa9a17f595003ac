/*
 * Unit tests for apppass/store.c: opening (creation mode 0600, WAL, the
 * schema, refusals), add with its checks and id collisions, list, revoke,
 * revoke of a user's all, record_use, snapshots (lookup by user and id,
 * revoked ids, rows edited into something unusable), the change check
 * across connections (and a recorded use not counting), a corrupt
 * store refused while the last good snapshot stays usable; TOTP enrolments
 * (enroll, replace, get, accept never twice nor backwards, also from two
 * connections, remove, list, not a change for the proxy) and the upgrade
 * of a version 1 store in place.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "apppass/store.h"
#include "util/err.h"

struct fix {
	char dir[64];
	char path[128];
	char phc[IG_APPPASS_PHC_MAX + 1];  /* a cheap hash of SECRET */
};

#define SECRET "xm9vhpt4wae3nbzr8fcu"
#define BUSY_MS 2000u

static const struct ig_apppass_hash_params cheap = { 64, 1, 1 };

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/igapsXXXXXX");
	if (mkdtemp(f->dir) == NULL ||
	    ig_apppass_hash(&cheap, SECRET, strlen(SECRET), f->phc, sizeof(f->phc)) != 0) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/ap.db", f->dir);
	*state = f;
	return 0;
}

static void
fix_clean(struct fix *f)
{
	char p[160];
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	fix_clean(f);
	int rc = rmdir(f->dir);
	free(f);
	return rc;
}

/* Each test starts without a store. */
static int
each(void **state)
{
	fix_clean(*state);
	return 0;
}

static struct ig_apppass_store *
open_store(const struct fix *f, unsigned flags)
{
	struct ig_apppass_store *st = NULL;
	char err[IG_APPPASS_ERR_MAX];
	int rc = ig_apppass_store_open(f->path, flags, BUSY_MS, &st, err, sizeof(err));
	if (rc != 0)
		print_error("open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(st);
	return st;
}

/* Adds a row; returns its id in id (as stored). */
static void
add(struct ig_apppass_store *st, const struct fix *f, const char *user, const char *label,
    int64_t created, int64_t expires, const char *nets, char id[IG_APPPASS_ID_LEN + 1])
{
	assert_int_equal(ig_apppass_generate_id(id), 0);
	struct ig_apppass_new n = {
		.user = user, .label = label, .networks = nets, .phc = f->phc,
		.created = created, .expires = expires,
	};
	int rc = ig_apppass_store_add(st, &n, id);
	if (rc != 0)
		print_error("add: %s\n", ig_apppass_store_error(st));
	assert_int_equal(rc, 0);
}

/* Runs SQL on a connection of its own (another process's view, or a hand
 * edit with sqlite3(1)). */
static void
sql(const struct fix *f, const char *text)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	char *msg = NULL;
	int rc = sqlite3_exec(db, text, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s: %s\n", text, msg);
	sqlite3_free(msg);
	assert_int_equal(rc, SQLITE_OK);
	sqlite3_close(db);
}

/* The rows as list gives them. */
struct rows {
	struct ig_apppass_entry v[16];
	size_t n;
};

static int
collect(const struct ig_apppass_entry *e, void *arg)
{
	struct rows *r = arg;
	assert_true(r->n < 16);
	r->v[r->n++] = *e;
	return 0;
}

static size_t
list(struct ig_apppass_store *st, const char *user, struct rows *r)
{
	size_t count = 99;
	r->n = 0;
	assert_int_equal(ig_apppass_store_list(st, user, collect, r, &count), 0);
	assert_int_equal(count, r->n);
	return r->n;
}

/* ---- open ---- */

static void
test_open_create(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = NULL;
	char err[IG_APPPASS_ERR_MAX], wal[160];
	struct stat sb;

	/* Missing: not found without IG_APS_CREATE, and nothing created. */
	assert_int_equal(ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err)),
	    IG_ENOTFOUND);
	assert_null(st);
	assert_int_equal(stat(f->path, &sb), -1);

	/* Created 0600 whatever the umask, with the WAL journal: the -wal file
	   exists while the connection is open, with the database's mode. */
	mode_t old = umask(0);
	st = open_store(f, IG_APS_CREATE);
	umask(old);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	char id[IG_APPPASS_ID_LEN + 1];
	add(st, f, "alice", "phone", 100, 0, "", id);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	ig_apppass_store_close(st);

	/* The schema: version 2, WAL recorded in the file. */
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 2);
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* Opened again (with or without IG_APS_CREATE): the same rows. */
	struct rows r;
	st = open_store(f, 0);
	assert_int_equal(list(st, NULL, &r), 1);
	assert_string_equal(r.v[0].id, id);
	ig_apppass_store_close(st);
	st = open_store(f, IG_APS_CREATE);
	assert_int_equal(list(st, NULL, &r), 1);
	assert_int_equal(ig_apppass_store_check(st), 0);
	ig_apppass_store_close(st);
}

static void
test_open_refusals(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = NULL;
	char err[IG_APPPASS_ERR_MAX];

	/* Readable by others. */
	st = open_store(f, IG_APS_CREATE);
	ig_apppass_store_close(st);
	st = NULL;
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err)),
	    IG_EINVAL);
	assert_null(st);
	assert_non_null(strstr(err, "mode 0644"));
	assert_int_equal(chmod(f->path, 0640), 0); /* group access is allowed */
	st = open_store(f, 0);
	ig_apppass_store_close(st);
	st = NULL;
	fix_clean(f);

	/* Not a database. */
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	static const char junk[] = "this is not an SQLite database, it is a text file with "
	    "enough bytes to have a header that SQLite reads and refuses.....";
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_not_equal(ig_apppass_store_open(f->path, IG_APS_CREATE, BUSY_MS, &st, err,
	    sizeof(err)), 0);
	assert_null(st);
	fix_clean(f);

	/* Another program's database (tables, no schema version). */
	sql(f, "CREATE TABLE t (x)");
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err)),
	    IG_EINVAL);
	assert_non_null(strstr(err, "not an imapguard app password store"));
	fix_clean(f);

	/* A newer schema. */
	st = open_store(f, IG_APS_CREATE);
	ig_apppass_store_close(st);
	st = NULL;
	sql(f, "PRAGMA user_version = 3");
	assert_int_equal(ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err)),
	    IG_EINVAL);
	assert_non_null(strstr(err, "newer imapguard"));
	assert_non_null(strstr(err, "schema version 3"));
	fix_clean(f);

	/* A directory, and a symbolic link to a store. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(ig_apppass_store_open(f->path, IG_APS_CREATE, BUSY_MS, &st, err,
	    sizeof(err)), IG_EINVAL);
	assert_int_equal(rmdir(f->path), 0);
	char real[160];
	snprintf(real, sizeof(real), "%s/real.db", f->dir);
	unlink(real);
	assert_int_equal(ig_apppass_store_open(real, IG_APS_CREATE, BUSY_MS, &st, err,
	    sizeof(err)), 0);
	ig_apppass_store_close(st);
	st = NULL;
	assert_int_equal(symlink(real, f->path), 0);
	assert_int_equal(ig_apppass_store_open(f->path, IG_APS_CREATE, BUSY_MS, &st, err,
	    sizeof(err)), IG_EINVAL);
	assert_null(st);
	unlink(real);
	fix_clean(f);
}

/* ---- changes ---- */

static void
test_add_list(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char a1[6], a2[6], b1[6];
	struct rows r;

	add(st, f, "bob", "laptop", 300, 0, "", b1);
	add(st, f, "alice", "phone", 200, 200 + 86400, "10.0.0.0/8,2001:db8::/32", a1);
	add(st, f, "alice", "tablet \xc3\xa9", 100, 0, "192.0.2.7/32", a2);
	/* All, by user then creation time. */
	assert_int_equal(list(st, NULL, &r), 3);
	assert_string_equal(r.v[0].id, a2);
	assert_string_equal(r.v[1].id, a1);
	assert_string_equal(r.v[2].id, b1);
	assert_string_equal(r.v[1].user, "alice");
	assert_string_equal(r.v[1].label, "phone");
	assert_string_equal(r.v[1].networks, "10.0.0.0/8,2001:db8::/32");
	assert_true(r.v[1].created == 200);
	assert_true(r.v[1].expires == 200 + 86400);
	assert_true(r.v[1].revoked == 0);
	assert_true(r.v[1].last_used == 0);
	assert_string_equal(r.v[1].last_address, "");
	assert_string_equal(r.v[0].label, "tablet \xc3\xa9");
	/* One user's. */
	assert_int_equal(list(st, "alice", &r), 2);
	assert_int_equal(list(st, "bob", &r), 1);
	assert_int_equal(list(st, "carol", &r), 0);
	assert_int_equal(list(st, "Alice", &r), 0); /* names are stored normalised */
	ig_apppass_store_close(st);
}

static int
stop_at_second(const struct ig_apppass_entry *e, void *arg)
{
	(void)e;
	return ++*(int *)arg == 2 ? 42 : 0;
}

static void
test_list_stops(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char id[6];
	int calls = 0;
	size_t count = 0;
	add(st, f, "a", "1", 1, 0, "", id);
	add(st, f, "a", "2", 2, 0, "", id);
	add(st, f, "a", "3", 3, 0, "", id);
	assert_int_equal(ig_apppass_store_list(st, NULL, stop_at_second, &calls, &count), 42);
	assert_int_equal(calls, 2);
	assert_int_equal(count, 2);
	/* The read ended with it: a write goes through at once. */
	add(st, f, "a", "4", 4, 0, "", id);
	ig_apppass_store_close(st);
}

struct bad_row {
	const char *what;
	const char *id, *user, *label, *nets, *phc;
	int64_t created, expires;
};

static void
test_add_checks(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char longlabel[IG_APPPASS_LABEL_MAX + 2], longuser[IG_USER_MAX + 2];
	memset(longlabel, 'x', sizeof(longlabel) - 1);
	longlabel[sizeof(longlabel) - 1] = '\0';
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	const struct bad_row rows[] = {
		{ "id", "K7DQ2", "u", "l", "", f->phc, 1, 0 },
		{ "id", "k7dq", "u", "l", "", f->phc, 1, 0 },
		{ "user", "k7dq2", "", "l", "", f->phc, 1, 0 },
		{ "user", "k7dq2", "a\nb", "l", "", f->phc, 1, 0 },
		{ "user", "k7dq2", longuser, "l", "", f->phc, 1, 0 },
		{ "label", "k7dq2", "u", "", "", f->phc, 1, 0 },
		{ "label", "k7dq2", "u", "a\x1b[31m", "", f->phc, 1, 0 },
		{ "label", "k7dq2", "u", longlabel, "", f->phc, 1, 0 },
		{ "networks", "k7dq2", "u", "l", "10.0.0.0", f->phc, 1, 0 },
		{ "networks", "k7dq2", "u", "l", "10.0.0.0/8,", f->phc, 1, 0 },
		{ "networks", "k7dq2", "u", "l", "10.0.0.0/8;DROP", f->phc, 1, 0 },
		{ "networks", "k7dq2", "u", "l", "10.0.0.0/", f->phc, 1, 0 },
		{ "hash", "k7dq2", "u", "l", "", "plain", 1, 0 },
		{ "hash", "k7dq2", "u", "l", "", "$argon2id$v=19$m=2097152,t=1,p=1$"
		  "c29tZXNhbHRzb21lc2FsdA$dGhpcyBpcyAzMiBieXRlcyBvZiBvdXRwdXQgISEhISE", 1, 0 },
		{ "created", "k7dq2", "u", "l", "", f->phc, 0, 0 },
		{ "expires", "k7dq2", "u", "l", "", f->phc, 100, 100 },
		{ "expires", "k7dq2", "u", "l", "", f->phc, 100, -1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char id[6];
		char msg[64];
		snprintf(id, sizeof(id), "%s", rows[i].id);
		struct ig_apppass_new n = {
			.user = rows[i].user, .label = rows[i].label, .networks = rows[i].nets,
			.phc = rows[i].phc, .created = rows[i].created, .expires = rows[i].expires,
		};
		assert_int_equal(ig_apppass_store_add(st, &n, id), IG_EINVAL);
		snprintf(msg, sizeof(msg), "invalid %s", rows[i].what);
		assert_string_equal(ig_apppass_store_error(st), msg);
	}
	struct rows r;
	assert_int_equal(list(st, NULL, &r), 0);
	ig_apppass_store_close(st);
}

/* A taken id: another is drawn and written back; both rows stay. */
static void
test_add_id_collision(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char first[6] = "k7dq2", second[6] = "k7dq2";
	struct ig_apppass_new n = {
		.user = "alice", .label = "one", .networks = "", .phc = f->phc, .created = 1,
	};
	assert_int_equal(ig_apppass_store_add(st, &n, first), 0);
	assert_string_equal(first, "k7dq2");
	n.label = "two";
	n.created = 2;
	assert_int_equal(ig_apppass_store_add(st, &n, second), 0);
	assert_string_not_equal(second, "k7dq2");
	assert_true(ig_apppass_id_valid(second));
	struct rows r;
	assert_int_equal(list(st, "alice", &r), 2);
	assert_string_equal(r.v[0].id, "k7dq2");
	assert_string_equal(r.v[0].label, "one");
	assert_string_equal(r.v[1].id, second);
	assert_string_equal(r.v[1].label, "two");
	ig_apppass_store_close(st);
}

static void
test_revoke(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char a[6], b[6];
	int64_t at = 0;
	struct rows r;
	add(st, f, "alice", "phone", 100, 0, "", a);
	add(st, f, "alice", "laptop", 101, 0, "", b);
	bool already = true;
	assert_int_equal(ig_apppass_store_revoke(st, a, 500, &at, &already), 0);
	assert_true(at == 500);
	assert_false(already);
	/* Again (even within the same second): found, nothing changes, the
	   first time is kept. */
	assert_int_equal(ig_apppass_store_revoke(st, a, 500, &at, &already), 0);
	assert_true(already);
	assert_int_equal(ig_apppass_store_revoke(st, a, 600, &at, &already), 0);
	assert_true(at == 500);
	assert_true(already);
	assert_int_equal(ig_apppass_store_revoke(st, "zzzzz", 600, &at, NULL), IG_ENOTFOUND);
	assert_int_equal(ig_apppass_store_revoke(st, a, 0, NULL, NULL), IG_EINVAL);
	assert_int_equal(list(st, "alice", &r), 2);
	assert_true(r.v[0].revoked == 500);
	assert_true(r.v[1].revoked == 0);
	ig_apppass_store_close(st);
}

static void
test_revoke_user(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char id[6], bob[6];
	size_t count = 99;
	struct rows r;
	add(st, f, "alice", "1", 100, 0, "", id);
	add(st, f, "alice", "2", 101, 0, "", id);
	add(st, f, "alice", "3", 102, 0, "", id);
	add(st, f, "bob", "1", 103, 0, "", bob);
	assert_int_equal(ig_apppass_store_revoke(st, id, 150, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_revoke_user(st, "alice", 200, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(list(st, "alice", &r), 3);
	assert_true(r.v[0].revoked == 200 && r.v[1].revoked == 200 && r.v[2].revoked == 150);
	/* Bob's untouched; again for alice: found, nothing left to revoke. */
	assert_int_equal(list(st, "bob", &r), 1);
	assert_true(r.v[0].revoked == 0);
	assert_int_equal(ig_apppass_store_revoke_user(st, "alice", 300, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(ig_apppass_store_revoke_user(st, "carol", 300, &count), IG_ENOTFOUND);
	ig_apppass_store_close(st);
}

static void
test_record_use(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char id[6];
	struct rows r;
	add(st, f, "alice", "phone", 100, 0, "", id);
	assert_int_equal(ig_apppass_store_record_use(st, id, 1234, "192.0.2.7"), 0);
	assert_int_equal(list(st, NULL, &r), 1);
	assert_true(r.v[0].last_used == 1234);
	assert_string_equal(r.v[0].last_address, "192.0.2.7");
	assert_int_equal(ig_apppass_store_record_use(st, id, 1300, "2001:db8::1"), 0);
	assert_int_equal(list(st, NULL, &r), 1);
	assert_true(r.v[0].last_used == 1300);
	assert_string_equal(r.v[0].last_address, "2001:db8::1");
	assert_int_equal(ig_apppass_store_record_use(st, "zzzzz", 1300, "192.0.2.7"),
	    IG_ENOTFOUND);
	assert_int_equal(ig_apppass_store_record_use(st, id, 1300, "a\nb"), IG_EINVAL);
	assert_int_equal(ig_apppass_store_record_use(st, id, 0, "192.0.2.7"), IG_EINVAL);
	ig_apppass_store_close(st);
}

/* ---- snapshots ---- */

static void
test_snapshot(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char a[6], b[6], c[6];
	struct ig_apppass_snapshot *snap;
	add(st, f, "alice", "phone", 100, 5000, "10.0.0.0/8", a);
	add(st, f, "alice", "old", 101, 0, "", b);
	add(st, f, "bob", "laptop", 102, 0, "", c);
	assert_int_equal(ig_apppass_store_revoke(st, b, 200, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_snapshot(st, &snap), 0);
	assert_int_equal(ig_apppass_snapshot_count(snap), 2);
	assert_int_equal(ig_apppass_snapshot_revoked(snap), 1);
	assert_int_equal(ig_apppass_snapshot_invalid(snap), 0);
	assert_true(ig_apppass_snapshot_generation(snap) == 4); /* 3 adds, 1 revoke */

	const struct ig_apppass_snap_entry *e = ig_apppass_snapshot_find(snap, "alice", a);
	assert_non_null(e);
	assert_string_equal(e->id, a);
	assert_string_equal(e->user, "alice");
	assert_string_equal(e->phc, f->phc);
	assert_string_equal(e->networks, "10.0.0.0/8");
	assert_true(e->expires == 5000);
	/* The hash in the snapshot verifies the secret. */
	bool match = false;
	assert_int_equal(ig_apppass_verify(e->phc, SECRET, strlen(SECRET), &match), 0);
	assert_true(match);
	/* Another user's id, a revoked one, an unknown or malformed one. */
	assert_null(ig_apppass_snapshot_find(snap, "bob", a));
	assert_null(ig_apppass_snapshot_find(snap, "alice", c));
	assert_null(ig_apppass_snapshot_find(snap, "alice", b));
	assert_null(ig_apppass_snapshot_find(snap, "alice", "zzzzz"));
	assert_null(ig_apppass_snapshot_find(snap, "alice", "k7d"));
	assert_non_null(ig_apppass_snapshot_find(snap, "bob", c));
	assert_true(ig_apppass_snapshot_is_revoked(snap, b));
	assert_false(ig_apppass_snapshot_is_revoked(snap, a));
	assert_false(ig_apppass_snapshot_is_revoked(snap, "zzzzz"));

	/* Immutable: later changes do not reach it; references keep it. */
	assert_int_equal(ig_apppass_store_revoke(st, a, 300, NULL, NULL), 0);
	assert_ptr_equal(ig_apppass_snapshot_find(snap, "alice", a), e);
	struct ig_apppass_snapshot *ref = ig_apppass_snapshot_ref(snap);
	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(st);
	assert_string_equal(ig_apppass_snapshot_find(ref, "alice", a)->phc, f->phc);
	ig_apppass_snapshot_unref(ref);
	ig_apppass_snapshot_unref(NULL);
}

/* Many rows: every one found by its id and user (the table is sorted). */
static void
test_snapshot_many(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	enum { N = 300 };
	static char ids[N][6];
	struct ig_apppass_snapshot *snap;
	for (int i = 0; i < N; i++) {
		char user[16], label[16];
		snprintf(user, sizeof(user), "user%d", i % 7);
		snprintf(label, sizeof(label), "l%d", i);
		add(st, f, user, label, 100 + i, 0, "", ids[i]);
	}
	assert_int_equal(ig_apppass_store_snapshot(st, &snap), 0);
	assert_int_equal(ig_apppass_snapshot_count(snap), N);
	for (int i = 0; i < N; i++) {
		char user[16];
		snprintf(user, sizeof(user), "user%d", i % 7);
		const struct ig_apppass_snap_entry *e = ig_apppass_snapshot_find(snap, user, ids[i]);
		assert_non_null(e);
		assert_string_equal(e->id, ids[i]);
		snprintf(user, sizeof(user), "user%d", (i + 1) % 7);
		assert_null(ig_apppass_snapshot_find(snap, user, ids[i]));
	}
	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(st);
}

/*
 * Rows edited by hand into something unusable are left out and counted,
 * their ids taken as revoked; the rest of the store still loads (a bad
 * row must not stop revocations from reaching the proxy).
 */
static void
test_snapshot_invalid_rows(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	char a[6] = "aaaaa", b[6] = "bbbbb", c[6] = "ccccc", d[6] = "ddddd";
	struct ig_apppass_snapshot *snap;
	struct ig_apppass_new n = {
		.user = "alice", .label = "x", .networks = "", .phc = f->phc, .created = 1,
	};
	assert_int_equal(ig_apppass_store_add(st, &n, a), 0);
	assert_int_equal(ig_apppass_store_add(st, &n, b), 0);
	assert_int_equal(ig_apppass_store_add(st, &n, c), 0);
	assert_int_equal(ig_apppass_store_add(st, &n, d), 0);
	sql(f, "UPDATE app_passwords SET hash = 'plain-text' WHERE id = 'aaaaa';"
	    "UPDATE app_passwords SET hash = '$argon2id$v=19$m=2097152,t=1,p=1$"
	    "c29tZXNhbHRzb21lc2FsdA$dGhpcyBpcyAzMiBieXRlcyBvZiBvdXRwdXQgISEhISE' "
	    "WHERE id = 'bbbbb';"
	    "UPDATE app_passwords SET networks = '10.0.0.0/8 OR 1=1' WHERE id = 'ccccc';"
	    "INSERT INTO app_passwords (id, user, label, hash, created) "
	    "VALUES ('BAD!!', 'alice', 'x', 'h', 1);");
	assert_int_equal(ig_apppass_store_snapshot(st, &snap), 0);
	assert_int_equal(ig_apppass_snapshot_count(snap), 1);
	assert_int_equal(ig_apppass_snapshot_invalid(snap), 4);
	assert_non_null(ig_apppass_snapshot_find(snap, "alice", d));
	assert_null(ig_apppass_snapshot_find(snap, "alice", a));
	assert_null(ig_apppass_snapshot_find(snap, "alice", b));
	assert_null(ig_apppass_snapshot_find(snap, "alice", c));
	assert_true(ig_apppass_snapshot_is_revoked(snap, a));
	assert_true(ig_apppass_snapshot_is_revoked(snap, b));
	assert_true(ig_apppass_snapshot_is_revoked(snap, c));
	assert_int_equal(ig_apppass_snapshot_revoked(snap), 3); /* not "BAD!!" */
	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(st);
}

/*
 * The change check: another connection's add, revoke and revoke-all (and
 * a hand edit) are seen; a recorded use is not a change; our own
 * connection's changes count too.
 */
static void
test_changed(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *proxy = open_store(f, IG_APS_CREATE);
	struct ig_apppass_store *cli = open_store(f, 0);
	struct ig_apppass_snapshot *snap;
	char a[6], b[6];

	assert_int_equal(ig_apppass_store_snapshot(proxy, &snap), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);

#define RELOAD()                                                              \
	do {                                                                  \
		ig_apppass_snapshot_unref(snap);                              \
		assert_int_equal(ig_apppass_store_snapshot(proxy, &snap), 0); \
		assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);   \
	} while (0)

	add(cli, f, "alice", "phone", 100, 0, "", a);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1); /* until reloaded */
	RELOAD();
	assert_int_equal(ig_apppass_snapshot_count(snap), 1);

	/* A recorded use (by the other connection): not a change. */
	assert_int_equal(ig_apppass_store_record_use(cli, a, 150, "192.0.2.1"), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);
	assert_int_equal(ig_apppass_store_record_use(proxy, a, 151, "192.0.2.1"), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);

	assert_int_equal(ig_apppass_store_revoke(cli, a, 200, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	RELOAD();
	assert_true(ig_apppass_snapshot_is_revoked(snap, a));
	/* Revoking it again changes nothing. */
	assert_int_equal(ig_apppass_store_revoke(cli, a, 300, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);

	add(cli, f, "bob", "laptop", 100, 0, "", b);
	RELOAD();
	assert_int_equal(ig_apppass_store_revoke_user(cli, "bob", 400, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	RELOAD();
	assert_int_equal(ig_apppass_snapshot_count(snap), 0);

	/* A hand edit through sqlite3(1). */
	sql(f, "UPDATE app_passwords SET revoked = 0 WHERE user = 'bob'");
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	RELOAD();
	assert_non_null(ig_apppass_snapshot_find(snap, "bob", b));
	sql(f, "UPDATE app_passwords SET label = 'renamed' WHERE user = 'bob'");
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0); /* labels: not held */

	/* The proxy's own connection changing the store (data_version does
	   not move for it) is a change as well. */
	assert_int_equal(ig_apppass_store_revoke(proxy, b, 500, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	RELOAD();
	/* A snapshot from the other connection compares the same way. */
	struct ig_apppass_snapshot *other;
	assert_int_equal(ig_apppass_store_snapshot(cli, &other), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, other), 0);
	ig_apppass_snapshot_unref(other);
#undef RELOAD
	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(cli);
	ig_apppass_store_close(proxy);
}

/*
 * A corrupt store: snapshot and check fail with IG_EIO, and the last good
 * snapshot (taken before) still answers.
 */
static void
test_corrupt(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	struct ig_apppass_snapshot *good, *bad = NULL;
	char id[6];
	for (int i = 0; i < 40; i++)
		add(st, f, "alice", "a label long enough to fill some pages of the table", 100 + i,
		    0, "", id);
	assert_int_equal(ig_apppass_store_snapshot(st, &good), 0);
	ig_apppass_store_close(st); /* checkpoints the WAL into the file */

	/* Every page after the first (the schema) overwritten. */
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_true(sb.st_size > 8192);
	int fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	static uint8_t junk[4096];
	memset(junk, 0xa5, sizeof(junk));
	for (off_t o = 4096; o < sb.st_size; o += 4096)
		assert_int_equal(pwrite(fd, junk, sizeof(junk), o), (ssize_t)sizeof(junk));
	close(fd);

	char err[IG_APPPASS_ERR_MAX];
	st = NULL;
	int rc = ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err));
	if (rc == 0) {
		assert_int_equal(ig_apppass_store_snapshot(st, &bad), IG_EIO);
		assert_null(bad);
		assert_int_equal(ig_apppass_store_check(st), IG_EIO);
		assert_string_not_equal(ig_apppass_store_error(st), "");
		ig_apppass_store_close(st);
	} else {
		assert_int_equal(rc, IG_EIO);
	}
	assert_non_null(ig_apppass_snapshot_find(good, "alice", id));
	ig_apppass_snapshot_unref(good);
}

/* ---- TOTP enrolments ---- */

static const uint8_t totp_a[20] = "12345678901234567890"; /* RFC 6238's key */
static const uint8_t totp_b[32] = "a second secret, thirty-two byte";

/* user's secret, length and last step; asserts it is enrolled. */
static size_t
totp_get(struct ig_apppass_store *st, const char *user, uint8_t *out, uint64_t *last)
{
	size_t len = 99;
	int rc = ig_apppass_store_totp_get(st, user, out, &len, last);
	if (rc != 0)
		print_error("totp_get: %s\n", ig_apppass_store_error(st));
	assert_int_equal(rc, 0);
	return len;
}

static void
test_totp_enroll_get(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	uint8_t got[IG_APPPASS_TOTP_SECRET_MAX];
	uint64_t last = 99;
	size_t len = 99;

	assert_int_equal(ig_apppass_store_totp_get(st, "alice", got, &len, &last), IG_ENOTFOUND);
	assert_int_equal(len, 0);
	assert_int_equal(last, 99); /* untouched */

	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_a, sizeof(totp_a), 1000,
	    false), 0);
	assert_int_equal(totp_get(st, "alice", got, &last), sizeof(totp_a));
	assert_memory_equal(got, totp_a, sizeof(totp_a));
	assert_int_equal(last, 0);
	assert_int_equal(totp_get(st, "alice", got, NULL), sizeof(totp_a));
	assert_int_equal(ig_apppass_store_totp_get(st, "bob", got, &len, &last), IG_ENOTFOUND);

	/* Enrolled: refused without replace, and nothing changes. */
	assert_int_equal(ig_apppass_store_totp_accept(st, "alice", 50), 0);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_b, sizeof(totp_b), 2000,
	    false), IG_EEXIST);
	assert_int_equal(totp_get(st, "alice", got, &last), sizeof(totp_a));
	assert_memory_equal(got, totp_a, sizeof(totp_a));
	assert_int_equal(last, 50);

	/* Replaced: the new secret, no step used yet. */
	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_b, sizeof(totp_b), 2000,
	    true), 0);
	assert_int_equal(totp_get(st, "alice", got, &last), sizeof(totp_b));
	assert_memory_equal(got, totp_b, sizeof(totp_b));
	assert_int_equal(last, 0);
	/* replace on a user not enrolled enrols. */
	assert_int_equal(ig_apppass_store_totp_enroll(st, "bob", totp_a, 16, 2000, true), 0);
	assert_int_equal(totp_get(st, "bob", got, NULL), 16);

	/* Checks: user, secret length (16..64), time. */
	static const uint8_t big[IG_APPPASS_TOTP_SECRET_MAX + 1];
	const struct { const char *user; const uint8_t *secret; size_t len; int64_t now; } bad[] = {
		{ "", totp_a, 20, 1 },
		{ "car\rol", totp_a, 20, 1 },
		{ NULL, totp_a, 20, 1 },
		{ "carol", totp_a, 15, 1 },
		{ "carol", big, sizeof(big), 1 },
		{ "carol", NULL, 20, 1 },
		{ "carol", totp_a, 20, 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ig_apppass_store_totp_enroll(st, bad[i].user, bad[i].secret,
		    bad[i].len, bad[i].now, true), IG_EINVAL);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "carol", big, IG_APPPASS_TOTP_SECRET_MAX,
	    1, false), 0);
	assert_int_equal(totp_get(st, "carol", got, NULL), IG_APPPASS_TOTP_SECRET_MAX);

	/* A row edited by hand into a bad secret: refused as damaged. */
	sql(f, "UPDATE totp SET secret = x'0102' WHERE user = 'bob'");
	assert_int_equal(ig_apppass_store_totp_get(st, "bob", got, &len, &last), IG_EIO);
	assert_int_equal(len, 0);
	assert_non_null(strstr(ig_apppass_store_error(st), "damaged"));

	/* App passwords are untouched by all this. */
	struct rows r;
	assert_int_equal(list(st, NULL, &r), 0);
	ig_apppass_store_close(st);
}

/* A step is accepted once, and never one at or below the last accepted. */
static void
test_totp_accept(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	uint8_t got[IG_APPPASS_TOTP_SECRET_MAX];
	uint64_t last;

	assert_int_equal(ig_apppass_store_totp_accept(st, "alice", 100), IG_ENOTFOUND);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_a, sizeof(totp_a), 1000,
	    false), 0);
	assert_int_equal(ig_apppass_store_totp_accept(st, "alice", 0), IG_EINVAL);
	assert_int_equal(ig_apppass_store_totp_accept(st, "alice", (uint64_t)INT64_MAX + 1),
	    IG_EINVAL);

	static const struct { uint64_t step; int rc; uint64_t last; } rows[] = {
		{ 100, 0, 100 },
		{ 100, IG_EEXIST, 100 },   /* the same code again */
		{ 99, IG_EEXIST, 100 },    /* an earlier one */
		{ 1, IG_EEXIST, 100 },
		{ 101, 0, 101 },
		{ 103, 0, 103 },           /* steps may be skipped */
		{ 102, IG_EEXIST, 103 },
		{ (uint64_t)INT64_MAX, 0, (uint64_t)INT64_MAX },
		{ (uint64_t)INT64_MAX, IG_EEXIST, (uint64_t)INT64_MAX },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(ig_apppass_store_totp_accept(st, "alice", rows[i].step), rows[i].rc);
		totp_get(st, "alice", got, &last);
		assert_int_equal(last, rows[i].last);
	}
	assert_non_null(strstr(ig_apppass_store_error(st), "accepted already"));

	/* Two connections (two commands) accepting the same step: one wins,
	   whichever order they come in, and the other is told it is used. */
	struct ig_apppass_store *other = open_store(f, 0);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "bob", totp_b, sizeof(totp_b), 1000,
	    false), 0);
	assert_int_equal(ig_apppass_store_totp_accept(other, "bob", 500), 0);
	assert_int_equal(ig_apppass_store_totp_accept(st, "bob", 500), IG_EEXIST);
	assert_int_equal(ig_apppass_store_totp_accept(st, "bob", 501), 0);
	assert_int_equal(ig_apppass_store_totp_accept(other, "bob", 501), IG_EEXIST);
	/* Removed by the other one meanwhile: not found. */
	assert_int_equal(ig_apppass_store_totp_remove(other, "bob"), 0);
	assert_int_equal(ig_apppass_store_totp_accept(st, "bob", 502), IG_ENOTFOUND);
	ig_apppass_store_close(other);
	ig_apppass_store_close(st);
}

struct totp_rows {
	struct ig_apppass_totp_entry v[8];
	size_t n;
};

static int
totp_collect(const struct ig_apppass_totp_entry *e, void *arg)
{
	struct totp_rows *r = arg;
	assert_true(r->n < 8);
	r->v[r->n++] = *e;
	return 0;
}

static int
totp_stop(const struct ig_apppass_totp_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 42;
}

static void
test_totp_remove_list(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *st = open_store(f, IG_APS_CREATE);
	struct totp_rows r = { .n = 0 };
	size_t count = 99;
	uint8_t got[IG_APPPASS_TOTP_SECRET_MAX];
	size_t len;

	assert_int_equal(ig_apppass_store_totp_list(st, NULL, totp_collect, &r, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "carol", totp_a, 20, 3000, false), 0);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_b, 32, 1000, false), 0);
	assert_int_equal(ig_apppass_store_totp_enroll(st, "bob", totp_a, 20, 2000, false), 0);
	assert_int_equal(ig_apppass_store_totp_accept(st, "bob", 77), 0);

	assert_int_equal(ig_apppass_store_totp_list(st, NULL, totp_collect, &r, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(r.v[0].user, "alice");
	assert_int_equal(r.v[0].created, 1000);
	assert_int_equal(r.v[0].last_step, 0);
	assert_string_equal(r.v[1].user, "bob");
	assert_int_equal(r.v[1].last_step, 77);
	assert_string_equal(r.v[2].user, "carol");
	r.n = 0;
	assert_int_equal(ig_apppass_store_totp_list(st, "bob", totp_collect, &r, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(r.v[0].user, "bob");
	r.n = 0;
	assert_int_equal(ig_apppass_store_totp_list(st, "dave", totp_collect, &r, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(ig_apppass_store_totp_list(st, NULL, totp_stop, NULL, &count), 42);
	assert_int_equal(count, 1);

	assert_int_equal(ig_apppass_store_totp_remove(st, "bob"), 0);
	assert_int_equal(ig_apppass_store_totp_get(st, "bob", got, &len, NULL), IG_ENOTFOUND);
	assert_int_equal(ig_apppass_store_totp_remove(st, "bob"), IG_ENOTFOUND);
	assert_int_equal(ig_apppass_store_totp_accept(st, "bob", 78), IG_ENOTFOUND);
	r.n = 0;
	assert_int_equal(ig_apppass_store_totp_list(st, NULL, totp_collect, &r, &count), 0);
	assert_int_equal(count, 2);
	/* Enrolled again after a removal: from scratch. */
	assert_int_equal(ig_apppass_store_totp_enroll(st, "bob", totp_b, 32, 4000, false), 0);
	uint64_t last = 99;
	assert_int_equal(totp_get(st, "bob", got, &last), 32);
	assert_int_equal(last, 0);
	assert_int_equal(ig_apppass_store_check(st), 0);
	ig_apppass_store_close(st);
}

/*
 * Enrolments are no change for the proxy: whoever enrols, accepts or
 * removes, ig_apppass_store_changed() stays 0 and the snapshot's
 * generation does not move.
 */
static void
test_totp_not_a_change(void **state)
{
	struct fix *f = *state;
	struct ig_apppass_store *proxy = open_store(f, IG_APS_CREATE);
	struct ig_apppass_store *cli = open_store(f, 0);
	struct ig_apppass_snapshot *snap;
	char a[6];
	add(cli, f, "alice", "phone", 100, 0, "", a);
	assert_int_equal(ig_apppass_store_snapshot(proxy, &snap), 0);
	uint64_t gen = ig_apppass_snapshot_generation(snap);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);

	assert_int_equal(ig_apppass_store_totp_enroll(cli, "alice", totp_a, 20, 100, false), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);
	assert_int_equal(ig_apppass_store_totp_accept(cli, "alice", 5), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);
	assert_int_equal(ig_apppass_store_totp_enroll(cli, "alice", totp_b, 32, 200, true), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);
	assert_int_equal(ig_apppass_store_totp_remove(proxy, "alice"), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 0);

	struct ig_apppass_snapshot *again;
	assert_int_equal(ig_apppass_store_snapshot(proxy, &again), 0);
	assert_int_equal(ig_apppass_snapshot_generation(again), gen);
	assert_int_equal(ig_apppass_snapshot_count(again), 1);
	ig_apppass_snapshot_unref(again);
	/* An app password change is still seen after them. */
	assert_int_equal(ig_apppass_store_revoke(cli, a, 300, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(proxy, snap), 1);
	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(cli);
	ig_apppass_store_close(proxy);
}

/* ---- the upgrade from version 1 ---- */

/* What imapguard's first store (schema version 1) wrote, frozen here: the
 * upgrade must take such a file as it is. */
static const char schema_v1[] =
    "PRAGMA journal_mode = WAL;"
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

static int64_t
sql_int(const struct fix *f, const char *text)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, text, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
test_upgrade_from_v1(void **state)
{
	struct fix *f = *state;
	char sqltext[1024];

	/* A version 1 store with two rows, one revoked, one used. */
	sql(f, schema_v1);
	assert_int_equal(chmod(f->path, 0600), 0);
	snprintf(sqltext, sizeof(sqltext),
	    "INSERT INTO app_passwords (id, user, label, hash, created, networks) VALUES "
	    "('k7dq2', 'alice', 'phone', '%s', 100, '10.0.0.0/8');"
	    "INSERT INTO app_passwords (id, user, label, hash, created, revoked) VALUES "
	    "('m3h4x', 'bob', 'laptop', '%s', 200, 300);"
	    "UPDATE app_passwords SET last_used = 150, last_address = '192.0.2.1' "
	    "WHERE id = 'k7dq2';", f->phc, f->phc);
	sql(f, sqltext);
	int64_t gen = sql_int(f, "SELECT generation FROM store_state");
	assert_int_equal(gen, 2); /* two inserts; a recorded use does not count */

	/* The proxy's kind of open (no IG_APS_CREATE) upgrades it in place. */
	struct ig_apppass_store *st = open_store(f, 0);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), 2);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM totp"), 0);

	/* Every row as it was, the snapshot and its generation too. */
	struct rows r;
	assert_int_equal(list(st, NULL, &r), 2);
	assert_string_equal(r.v[0].id, "k7dq2");
	assert_string_equal(r.v[0].networks, "10.0.0.0/8");
	assert_int_equal(r.v[0].last_used, 150);
	assert_string_equal(r.v[0].last_address, "192.0.2.1");
	assert_int_equal(r.v[1].revoked, 300);
	struct ig_apppass_snapshot *snap;
	assert_int_equal(ig_apppass_store_snapshot(st, &snap), 0);
	assert_int_equal(ig_apppass_snapshot_generation(snap), (uint64_t)gen);
	assert_int_equal(ig_apppass_snapshot_count(snap), 1);
	assert_non_null(ig_apppass_snapshot_find(snap, "alice", "k7dq2"));
	assert_true(ig_apppass_snapshot_is_revoked(snap, "m3h4x"));
	assert_int_equal(ig_apppass_store_changed(st, snap), 0);

	/* The triggers still count app password changes, and only those. */
	assert_int_equal(ig_apppass_store_totp_enroll(st, "alice", totp_a, 20, 400, false), 0);
	assert_int_equal(ig_apppass_store_changed(st, snap), 0);
	assert_int_equal(ig_apppass_store_revoke(st, "k7dq2", 500, NULL, NULL), 0);
	assert_int_equal(ig_apppass_store_changed(st, snap), 1);
	ig_apppass_snapshot_unref(snap);
	assert_int_equal(ig_apppass_store_check(st), 0);
	ig_apppass_store_close(st);

	/* Opened again: already version 2, the enrolment kept. */
	st = open_store(f, IG_APS_CREATE);
	uint8_t got[IG_APPPASS_TOTP_SECRET_MAX];
	assert_int_equal(totp_get(st, "alice", got, NULL), 20);
	assert_memory_equal(got, totp_a, 20);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), 2);
	ig_apppass_store_close(st);

	/* A version 1 store that somehow has a table named totp already (a
	   hand edit): the upgrade fails whole, the file stays version 1. */
	fix_clean(f);
	sql(f, schema_v1);
	sql(f, "CREATE TABLE totp (x)");
	assert_int_equal(chmod(f->path, 0600), 0);
	char err[IG_APPPASS_ERR_MAX];
	st = NULL;
	assert_int_equal(ig_apppass_store_open(f->path, 0, BUSY_MS, &st, err, sizeof(err)),
	    IG_EIO);
	assert_null(st);
	assert_non_null(strstr(err, "upgrade the schema from version 1"));
	assert_int_equal(sql_int(f, "PRAGMA user_version"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_open_create, each),
		cmocka_unit_test_setup(test_open_refusals, each),
		cmocka_unit_test_setup(test_add_list, each),
		cmocka_unit_test_setup(test_list_stops, each),
		cmocka_unit_test_setup(test_add_checks, each),
		cmocka_unit_test_setup(test_add_id_collision, each),
		cmocka_unit_test_setup(test_revoke, each),
		cmocka_unit_test_setup(test_revoke_user, each),
		cmocka_unit_test_setup(test_record_use, each),
		cmocka_unit_test_setup(test_snapshot, each),
		cmocka_unit_test_setup(test_snapshot_many, each),
		cmocka_unit_test_setup(test_snapshot_invalid_rows, each),
		cmocka_unit_test_setup(test_changed, each),
		cmocka_unit_test_setup(test_corrupt, each),
		cmocka_unit_test_setup(test_totp_enroll_get, each),
		cmocka_unit_test_setup(test_totp_accept, each),
		cmocka_unit_test_setup(test_totp_remove_list, each),
		cmocka_unit_test_setup(test_totp_not_a_change, each),
		cmocka_unit_test_setup(test_upgrade_from_v1, each),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
