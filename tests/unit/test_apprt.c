/*
 * Unit tests for proxy/apprt.c on a real libuv loop and a real store: the
 * first poll of a missing store, the store appearing, a change seen by the
 * next poll with the changed callback (old and new snapshots), a revoked
 * password gone from the new snapshot, verifications on the thread pool
 * (right and wrong secrets), the outstanding cap, uses queued and written
 * (by a poll, and by the stop), and a file put in the store's place read
 * whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <uv.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "apppass/store.h"
#include "config/config.h"
#include "proxy/apprt.h"
#include "util/err.h"

#define SECRET "xm9vhpt4wae3nbzr8fcu"
#define DEADLINE_MS 10000u

static const struct ig_apppass_hash_params cheap = { 64, 1, 1 };

struct fix {
	char dir[64];
	char path[128];
	char phc[IG_APPPASS_PHC_MAX + 1];
	uv_loop_t loop;
	struct ig_apppass_conf conf;
	struct ig_apprt *rt;
	unsigned changes;            /* changed callbacks */
	bool last_old;               /* the last one had an old snapshot */
	size_t last_count;           /* rows of its new one */
};

static void
rm_store(const char *path)
{
	char p[160];
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/igaprtXXXXXX");
	if (mkdtemp(f->dir) == NULL ||
	    ig_apppass_hash(&cheap, SECRET, strlen(SECRET), f->phc, sizeof(f->phc)) != 0 ||
	    uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/ap.db", f->dir);
	f->conf.store = f->path;
	f->conf.max_concurrent_verifications = 1;
	*state = f;
	return 0;
}

static void
walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	ig_apprt_stop(f->rt);
	uv_walk(&f->loop, walk_close, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop);
	ig_apprt_free(f->rt);
	rm_store(f->path);
	rmdir(f->dir);
	free(f);
	return rc;
}

static void
on_changed(void *arg, const struct ig_apppass_snapshot *old_snap,
    const struct ig_apppass_snapshot *new_snap)
{
	struct fix *f = arg;
	f->changes++;
	f->last_old = old_snap != NULL;
	f->last_count = ig_apppass_snapshot_count(new_snap);
}

/* Runs the loop until *flag reaches want (or fails at the deadline). */
static void
run_until(struct fix *f, const unsigned *flag, unsigned want)
{
	uint64_t end = uv_now(&f->loop) + DEADLINE_MS;
	while (*flag < want) {
		assert_true(uv_now(&f->loop) < end);
		uv_run(&f->loop, UV_RUN_ONCE);
		uv_update_time(&f->loop);
	}
}

/* Adds a row for user with a new id through a connection of its own. */
static void
add_row(struct fix *f, const char *user, int64_t expires, char id[IG_APPPASS_ID_LEN + 1])
{
	struct ig_apppass_store *st;
	assert_int_equal(ig_apppass_store_open(f->path, IG_APS_CREATE, 2000, &st, NULL, 0), 0);
	assert_int_equal(ig_apppass_generate_id(id), 0);
	struct ig_apppass_new n = { user, "label", "", f->phc, 1000, expires };
	assert_int_equal(ig_apppass_store_add(st, &n, id), 0);
	ig_apppass_store_close(st);
}

static void
start(struct fix *f)
{
	assert_int_equal(ig_apprt_start(&f->loop, &f->conf, on_changed, f, &f->rt), 0);
	uint64_t end = uv_now(&f->loop) + DEADLINE_MS;
	while (!ig_apprt_polled(f->rt)) {
		assert_true(uv_now(&f->loop) < end);
		uv_run(&f->loop, UV_RUN_ONCE);
		uv_update_time(&f->loop);
	}
}

static void
test_missing_store_then_created(void **state)
{
	struct fix *f = *state;
	start(f);
	/* No file: polled, nothing in force. */
	assert_null(ig_apprt_snapshot(f->rt));
	struct ig_apprt_stats st;
	ig_apprt_stats(f->rt, &st);
	assert_false(st.loaded);
	assert_int_equal(st.load_errors, 1);
	/* Created while running: the next poll loads it. */
	char id[IG_APPPASS_ID_LEN + 1];
	add_row(f, "alice", 0, id);
	run_until(f, &f->changes, 1);
	assert_false(f->last_old);
	assert_int_equal(f->last_count, 1);
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(f->rt);
	assert_non_null(snap);
	assert_non_null(ig_apppass_snapshot_find(snap, "alice", id));
	ig_apppass_snapshot_unref(snap);
}

static void
test_change_and_revoke(void **state)
{
	struct fix *f = *state;
	char a[IG_APPPASS_ID_LEN + 1], b[IG_APPPASS_ID_LEN + 1];
	add_row(f, "alice", 0, a);
	start(f);
	assert_int_equal(f->changes, 1);
	add_row(f, "alice", 0, b);
	run_until(f, &f->changes, 2);
	assert_true(f->last_old);
	assert_int_equal(f->last_count, 2);
	struct ig_apppass_store *st;
	assert_int_equal(ig_apppass_store_open(f->path, 0, 2000, &st, NULL, 0), 0);
	assert_int_equal(ig_apppass_store_revoke(st, a, 2000, NULL, NULL), 0);
	ig_apppass_store_close(st);
	run_until(f, &f->changes, 3);
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(f->rt);
	assert_null(ig_apppass_snapshot_find(snap, "alice", a));
	assert_true(ig_apppass_snapshot_is_revoked(snap, a));
	assert_non_null(ig_apppass_snapshot_find(snap, "alice", b));
	ig_apppass_snapshot_unref(snap);
	struct ig_apprt_stats s;
	ig_apprt_stats(f->rt, &s);
	assert_true(s.loaded);
	assert_int_equal(s.active, 1);
	assert_int_equal(s.revoked, 1);
	assert_int_equal(s.reloads, 3);
}

struct vres {
	unsigned done;
	int rc;
	bool match;
};

static void
after_verify(uv_work_t *req, int status)
{
	struct ig_apprt_verify *v = (struct ig_apprt_verify *)((char *)req -
	    offsetof(struct ig_apprt_verify, req));
	struct vres *r = req->data;
	assert_int_equal(status, 0);
	r->rc = v->rc;
	r->match = v->match;
	/* The secret was wiped on the pool thread. */
	for (size_t i = 0; i < sizeof(v->secret); i++)
		assert_int_equal(v->secret[i], 0);
	ig_apprt_verify_release(v);
	r->done++;
}

static void
verify_one(struct fix *f, const char *id, const char *secret, struct vres *res)
{
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(f->rt);
	const struct ig_apppass_snap_entry *e = ig_apppass_snapshot_find(snap, "alice", id);
	assert_non_null(e);
	struct ig_apppass_pw pw;
	memcpy(pw.id, id, sizeof(pw.id));
	snprintf(pw.secret, sizeof(pw.secret), "%s", secret);
	struct ig_apprt_verify v;
	memset(&v, 0, sizeof(v));
	v.req.data = res;
	assert_true(ig_apprt_verify_reserve(f->rt));
	assert_int_equal(ig_apprt_verify(f->rt, &f->loop, &v, snap, e, &pw, after_verify), 0);
	ig_apppass_snapshot_unref(snap); /* v holds its own */
	unsigned want = res->done + 1;
	run_until(f, &res->done, want);
}

static void
test_verify_on_the_pool(void **state)
{
	struct fix *f = *state;
	char id[IG_APPPASS_ID_LEN + 1];
	add_row(f, "alice", 0, id);
	start(f);
	struct vres res = { 0, -1, false };
	verify_one(f, id, SECRET, &res);
	assert_int_equal(res.rc, 0);
	assert_true(res.match);
	verify_one(f, id, "22222222222222222222", &res);
	assert_int_equal(res.rc, 0);
	assert_false(res.match);
	struct ig_apprt_stats s;
	ig_apprt_stats(f->rt, &s);
	assert_int_equal(s.verifications, 2);
	assert_int_equal(s.outstanding, 0);
}

static void
test_outstanding_cap(void **state)
{
	struct fix *f = *state;
	start(f);
	/* One slot: IG_APPRT_QUEUE_FACTOR outstanding at most. */
	for (unsigned i = 0; i < IG_APPRT_QUEUE_FACTOR; i++)
		assert_true(ig_apprt_verify_reserve(f->rt));
	assert_false(ig_apprt_verify_reserve(f->rt));
	struct ig_apprt_stats s;
	ig_apprt_stats(f->rt, &s);
	assert_int_equal(s.outstanding, IG_APPRT_QUEUE_FACTOR);
	/* A release gives one place back. */
	struct ig_apprt_verify v;
	memset(&v, 0, sizeof(v));
	v.rt = f->rt;
	ig_apprt_verify_release(&v);
	assert_true(ig_apprt_verify_reserve(f->rt));
	for (unsigned i = 0; i < IG_APPRT_QUEUE_FACTOR; i++) {
		memset(&v, 0, sizeof(v));
		v.rt = f->rt;
		ig_apprt_verify_release(&v);
	}
	ig_apprt_stats(f->rt, &s);
	assert_int_equal(s.outstanding, 0);
}

static int
find_row(const struct ig_apppass_entry *e, void *arg)
{
	*(struct ig_apppass_entry *)arg = *e;
	return 0;
}

static void
last_use(struct fix *f, struct ig_apppass_entry *e)
{
	struct ig_apppass_store *st;
	assert_int_equal(ig_apppass_store_open(f->path, 0, 2000, &st, NULL, 0), 0);
	memset(e, 0, sizeof(*e));
	assert_int_equal(ig_apppass_store_list(st, "alice", find_row, e, NULL), 0);
	ig_apppass_store_close(st);
}

static void
test_uses_written_by_a_poll_and_by_stop(void **state)
{
	struct fix *f = *state;
	char id[IG_APPPASS_ID_LEN + 1];
	add_row(f, "alice", 0, id);
	start(f);
	ig_apprt_record_use(f->rt, id, 5000, "192.0.2.7");
	/* A use is no change: wait for the poll by a change made after it. */
	char other[IG_APPPASS_ID_LEN + 1];
	add_row(f, "bob", 0, other);
	run_until(f, &f->changes, 2);
	struct ig_apppass_entry e;
	last_use(f, &e);
	assert_int_equal(e.last_used, 5000);
	assert_string_equal(e.last_address, "192.0.2.7");
	/* The last ones are written at the stop. */
	ig_apprt_record_use(f->rt, id, 6000, "2001:db8::9");
	ig_apprt_stop(f->rt);
	last_use(f, &e);
	assert_int_equal(e.last_used, 6000);
	assert_string_equal(e.last_address, "2001:db8::9");
	/* After the stop, nothing is queued. */
	ig_apprt_record_use(f->rt, id, 7000, "192.0.2.8");
	struct ig_apprt_stats s;
	ig_apprt_stats(f->rt, &s);
	assert_int_equal(s.uses_dropped, 1);
}

static void
test_a_file_put_in_place_is_read_whole(void **state)
{
	struct fix *f = *state;
	char a[IG_APPPASS_ID_LEN + 1], b[IG_APPPASS_ID_LEN + 1];
	add_row(f, "alice", 0, a);
	start(f);
	/* Another store with another row, renamed over the first. */
	char saved[sizeof(f->path)];
	memcpy(saved, f->path, sizeof(saved));
	snprintf(f->path, sizeof(f->path), "%s/other.db", f->dir);
	add_row(f, "alice", 0, b);
	char path2[sizeof(f->path)];
	memcpy(path2, f->path, sizeof(path2));
	memcpy(f->path, saved, sizeof(saved));
	assert_int_equal(rename(path2, f->path), 0);
	run_until(f, &f->changes, 2);
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(f->rt);
	assert_null(ig_apppass_snapshot_find(snap, "alice", a));
	assert_non_null(ig_apppass_snapshot_find(snap, "alice", b));
	ig_apppass_snapshot_unref(snap);
	rm_store(path2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_store_then_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_and_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_on_the_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outstanding_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uses_written_by_a_poll_and_by_stop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_a_file_put_in_place_is_read_whole, setup,
		    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
