/*
 * The worker: a libuv loop, its listeners, its sessions, its signals, and
 * the configuration generation new sessions get. Reload (SIGHUP) builds a
 * new generation to the side and swaps one pointer only if all of it loaded;
 * running sessions keep the generation they started with.
 */
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "policy/ratelimit.h"
#include "proxy/conncount.h"
#include "proxy/ctl.h"
#include "proxy/err.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/probe.h"
#include "proxy/session.h"
#include "proxy/tls.h"

struct ig_gen *
ig_gen_load(const char *path, FILE *errf)
{
	if (errf == NULL)
		errf = stderr;
	struct ig_config *cfg = NULL;
	if (ig_config_load(path, &cfg, errf) != 0)
		return NULL;
	struct ig_gen *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		ig_config_free(cfg);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->cfg = cfg;
	char err[512] = "";
	if (ig_certstore_load(cfg->certs, cfg->ncerts, &g->certs, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: %s\n", path, err);
		goto fail;
	}
	if (ig_tls_server_new(cfg, g->certs, &g->tls_server, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: %s\n", path, err);
		goto fail;
	}
	if (cfg->backend.tls != IG_TLS_NONE &&
	    ig_tls_client_new(&cfg->backend, &g->tls_client, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: backend: %s\n", path, err);
		goto fail;
	}
	return g;
fail:
	ig_gen_unref(g);
	return NULL;
}

void
ig_gen_ref(struct ig_gen *g)
{
	atomic_fetch_add(&g->refs, 1);
}

void
ig_gen_unref(struct ig_gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	ig_tls_client_free(g->tls_client);
	ig_tls_server_free(g->tls_server);
	ig_certstore_free(g->certs);
	ig_config_free(g->cfg);
	free(g);
}

uint64_t
ig_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Creates the limiter from the generation's config; loads saved state. */
static int
worker_rl_init(struct ig_worker *w)
{
	const struct ig_config *cfg = w->gen->cfg;
	if (!cfg->ratelimit.enabled) {
		log_warn("event=ratelimit state=disabled");
		return 0;
	}
	psa_generate_random(w->rl_key, sizeof(w->rl_key));
	int rc = ig_rl_new(&cfg->ratelimit, w->rl_key, &w->rl);
	if (rc != 0) {
		log_error("event=start-failed reason=ratelimit error=\"%s\"", ig_strerror(rc));
		return rc;
	}
	if (cfg->ratelimit_state_file != NULL) {
		w->rl_state_file = strdup(cfg->ratelimit_state_file);
		rc = ig_rl_load(w->rl, w->rl_state_file, ig_wall_ms());
		if (rc == 0)
			log_info("event=ratelimit-state-loaded file=%s keys=%zu", w->rl_state_file,
			    ig_rl_count(w->rl));
		else if (rc != IG_ENOTFOUND)
			log_warn("event=ratelimit-state-ignored file=%s error=\"%s\"",
			    w->rl_state_file, ig_strerror(rc));
	}
	log_info("event=ratelimit state=enabled max_keys=%zu bytes_per_key=%zu",
	    cfg->ratelimit.max_keys, ig_rl_entry_size());
	return 0;
}

static void
worker_rl_save(struct ig_worker *w)
{
	if (w->rl == NULL || w->rl_state_file == NULL)
		return;
	int rc = ig_rl_save(w->rl, w->rl_state_file, ig_wall_ms());
	if (rc == 0)
		log_info("event=ratelimit-state-saved file=%s keys=%zu", w->rl_state_file,
		    ig_rl_count(w->rl));
	else
		log_error("event=ratelimit-state-save-failed file=%s error=\"%s\"",
		    w->rl_state_file, ig_strerror(rc));
}

static void
worker_handle_close_cb(uv_handle_t *h)
{
	(void)h;
}

/* Learns the backend's capabilities before clients ask (blocking, short). */
static void
worker_probe(struct ig_worker *w)
{
	char caps[IG_CAPS_MAX], err[256];
	if (ig_backend_probe(w->gen, 3000, caps, sizeof(caps), err, sizeof(err)) != 0) {
		log_warn("event=backend-probe result=fail backend=%s reason=\"%s\"",
		    w->gen->cfg->backend.address, err);
		return;
	}
	snprintf(w->backend_caps, sizeof(w->backend_caps), "%s", caps);
	w->backend_caps_known = true;
	log_info("event=backend-probe result=ok backend=%s capabilities=\"%s\"",
	    w->gen->cfg->backend.address, caps);
}

static void
worker_stop(struct ig_worker *w, const char *why)
{
	if (w->stopping)
		return;
	w->stopping = true;
	log_info("event=shutdown reason=%s sessions=%u", why, w->nsessions);
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].open) {
			w->listeners[i].open = false;
			uv_close((uv_handle_t *)&w->listeners[i].tcp, worker_handle_close_cb);
		}
	}
	ig_listener_gate_close(w);
	ig_session_shutdown_all(w);
	worker_rl_save(w);
	ig_ctl_stop(w->ctl);
	w->ctl = NULL;
	uv_close((uv_handle_t *)&w->sig_term, worker_handle_close_cb);
	uv_close((uv_handle_t *)&w->sig_int, worker_handle_close_cb);
	uv_close((uv_handle_t *)&w->sig_hup, worker_handle_close_cb);
}

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
	/* Listeners stay as bound at start; a change needs a restart. */
	const struct ig_config *nc = g->cfg;
	bool same = nc->nlisteners == w->nlisteners;
	for (size_t i = 0; same && i < w->nlisteners; i++)
		same = strcmp(nc->listeners[i].name, w->listeners[i].name) == 0 &&
		    strcmp(nc->listeners[i].listen, w->gen->cfg->listeners[i].listen) == 0 &&
		    nc->listeners[i].tls == w->listeners[i].tls;
	if (!same) {
		log_error("event=reload-failed reason=\"listeners changed: restart needed, "
		    "keeping the running configuration\"");
		ig_gen_unref(g);
		return;
	}
	for (size_t i = 0; i < w->nlisteners; i++)
		w->listeners[i].max_sessions = nc->listeners[i].max_sessions ?
		    nc->listeners[i].max_sessions : nc->limits.max_sessions;
	if (w->rl != NULL && nc->ratelimit.enabled &&
	    ig_rl_set_conf(w->rl, &nc->ratelimit) != 0) {
		log_error("event=reload-failed reason=\"rate limiter configuration refused, "
		    "keeping the running configuration\"");
		ig_gen_unref(g);
		return;
	}
	if ((w->rl != NULL) != nc->ratelimit.enabled)
		log_warn("event=reload-note reason=\"ratelimit.enabled changes at restart\"");
	ig_log_set_level(nc->log_level);
	struct ig_gen *old = w->gen;
	w->gen = g;
	ig_gen_unref(old);
	worker_probe(w);
	log_info("event=reload-done sessions=%u", w->nsessions);
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
	w->gen = g;
	w->config_path = config_path;
	ig_listener_raise_fd_limit();
	if (uv_loop_init(&w->loop) != 0) {
		log_error("event=start-failed reason=loop-init");
		ig_gen_unref(g);
		return IG_EIO;
	}
	ig_listener_gate_init(w);
	uint64_t r = 0;
	psa_generate_random((uint8_t *)&r, sizeof(r));
	w->sid_base = r & ~UINT64_C(0xffffff);
	uint8_t cc_key[16];
	psa_generate_random(cc_key, sizeof(cc_key));
	int cc_rc = ig_cc_new(cc_key, &w->cc);
	mbedtls_platform_zeroize(cc_key, sizeof(cc_key));
	if (cc_rc != 0) {
		log_error("event=start-failed reason=connection-table error=\"%s\"",
		    ig_strerror(cc_rc));
		ig_worker_destroy(w);
		return cc_rc;
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
	w->listeners = calloc(cfg->nlisteners, sizeof(*w->listeners));
	if (w->listeners == NULL) {
		ig_worker_destroy(w);
		return IG_ENOMEM;
	}
	w->nlisteners = cfg->nlisteners;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		struct ig_listener *l = &w->listeners[i];
		l->w = w;
		l->index = i;
		snprintf(l->name, sizeof(l->name), "%s", lc->name);
		l->tls = lc->tls;
		l->max_sessions = lc->max_sessions ? lc->max_sessions : cfg->limits.max_sessions;
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
	if (cfg->admin_socket != NULL && ig_ctl_start(w, cfg->admin_socket, &w->ctl) != 0) {
		ig_worker_destroy(w);
		return IG_EIO;
	}
	worker_probe(w);
	if (ig_listener_fd_budget(w) != 0) {
		ig_worker_destroy(w);
		return IG_EIO;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		int rc = uv_listen((uv_stream_t *)&w->listeners[i].tcp, 511,
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
	ig_listener_gate_close(w);
	ig_ctl_stop(w->ctl);
	w->ctl = NULL;
	uv_walk(&w->loop, worker_walk_close, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&w->loop);
	if (rc != 0)
		log_error("event=loop-close-failed error=\"%s\"", uv_strerror(rc));
	free(w->listeners);
	w->listeners = NULL;
	ig_cc_free(w->cc); /* every session is freed by now */
	w->cc = NULL;
	ig_rl_free(w->rl);
	w->rl = NULL;
	free(w->rl_state_file);
	w->rl_state_file = NULL;
	mbedtls_platform_zeroize(w->rl_key, sizeof(w->rl_key));
	ig_gen_unref(w->gen);
	w->gen = NULL;
	return rc == 0 ? 0 : IG_EIO;
}
