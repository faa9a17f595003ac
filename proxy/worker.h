/*
 * A worker: one libuv loop in a thread of its own, with its own sockets of
 * the client listeners (SO_REUSEPORT: the kernel spreads connections over
 * the workers), its sessions and its reference to the configuration
 * generation. What workers share lives in struct ig_shared (the limiter,
 * the connection table, learned capabilities, counts); everything else of a
 * worker is touched only by its own thread.
 *
 * The server (proxy/server.c, the main thread) talks to a worker only
 * through its mailbox: ig_worker_call() runs a function on the worker's
 * thread and waits for it (reload, kick), ig_worker_stop() asks it to stop
 * accepting and end its sessions. A uv_async_t wakes the worker's loop.
 */
#ifndef IG_PROXY_WORKER_H
#define IG_PROXY_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/listener_types.h"
#include "proxy/sessions.h"

struct ig_worker;

/* A function run on a worker's thread (ig_worker_call). */
typedef void ig_worker_fn(struct ig_worker *w, void *arg);

struct ig_worker {
	uv_loop_t loop;
	unsigned index;                /* 0.. in the server's array */
	/*
	 * What the sessions share with the worker (proxy/sessions.h): the
	 * loop, the current generation (one reference) and its number, the
	 * live sessions, the stopping flag, and the process's shared state.
	 */
	struct ig_session_set set;
	struct ig_accept_gate gate;    /* the listeners, this worker's share of
	                                  the descriptor budget, paused accepts
	                                  (proxy/listener.c) */
	uv_async_t wake;               /* the mailbox has something */
	bool loop_on;                  /* loop initialised */
	bool wake_on;                  /* wake initialised and not closed */
	pthread_t thread;
	bool thread_on;                /* started and not joined */
	struct ig_worker *all;         /* every worker (the server's array) */
	unsigned nall;
	uv_async_t *drained;           /* the server's: sent when a session is
	                                  freed while draining and none is left
	                                  in the process (set before the
	                                  thread starts), or NULL */

	/* The mailbox, under mu (the server writes, the worker takes). */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ig_worker_fn *call_fn;         /* a call waiting or running, or NULL */
	void *call_arg;
	bool call_done;                /* it ran: the caller may go on */
	bool stop_req;                 /* stop accepting, end the sessions */
	bool resume_req;               /* a session ended on another worker:
	                                  paused listeners may resume */
	bool closed;                   /* wake is closed: nothing more is
	                                  taken (calls run nothing) */
};

/*
 * Sets up worker index on a loop of its own with generation g (takes one
 * more reference of its own) and the listening sockets fds[0..nlisteners)
 * (bound, in the generation's order; w owns them from here, even on
 * failure). Nothing is accepted until ig_worker_listen(). nworkers: how
 * many share limits.buffer_pool_max. Returns 0 or IG_E* after logging;
 * ig_worker_destroy() then cleans up what was made.
 */
int ig_worker_init(struct ig_worker *w, unsigned index, unsigned nworkers,
    struct ig_shared *sh, struct ig_gen *g, int *fds, size_t nlisteners);
/* Takes this worker's share of the descriptor budget and listens. Call when
   every descriptor of the process but sessions is open. 0 or IG_EIO. */
int ig_worker_listen(struct ig_worker *w);
/* Starts the worker's thread (all signals blocked in it); all[0..nall)
   are every worker, itself included. 0 or IG_EIO. */
int ig_worker_start(struct ig_worker *w, struct ig_worker *all, unsigned nall);

/*
 * Runs fn(w, arg) on w's thread and returns when it has run. When the
 * thread has not started, runs it here; when w has stopped (its mailbox is
 * closed), runs nothing and returns false.
 */
bool ig_worker_call(struct ig_worker *w, ig_worker_fn *fn, void *arg);
/* Asks w to stop: close its listeners and end its sessions (they are told
   "* BYE"); its loop, and then its thread, end when the last one has gone. */
void ig_worker_stop(struct ig_worker *w);
/* Waits for w's thread to end (after ig_worker_stop). */
void ig_worker_join(struct ig_worker *w);
/* Closes everything and releases the generation; 0 when the loop closed. */
int ig_worker_destroy(struct ig_worker *w);

/*
 * On w's thread (inside an ig_worker_call): new sessions get generation g
 * (w takes a reference of its own), the listeners' caps follow it, and the
 * sessions the new policy refuses are ended. Returns how many were.
 */
unsigned ig_worker_apply_gen(struct ig_worker *w, struct ig_gen *g);
/*
 * On w's thread (inside an ig_worker_call): the drain begins. Closes w's
 * listening sockets (a new connection is refused once this returns) and
 * shuts down the sessions that have nothing under way
 * (ig_session_drain_all); the others go on until they end or
 * ig_worker_stop(). Returns how many were shut down now.
 */
unsigned ig_worker_drain(struct ig_worker *w);
struct ig_bufpool_stats;
/* On w's thread: its buffer pool's numbers. */
void ig_worker_buffer_stats(struct ig_worker *w, struct ig_bufpool_stats *st);
/* On w's thread: ends user's sessions here (ig_session_kick_user). */
int ig_worker_kick(struct ig_worker *w, const char *user, unsigned *count);
struct ig_apppass_snapshot;
/* On w's thread: ends the sessions of app passwords snap no longer has
   (ig_session_apppass_sweep). Returns how many were. */
unsigned ig_worker_apppass_sweep(struct ig_worker *w, const struct ig_apppass_snapshot *snap);

#endif /* IG_PROXY_WORKER_H */
