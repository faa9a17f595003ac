/*
 * The server: the main thread's loop (signals, admin socket, backend
 * probe, the limiter's state file), the listening sockets, and the workers
 * (proxy/server.h). Reload (SIGHUP) builds a new generation to the side
 * and hands it to every worker only if all of it loaded; running sessions
 * keep the generation they started with.
 */
#include "proxy/apprt.h"
#include "proxy/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/build_info.h>
#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "crypto/backend.h"
#include "policy/ratelimit.h"
#include "certs/store.h"
#include "proxy/admin_http.h"
#include "proxy/bufpool.h"
#include "proxy/expo.h"
#include "proxy/ctl.h"
#include "proxy/gen.h"
#include "proxy/listener.h"
#include "proxy/probe.h"
#include "proxy/tls.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/priv.h"

/*
 * Takes the state file's lock, rl_state_file.lock, for the process's life:
 * two instances saving one state file would overwrite each other's blocks.
 * (The state file itself is replaced by rename at each save, so it cannot
 * carry the lock.) The holder's pid is written into the lock file for the
 * refusal to name it. Returns 0 or IG_EIO after logging why.
 */
static int
server_rl_lock(struct ig_server *sv)
{
	char path[PATH_MAX], holder[24] = "unknown";
	if (snprintf(path, sizeof(path), "%s.lock", sv->rl_state_file) >= (int)sizeof(path)) {
		log_error("event=start-failed reason=state-file-lock file=%s error=\"name too "
		    "long\"", sv->rl_state_file);
		return IG_EIO;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("event=start-failed reason=state-file-lock file=%s lock=%s error=\"%s\"",
		    sv->rl_state_file, path, strerror(errno));
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
			    "ratelimit.state_file\"", sv->rl_state_file, path, holder);
		else
			log_error("event=start-failed reason=state-file-lock file=%s lock=%s "
			    "error=\"%s\"", sv->rl_state_file, path, strerror(e));
		close(fd);
		return IG_EIO;
	}
	/* A later start as user alone (no root) can take it too. */
	const struct ig_config *cfg = sv->gen->cfg;
	if (cfg->user != NULL && geteuid() == 0 &&
	    fchown(fd, cfg->user_uid, cfg->user_gid) != 0)
		log_warn("event=state-file-lock-note lock=%s error=\"cannot give it to user %s: "
		    "%s\"", path, cfg->user, strerror(errno));
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("event=state-file-lock-note lock=%s error=\"cannot record our pid: %s\"",
		    path, strerror(errno));
	sv->rl_lock_fd = fd;
	return 0;
}

static void server_rl_sync_cb(uv_timer_t *t);

/* Creates the limiter from the generation's config; locks and loads the
 * saved state and starts saving it. Returns 0 or an IG_E* after logging. */
static int
server_rl_init(struct ig_server *sv)
{
	const struct ig_config *cfg = sv->gen->cfg;
	if (!cfg->ratelimit.enabled) {
		log_warn("event=ratelimit state=disabled");
		return 0;
	}
	psa_generate_random(sv->rl_key, sizeof(sv->rl_key));
	int rc = ig_rl_new(&cfg->ratelimit, sv->rl_key, &sv->sh.rl);
	if (rc != 0) {
		log_error("event=start-failed reason=ratelimit error=\"%s\"", ig_strerror(rc));
		return rc;
	}
	if (cfg->ratelimit_state_file != NULL) {
		struct stat st;
		sv->rl_state_file = strdup(cfg->ratelimit_state_file);
		if (sv->rl_state_file == NULL) {
			log_error("event=start-failed reason=ratelimit error=\"%s\"",
			    ig_strerror(IG_ENOMEM));
			return IG_ENOMEM;
		}
		if ((rc = server_rl_lock(sv)) != 0)
			return rc;
		rc = ig_rl_load(sv->sh.rl, sv->rl_state_file, ig_wall_ms());
		if (rc == 0)
			log_info("event=ratelimit-state-loaded file=%s keys=%zu", sv->rl_state_file,
			    ig_rl_count(sv->sh.rl));
		else if (rc == IG_ETOOLONG && stat(sv->rl_state_file, &st) == 0)
			log_warn("event=ratelimit-state-ignored file=%s reason=too-large "
			    "bytes=%lld max_bytes=%zu error=\"larger than any state max_keys "
			    "%zu writes; not read\"", sv->rl_state_file, (long long)st.st_size,
			    ig_rl_state_max_size(sv->sh.rl), cfg->ratelimit.max_keys);
		else if (rc != IG_ENOTFOUND)
			log_warn("event=ratelimit-state-ignored file=%s error=\"%s\"",
			    sv->rl_state_file, ig_strerror(rc));
		sv->rl_saved_changes = ig_rl_changes(sv->sh.rl);
		sv->rl_sync_ms = cfg->ratelimit_state_sync_ms;
		uv_timer_init(&sv->loop, &sv->rl_sync);
		sv->rl_sync.data = sv;
		sv->rl_sync_on = true;
		uv_timer_start(&sv->rl_sync, server_rl_sync_cb, sv->rl_sync_ms, sv->rl_sync_ms);
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
server_rl_save_failed(struct ig_server *sv, int rc, int err)
{
	uint64_t now = uv_now(&sv->loop);
	sv->rl_save_failures++;
	if (sv->rl_save_failures > 1 && now - sv->rl_fail_logged_ms < 60 * 1000)
		return;
	sv->rl_fail_logged_ms = now;
	log_error("event=ratelimit-state-save-failed file=%s error=\"%s%s%s\" failures=%u",
	    sv->rl_state_file, ig_strerror(rc), err != 0 ? ": " : "", err != 0 ? strerror(err) : "",
	    sv->rl_save_failures);
}

static void
server_rl_saved(struct ig_server *sv, uint64_t changes, size_t keys, const char *trigger)
{
	if (sv->rl_save_failures > 0)
		log_warn("event=ratelimit-state-save-recovered file=%s failures=%u",
		    sv->rl_state_file, sv->rl_save_failures);
	sv->rl_save_failures = 0;
	sv->rl_saved_changes = changes;
	ig_log(strcmp(trigger, "sync") == 0 ? IG_LOG_DEBUG : IG_LOG_INFO,
	    "event=ratelimit-state-saved file=%s keys=%zu changes=%llu trigger=%s",
	    sv->rl_state_file, keys, (unsigned long long)changes, trigger);
}

/* The final save at shutdown, when every worker has ended: synchronous,
   whatever changed. */
static void
server_rl_save(struct ig_server *sv)
{
	if (sv->sh.rl == NULL || sv->rl_state_file == NULL)
		return;
	uint64_t changes = ig_rl_changes(sv->sh.rl);
	int rc = ig_rl_save(sv->sh.rl, sv->rl_state_file, ig_wall_ms());
	if (rc == 0)
		server_rl_saved(sv, changes, ig_rl_count(sv->sh.rl), "shutdown");
	else
		log_error("event=ratelimit-state-save-failed file=%s error=\"%s%s%s\" "
		    "trigger=shutdown", sv->rl_state_file, ig_strerror(rc),
		    rc == IG_EIO ? ": " : "", rc == IG_EIO ? strerror(errno) : "");
}

/* On libuv's thread pool: touches only the snapshot and the file. */
static void
server_rl_save_work(uv_work_t *req)
{
	struct ig_server *sv = req->data;
	sv->rl_snap_rc = ig_rl_snapshot_write(sv->rl_snap, sv->rl_state_file);
	sv->rl_snap_errno = sv->rl_snap_rc != 0 ? errno : 0;
}

static void
server_rl_save_done(uv_work_t *req, int status)
{
	struct ig_server *sv = req->data;
	int rc = status == 0 ? sv->rl_snap_rc : IG_EIO;
	ig_rl_snapshot_free(sv->rl_snap);
	sv->rl_snap = NULL;
	if (rc == 0)
		server_rl_saved(sv, sv->rl_snap_changes, sv->rl_snap_keys, "sync");
	else
		server_rl_save_failed(sv, rc, status == 0 ? sv->rl_snap_errno : 0);
}

/*
 * Every state_sync: when the limiter changed since the last good save and
 * no save is in flight, copy it (on the loop: memory speed) and write the
 * copy on the thread pool (checksum, write, fsync, rename: disk speed), so
 * a crash loses at most state_sync plus one write of changes.
 */
static void
server_rl_sync_cb(uv_timer_t *t)
{
	struct ig_server *sv = t->data;
	if (sv->stopping || sv->rl_snap != NULL)
		return;
	ig_shared_lock(&sv->sh);
	uint64_t changes = ig_rl_changes(sv->sh.rl);
	int rc = 0;
	if (changes != sv->rl_saved_changes) {
		rc = ig_rl_snapshot(sv->sh.rl, ig_wall_ms(), &sv->rl_snap);
		sv->rl_snap_keys = ig_rl_count(sv->sh.rl);
	}
	ig_shared_unlock(&sv->sh);
	if (changes == sv->rl_saved_changes)
		return;
	if (rc != 0) {
		server_rl_save_failed(sv, rc, 0);
		return;
	}
	sv->rl_snap_changes = changes;
	sv->rl_save_req.data = sv;
	int uvrc = uv_queue_work(&sv->loop, &sv->rl_save_req, server_rl_save_work,
	    server_rl_save_done);
	if (uvrc != 0) {
		ig_rl_snapshot_free(sv->rl_snap);
		sv->rl_snap = NULL;
		server_rl_save_failed(sv, IG_EIO, -uvrc);
	}
}

static void
server_handle_close_cb(uv_handle_t *h)
{
	(void)h;
}

/* The probe's result: what clients are shown before login from now on. */
static void
server_probe_done(void *arg, int rc, const char *caps, const char *reason)
{
	struct ig_server *sv = arg;
	sv->probe = NULL; /* it is closing and frees itself */
	sv->probe_done = true;
	sv->probe_ok = rc == 0;
	if (rc != 0) {
		snprintf(sv->probe_reason, sizeof(sv->probe_reason), "%s", reason);
		/* While it keeps failing on the timer, once is enough at warn. */
		ig_log(sv->probe_reason_logged ? IG_LOG_DEBUG : IG_LOG_WARN,
		    "event=backend-probe result=fail backend=%s reason=\"%s\"",
		    sv->gen->cfg->backend.address, reason);
		sv->probe_reason_logged = true;
		return;
	}
	bool quiet = sv->probe_periodic && !sv->probe_reason_logged;
	if (sv->probe_reason_logged)
		log_info("event=backend-probe result=recovered backend=%s",
		    sv->gen->cfg->backend.address);
	sv->probe_reason_logged = false;
	(void)ig_shared_caps_learn(&sv->sh, caps);
	/* The periodic probe (admin.probe_interval) logs a success at debug. */
	ig_log(quiet ? IG_LOG_DEBUG : IG_LOG_INFO,
	    "event=backend-probe result=ok backend=%s capabilities=\"%s\"",
	    sv->gen->cfg->backend.address, caps);
}

/* Abandons the probe under way, if any (its result would be stale). */
static void
server_probe_cancel(struct ig_server *sv, const char *why)
{
	if (sv->probe == NULL)
		return;
	ig_probe_cancel(sv->probe);
	sv->probe = NULL;
	log_debug("event=backend-probe result=cancelled reason=%s", why);
}

/*
 * Starts learning the current generation's backend capabilities on the
 * loop (one probe at a time: one under way for an older generation is
 * abandoned). The result arrives in server_probe_done.
 */
static void
server_probe(struct ig_server *sv)
{
	char err[256];
	server_probe_cancel(sv, "reload");
	sv->probe_periodic = false;
	if (ig_probe_start(&sv->loop, sv->gen, IG_PROBE_STEP_MS, server_probe_done, sv,
	        &sv->probe, err, sizeof(err)) != 0) {
		log_warn("event=backend-probe result=fail backend=%s reason=\"%s\"",
		    sv->gen->cfg->backend.address, err);
		sv->probe_done = true;
		sv->probe_ok = false;
		snprintf(sv->probe_reason, sizeof(sv->probe_reason), "%s", err);
		return;
	}
	log_debug("event=backend-probe state=started backend=%s step_ms=%u",
	    sv->gen->cfg->backend.address, IG_PROBE_STEP_MS);
}

/* admin.probe_interval: probe again unless one is under way, so that
   /readyz follows the backend. */
static void
server_probe_tick(uv_timer_t *t)
{
	struct ig_server *sv = t->data;
	if (sv->probe == NULL && !sv->stopping) {
		server_probe(sv);
		sv->probe_periodic = true;
	}
}

/* Reads what the process's own files say: descriptors, memory, CPU. */
static void
server_process_stats(struct ig_metrics_view *v)
{
	v->open_fds = v->max_fds = v->rss_bytes = v->vsize_bytes = v->cpu_seconds = -1;
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		unsigned n = 0;
		for (struct dirent *de; (de = readdir(d)) != NULL;)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		v->open_fds = n > 0 ? n - 1 : 0; /* not the directory's own */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		v->max_fds = (double)rl.rlim_cur;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		unsigned long long size, resident;
		if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			v->vsize_bytes = (double)size * page;
			v->rss_bytes = (double)resident * page;
		}
		fclose(f);
	}
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		v->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
server_count_block(void *arg, const char *limit, const char *key_text, uint64_t until_ms,
    unsigned count)
{
	unsigned *blocks = arg;
	(void)key_text;
	(void)until_ms;
	(void)count;
	for (unsigned i = 0; i < IG_M_RL_LIMITS; i++)
		if (strcmp(limit, ig_metrics_rl_limits[i]) == 0)
			blocks[i]++;
}

/* GET /metrics: the workers' counters and the server's view now. */
static void
server_metrics(void *arg, struct ig_expo *e)
{
	struct ig_server *sv = arg;
	const struct ig_config *cfg = sv->gen->cfg;
	size_t nl = sv->nlisteners;
	const char **names = calloc(nl ? nl : 1, sizeof(*names));
	unsigned *current = calloc(nl ? nl : 1, sizeof(*current));
	size_t nc = ig_certstore_count(sv->gen->certs);
	struct ig_metrics_cert *certs = calloc(nc ? nc : 1, sizeof(*certs));
	if (names == NULL || current == NULL || certs == NULL) {
		e->overflow = true;
		goto out;
	}
	for (size_t i = 0; i < nl && i < cfg->nlisteners; i++) {
		names[i] = cfg->listeners[i].name;
		current[i] = atomic_load(&sv->sh.listener_sessions[i]);
	}
	size_t ncerts = 0;
	for (size_t i = 0; i < nc && i < cfg->ncerts; i++)
		if (ig_certstore_not_after(sv->gen->certs, i, &certs[ncerts].not_after) == 0)
			certs[ncerts++].name = cfg->certs[i].cert_path;
	struct ig_metrics_view v = {
		.workers = sv->sh.metrics,
		.nworkers = sv->sh.nmetrics,
		.listener_names = names,
		.listener_current = current,
		.nlisteners = nl,
		.version = IG_VERSION,
		.mbedtls_version = MBEDTLS_VERSION_STRING,
		.crypto = ig_crypto_backend_str(ig_crypto_active()),
		.start_time = sv->start_time,
		.rl_enabled = sv->sh.rl != NULL,
		.backend_up = sv->probe_done && sv->probe_ok,
		.reloads_ok = sv->reloads_ok,
		.reloads_failed = sv->reloads_failed,
		.certs = certs,
		.ncerts = ncerts,
	};
	if (sv->sh.rl != NULL) {
		ig_shared_lock(&sv->sh);
		ig_rl_foreach_block(sv->sh.rl, ig_wall_ms(), server_count_block, v.rl_blocks);
		ig_shared_unlock(&sv->sh);
	}
	if (sv->sh.apprt != NULL) {
		struct ig_apprt_stats as;
		ig_apprt_stats(sv->sh.apprt, &as);
		v.apppass_on = true;
		v.apppass_loaded = as.loaded;
		v.apppass_active = as.active;
		v.apppass_revoked = as.revoked;
		v.apppass_invalid = as.invalid;
		v.apppass_reloads = as.reloads;
		v.apppass_load_errors = as.load_errors;
		v.apppass_verifications = as.verifications;
		v.apppass_verify_ns = as.verify_ns;
		v.apppass_outstanding = as.outstanding;
	}
	server_process_stats(&v);
	ig_metrics_write(e, &v);
out:
	free(names);
	free(current);
	free(certs);
}

/* GET /readyz: the last backend probe succeeded and no served certificate
   ends within admin.ready_cert_days. */
static bool
server_ready(void *arg, char *why, size_t whysz)
{
	struct ig_server *sv = arg;
	if (sv->stopping) {
		snprintf(why, whysz, "shutting down");
		return false;
	}
	if (!sv->probe_done) {
		snprintf(why, whysz, "backend not probed yet");
		return false;
	}
	if (!sv->probe_ok) {
		snprintf(why, whysz, "backend probe failed: %s", sv->probe_reason);
		return false;
	}
	const struct ig_config *cfg = sv->gen->cfg;
	int64_t now = (int64_t)(ig_wall_ms() / 1000);
	int64_t window = (int64_t)cfg->admin_ready_cert_days * 86400;
	size_t nc = ig_certstore_count(sv->gen->certs);
	for (size_t i = 0; i < nc && i < cfg->ncerts; i++) {
		int64_t end;
		if (ig_certstore_not_after(sv->gen->certs, i, &end) != 0)
			continue;
		if (end <= now) {
			snprintf(why, whysz, "certificate %s has expired", cfg->certs[i].cert_path);
			return false;
		}
		if (end - now <= window) {
			snprintf(why, whysz, "certificate %s expires in %lld hours (ready_cert_days "
			    "%u)", cfg->certs[i].cert_path, (long long)((end - now) / 3600),
			    cfg->admin_ready_cert_days);
			return false;
		}
	}
	return true;
}

static const struct ig_admin_http_ops server_http_ops = { server_metrics, server_ready };

/*
 * How often the ticket key file is checked (a stat), and never more than a
 * quarter of tls.session_timeout apart, so that the keys are installed
 * again (ig_tls_server_ticket_refresh) before mbedTLS would replace them.
 */
#define SERVER_TK_CHECK_MS 5000u

/* event=ticket-keys-loaded for the current generation's keys (names only). */
static void
server_tk_log(struct ig_server *sv, const char *source)
{
	char enc[IG_TICKET_KEY_NAME_HEX], dec[IG_TICKET_KEY_NAME_HEX];
	if (ig_tls_server_ticket_file(sv->gen->tls_server, NULL, enc, dec))
		log_info("event=ticket-keys-loaded file=%s source=%s encrypt=%s decrypt=%s",
		    sv->gen->cfg->tls_ticket_key_file, source, enc, dec);
}

/* The file changed: read it and install its keys, or keep the ones in use. */
static void
server_tk_load(struct ig_server *sv, const struct ig_file_id *seen)
{
	struct ig_tls_server *ts = sv->gen->tls_server;
	const char *path = sv->gen->cfg->tls_ticket_key_file;
	struct ig_ticket_keys keys;
	struct ig_file_id id;
	char err[300], enc[IG_TICKET_KEY_NAME_HEX];
	int rc = ig_ticket_keys_load(path, &keys, &id, err, sizeof(err));
	if (rc == 0)
		rc = ig_tls_server_set_ticket_keys(ts, &keys, &id, err, sizeof(err));
	ig_ticket_keys_wipe(&keys);
	if (rc != 0) {
		ig_tls_server_ticket_file(ts, NULL, enc, NULL);
		log_error("event=ticket-keys-refused file=%s error=\"%s\" keeping=%s", path, err,
		    enc);
		sv->tk_refused = *seen;
		sv->tk_refused_set = true;
		return;
	}
	sv->tk_refused_set = false;
	server_tk_log(sv, "file");
}

static void
server_tk_tick(uv_timer_t *t)
{
	struct ig_server *sv = t->data;
	struct ig_tls_server *ts = sv->gen->tls_server;
	const char *path = sv->gen->cfg->tls_ticket_key_file;
	struct ig_file_id cur, now;
	char err[300], enc[IG_TICKET_KEY_NAME_HEX];
	if (sv->stopping || path == NULL || !ig_tls_server_ticket_file(ts, &cur, enc, NULL))
		return;
	if (ig_ticket_keys_stat(path, &now) != 0) {
		if (!sv->tk_stat_failed)
			log_error("event=ticket-keys-refused file=%s error=\"%s\" keeping=%s", path,
			    strerror(errno), enc);
		sv->tk_stat_failed = true;
	} else {
		sv->tk_stat_failed = false;
		if (!ig_file_id_equal(&now, &cur) &&
		    !(sv->tk_refused_set && ig_file_id_equal(&now, &sv->tk_refused)))
			server_tk_load(sv, &now);
	}
	int rc = ig_tls_server_ticket_refresh(ts, err, sizeof(err));
	if (rc < 0 && !sv->tk_refresh_failed)
		log_error("event=ticket-keys-refresh-failed file=%s error=\"%s\"", path, err);
	else if (rc > 0)
		log_debug("event=ticket-keys-refreshed file=%s", path);
	sv->tk_refresh_failed = rc < 0;
}

/* Starts, restarts (a reload may change the period) or stops the check. */
static void
server_tk_timer(struct ig_server *sv)
{
	const struct ig_config *cfg = sv->gen->cfg;
	if (!ig_tls_server_ticket_file(sv->gen->tls_server, NULL, NULL, NULL)) {
		if (sv->tk_timer_on)
			uv_timer_stop(&sv->tk_timer);
		return;
	}
	unsigned period = cfg->tls_session_timeout_ms / 4;
	if (period > SERVER_TK_CHECK_MS)
		period = SERVER_TK_CHECK_MS;
	if (!sv->tk_timer_on) {
		uv_timer_init(&sv->loop, &sv->tk_timer);
		sv->tk_timer.data = sv;
		sv->tk_timer_on = true;
	}
	sv->tk_period_ms = period;
	uv_timer_start(&sv->tk_timer, server_tk_tick, period, period);
}

struct server_sweep {
	const struct ig_apppass_snapshot *snap;
	unsigned ended;
};

/* On each worker's thread: the sessions of revoked app passwords end. */
static void
server_apppass_sweep_cb(struct ig_worker *w, void *arg)
{
	struct server_sweep *sw = arg;
	sw->ended += ig_worker_apppass_sweep(w, sw->snap);
}

/*
 * A new snapshot of the app password store is in force (proxy/apprt.h):
 * every worker ends the sessions whose app password it no longer has.
 * The first snapshot ends nothing: no session could log in without one.
 */
static void
server_apppass_changed(void *arg, const struct ig_apppass_snapshot *old_snap,
    const struct ig_apppass_snapshot *new_snap)
{
	struct ig_server *sv = arg;
	if (old_snap == NULL || sv->stopping || !sv->workers_started)
		return;
	struct server_sweep sw = { new_snap, 0 };
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_call(&sv->workers[i], server_apppass_sweep_cb, &sw);
	if (sw.ended > 0)
		log_info("event=apppass-sweep sessions_ended=%u", sw.ended);
}

static void
server_stop(struct ig_server *sv, const char *why)
{
	if (sv->stopping)
		return;
	sv->stopping = true;
	log_info("event=shutdown reason=%s sessions=%u workers=%u", why,
	    atomic_load(&sv->sh.nsessions), sv->nworkers);
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_stop(&sv->workers[i]);
	if (sv->drain_on) {
		/* drained stays open (a worker may still send it until it is
		   joined) but no longer keeps the loop running; the teardown's
		   walk closes it. */
		sv->drain_on = false;
		uv_close((uv_handle_t *)&sv->drain_timer, server_handle_close_cb);
		uv_unref((uv_handle_t *)&sv->drained);
	}
	server_probe_cancel(sv, "shutdown");
	if (sv->rl_sync_on) {
		sv->rl_sync_on = false;
		uv_close((uv_handle_t *)&sv->rl_sync, server_handle_close_cb);
	}
	ig_ctl_stop(sv->ctl);
	sv->ctl = NULL;
	ig_admin_http_stop(sv->http);
	sv->http = NULL;
	if (sv->probe_timer_on) {
		sv->probe_timer_on = false;
		uv_close((uv_handle_t *)&sv->probe_timer, server_handle_close_cb);
	}
	if (sv->tk_timer_on) {
		sv->tk_timer_on = false;
		uv_close((uv_handle_t *)&sv->tk_timer, server_handle_close_cb);
	}
	ig_apprt_stop(sv->sh.apprt);
	uv_close((uv_handle_t *)&sv->sig_term, server_handle_close_cb);
	uv_close((uv_handle_t *)&sv->sig_int, server_handle_close_cb);
	uv_close((uv_handle_t *)&sv->sig_hup, server_handle_close_cb);
	uv_close((uv_handle_t *)&sv->sig_usr1, server_handle_close_cb);
}

/* Two optional strings (NULL: unset) are equal. */
static bool
server_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* True when nc binds the listeners sv has bound (same names, addresses and
   TLS modes, in the same order): they stay as bound at start. */
static bool
server_same_listeners(const struct ig_server *sv, const struct ig_config *nc)
{
	const struct ig_config *oc = sv->gen->cfg;
	if (nc->nlisteners != oc->nlisteners)
		return false;
	for (size_t i = 0; i < oc->nlisteners; i++)
		if (strcmp(nc->listeners[i].name, oc->listeners[i].name) != 0 ||
		    strcmp(nc->listeners[i].listen, oc->listeners[i].listen) != 0 ||
		    nc->listeners[i].tls != oc->listeners[i].tls)
			return false;
	return true;
}

struct server_apply {
	struct ig_gen *gen;
	unsigned revoked;
};

/* On each worker's thread: the new generation. */
static void
server_apply_cb(struct ig_worker *w, void *arg)
{
	struct server_apply *a = arg;
	a->revoked += ig_worker_apply_gen(w, a->gen);
}

/*
 * SIGHUP: loads the configuration file into a new generation and hands it
 * to every worker. Every check that can refuse it runs before anything is
 * applied, so a refused reload leaves everything (listener caps, limiter,
 * state_sync, log level, generation) as it was.
 */
static void
server_reload(struct ig_server *sv)
{
	log_info("event=reload-start config=%s", sv->config_path);
	struct ig_gen *g = ig_gen_load(sv->config_path, NULL);
	if (g == NULL) {
		log_error("event=reload-failed reason=\"configuration invalid, keeping the "
		    "running one\"");
		sv->reloads_failed++;
		return;
	}
	const struct ig_config *nc = g->cfg;
	if (!server_same_listeners(sv, nc)) {
		log_error("event=reload-failed reason=\"listeners changed: restart needed, "
		    "keeping the running configuration\"");
		ig_gen_unref(g);
		sv->reloads_failed++;
		return;
	}
	/*
	 * The limiter checks last: ig_rl_set_conf() either refuses, leaving
	 * the limiter as it was, or takes the new settings. Nothing may refuse
	 * after it.
	 */
	if (sv->sh.rl != NULL && nc->ratelimit.enabled) {
		ig_shared_lock(&sv->sh);
		int rc = ig_rl_set_conf(sv->sh.rl, &nc->ratelimit);
		ig_shared_unlock(&sv->sh);
		if (rc != 0) {
			log_error("event=reload-failed reason=\"rate limiter configuration "
			    "refused, keeping the running configuration\"");
			ig_gen_unref(g);
			sv->reloads_failed++;
			return;
		}
	}

	/* Accepted: apply everything. */
	if ((sv->sh.rl != NULL) != nc->ratelimit.enabled)
		log_warn("event=reload-note reason=\"ratelimit.enabled changes at restart\"");
	if (sv->rl_state_file != NULL && (nc->ratelimit_state_file == NULL ||
	    strcmp(nc->ratelimit_state_file, sv->rl_state_file) != 0))
		log_warn("event=reload-note reason=\"ratelimit.state_file changes at restart\"");
	if (nc->tls_crypto != ig_crypto_requested())
		log_warn("event=reload-note reason=\"tls.crypto changes at restart\"");
	if (!server_same_str(nc->apppass.store, sv->gen->cfg->apppass.store))
		log_warn("event=reload-note reason=\"app_passwords.store changes at restart\"");
	if (nc->apppass.max_concurrent_verifications !=
	    sv->gen->cfg->apppass.max_concurrent_verifications)
		log_warn("event=reload-note reason=\"app_passwords.max_concurrent_verifications "
		    "changes at restart\"");
	if (nc->workers != sv->gen->cfg->workers)
		log_warn("event=reload-note reason=\"workers changes at restart\"");
	if (nc->limits.buffer_size != sv->gen->cfg->limits.buffer_size)
		log_warn("event=reload-note reason=\"limits.buffer_size changes at restart\"");
	if ((nc->user == NULL) != (sv->gen->cfg->user == NULL) || (nc->user != NULL &&
	    (nc->user_uid != sv->gen->cfg->user_uid || nc->user_gid != sv->gen->cfg->user_gid)))
		log_warn("event=reload-note reason=\"user and group change at restart\"");
	if (nc->limits.buffer_pool_max != sv->gen->cfg->limits.buffer_pool_max)
		log_warn("event=reload-note reason=\"limits.buffer_pool_max changes at restart\"");
	if (strcmp(nc->admin_listen, sv->gen->cfg->admin_listen) != 0)
		log_warn("event=reload-note reason=\"admin.listen changes at restart\"");
	if (sv->probe_timer_on && nc->admin_probe_interval_ms != sv->probe_interval_ms) {
		sv->probe_interval_ms = nc->admin_probe_interval_ms;
		uv_timer_start(&sv->probe_timer, server_probe_tick, sv->probe_interval_ms,
		    sv->probe_interval_ms);
	}
	if (sv->rl_sync_on && nc->ratelimit_state_sync_ms != sv->rl_sync_ms) {
		sv->rl_sync_ms = nc->ratelimit_state_sync_ms;
		uv_timer_start(&sv->rl_sync, server_rl_sync_cb, sv->rl_sync_ms, sv->rl_sync_ms);
	}
	ig_log_set_level(nc->log_level);
	ig_log_set_format(nc->log_format);
	if (ig_log_set_redact(nc->log_redact_users, NULL, 0) != 0)
		log_error("event=reload-note reason=\"log.redact_users: no randomness for the "
		    "key, unchanged\"");
	if (!server_same_str(nc->log_file, sv->gen->cfg->log_file))
		log_warn("event=reload-note reason=\"log.file changes at restart\"");
	if (!server_same_str(nc->log_redact_key_file, sv->gen->cfg->log_redact_key_file))
		log_warn("event=reload-note reason=\"log.redact_key_file changes at restart\"");
	/* Ticket keys: the new generation read the key file again. */
	char oe[IG_TICKET_KEY_NAME_HEX], od[IG_TICKET_KEY_NAME_HEX];
	char ne[IG_TICKET_KEY_NAME_HEX], nd[IG_TICKET_KEY_NAME_HEX];
	bool had = ig_tls_server_ticket_file(sv->gen->tls_server, NULL, oe, od);
	bool has = ig_tls_server_ticket_file(g->tls_server, NULL, ne, nd);
	struct ig_gen *old = sv->gen;
	sv->gen = g;
	sv->gen_seq++;
	ig_gen_unref(old);
	if (has && had && strcmp(oe, ne) == 0 && strcmp(od, nd) == 0)
		log_debug("event=ticket-keys-kept file=%s encrypt=%s decrypt=%s",
		    nc->tls_ticket_key_file, ne, nd);
	else if (has)
		server_tk_log(sv, "reload");
	sv->tk_refused_set = false;
	sv->tk_stat_failed = false;
	server_tk_timer(sv);
	server_probe(sv);
	struct server_apply a = { g, 0 };
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_call(&sv->workers[i], server_apply_cb, &a);
	sv->reloads_ok++;
	log_info("event=reload-done sessions=%u revoked=%u", atomic_load(&sv->sh.nsessions),
	    a.revoked);
}

/* On each worker's thread: its buffer pool's numbers, added up. */
static void
server_buffers_cb(struct ig_worker *w, void *arg)
{
	struct ig_ctl_stats *st = arg;
	struct ig_bufpool_stats bs;
	ig_worker_buffer_stats(w, &bs);
	st->buffers_in_use += bs.in_use;
	st->buffers_in_use_peak += bs.in_use_peak;
	st->buffers_free += bs.free;
	st->buffers_waiting += bs.waiting;
	st->buffers_refused += bs.refused;
}

/* The admin socket's `stats`: workers, buffers, the limiter's state file. */
static void
server_ctl_stats(void *arg, struct ig_ctl_stats *st)
{
	struct ig_server *sv = arg;
	st->workers = sv->nworkers;
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_call(&sv->workers[i], server_buffers_cb, st);
	st->state_file = sv->rl_state_file != NULL;
	st->state_saved_changes = sv->rl_saved_changes;
	st->state_save_failures = sv->rl_save_failures;
	if (sv->sh.apprt != NULL) {
		struct ig_apprt_stats as;
		ig_apprt_stats(sv->sh.apprt, &as);
		st->apppass = true;
		st->apppass_loaded = as.loaded;
		st->apppass_active = as.active;
		st->apppass_revoked = as.revoked;
		st->apppass_outstanding = as.outstanding;
	}
}

struct server_kick {
	const char *user;
	unsigned count;
	int rc;
};

static void
server_kick_cb(struct ig_worker *w, void *arg)
{
	struct server_kick *k = arg;
	unsigned n = 0;
	int rc = ig_worker_kick(w, k->user, &n);
	if (rc != 0)
		k->rc = rc;
	k->count += n;
}

/* The admin socket's `kick USER`: on every worker. */
static int
server_ctl_kick(void *arg, const char *user, unsigned *count)
{
	struct ig_server *sv = arg;
	struct server_kick k = { user, 0, 0 };
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_call(&sv->workers[i], server_kick_cb, &k);
	*count = k.count;
	return k.rc;
}

static const struct ig_ctl_ops server_ctl_ops = { server_ctl_stats, server_ctl_kick };

/* The drain is over (why: all-ended, timeout, second-signal): every
   session left is shut down, then the process stops. */
static void
server_drain_end(struct ig_server *sv, const char *why)
{
	if (!sv->draining || sv->stopping)
		return;
	log_info("event=drain-end reason=%s sessions_left=%u duration_ms=%llu", why,
	    atomic_load(&sv->sh.nsessions),
	    (unsigned long long)(uv_now(&sv->loop) - sv->drain_start_ms));
	server_stop(sv, why);
}

static void
server_drain_timer_cb(uv_timer_t *t)
{
	server_drain_end(t->data, "timeout");
}

static void
server_drained_cb(uv_async_t *a)
{
	struct ig_server *sv = a->data;
	if (atomic_load(&sv->sh.nsessions) == 0)
		server_drain_end(sv, "all-ended");
}

/* On each worker's thread: stop accepting, end the idle sessions. */
static void
server_drain_cb(struct ig_worker *w, void *arg)
{
	unsigned *ended = arg;
	*ended += ig_worker_drain(w);
}

/*
 * The first SIGTERM or SIGINT: every worker closes its listening sockets
 * (when this returns a new connection is refused) and shuts down its
 * sessions that have nothing under way; the rest may end by themselves
 * until limits.drain_timeout (the current generation's).
 */
static void
server_drain(struct ig_server *sv, const char *sig)
{
	sv->draining = true;
	sv->drain_start_ms = uv_now(&sv->loop);
	unsigned before = atomic_load(&sv->sh.nsessions), ended = 0;
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_call(&sv->workers[i], server_drain_cb, &ended);
	unsigned ms = sv->gen->cfg->limits.drain_timeout_ms;
	log_info("event=accept-stopped reason=drain listeners=%zu workers=%u", sv->nlisteners,
	    sv->nworkers);
	log_info("event=drain-start reason=%s sessions=%u ended_now=%u drain_timeout_ms=%u",
	    sig, before, ended, ms);
	if (ms == 0) {
		server_drain_end(sv, "timeout");
		return;
	}
	uv_timer_start(&sv->drain_timer, server_drain_timer_cb, ms, 0);
	if (atomic_load(&sv->sh.nsessions) == 0)
		server_drain_end(sv, "all-ended");
}

/*
 * SIGUSR1: log.file is opened again by name (logrotate renamed it). Lines
 * written meanwhile by the workers go whole to the old or the new file.
 */
static void
server_log_reopen_cb(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	if (ig_log_path() == NULL)
		return;
	if (ig_log_reopen() != 0)
		log_error("event=log-reopen-failed file=%s error=\"%s\"", ig_log_path(),
		    strerror(errno));
	else
		log_info("event=log-reopened file=%s", ig_log_path());
}

static void
server_signal_cb(uv_signal_t *h, int signum)
{
	struct ig_server *sv = h->data;
	if (signum == SIGHUP) {
		if (sv->draining) {
			log_warn("event=reload-ignored reason=draining");
			return;
		}
		server_reload(sv);
		return;
	}
	const char *sig = signum == SIGTERM ? "SIGTERM" : "SIGINT";
	if (sv->draining) {
		log_info("event=stop-now signal=%s", sig);
		server_drain_end(sv, "second-signal");
		return;
	}
	server_drain(sv, sig);
}

unsigned
ig_server_auto_workers(void)
{
	unsigned n = uv_available_parallelism();
	if (n < 1)
		n = 1;
	return n > IG_WORKERS_MAX ? IG_WORKERS_MAX : n;
}

/* A listening socket for lc, bound to addr; -errno on failure. */
static int
server_socket(const struct sockaddr_storage *addr, bool reuseport)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int on = 1;
	socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
	    /* Linux gives it to every connection accepted from the socket:
	       one system call here instead of one per connection. */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
	    bind(fd, (const struct sockaddr *)addr, len) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static uint16_t *
server_port_of(struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? &((struct sockaddr_in6 *)ss)->sin6_port :
	    &((struct sockaddr_in *)ss)->sin_port;
}

/*
 * Binds listener i once per worker into fds[w * nlisteners + i]. With
 * several workers the sockets share the port through SO_REUSEPORT; first
 * a plain bind checks that nobody else holds it (another process with
 * SO_REUSEPORT would otherwise silently share our port, and a port in use
 * must fail the start as it does with one worker). Returns 0 or IG_EIO
 * after logging.
 */
static int
server_bind_listener(struct ig_server *sv, size_t i, int *fds)
{
	const struct ig_listener_conf *lc = &sv->gen->cfg->listeners[i];
	struct sockaddr_storage addr = lc->addr;
	bool reuseport = sv->nworkers > 1;
	int fd = server_socket(&addr, false);
	if (fd >= 0 && reuseport) {
		/* The port it got (a configured port 0 gets one here). */
		struct sockaddr_storage got;
		socklen_t glen = sizeof(got);
		if (getsockname(fd, (struct sockaddr *)&got, &glen) == 0)
			*server_port_of(&addr) = *server_port_of(&got);
		close(fd);
		fd = 0;
	}
	for (unsigned w = 0; fd >= 0 && w < sv->nworkers; w++) {
		if (!reuseport) {
			fds[i] = fd;
			break;
		}
		fd = server_socket(&addr, true);
		if (fd >= 0)
			fds[w * sv->nlisteners + i] = fd;
	}
	if (fd < 0) {
		log_error("event=start-failed listener=%s listen=%s error=\"%s\"", lc->name,
		    lc->listen, uv_strerror(uv_translate_sys_error(-fd)));
		return IG_EIO;
	}
	return 0;
}

/*
 * Becomes `user` (and `group`) once every socket and file that needs root
 * is open, before the probe, the workers and any thread: no network-facing
 * code runs as root. The admin socket is given to the user (so that it may
 * use `imapguard ctl` too); the limiter's state file is saved by rename in
 * its directory, which must therefore be writable by the user: checked
 * here, as the user, so that a save cannot fail later for it. Returns 0 or
 * IG_EIO after logging event=start-failed.
 */
static int
server_drop_privileges(struct ig_server *sv)
{
	const struct ig_config *cfg = sv->gen->cfg;
	char err[256];
	if (cfg->user == NULL)
		return 0;
	if (geteuid() != 0) {
		if (geteuid() == cfg->user_uid && getegid() == cfg->user_gid)
			return 0; /* started as that user already */
		log_error("event=start-failed reason=privileges user=%s error=\"only root can "
		    "become another user (running as uid %lu)\"", cfg->user,
		    (unsigned long)geteuid());
		return IG_EIO;
	}
	if (cfg->admin_socket != NULL &&
	    chown(cfg->admin_socket, cfg->user_uid, cfg->user_gid) != 0)
		log_warn("event=privileges-note admin_socket=%s error=\"cannot give it to user "
		    "%s: %s\"", cfg->admin_socket, cfg->user, strerror(errno));
	if (ig_priv_drop(cfg->user, cfg->user_uid, cfg->user_gid, err, sizeof(err)) != 0) {
		log_error("event=start-failed reason=privileges user=%s error=\"%s\"", cfg->user,
		    err);
		return IG_EIO;
	}
	gid_t groups[64];
	int ngroups = getgroups(64, groups);
	log_info("event=privileges-dropped user=%s uid=%lu gid=%lu groups=%d no_new_privs=1",
	    cfg->user, (unsigned long)cfg->user_uid, (unsigned long)cfg->user_gid, ngroups);
	const char *tk = cfg->tls_ticket_key_file;
	if (ig_tls_server_ticket_file(sv->gen->tls_server, NULL, NULL, NULL) &&
	    access(tk, R_OK) != 0) {
		log_error("event=start-failed reason=ticket-key-file file=%s user=%s error=\"%s: "
		    "imapguard reads it again as %s when it changes and on reload; make it "
		    "readable by %s (owned by it, or mode 640 with its group)\"", tk, cfg->user,
		    strerror(errno), cfg->user, cfg->user);
		return IG_EIO;
	}
	if (sv->rl_state_file != NULL) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", sv->rl_state_file);
		const char *d = dirname(dir);
		if (access(d, W_OK | X_OK) != 0) {
			log_error("event=start-failed reason=state-file-directory file=%s dir=%s "
			    "user=%s error=\"%s: the state is saved by rename in that directory; "
			    "make it writable by %s (e.g. owned by it)\"", sv->rl_state_file, d,
			    cfg->user, strerror(errno), cfg->user);
			return IG_EIO;
		}
	}
	return 0;
}

static int
server_start(struct ig_server *sv, struct ig_gen *g, const char *config_path)
{
	memset(sv, 0, sizeof(*sv));
	sv->rl_lock_fd = -1;
	sv->start_time = (double)ig_wall_ms() / 1000.0;
	sv->gen = g;
	sv->config_path = config_path;
	const struct ig_config *cfg = g->cfg;
	sv->nlisteners = cfg->nlisteners;
	sv->nworkers = cfg->workers != 0 ? cfg->workers : ig_server_auto_workers();
	ig_listener_raise_fd_limit();
	if (uv_loop_init(&sv->loop) != 0) {
		log_error("event=start-failed reason=loop-init");
		return IG_EIO;
	}
	sv->loop_on = true;
	int rc = ig_shared_init(&sv->sh, cfg->nlisteners);
	if (rc != 0) {
		log_error("event=start-failed reason=shared-state error=\"%s\"", ig_strerror(rc));
		return rc;
	}

	/*
	 * Signals first: from here a SIGTERM ends the process cleanly (main()
	 * blocks them until the handlers exist, so one sent during start-up
	 * waits here instead of killing us).
	 */
	uv_signal_init(&sv->loop, &sv->sig_term);
	uv_signal_init(&sv->loop, &sv->sig_int);
	uv_signal_init(&sv->loop, &sv->sig_hup);
	sv->sig_term.data = sv->sig_int.data = sv->sig_hup.data = sv;
	uv_signal_start(&sv->sig_term, server_signal_cb, SIGTERM);
	uv_signal_start(&sv->sig_int, server_signal_cb, SIGINT);
	uv_signal_start(&sv->sig_hup, server_signal_cb, SIGHUP);
	uv_timer_init(&sv->loop, &sv->drain_timer);
	uv_async_init(&sv->loop, &sv->drained, server_drained_cb);
	sv->drain_timer.data = sv->drained.data = sv;
	sv->drain_on = true;
	uv_signal_init(&sv->loop, &sv->sig_usr1);
	sv->sig_usr1.data = sv;
	uv_signal_start(&sv->sig_usr1, server_log_reopen_cb, SIGUSR1);

	/* Bind every listener (a port in use fails here), listen only last. */
	size_t nfds = (size_t)sv->nworkers * cfg->nlisteners;
	int *fds = malloc(nfds * sizeof(*fds));
	sv->workers = calloc(sv->nworkers, sizeof(*sv->workers));
	if (fds == NULL || sv->workers == NULL) {
		free(fds);
		log_error("event=start-failed error=\"%s\"", ig_strerror(IG_ENOMEM));
		return IG_ENOMEM;
	}
	for (size_t i = 0; i < nfds; i++)
		fds[i] = -1;
	rc = 0;
	for (size_t i = 0; i < cfg->nlisteners && rc == 0; i++)
		rc = server_bind_listener(sv, i, fds);
	/* Everything else that can fail, fails before a client is accepted. */
	if (rc == 0 && server_rl_init(sv) != 0)
		rc = IG_ECONFIG;
	if (rc == 0 && cfg->admin_socket != NULL &&
	    ig_ctl_start(&sv->loop, &sv->sh, cfg->admin_socket, &server_ctl_ops, sv,
	        &sv->ctl) != 0)
		rc = IG_EIO;
	if (rc == 0 && ig_shared_metrics_init(&sv->sh, sv->nworkers) != 0) {
		log_error("event=start-failed reason=metrics error=\"%s\"", ig_strerror(IG_ENOMEM));
		rc = IG_ENOMEM;
	}
	if (rc == 0 && cfg->admin_listen_addrlen != 0) {
		rc = ig_admin_http_start(&sv->loop, (const struct sockaddr *)&cfg->admin_listen_addr,
		    cfg->admin_listen, &server_http_ops, sv, &sv->http);
		if (rc == 0) {
			/* /readyz follows the backend: probe it periodically. */
			sv->probe_interval_ms = cfg->admin_probe_interval_ms;
			uv_timer_init(&sv->loop, &sv->probe_timer);
			sv->probe_timer.data = sv;
			sv->probe_timer_on = true;
			uv_timer_start(&sv->probe_timer, server_probe_tick, sv->probe_interval_ms,
			    sv->probe_interval_ms);
		}
	}
	/* Everything that needs root is open: from here, the user. */
	if (rc == 0 && server_drop_privileges(sv) != 0)
		rc = IG_EIO;
	/* The app password store is read as the user (SQLite makes its -wal
	   and -shm files as whoever opens it first). */
	if (rc == 0 && cfg->apppass.store != NULL &&
	    ig_apprt_start(&sv->loop, &cfg->apppass, server_apppass_changed, sv,
	        &sv->sh.apprt) != 0)
		rc = IG_ENOMEM;
	if (rc != 0) {
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
		return rc;
	}
	/*
	 * Ready waits for the first probe (its result or its timeout), so that
	 * the first client is shown the backend's capabilities. The loop runs
	 * meanwhile (the admin socket answers); the stop signals are still
	 * held back by main(), and no client is accepted yet.
	 */
	server_probe(sv);
	while (sv->probe != NULL || (sv->sh.apprt != NULL && !ig_apprt_polled(sv->sh.apprt)))
		uv_run(&sv->loop, UV_RUN_ONCE);

	/* The workers, each on its sockets (they own them from here). */
	unsigned made = 0;
	for (; made < sv->nworkers && rc == 0; made++)
		rc = ig_worker_init(&sv->workers[made], made, sv->nworkers, &sv->sh, g,
		    &fds[(size_t)made * cfg->nlisteners], cfg->nlisteners);
	for (size_t i = (size_t)made * cfg->nlisteners; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	if (rc != 0) {
		sv->nworkers = made; /* what destroy cleans up */
		return rc;
	}
	/* Every descriptor but the sessions' is open: the budget, then listen. */
	for (unsigned i = 0; i < sv->nworkers; i++)
		if ((rc = ig_worker_listen(&sv->workers[i])) != 0)
			return rc;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		log_info("event=listening listener=%s listen=%s tls=%s", lc->name, lc->listen,
		    ig_tls_mode_str(lc->tls));
	}
	for (unsigned i = 0; i < sv->nworkers; i++)
		sv->workers[i].drained = &sv->drained;
	for (unsigned i = 0; i < sv->nworkers; i++)
		if ((rc = ig_worker_start(&sv->workers[i], sv->workers, sv->nworkers)) != 0)
			return rc;
	sv->workers_started = true;
	server_tk_log(sv, "start");
	server_tk_timer(sv);
	log_info("event=ready listeners=%zu workers=%u pid=%ld", cfg->nlisteners, sv->nworkers,
	    (long)getpid());
	return 0;
}

int
ig_server_init(struct ig_server *sv, struct ig_gen *g, const char *config_path)
{
	int rc = server_start(sv, g, config_path);
	if (rc != 0)
		ig_server_destroy(sv);
	return rc;
}

int
ig_server_run(struct ig_server *sv)
{
	uv_run(&sv->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_join(&sv->workers[i]);
	/* Last word on the state file: every session has ended. */
	server_rl_save(sv);
	return 0;
}

static void
server_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, server_handle_close_cb);
}

int
ig_server_destroy(struct ig_server *sv)
{
	int rc = 0;
	/* Workers first: their sessions use the shared state. */
	for (unsigned i = 0; i < sv->nworkers; i++)
		ig_worker_stop(&sv->workers[i]);
	for (unsigned i = 0; i < sv->nworkers; i++)
		if (ig_worker_destroy(&sv->workers[i]) != 0)
			rc = IG_EIO;
	free(sv->workers);
	sv->workers = NULL;
	sv->nworkers = 0;
	if (sv->loop_on) {
		/* Anything still open (a failed start) is closed and run out. */
		server_probe_cancel(sv, "shutdown");
		ig_ctl_stop(sv->ctl);
		sv->ctl = NULL;
		ig_admin_http_stop(sv->http);
		sv->http = NULL;
		sv->probe_timer_on = false; /* (closed by the walk below) */
		ig_apprt_stop(sv->sh.apprt);
		uv_walk(&sv->loop, server_walk_close, NULL);
		uv_run(&sv->loop, UV_RUN_DEFAULT);
		int lrc = uv_loop_close(&sv->loop);
		if (lrc != 0) {
			log_error("event=loop-close-failed error=\"%s\"", uv_strerror(lrc));
			rc = IG_EIO;
		}
		sv->loop_on = false;
	}
	ig_rl_snapshot_free(sv->rl_snap); /* (none: the loop ran them out) */
	sv->rl_snap = NULL;
	ig_apprt_free(sv->sh.apprt); /* (its poll has been run out) */
	sv->sh.apprt = NULL;
	ig_shared_destroy(&sv->sh); /* the limiter and the connection table */
	if (sv->rl_lock_fd >= 0)
		close(sv->rl_lock_fd); /* releases the state file to a successor */
	sv->rl_lock_fd = -1;
	free(sv->rl_state_file);
	sv->rl_state_file = NULL;
	mbedtls_platform_zeroize(sv->rl_key, sizeof(sv->rl_key));
	ig_gen_unref(sv->gen);
	sv->gen = NULL;
	return rc;
}
