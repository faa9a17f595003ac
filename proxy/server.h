/*
 * The server: the process around the workers. Its main thread runs a loop
 * of its own for what is not a client session: the signals (SIGHUP reload,
 * SIGTERM/SIGINT stop), the admin socket, the backend probe, the limiter's
 * state file. It binds the client listeners (one socket per worker and
 * listener, SO_REUSEPORT when there are several workers), owns what the
 * workers share (struct ig_shared) and the current configuration
 * generation, and reaches the workers only through their mailboxes
 * (proxy/worker.h).
 */
#ifndef IG_PROXY_SERVER_H
#define IG_PROXY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "crypto/ticket_keys.h"
#include "proxy/shared.h"
#include "proxy/worker.h"

struct ig_admin_http;
struct ig_ctl;
struct ig_probe;
struct ig_rl_snapshot;

struct ig_server {
	uv_loop_t loop;
	bool loop_on;
	struct ig_shared sh;           /* the limiter, connection table,
	                                  capabilities, counts: every worker's */
	struct ig_gen *gen;            /* current generation (one reference) */
	uint64_t gen_seq;              /* counts accepted reloads */
	const char *config_path;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_signal_t sig_usr1;          /* log.file reopen (logrotate) */
	bool stopping;
	/*
	 * The drain (first SIGTERM or SIGINT): listeners closed, sessions
	 * ending by themselves until limits.drain_timeout, the last one's
	 * end (drained, sent by a worker) or a second signal; then stopping.
	 */
	bool draining;
	bool drain_on;                 /* drain_timer and drained initialised,
	                                  the timer not closed (drained is
	                                  closed by ig_server_destroy, after
	                                  the workers are joined) */
	uv_timer_t drain_timer;
	uv_async_t drained;            /* a worker: no session left */
	uint64_t drain_start_ms;       /* loop time the drain began */

	struct ig_worker *workers;     /* nworkers, each with its thread */
	unsigned nworkers;
	size_t nlisteners;

	/* The brute-force limiter's hash key (the limiter is sh.rl). */
	uint8_t rl_key[32];
	/*
	 * Its state file: locked for the process's life, saved within
	 * state_sync of a change (snapshot on the loop, write on libuv's thread
	 * pool, one save at a time) and at shutdown (synchronously, last,
	 * after every worker has ended).
	 */
	char *rl_state_file;           /* owned copy, or NULL */
	int rl_lock_fd;                /* flock on rl_state_file.lock, or -1 */
	uv_timer_t rl_sync;            /* repeats every rl_sync_ms */
	bool rl_sync_on;               /* rl_sync initialised and not closed */
	unsigned rl_sync_ms;
	uv_work_t rl_save_req;
	struct ig_rl_snapshot *rl_snap;/* the save in flight, or NULL; the pool
	                                  thread reads it, nobody else touches
	                                  it until the after-work callback */
	int rl_snap_rc;                /* its result, written on the pool */
	int rl_snap_errno;
	uint64_t rl_snap_changes;      /* ig_rl_changes() at its snapshot */
	size_t rl_snap_keys;
	uint64_t rl_saved_changes;     /* ig_rl_changes() in the file */
	unsigned rl_save_failures;     /* since the last good save */
	uint64_t rl_fail_logged_ms;    /* loop time of the last failure logged */
	struct ig_ctl *ctl;            /* admin.socket, or NULL */

	struct ig_probe *probe;        /* the backend probe under way, or NULL
	                                  (proxy/probe.c; frees itself) */
	bool probe_done;               /* a probe has had its result */
	bool probe_ok;                 /* the last result was a success */
	bool probe_reason_logged;      /* a failure was logged at warn and
	                                  no success came since */
	char probe_reason[256];        /* the last failure's reason */
	uv_timer_t probe_timer;        /* admin.probe_interval, while
	                                  admin.listen is set */
	bool probe_timer_on;
	bool probe_periodic;           /* the one under way is the timer's */
	unsigned probe_interval_ms;

	/*
	 * tls.ticket_key_file: its identity (stat) checked every tk_period_ms
	 * on this loop, never by a worker; a changed file is read and its keys
	 * installed in the current generation's TLS configuration, which every
	 * worker uses. A file refused (bad content or mode) is logged once and
	 * tried again when it changes; the keys in use stay.
	 */
	uv_timer_t tk_timer;
	bool tk_timer_on;              /* tk_timer initialised and not closed */
	unsigned tk_period_ms;
	struct ig_file_id tk_refused;  /* the file last refused ... */
	bool tk_refused_set;           /* ... when this is set */
	bool tk_stat_failed;           /* logged; until stat works again */
	bool tk_refresh_failed;        /* logged; until a refresh works */

	bool workers_started;          /* every worker's thread runs */
	struct ig_admin_http *http;    /* admin.listen, or NULL */
	double start_time;             /* Unix seconds (metrics) */
	uint64_t reloads_ok, reloads_failed;
};

/* The workers "workers: auto" gives: the CPUs this process may run on. */
unsigned ig_server_auto_workers(void);

/*
 * Starts the server with generation g (takes the caller's reference):
 * binds every listener, creates the limiter (locking and loading its state
 * file), opens the admin socket, runs its loop until the first backend
 * probe has its result (or timed out), starts the workers and logs
 * event=ready. Returns 0, or an IG_E* after logging event=start-failed with
 * the reason (a listener that cannot be bound, a state file or admin
 * socket another instance uses, ...); then nothing was accepted and
 * nothing is left open.
 */
int ig_server_init(struct ig_server *sv, struct ig_gen *g, const char *config_path);
/*
 * Runs until SIGTERM/SIGINT and the workers' clean shutdown, then saves
 * the limiter's state. Returns 0. The first signal drains: no new
 * connection, sessions before login end at once ("* BYE [UNAVAILABLE]";
 * a login under way may finish), the others until they end or
 * limits.drain_timeout; a second signal ends the drain at once.
 */
int ig_server_run(struct ig_server *sv);
/* Closes everything and releases the generation; 0 when every loop closed. */
int ig_server_destroy(struct ig_server *sv);

#endif /* IG_PROXY_SERVER_H */
