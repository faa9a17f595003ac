/*
 * Crash safety of apppass/store.c: a child process changes the store in a
 * loop (adds, revocations of one row and of a user's all, recorded uses)
 * and is killed with SIGKILL at random moments, many times, until a
 * deadline. After each kill the parent opens the store with a fresh
 * connection, runs PRAGMA integrity_check, and compares every row with a
 * model of the change sequence: the store must hold exactly the state
 * before the interrupted change or exactly the state after it, never
 * anything else. A connection kept open across all the kills (the proxy's
 * view) must see each change through ig_apppass_store_changed() and load
 * snapshots that agree with the model.
 *
 * The child is this program run again (--child): a fresh process image,
 * since SQLite's in-memory lock bookkeeping must not cross a fork while
 * the parent holds its own connection. It tells where it is through a pipe, "starting change k" before
 * it begins change k: when the parent reads that, changes 0..k-1 have
 * committed. The parent waits for a random change to start, lets a random
 * 0-3 ms pass so the kill lands anywhere inside a transaction (including
 * its commit's fsync), kills, and reads what is left in the pipe: the last
 * "starting" message names the change that was in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "apppass/store.h"
#include "util/err.h"

#define DEADLINE_S 10.0      /* stop killing after this (ctest allows 120) */
#define KILLS_MAX 250        /* or after this many kills */
#define KILLS_MIN 30         /* fewer before the deadline: the test fails */
#define CHANGES_MAX 4000     /* changes the model follows */
#define BUSY_MS 5000u

/* ---- the change sequence and its model ---- */

enum op { OP_ADD, OP_REVOKE, OP_REVOKE_USER, OP_USE };

/* Change k: mostly adds; revocations and uses of rows added earlier. */
static enum op
op_of(int k)
{
	switch (k % 10) {
	case 9: return OP_REVOKE_USER;
	case 4: case 7: return OP_USE;         /* of row k - 1 (an add) */
	case 5: return OP_REVOKE;              /* of row k - 2 (an add) */
	default: return OP_ADD;
	}
}

static const char *
user_of(int k)
{
	static const char *const users[] = { "alice", "bob", "carol" };
	return users[k % 3];
}

/* One row of the model, by label (the number of the change that added it). */
struct mrow {
	bool present;
	const char *user;
	int64_t created, expires, revoked, last_used;
	char address[32];
	char networks[16];
};

/* The store's rows after changes 0..n-1. */
static void
model(int n, struct mrow *m)
{
	memset(m, 0, sizeof(*m) * CHANGES_MAX);
	for (int k = 0; k < n; k++) {
		switch (op_of(k)) {
		case OP_ADD:
			m[k].present = true;
			m[k].user = user_of(k);
			m[k].created = 1000 + k;
			m[k].expires = k % 2 ? 1000 + k + 86400 : 0;
			snprintf(m[k].networks, sizeof(m[k].networks), "%s", k % 4 == 1 ?
			    "10.0.0.0/8" : "");
			break;
		case OP_REVOKE:
			if (m[k - 2].revoked == 0)
				m[k - 2].revoked = 4000 + k;
			break;
		case OP_REVOKE_USER:
			for (int j = 0; j < k; j++)
				if (m[j].present && strcmp(m[j].user, user_of(k)) == 0 &&
				    m[j].revoked == 0)
					m[j].revoked = 2000 + k;
			break;
		case OP_USE:
			m[k - 1].last_used = 3000 + k;
			snprintf(m[k - 1].address, sizeof(m[k - 1].address), "192.0.2.%d", k % 250);
			break;
		}
	}
}

/* ---- the child ---- */

struct msg {
	int32_t k;                       /* change number, or -1: failure */
	int32_t line;
};

static void
child_say(int fd, int32_t k, int32_t line)
{
	struct msg m = { k, line };
	if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
		_exit(4);
}

#define CHILD_CHECK(x) do { if (!(x)) { child_say(fd, -1, __LINE__); _exit(3); } } while (0)

static int
child_collect(const struct ig_apppass_entry *e, void *arg)
{
	char (*ids)[IG_APPPASS_ID_LEN + 1] = arg;
	int k = atoi(e->label);
	if (k >= 0 && k < CHANGES_MAX)
		memcpy(ids[k], e->id, IG_APPPASS_ID_LEN + 1);
	return 0;
}

/* Runs changes start, start + 1, ... until killed. */
static void __attribute__((noreturn))
child(const char *path, const char *phc, int start, int fd)
{
	static char ids[CHANGES_MAX][IG_APPPASS_ID_LEN + 1];
	struct ig_apppass_store *st = NULL;
	char err[IG_APPPASS_ERR_MAX];
	CHILD_CHECK(ig_apppass_store_open(path, 0, BUSY_MS, &st, err, sizeof(err)) == 0);
	CHILD_CHECK(ig_apppass_store_list(st, NULL, child_collect, ids, NULL) == 0);
	for (int k = start; k < CHANGES_MAX; k++) {
		char label[16], addr[32];
		int rc;
		child_say(fd, k, 0);
		switch (op_of(k)) {
		case OP_ADD: {
			struct ig_apppass_new n = {
				.user = user_of(k), .label = label, .phc = phc,
				.networks = k % 4 == 1 ? "10.0.0.0/8" : "",
				.created = 1000 + k, .expires = k % 2 ? 1000 + k + 86400 : 0,
			};
			snprintf(label, sizeof(label), "%d", k);
			CHILD_CHECK(ig_apppass_generate_id(ids[k]) == 0);
			CHILD_CHECK(ig_apppass_store_add(st, &n, ids[k]) == 0);
			break;
		}
		case OP_REVOKE:
			CHILD_CHECK(ig_apppass_store_revoke(st, ids[k - 2], 4000 + k, NULL, NULL) == 0);
			break;
		case OP_REVOKE_USER:
			rc = ig_apppass_store_revoke_user(st, user_of(k), 2000 + k, NULL);
			CHILD_CHECK(rc == 0 || rc == IG_ENOTFOUND);
			break;
		case OP_USE:
			snprintf(addr, sizeof(addr), "192.0.2.%d", k % 250);
			CHILD_CHECK(ig_apppass_store_record_use(st, ids[k - 1], 3000 + k, addr) == 0);
			break;
		}
	}
	_exit(0);
}

/* ---- the parent's checks ---- */

struct got {
	struct ig_apppass_entry *v;
	size_t n;
};

static int
got_collect(const struct ig_apppass_entry *e, void *arg)
{
	struct got *g = arg;
	g->v[g->n++] = *e;
	return g->n < CHANGES_MAX ? 0 : 1;
}

/* True when the store's rows are exactly the model's. */
static bool
rows_match(const struct got *g, const struct mrow *m, int n)
{
	size_t present = 0;
	for (int k = 0; k < n; k++)
		present += m[k].present;
	if (g->n != present)
		return false;
	for (size_t i = 0; i < g->n; i++) {
		const struct ig_apppass_entry *e = &g->v[i];
		char *end;
		long k = strtol(e->label, &end, 10);
		if (*end != '\0' || k < 0 || k >= n || !m[k].present)
			return false;
		const struct mrow *r = &m[k];
		if (strcmp(e->user, r->user) != 0 || e->created != r->created ||
		    e->expires != r->expires || e->revoked != r->revoked ||
		    e->last_used != r->last_used || strcmp(e->last_address, r->address) != 0 ||
		    strcmp(e->networks, r->networks) != 0 || !ig_apppass_id_valid(e->id))
			return false;
	}
	return true;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t
rnd(uint32_t n)
{
	uint32_t r;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		abort();
	return r % n;
}

static void
test_kill_anywhere(void **state)
{
	(void)state;
	char dir[] = "/tmp/igapcXXXXXX", path[64], phc[IG_APPPASS_PHC_MAX + 1];
	static const struct ig_apppass_hash_params cheap = { 64, 1, 1 };
	struct mrow *old = calloc(CHANGES_MAX, sizeof(*old));
	struct mrow *new = calloc(CHANGES_MAX, sizeof(*new));
	struct got g = { calloc(CHANGES_MAX, sizeof(*g.v)), 0 };
	assert_non_null(old);
	assert_non_null(new);
	assert_non_null(g.v);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ap.db", dir);
	assert_int_equal(ig_apppass_hash(&cheap, "xm9vhpt4wae3nbzr8fcu", 20, phc, sizeof(phc)), 0);

	/* The proxy's connection, open across every kill. */
	struct ig_apppass_store *watch = NULL;
	struct ig_apppass_snapshot *snap = NULL;
	char err[IG_APPPASS_ERR_MAX];
	assert_int_equal(ig_apppass_store_open(path, IG_APS_CREATE, BUSY_MS, &watch, err,
	    sizeof(err)), 0);
	assert_int_equal(ig_apppass_store_snapshot(watch, &snap), 0);

	int committed = 0, kills = 0, saw_old = 0, saw_new = 0, reloads = 0;
	double deadline = now_s() + DEADLINE_S;
	while (kills < KILLS_MAX && now_s() < deadline && committed < CHANGES_MAX - 20) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* A fresh process image: SQLite's state must not cross a
			   fork (the parent holds a connection to the same file). */
			char start[16], fd[16];
			close(p[0]);
			snprintf(start, sizeof(start), "%d", committed);
			snprintf(fd, sizeof(fd), "%d", p[1]);
			execl("/proc/self/exe", "test_apppass_crash", "--child", path, phc, start, fd,
			    (char *)NULL);
			_exit(5);
		}
		close(p[1]);
		/* Wait for a random change (0..7 after the first) to start. */
		int target = committed + (int)rnd(8), last = -1;
		struct msg m;
		while (last < target) {
			ssize_t r = read(p[0], &m, sizeof(m));
			if (r != (ssize_t)sizeof(m) || m.k < 0)
				fail_msg("child failed at line %d (read %zd)", r > 0 ? m.line : 0, r);
			last = m.k;
		}
		struct timespec delay = { 0, (long)rnd(3000) * 1000 };
		nanosleep(&delay, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		/* What it said before dying: the last change it started. */
		ssize_t r;
		while ((r = read(p[0], &m, sizeof(m))) == (ssize_t)sizeof(m)) {
			if (m.k < 0)
				fail_msg("child failed at line %d", m.line);
			last = m.k;
		}
		close(p[0]);
		kills++;

		/* A fresh connection: sound, and the old or the new state. */
		struct ig_apppass_store *st = NULL;
		int rc = ig_apppass_store_open(path, 0, BUSY_MS, &st, err, sizeof(err));
		if (rc != 0)
			fail_msg("open after kill %d: %s", kills, err);
		rc = ig_apppass_store_check(st);
		if (rc != 0)
			fail_msg("integrity after kill %d: %s", kills, ig_apppass_store_error(st));
		g.n = 0;
		assert_int_equal(ig_apppass_store_list(st, NULL, got_collect, &g, NULL), 0);
		model(last, old);
		model(last + 1, new);
		bool is_old = rows_match(&g, old, last), is_new = rows_match(&g, new, last + 1);
		if (!is_old && !is_new)
			fail_msg("kill %d during change %d: the store is neither the state before "
			    "it nor the one after it (%zu rows)", kills, last, g.n);
		/* (A change that alters nothing matches both: count it as old.) */
		saw_old += is_old;
		saw_new += !is_old;
		committed = is_old ? last : last + 1;
		struct ig_apppass_snapshot *fresh;
		assert_int_equal(ig_apppass_store_snapshot(st, &fresh), 0);
		assert_int_equal(ig_apppass_snapshot_invalid(fresh), 0);
		ig_apppass_store_close(st);

		/* The kept-open connection: a change since its snapshot is seen,
		   and its reloaded snapshot is the fresh one. */
		const struct mrow *mm = is_old ? old : new;
		size_t usable = 0, revoked = 0;
		for (int k = 0; k < committed; k++) {
			usable += mm[k].present && mm[k].revoked == 0;
			revoked += mm[k].present && mm[k].revoked != 0;
		}
		rc = ig_apppass_store_changed(watch, snap);
		assert_true(rc == 0 || rc == 1);
		if (rc == 1) {
			ig_apppass_snapshot_unref(snap);
			assert_int_equal(ig_apppass_store_snapshot(watch, &snap), 0);
			reloads++;
		}
		assert_true(ig_apppass_snapshot_generation(snap) ==
		    ig_apppass_snapshot_generation(fresh));
		assert_int_equal(ig_apppass_snapshot_count(snap), usable);
		assert_int_equal(ig_apppass_snapshot_revoked(snap), revoked);
		ig_apppass_snapshot_unref(fresh);
	}
	print_message("%d kills, %d changes committed: %d left the state before the change "
	    "in flight, %d the state after it; %d snapshot reloads\n", kills, committed,
	    saw_old, saw_new, reloads);
	assert_true(kills >= KILLS_MIN);
	assert_true(reloads > 0);

	ig_apppass_snapshot_unref(snap);
	ig_apppass_store_close(watch);
	char f[96];
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(f, sizeof(f), "%s%s", path, sfx[i]);
		unlink(f);
	}
	assert_int_equal(rmdir(dir), 0);
	free(old);
	free(new);
	free(g.v);
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "--child") == 0)
		child(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_anywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
