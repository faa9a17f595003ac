/*
 * A worker: one libuv loop with its listeners and sessions, and the
 * configuration generation it hands to new sessions. All mutable state lives
 * here or in sessions; nothing is global, so several workers can run in
 * threads of their own.
 */
#ifndef IG_PROXY_WORKER_H
#define IG_PROXY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/listener_types.h"
#include "proxy/sessions.h"

struct ig_ctl;
struct ig_probe;
struct ig_rl_snapshot;

struct ig_worker {
	uv_loop_t loop;
	/*
	 * What the sessions share with the worker (proxy/sessions.h): the
	 * current generation (one reference) and its number, the limiter and
	 * the connection table (both owned here), the learned backend
	 * capabilities, the live sessions, their ids, the stopping flag.
	 */
	struct ig_session_set set;
	const char *config_path;
	uv_signal_t sig_term, sig_int, sig_hup;
	struct ig_accept_gate gate;    /* the listeners, the descriptor budget,
	                                  paused accepts (proxy/listener.c) */

	/* The brute-force limiter's hash key (the limiter is set.rl). */
	uint8_t rl_key[32];
	/*
	 * Its state file: locked for the process's life, saved within
	 * state_sync of a change (snapshot on the loop, write on libuv's thread
	 * pool, one save at a time) and at shutdown (synchronously, last).
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
	bool rl_final_pending;         /* shutdown waits for the save in flight */
	unsigned rl_save_failures;     /* since the last good save */
	uint64_t rl_fail_logged_ms;    /* loop time of the last failure logged */
	struct ig_ctl *ctl;            /* admin.socket, or NULL */

	struct ig_probe *probe;        /* the backend probe under way, or NULL
	                                  (proxy/probe.c; frees itself) */
};

/*
 * Sets up the worker on its own loop with generation g (takes the caller's
 * reference): binds every listener, creates the limiter (locking and
 * loading its state file), opens the admin socket, runs the loop until the
 * first backend probe has its result (or timed out), then listens. Returns 0,
 * or an IG_E* after logging event=start-failed with the reason (a listener
 * that cannot be bound, a state file or admin socket another instance
 * uses, ...); nothing is left open then and nothing was accepted.
 */
int ig_worker_init(struct ig_worker *w, struct ig_gen *g, const char *config_path);
/* Runs the loop until SIGTERM/SIGINT and a clean shutdown. Returns 0. */
int ig_worker_run(struct ig_worker *w);
/* Closes everything and releases the generation; asserts the loop closes. */
int ig_worker_destroy(struct ig_worker *w);

#endif /* IG_PROXY_WORKER_H */
