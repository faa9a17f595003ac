/*
 * App passwords at run time: the store's poll, the current snapshot, the
 * verifications' cap and the queued uses (see proxy/apprt.h).
 */
#include "proxy/apprt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/platform_util.h>

#include "apppass/hash.h"
#include "config/config.h"
#include "util/err.h"
#include "util/log.h"

/* One queued use. */
struct apprt_use {
	char id[IG_APPPASS_ID_LEN + 1];
	char address[IG_APPPASS_ADDRESS_MAX + 1];
	int64_t when;
};

struct ig_apprt {
	uv_loop_t *loop;                 /* the main loop */
	char *path;                      /* app_passwords.store (owned) */
	ig_apprt_changed_fn *cb;
	void *cb_arg;
	uv_timer_t timer;
	bool timer_on;
	atomic_bool stopping;          /* set once, by ig_apprt_stop() */

	/* Under store_mu (pool threads; ig_apprt_stop()). */
	pthread_mutex_t store_mu;
	struct ig_apppass_store *st;     /* NULL until the store could be opened */
	dev_t st_dev;                    /* the file it opened: a file put in */
	ino_t st_ino;                    /* its place is opened again */

	/* Under snap_mu. */
	pthread_mutex_t snap_mu;
	struct ig_apppass_snapshot *snap;/* current, or NULL */
	struct apprt_use *uses;          /* queued, IG_APPRT_USES_MAX */
	size_t nuses;
	uint64_t uses_dropped;
	uint64_t reloads, load_errors;
	uint64_t verify_ns, verifications;

	/* The poll in flight (main loop; the pool thread while it runs). */
	uv_work_t poll_req;
	bool poll_busy;
	bool polled;                     /* a poll has completed */
	struct apprt_use *poll_uses;     /* taken from uses for this poll */
	size_t poll_nuses;
	struct ig_apppass_snapshot *poll_cur; /* the snapshot it compares with */
	struct ig_apppass_snapshot *poll_new; /* its result, or NULL */
	char poll_err[IG_APPPASS_ERR_MAX];    /* "" when it went well */
	bool poll_missing;                    /* ... the error: no file yet */
	bool reopened;                        /* (pool) the store was opened again:
	                                         the next snapshot is read whole */
	bool was_missing;                     /* a poll found no file and no
	                                         snapshot has been loaded since */
	char logged_err[IG_APPPASS_ERR_MAX];  /* the last error logged */

	/* Verifications: outstanding ones, and slots for the hash. */
	atomic_uint outstanding;
	pthread_mutex_t slot_mu;
	pthread_cond_t slot_cv;
	unsigned slots_busy;
	unsigned slots_max;              /* at start (the pool's size follows it) */
};

/* ---- the poll ---------------------------------------------------------- */

/* On a pool thread, under store_mu: opens the store if it is not open. */
static bool
apprt_open(struct ig_apprt *r)
{
	struct stat sb;
	if (r->st != NULL) {
		/* Still the file at the path? (A backup restored over it, a
		   store moved in, the file removed: open what is there now.) */
		if (stat(r->path, &sb) == 0 && sb.st_dev == r->st_dev && sb.st_ino == r->st_ino)
			return true;
		ig_apppass_store_close(r->st);
		r->st = NULL;
		r->reopened = true;
	}
	char err[IG_APPPASS_ERR_MAX] = "";
	int rc = ig_apppass_store_open(r->path, 0, IG_APPRT_BUSY_MS, &r->st, err, sizeof(err));
	if (rc == 0 && stat(r->path, &sb) == 0) {
		r->st_dev = sb.st_dev;
		r->st_ino = sb.st_ino;
		return true;
	}
	if (rc == 0) {
		/* (gone again between the open and the stat) */
		ig_apppass_store_close(r->st);
		rc = IG_ENOTFOUND;
	}
	r->st = NULL;
	r->poll_missing = rc == IG_ENOTFOUND;
	if (rc == IG_ENOTFOUND)
		snprintf(r->poll_err, sizeof(r->poll_err), "no store yet (created by the first "
		    "'imapguard apppass add')");
	else
		snprintf(r->poll_err, sizeof(r->poll_err), "%s", err[0] != '\0' ? err :
		    ig_strerror(rc));
	return false;
}

/* On a pool thread: records the uses, then looks for a change. */
static void
apprt_poll_work(uv_work_t *req)
{
	struct ig_apprt *r = req->data;
	pthread_mutex_lock(&r->store_mu);
	if (r->stopping || !apprt_open(r)) {
		pthread_mutex_unlock(&r->store_mu);
		return;
	}
	for (size_t i = 0; i < r->poll_nuses; i++) {
		const struct apprt_use *u = &r->poll_uses[i];
		/* A use of a row deleted by hand (IG_ENOTFOUND) is nobody's. */
		int rc = ig_apppass_store_record_use(r->st, u->id, u->when, u->address);
		if (rc != 0 && rc != IG_ENOTFOUND) {
			log_warn("event=apppass-use-not-recorded id=%s error=\"%s\"", u->id,
			    ig_apppass_store_error(r->st));
			break;
		}
	}
	/* Another file than the snapshot's: read it whole. */
	int changed = r->poll_cur == NULL || r->reopened ? 1 :
	    ig_apppass_store_changed(r->st, r->poll_cur);
	if (changed == 1 && ig_apppass_store_snapshot(r->st, &r->poll_new) != 0) {
		r->poll_new = NULL;
		changed = IG_EIO;
	}
	if (changed >= 0)
		r->reopened = false;
	if (changed < 0) {
		snprintf(r->poll_err, sizeof(r->poll_err), "%s", ig_apppass_store_error(r->st));
		if (r->poll_err[0] == '\0')
			snprintf(r->poll_err, sizeof(r->poll_err), "%s", ig_strerror(changed));
		/* Open it again next time: the file may have been replaced. */
		ig_apppass_store_close(r->st);
		r->st = NULL;
	}
	pthread_mutex_unlock(&r->store_mu);
}

/*
 * Logs a new snapshot: what was issued and revoked since the one it
 * replaces. The first snapshot of a store that existed at start lists
 * nothing (those passwords were issued before); the first one of a store
 * created while the proxy ran lists everything in it.
 */
static void
apprt_log_change(const struct ig_apppass_snapshot *old, const struct ig_apppass_snapshot *snap,
    bool created)
{
	size_t added = 0, revoked = 0;
	for (size_t i = 0; i < ig_apppass_snapshot_count(snap); i++) {
		const struct ig_apppass_snap_entry *e = ig_apppass_snapshot_at(snap, i);
		if (old == NULL || ig_apppass_snapshot_find(old, e->user, e->id) == NULL) {
			if (old != NULL || created)
				log_info("event=apppass-issued id=%s user=%s expires=%lld from=%s",
				    e->id, e->user, (long long)e->expires,
				    e->networks[0] != '\0' ? e->networks : "anywhere");
			added++;
		}
	}
	if (old != NULL) {
		for (size_t i = 0; i < ig_apppass_snapshot_count(old); i++) {
			const struct ig_apppass_snap_entry *e = ig_apppass_snapshot_at(old, i);
			if (ig_apppass_snapshot_find(snap, e->user, e->id) == NULL) {
				/* revoked, or its row deleted or made invalid */
				log_info("event=apppass-%s id=%s user=%s",
				    ig_apppass_snapshot_is_revoked(snap, e->id) ? "revoked" :
				    "removed", e->id, e->user);
				revoked++;
			}
		}
	}
	log_info("event=apppass-store-loaded active=%zu revoked=%zu invalid=%zu added=%zu "
	    "removed=%zu generation=%llu", ig_apppass_snapshot_count(snap),
	    ig_apppass_snapshot_revoked(snap), ig_apppass_snapshot_invalid(snap), added, revoked,
	    (unsigned long long)ig_apppass_snapshot_generation(snap));
	if (ig_apppass_snapshot_invalid(snap) > 0)
		log_warn("event=apppass-store-rows-invalid count=%zu reason=\"rows edited by "
		    "hand are left out and their ids treated as revoked\"",
		    ig_apppass_snapshot_invalid(snap));
}

/* On the main loop: the poll's result. */
static void
apprt_poll_done(uv_work_t *req, int status)
{
	struct ig_apprt *r = req->data;
	(void)status;
	r->poll_busy = false;
	r->polled = true;
	free(r->poll_uses);
	r->poll_uses = NULL;
	r->poll_nuses = 0;
	ig_apppass_snapshot_unref(r->poll_cur);
	r->poll_cur = NULL;
	struct ig_apppass_snapshot *snap = r->poll_new;
	r->poll_new = NULL;
	if (r->poll_err[0] != '\0') {
		pthread_mutex_lock(&r->snap_mu);
		r->load_errors++;
		bool have = r->snap != NULL;
		pthread_mutex_unlock(&r->snap_mu);
		if (strcmp(r->poll_err, r->logged_err) != 0) {
			/* A store not created yet is a normal start (warn); any
			   other failure is an error. */
			ig_log(r->poll_missing ? IG_LOG_WARN : IG_LOG_ERROR,
			    "event=apppass-store-error store=%s error=\"%s\" in_force=%s",
			    r->path, r->poll_err, have ? "last-good" : "none");
			memcpy(r->logged_err, r->poll_err, sizeof(r->logged_err));
		}
		r->poll_err[0] = '\0';
		if (r->poll_missing && !have)
			r->was_missing = true;
		r->poll_missing = false;
	} else if (r->logged_err[0] != '\0') {
		log_info("event=apppass-store-ok store=%s", r->path);
		r->logged_err[0] = '\0';
	}
	if (snap == NULL)
		return;
	if (r->stopping) {
		ig_apppass_snapshot_unref(snap);
		return;
	}
	pthread_mutex_lock(&r->snap_mu);
	struct ig_apppass_snapshot *old = r->snap;
	r->snap = snap;
	r->reloads++;
	pthread_mutex_unlock(&r->snap_mu);
	apprt_log_change(old, snap, r->was_missing);
	r->was_missing = false;
	if (r->cb != NULL)
		r->cb(r->cb_arg, old, snap);
	ig_apppass_snapshot_unref(old);
}

/* Queues a poll unless one is in flight. */
static void
apprt_poll(struct ig_apprt *r)
{
	if (r->poll_busy || r->stopping)
		return;
	pthread_mutex_lock(&r->snap_mu);
	r->poll_cur = r->snap != NULL ? ig_apppass_snapshot_ref(r->snap) : NULL;
	if (r->nuses > 0) {
		r->poll_uses = malloc(r->nuses * sizeof(*r->poll_uses));
		if (r->poll_uses != NULL) {
			memcpy(r->poll_uses, r->uses, r->nuses * sizeof(*r->uses));
			r->poll_nuses = r->nuses;
			r->nuses = 0;
		}
	}
	pthread_mutex_unlock(&r->snap_mu);
	r->poll_req.data = r;
	r->poll_busy = true;
	int uvrc = uv_queue_work(r->loop, &r->poll_req, apprt_poll_work, apprt_poll_done);
	if (uvrc != 0) {
		snprintf(r->poll_err, sizeof(r->poll_err), "thread pool: %s", uv_strerror(uvrc));
		apprt_poll_done(&r->poll_req, uvrc);
	}
}

static void
apprt_tick(uv_timer_t *t)
{
	apprt_poll(t->data);
}

int
ig_apprt_start(uv_loop_t *loop, const struct ig_apppass_conf *c, ig_apprt_changed_fn *cb,
    void *arg, struct ig_apprt **out)
{
	*out = NULL;
	struct ig_apprt *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->path = strdup(c->store)) == NULL ||
	    (r->uses = calloc(IG_APPRT_USES_MAX, sizeof(*r->uses))) == NULL) {
		if (r != NULL) {
			free(r->path);
			free(r);
		}
		log_error("event=start-failed reason=app-passwords error=\"%s\"",
		    ig_strerror(IG_ENOMEM));
		return IG_ENOMEM;
	}
	pthread_mutex_init(&r->store_mu, NULL);
	pthread_mutex_init(&r->snap_mu, NULL);
	pthread_mutex_init(&r->slot_mu, NULL);
	pthread_cond_init(&r->slot_cv, NULL);
	atomic_init(&r->outstanding, 0);
	atomic_init(&r->stopping, false);
	r->slots_max = c->max_concurrent_verifications;
	r->loop = loop;
	r->cb = cb;
	r->cb_arg = arg;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->timer_on = true;
	uv_timer_start(&r->timer, apprt_tick, IG_APPRT_POLL_MS, IG_APPRT_POLL_MS);
	apprt_poll(r);
	*out = r;
	return 0;
}

bool
ig_apprt_polled(const struct ig_apprt *r)
{
	return r->polled;
}

static void
apprt_timer_closed(uv_handle_t *h)
{
	(void)h;
}

void
ig_apprt_stop(struct ig_apprt *r)
{
	if (r == NULL || atomic_exchange(&r->stopping, true))
		return;
	if (r->timer_on) {
		r->timer_on = false;
		uv_close((uv_handle_t *)&r->timer, apprt_timer_closed);
	}
	/* The last uses: written here (a poll in flight has finished with the
	   store once store_mu is ours, and the next one does nothing). */
	pthread_mutex_lock(&r->store_mu);
	pthread_mutex_lock(&r->snap_mu);
	size_t n = r->nuses;
	r->nuses = 0;
	pthread_mutex_unlock(&r->snap_mu);
	if (n > 0 && apprt_open(r))
		for (size_t i = 0; i < n; i++)
			(void)ig_apppass_store_record_use(r->st, r->uses[i].id, r->uses[i].when,
			    r->uses[i].address);
	ig_apppass_store_close(r->st);
	r->st = NULL;
	pthread_mutex_unlock(&r->store_mu);
}

void
ig_apprt_free(struct ig_apprt *r)
{
	if (r == NULL)
		return;
	ig_apppass_snapshot_unref(r->snap);
	ig_apppass_snapshot_unref(r->poll_cur);
	ig_apppass_snapshot_unref(r->poll_new);
	free(r->poll_uses);
	free(r->uses);
	free(r->path);
	pthread_mutex_destroy(&r->store_mu);
	pthread_mutex_destroy(&r->snap_mu);
	pthread_mutex_destroy(&r->slot_mu);
	pthread_cond_destroy(&r->slot_cv);
	free(r);
}

struct ig_apppass_snapshot *
ig_apprt_snapshot(struct ig_apprt *r)
{
	pthread_mutex_lock(&r->snap_mu);
	struct ig_apppass_snapshot *s = r->snap != NULL ? ig_apppass_snapshot_ref(r->snap) : NULL;
	pthread_mutex_unlock(&r->snap_mu);
	return s;
}

/* ---- verifications ----------------------------------------------------- */

bool
ig_apprt_verify_reserve(struct ig_apprt *r)
{
	unsigned cap = r->slots_max * IG_APPRT_QUEUE_FACTOR;
	unsigned cur = atomic_load(&r->outstanding);
	do {
		if (cur >= cap)
			return false;
	} while (!atomic_compare_exchange_weak(&r->outstanding, &cur, cur + 1));
	return true;
}

/* On a pool thread: waits for a slot, hashes, gives the slot back. */
static void
apprt_verify_work(uv_work_t *req)
{
	struct ig_apprt_verify *v = (struct ig_apprt_verify *)((char *)req -
	    offsetof(struct ig_apprt_verify, req));
	struct ig_apprt *r = v->rt;
	pthread_mutex_lock(&r->slot_mu);
	while (r->slots_busy >= r->slots_max)
		pthread_cond_wait(&r->slot_cv, &r->slot_mu);
	r->slots_busy++;
	pthread_mutex_unlock(&r->slot_mu);
	v->started_ns = uv_hrtime();
	v->rc = ig_apppass_verify(v->phc, v->secret, strlen(v->secret), &v->match);
	v->done_ns = uv_hrtime();
	mbedtls_platform_zeroize(v->secret, sizeof(v->secret));
	pthread_mutex_lock(&r->slot_mu);
	r->slots_busy--;
	pthread_cond_signal(&r->slot_cv);
	pthread_mutex_unlock(&r->slot_mu);
	pthread_mutex_lock(&r->snap_mu);
	r->verify_ns += v->done_ns - v->started_ns;
	r->verifications++;
	pthread_mutex_unlock(&r->snap_mu);
}

int
ig_apprt_verify(struct ig_apprt *r, uv_loop_t *loop, struct ig_apprt_verify *v,
    struct ig_apppass_snapshot *snap, const struct ig_apppass_snap_entry *e,
    const struct ig_apppass_pw *pw, uv_after_work_cb cb)
{
	v->rt = r;
	v->snap = ig_apppass_snapshot_ref(snap);
	v->phc = e->phc;
	memcpy(v->secret, pw->secret, sizeof(v->secret));
	v->rc = 0;
	v->match = false;
	v->queued_ns = uv_hrtime();
	v->started_ns = v->done_ns = 0;
	int uvrc = uv_queue_work(loop, &v->req, apprt_verify_work, cb);
	if (uvrc != 0) {
		log_error("event=apppass-verify-failed error=\"thread pool: %s\"",
		    uv_strerror(uvrc));
		ig_apprt_verify_release(v);
		return IG_EIO;
	}
	return 0;
}

void
ig_apprt_verify_release(struct ig_apprt_verify *v)
{
	mbedtls_platform_zeroize(v->secret, sizeof(v->secret));
	ig_apppass_snapshot_unref(v->snap);
	v->snap = NULL;
	v->phc = NULL;
	if (v->rt != NULL)
		atomic_fetch_sub(&v->rt->outstanding, 1);
	v->rt = NULL;
}

/* ---- uses and numbers -------------------------------------------------- */

void
ig_apprt_record_use(struct ig_apprt *r, const char *id, int64_t when, const char *address)
{
	pthread_mutex_lock(&r->snap_mu);
	if (r->nuses < IG_APPRT_USES_MAX && !r->stopping) {
		struct apprt_use *u = &r->uses[r->nuses++];
		snprintf(u->id, sizeof(u->id), "%s", id);
		snprintf(u->address, sizeof(u->address), "%s", address);
		u->when = when;
	} else {
		r->uses_dropped++;
	}
	pthread_mutex_unlock(&r->snap_mu);
}

void
ig_apprt_stats(struct ig_apprt *r, struct ig_apprt_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&r->snap_mu);
	if (r->snap != NULL) {
		st->loaded = true;
		st->active = ig_apppass_snapshot_count(r->snap);
		st->revoked = ig_apppass_snapshot_revoked(r->snap);
		st->invalid = ig_apppass_snapshot_invalid(r->snap);
	}
	st->reloads = r->reloads;
	st->load_errors = r->load_errors;
	st->verify_ns = r->verify_ns;
	st->verifications = r->verifications;
	st->uses_dropped = r->uses_dropped;
	pthread_mutex_unlock(&r->snap_mu);
	st->outstanding = atomic_load(&r->outstanding);
}
