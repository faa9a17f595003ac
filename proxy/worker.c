/*
 * The worker: a libuv loop, its listeners, its sessions, its signals, and
 * the configuration generation new sessions get. Reload (SIGHUP) builds a
 * new generation to the side and swaps one pointer only if all of it loaded;
 * running sessions keep the generation they started with.
 */
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "crypto/backend.h"
#include "policy/ratelimit.h"
#include "proxy/bufpool.h"
#include "proxy/conncount.h"
#include "proxy/ctl.h"
#include "proxy/gen.h"
#include "util/clock.h"
#include "util/err.h"
#include "proxy/listener.h"
#include "util/log.h"
#include "proxy/probe.h"
#include "proxy/session.h"
#include "proxy/tls.h"

/* Buffers kept on the pool's free list: enough for a few sessions moving
   bytes at once; the rest of a burst goes back to the allocator. */
#define IG_WORKER_BUFPOOL_FREE 64

/*
 * Takes the state file's lock, rl_state_file.lock, for the process's life:
 * two instances saving one state file would overwrite each other's blocks.
 * (The state file itself is replaced by rename at each save, so it cannot
 * carry the lock.) The holder's pid is written into the lock file for the
 * refusal to name it. Returns 0 or IG_EIO after logging why.
 */
static int
worker_rl_lock(struct ig_worker *w)
{
	char path[PATH_MAX], holder[24] = "unknown";
	if (snprintf(path, sizeof(path), "%s.lock", w->rl_state_file) >= (int)sizeof(path)) {
		log_error("event=start-failed reason=state-file-lock file=%s error=\"name too "
		    "long\"", w->rl_state_file);
		return IG_EIO;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("event=start-failed reason=state-file-lock file=%s lock=%s error=\"%s\"",
		    w->rl_state_file, path, strerror(errno));
		return IG_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t n = e == EWOULDBLOCK ? pread(fd, holder, sizeof(holder) - 1, 0) : -1;
		size_t digits = 0;
		while (n > 0 && digits < (size_t)n && holder[digits] >= '0' && holder[digits] <= '9')
			digits++;
		if (digits > 0)
			holder[digits] = '\0';
		else
			snprintf(holder, sizeof(holder), "unknown");
		if (e == EWOULDBLOCK)
			log_error("event=start-failed reason=state-file-in-use file=%s lock=%s "
			    "holder_pid=%s error=\"another imapguard is running with this "
			    "ratelimit.state_file\"", w->rl_state_file, path, holder);
		else
			log_error("event=start-failed reason=state-file-lock file=%s lock=%s "
			    "error=\"%s\"", w->rl_state_file, path, strerror(e));
		close(fd);
		return IG_EIO;
	}
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("event=state-file-lock-note lock=%s error=\"cannot record our pid: %s\"",
		    path, strerror(errno));
	w->rl_lock_fd = fd;
	return 0;
}

static void worker_rl_sync_cb(uv_timer_t *t);

/* Creates the limiter from the generation's config; locks and loads the
 * saved state and starts saving it. Returns 0 or an IG_E* after logging. */
static int
worker_rl_init(struct ig_worker *w)
{
	const struct ig_config *cfg = w->set.gen->cfg;
	if (!cfg->ratelimit.enabled) {
		log_warn("event=ratelimit state=disabled");
		return 0;
	}
	psa_generate_random(w->rl_key, sizeof(w->rl_key));
	int rc = ig_rl_new(&cfg->ratelimit, w->rl_key, &w->set.rl);
	if (rc != 0) {
		log_error("event=start-failed reason=ratelimit error=\"%s\"", ig_strerror(rc));
		return rc;
	}
	if (cfg->ratelimit_state_file != NULL) {
		struct stat st;
		w->rl_state_file = strdup(cfg->ratelimit_state_file);
		if (w->rl_state_file == NULL) {
			log_error("event=start-failed reason=ratelimit error=\"%s\"",
			    ig_strerror(IG_ENOMEM));
			return IG_ENOMEM;
		}
		if ((rc = worker_rl_lock(w)) != 0)
			return rc;
		rc = ig_rl_load(w->set.rl, w->rl_state_file, ig_wall_ms());
		if (rc == 0)
			log_info("event=ratelimit-state-loaded file=%s keys=%zu", w->rl_state_file,
			    ig_rl_count(w->set.rl));
		else if (rc == IG_ETOOLONG && stat(w->rl_state_file, &st) == 0)
			log_warn("event=ratelimit-state-ignored file=%s reason=too-large "
			    "bytes=%lld max_bytes=%zu error=\"larger than any state max_keys "
			    "%zu writes; not read\"", w->rl_state_file, (long long)st.st_size,
			    ig_rl_state_max_size(w->set.rl), cfg->ratelimit.max_keys);
		else if (rc != IG_ENOTFOUND)
			log_warn("event=ratelimit-state-ignored file=%s error=\"%s\"",
			    w->rl_state_file, ig_strerror(rc));
		w->rl_saved_changes = ig_rl_changes(w->set.rl);
		w->rl_sync_ms = cfg->ratelimit_state_sync_ms;
		uv_timer_init(&w->loop, &w->rl_sync);
		w->rl_sync.data = w;
		w->rl_sync_on = true;
		uv_timer_start(&w->rl_sync, worker_rl_sync_cb, w->rl_sync_ms, w->rl_sync_ms);
	}
	log_info("event=ratelimit state=enabled max_keys=%zu bytes_per_key=%zu",
	    cfg->ratelimit.max_keys, ig_rl_entry_size());
	return 0;
}

/*
 * A save failed: counted, and logged at once the first time, then at most
 * once a minute while it keeps failing (a full disk would otherwise log
 * every state_sync). The state stays in memory and the next change retries.
 */
static void
worker_rl_save_failed(struct ig_worker *w, int rc, int err)
{
	uint64_t now = uv_now(&w->loop);
	w->rl_save_failures++;
	if (w->rl_save_failures > 1 && now - w->rl_fail_logged_ms < 60 * 1000)
		return;
	w->rl_fail_logged_ms = now;
	log_error("event=ratelimit-state-save-failed file=%s error=\"%s%s%s\" failures=%u",
	    w->rl_state_file, ig_strerror(rc), err != 0 ? ": " : "", err != 0 ? strerror(err) : "",
	    w->rl_save_failures);
}

static void
worker_rl_saved(struct ig_worker *w, uint64_t changes, size_t keys, const char *trigger)
{
	if (w->rl_save_failures > 0)
		log_warn("event=ratelimit-state-save-recovered file=%s failures=%u",
		    w->rl_state_file, w->rl_save_failures);
	w->rl_save_failures = 0;
	w->rl_saved_changes = changes;
	ig_log(strcmp(trigger, "sync") == 0 ? IG_LOG_DEBUG : IG_LOG_INFO,
	    "event=ratelimit-state-saved file=%s keys=%zu changes=%llu trigger=%s",
	    w->rl_state_file, keys, (unsigned long long)changes, trigger);
}

/* The final save at shutdown: synchronous, whatever changed. */
static void
worker_rl_save(struct ig_worker *w)
{
	if (w->set.rl == NULL || w->rl_state_file == NULL)
		return;
	uint64_t changes = ig_rl_changes(w->set.rl);
	int rc = ig_rl_save(w->set.rl, w->rl_state_file, ig_wall_ms());
	if (rc == 0)
		worker_rl_saved(w, changes, ig_rl_count(w->set.rl), "shutdown");
	else
		log_error("event=ratelimit-state-save-failed file=%s error=\"%s%s%s\" "
		    "trigger=shutdown", w->rl_state_file, ig_strerror(rc),
		    rc == IG_EIO ? ": " : "", rc == IG_EIO ? strerror(errno) : "");
}

/* On libuv's thread pool: touches only the snapshot and the file. */
static void
worker_rl_save_work(uv_work_t *req)
{
	struct ig_worker *w = req->data;
	w->rl_snap_rc = ig_rl_snapshot_write(w->rl_snap, w->rl_state_file);
	w->rl_snap_errno = w->rl_snap_rc != 0 ? errno : 0;
}

static void
worker_rl_save_done(uv_work_t *req, int status)
{
	struct ig_worker *w = req->data;
	int rc = status == 0 ? w->rl_snap_rc : IG_EIO;
	ig_rl_snapshot_free(w->rl_snap);
	w->rl_snap = NULL;
	if (rc == 0)
		worker_rl_saved(w, w->rl_snap_changes, w->rl_snap_keys, "sync");
	else
		worker_rl_save_failed(w, rc, status == 0 ? w->rl_snap_errno : 0);
	if (w->rl_final_pending) {
		w->rl_final_pending = false;
		worker_rl_save(w);
	}
}

/*
 * Every state_sync: when the limiter changed since the last good save and
 * no save is in flight, copy it (on the loop: memory speed) and write the
 * copy on the thread pool (checksum, write, fsync, rename: disk speed), so
 * a crash loses at most state_sync plus one write of changes.
 */
static void
worker_rl_sync_cb(uv_timer_t *t)
{
	struct ig_worker *w = t->data;
	if (w->set.stopping || w->rl_snap != NULL)
		return;
	uint64_t changes = ig_rl_changes(w->set.rl);
	if (changes == w->rl_saved_changes)
		return;
	int rc = ig_rl_snapshot(w->set.rl, ig_wall_ms(), &w->rl_snap);
	if (rc != 0) {
		worker_rl_save_failed(w, rc, 0);
		return;
	}
	w->rl_snap_changes = changes;
	w->rl_snap_keys = ig_rl_count(w->set.rl);
	w->rl_save_req.data = w;
	int uvrc = uv_queue_work(&w->loop, &w->rl_save_req, worker_rl_save_work,
	    worker_rl_save_done);
	if (uvrc != 0) {
		ig_rl_snapshot_free(w->rl_snap);
		w->rl_snap = NULL;
		worker_rl_save_failed(w, IG_EIO, -uvrc);
	}
}

static void
worker_handle_close_cb(uv_handle_t *h)
{
	(void)h;
}

/* The probe's result: what clients are shown before login from now on. */
static void
worker_probe_done(void *arg, int rc, const char *caps, const char *reason)
{
	struct ig_worker *w = arg;
	w->probe = NULL; /* it is closing and frees itself */
	if (rc != 0) {
		log_warn("event=backend-probe result=fail backend=%s reason=\"%s\"",
		    w->set.gen->cfg->backend.address, reason);
		return;
	}
	ig_caps_learn(&w->set.backend_caps, caps);
	log_info("event=backend-probe result=ok backend=%s capabilities=\"%s\"",
	    w->set.gen->cfg->backend.address, caps);
}

/* Abandons the probe under way, if any (its result would be stale). */
static void
worker_probe_cancel(struct ig_worker *w, const char *why)
{
	if (w->probe == NULL)
		return;
	ig_probe_cancel(w->probe);
	w->probe = NULL;
	log_debug("event=backend-probe result=cancelled reason=%s", why);
}

/*
 * Starts learning the current generation's backend capabilities on the
 * loop (one probe at a time: one under way for an older generation is
 * abandoned). The result arrives in worker_probe_done.
 */
static void
worker_probe(struct ig_worker *w)
{
	char err[256];
	worker_probe_cancel(w, "reload");
	if (ig_probe_start(&w->loop, w->set.gen, IG_PROBE_STEP_MS, worker_probe_done, w,
	        &w->probe, err, sizeof(err)) != 0) {
		log_warn("event=backend-probe result=fail backend=%s reason=\"%s\"",
		    w->set.gen->cfg->backend.address, err);
		return;
	}
	log_debug("event=backend-probe state=started backend=%s step_ms=%u",
	    w->set.gen->cfg->backend.address, IG_PROBE_STEP_MS);
}

static void
worker_stop(struct ig_worker *w, const char *why)
{
	if (w->set.stopping)
		return;
	w->set.stopping = true;
	log_info("event=shutdown reason=%s sessions=%u", why, w->set.nsessions);
	for (size_t i = 0; i < w->gate.nlisteners; i++) {
		if (w->gate.listeners[i].open) {
			w->gate.listeners[i].open = false;
			uv_close((uv_handle_t *)&w->gate.listeners[i].tcp, worker_handle_close_cb);
		}
	}
	ig_listener_gate_close(&w->gate);
	worker_probe_cancel(w, "shutdown");
	ig_session_shutdown_all(&w->set);
	if (w->rl_sync_on) {
		w->rl_sync_on = false;
		uv_close((uv_handle_t *)&w->rl_sync, worker_handle_close_cb);
	}
	/* Last word on the state file: after the save in flight, if any (the
	 * request keeps the loop running until its callback). */
	if (w->rl_snap != NULL)
		w->rl_final_pending = true;
	else
		worker_rl_save(w);
	ig_ctl_stop(w->ctl);
	w->ctl = NULL;
	uv_close((uv_handle_t *)&w->sig_term, worker_handle_close_cb);
	uv_close((uv_handle_t *)&w->sig_int, worker_handle_close_cb);
	uv_close((uv_handle_t *)&w->sig_hup, worker_handle_close_cb);
}

/* True when nc binds the listeners w has bound (same names, addresses and
   TLS modes, in the same order): they stay as bound at start. */
static bool
worker_same_listeners(const struct ig_worker *w, const struct ig_config *nc)
{
	if (nc->nlisteners != w->gate.nlisteners)
		return false;
	for (size_t i = 0; i < w->gate.nlisteners; i++)
		if (strcmp(nc->listeners[i].name, w->gate.listeners[i].info.name) != 0 ||
		    strcmp(nc->listeners[i].listen, w->set.gen->cfg->listeners[i].listen) != 0 ||
		    nc->listeners[i].tls != w->gate.listeners[i].info.tls)
			return false;
	return true;
}

/*
 * SIGHUP: loads the configuration file into a new generation and swaps it
 * in. Every check that can refuse it runs before anything is applied, so a
 * refused reload leaves everything (listener caps, limiter, state_sync,
 * log level, generation) as it was.
 */
static void
worker_reload(struct ig_worker *w)
{
	log_info("event=reload-start config=%s", w->config_path);
	struct ig_gen *g = ig_gen_load(w->config_path, NULL);
	if (g == NULL) {
		log_error("event=reload-failed reason=\"configuration invalid, keeping the "
		    "running one\"");
		return;
	}
	const struct ig_config *nc = g->cfg;
	if (!worker_same_listeners(w, nc)) {
		log_error("event=reload-failed reason=\"listeners changed: restart needed, "
		    "keeping the running configuration\"");
		ig_gen_unref(g);
		return;
	}
	/*
	 * The limiter checks last: ig_rl_set_conf() either refuses, leaving
	 * the limiter as it was, or takes the new settings. Nothing may refuse
	 * after it.
	 */
	if (w->set.rl != NULL && nc->ratelimit.enabled &&
	    ig_rl_set_conf(w->set.rl, &nc->ratelimit) != 0) {
		log_error("event=reload-failed reason=\"rate limiter configuration refused, "
		    "keeping the running configuration\"");
		ig_gen_unref(g);
		return;
	}

	/* Accepted: apply everything. */
	if ((w->set.rl != NULL) != nc->ratelimit.enabled)
		log_warn("event=reload-note reason=\"ratelimit.enabled changes at restart\"");
	if (w->rl_state_file != NULL && (nc->ratelimit_state_file == NULL ||
	    strcmp(nc->ratelimit_state_file, w->rl_state_file) != 0))
		log_warn("event=reload-note reason=\"ratelimit.state_file changes at restart\"");
	if (nc->tls_crypto != ig_crypto_requested())
		log_warn("event=reload-note reason=\"tls.crypto changes at restart\"");
	if (nc->limits.buffer_size != ig_bufpool_buf_size(w->set.bufpool))
		log_warn("event=reload-note reason=\"limits.buffer_size changes at restart\"");
	for (size_t i = 0; i < w->gate.nlisteners; i++)
		w->gate.listeners[i].info.max_sessions = nc->listeners[i].max_sessions ?
		    nc->listeners[i].max_sessions : nc->limits.max_sessions;
	if (w->rl_sync_on && nc->ratelimit_state_sync_ms != w->rl_sync_ms) {
		w->rl_sync_ms = nc->ratelimit_state_sync_ms;
		uv_timer_start(&w->rl_sync, worker_rl_sync_cb, w->rl_sync_ms, w->rl_sync_ms);
	}
	ig_log_set_level(nc->log_level);
	struct ig_gen *old = w->set.gen;
	w->set.gen = g;
	w->set.gen_seq++;
	ig_gen_unref(old);
	worker_probe(w);
	/* A user the new policy refuses loses the sessions it has open. */
	unsigned revoked = ig_session_recheck_all(&w->set);
	log_info("event=reload-done sessions=%u revoked=%u", w->set.nsessions, revoked);
}

/* The session set's on_freed: a session's descriptors are closed. */
static void
worker_session_freed(void *arg)
{
	struct ig_worker *w = arg;
	ig_listener_session_freed(&w->gate);
}

/* The admin socket's `stats`: the limiter's state file. */
static void
worker_ctl_stats(void *arg, struct ig_ctl_stats *st)
{
	const struct ig_worker *w = arg;
	st->state_file = w->rl_state_file != NULL;
	st->state_saved_changes = w->rl_saved_changes;
	st->state_save_failures = w->rl_save_failures;
}

static void
worker_signal_cb(uv_signal_t *h, int signum)
{
	struct ig_worker *w = h->data;
	if (signum == SIGHUP)
		worker_reload(w);
	else
		worker_stop(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

int
ig_worker_init(struct ig_worker *w, struct ig_gen *g, const char *config_path)
{
	memset(w, 0, sizeof(*w));
	w->rl_lock_fd = -1;
	w->set.loop = &w->loop;
	w->set.gen = g;
	w->set.on_freed = worker_session_freed;
	w->set.owner = w;
	w->config_path = config_path;
	ig_listener_raise_fd_limit();
	if (uv_loop_init(&w->loop) != 0) {
		log_error("event=start-failed reason=loop-init");
		ig_gen_unref(g);
		return IG_EIO;
	}
	ig_listener_gate_init(&w->gate, &w->set);
	uint64_t r = 0;
	psa_generate_random((uint8_t *)&r, sizeof(r));
	w->set.sid_base = r & ~UINT64_C(0xffffff);
	uint8_t cc_key[16];
	psa_generate_random(cc_key, sizeof(cc_key));
	int cc_rc = ig_cc_new(cc_key, &w->set.cc);
	mbedtls_platform_zeroize(cc_key, sizeof(cc_key));
	if (cc_rc != 0) {
		log_error("event=start-failed reason=connection-table error=\"%s\"",
		    ig_strerror(cc_rc));
		ig_worker_destroy(w);
		return cc_rc;
	}
	/* The sessions' buffers; a few stay on the free list (the rest of a
	   burst goes back to the allocator). */
	int bp_rc = ig_bufpool_new(g->cfg->limits.buffer_size, g->cfg->limits.buffer_pool_max,
	    IG_WORKER_BUFPOOL_FREE, &w->set.bufpool);
	if (bp_rc != 0) {
		log_error("event=start-failed reason=buffer-pool error=\"%s\"", ig_strerror(bp_rc));
		ig_worker_destroy(w);
		return bp_rc;
	}

	/*
	 * Signals first: from here a SIGTERM ends the process cleanly (main()
	 * blocks them until the handlers exist, so one sent during start-up
	 * waits here instead of killing us).
	 */
	uv_signal_init(&w->loop, &w->sig_term);
	uv_signal_init(&w->loop, &w->sig_int);
	uv_signal_init(&w->loop, &w->sig_hup);
	w->sig_term.data = w->sig_int.data = w->sig_hup.data = w;
	uv_signal_start(&w->sig_term, worker_signal_cb, SIGTERM);
	uv_signal_start(&w->sig_int, worker_signal_cb, SIGINT);
	uv_signal_start(&w->sig_hup, worker_signal_cb, SIGHUP);

	/* Bind every listener (a port in use fails here), listen only last. */
	const struct ig_config *cfg = g->cfg;
	w->gate.listeners = calloc(cfg->nlisteners, sizeof(*w->gate.listeners));
	if (w->gate.listeners == NULL) {
		ig_worker_destroy(w);
		return IG_ENOMEM;
	}
	w->gate.nlisteners = cfg->nlisteners;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		struct ig_listener *l = &w->gate.listeners[i];
		l->gate = &w->gate;
		l->index = i;
		snprintf(l->info.name, sizeof(l->info.name), "%s", lc->name);
		l->info.tls = lc->tls;
		l->info.max_sessions = lc->max_sessions ? lc->max_sessions :
		    cfg->limits.max_sessions;
		uv_tcp_init(&w->loop, &l->tcp);
		l->tcp.data = l;
		l->open = true;
		unsigned flags = lc->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
		int rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&lc->addr, flags);
		if (rc != 0) {
			log_error("event=start-failed listener=%s listen=%s error=\"%s\"",
			    lc->name, lc->listen, uv_strerror(rc));
			ig_worker_destroy(w);
			return IG_EIO;
		}
	}
	/* Everything else that can fail, fails before a client is accepted. */
	if (worker_rl_init(w) != 0) {
		ig_worker_destroy(w);
		return IG_ECONFIG;
	}
	if (cfg->admin_socket != NULL &&
	    ig_ctl_start(&w->set, cfg->admin_socket, worker_ctl_stats, w, &w->ctl) != 0) {
		ig_worker_destroy(w);
		return IG_EIO;
	}
	/*
	 * Ready waits for the first probe (its result or its timeout), so that
	 * the first client is shown the backend's capabilities. The loop runs
	 * meanwhile (the admin socket answers); the stop signals are still
	 * held back by main(), and no client is accepted yet.
	 */
	worker_probe(w);
	while (w->probe != NULL)
		uv_run(&w->loop, UV_RUN_ONCE);
	if (ig_listener_fd_budget(&w->gate) != 0) {
		ig_worker_destroy(w);
		return IG_EIO;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		int rc = uv_listen((uv_stream_t *)&w->gate.listeners[i].tcp, 511,
		    ig_listener_on_connection);
		if (rc != 0) {
			log_error("event=start-failed listener=%s listen=%s error=\"%s\"",
			    lc->name, lc->listen, uv_strerror(rc));
			ig_worker_destroy(w);
			return IG_EIO;
		}
		log_info("event=listening listener=%s listen=%s tls=%s", lc->name, lc->listen,
		    ig_tls_mode_str(lc->tls));
	}
	log_info("event=ready listeners=%zu pid=%ld", cfg->nlisteners, (long)getpid());
	return 0;
}

int
ig_worker_run(struct ig_worker *w)
{
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return 0;
}

static void
worker_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, worker_handle_close_cb);
}

int
ig_worker_destroy(struct ig_worker *w)
{
	/* Anything still open (a failed start) is closed and run out. */
	ig_listener_gate_close(&w->gate);
	worker_probe_cancel(w, "shutdown");
	ig_ctl_stop(w->ctl);
	w->ctl = NULL;
	uv_walk(&w->loop, worker_walk_close, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&w->loop);
	if (rc != 0)
		log_error("event=loop-close-failed error=\"%s\"", uv_strerror(rc));
	free(w->gate.listeners);
	w->gate.listeners = NULL;
	ig_rl_snapshot_free(w->rl_snap); /* (none: the loop ran them out) */
	w->rl_snap = NULL;
	ig_cc_free(w->set.cc); /* every session is freed by now */
	w->set.cc = NULL;
	ig_bufpool_free(w->set.bufpool); /* every buffer is back by now */
	w->set.bufpool = NULL;
	ig_rl_free(w->set.rl);
	w->set.rl = NULL;
	if (w->rl_lock_fd >= 0)
		close(w->rl_lock_fd); /* releases the state file to a successor */
	w->rl_lock_fd = -1;
	free(w->rl_state_file);
	w->rl_state_file = NULL;
	mbedtls_platform_zeroize(w->rl_key, sizeof(w->rl_key));
	ig_gen_unref(w->set.gen);
	w->set.gen = NULL;
	return rc == 0 ? 0 : IG_EIO;
}
