/*
 * What every worker of the process shares (one struct ig_shared, owned by
 * the server, proxy/server.c): the brute-force limiter, the per-address
 * connection table, the backend's learned capabilities, live-session
 * counts per listener and in all, and the source of session ids. A failure
 * seen by worker A counts on worker B because both use this limiter.
 *
 * Locking: the limiter, the connection table and the capabilities are
 * guarded by one mutex, taken with ig_shared_lock() around each call into
 * them (every such call is a few hash lookups: the lock is held for
 * microseconds, never across I/O). The counters are atomics; the metrics
 * (proxy/metrics.h) are one struct per worker, written only by that
 * worker and added up at scrape time. Nothing else
 * is shared between workers: each has its own loop, sessions, listeners'
 * sockets and its own reference to the configuration generation, which is
 * immutable (proxy/gen.h).
 */
#ifndef IG_PROXY_SHARED_H
#define IG_PROXY_SHARED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/caps.h"
#include "proxy/metrics.h"

struct ig_apprt;
struct ig_cc;
struct ig_rl;

struct ig_shared {
	pthread_mutex_t lock;          /* guards rl, cc and caps */
	struct ig_rl *rl;              /* the limiter, or NULL when disabled */
	struct ig_cc *cc;              /* live connections per address group */
	struct ig_caps_learned caps;   /* the backend's, as last learned */
	atomic_uint_fast64_t caps_version; /* counts changes of caps (read
	                                  without the lock: ig_caps_memo) */
	struct ig_apprt *apprt;        /* app passwords (proxy/apprt.h, its own
	                                  locks), or NULL when off; set before
	                                  the workers start, freed after them */

	atomic_uint nsessions;         /* live sessions, every worker */
	atomic_uint paused_gates;      /* workers whose accepting is paused
	                                  (proxy/listener.c): a session freed
	                                  anywhere must wake them; changed
	                                  under the lock with the fields below */
	/* The process's pause, as logged (accept-paused when the first worker
	   pauses, accept-resumed when the last one resumes), under the lock. */
	int pause_reason;              /* enum ig_pause_reason of this pause */
	uint64_t paused_at_ms;         /* uv_hrtime() ms the pause began */
	bool pause_logged;             /* the resume is logged too */
	uint64_t pause_log_ms;         /* uv_hrtime() ms of the last accept-paused */
	unsigned pauses_unlogged;      /* pauses since, not logged */
	atomic_uint *listener_sessions;/* live sessions per listener (the
	                                  generation's order), every worker */
	size_t nlisteners;
	uint64_t sid_base;             /* random; ids count up from it */
	atomic_uint_fast64_t sid_next;
	struct ig_metrics *metrics;    /* one per worker (nmetrics), each
	                                  written by its worker only and read
	                                  at scrape time (proxy/metrics.h) */
	unsigned nmetrics;
};

/*
 * Sets sh up for nlisteners listeners: the mutex, the connection table
 * (random hash key), the counters, a random id base. The limiter is the
 * owner's to create (sh->rl, NULL until then). Returns 0 or IG_ENOMEM.
 */
int ig_shared_init(struct ig_shared *sh, size_t nlisteners);
/* Allocates the workers' counters: n structs (sh->metrics). Returns 0 or
   IG_ENOMEM. */
int ig_shared_metrics_init(struct ig_shared *sh, unsigned n);
/* Frees what ig_shared_init() made, the counters and the limiter, if any. */
void ig_shared_destroy(struct ig_shared *sh);

void ig_shared_lock(struct ig_shared *sh);
void ig_shared_unlock(struct ig_shared *sh);

/* A new session id, unique in the process. */
uint64_t ig_shared_next_sid(struct ig_shared *sh);

/* ig_caps_learn() / ig_caps_shown() on sh->caps, under the lock. A list
   different from the one kept counts a new version (caps_version). */
int ig_shared_caps_learn(struct ig_shared *sh, const char *caps);
/* *version: the version the list was made from. */
void ig_shared_caps_shown(struct ig_shared *sh, const struct ig_caps_view *v, char *out,
    size_t outsz, uint64_t *version);

#endif /* IG_PROXY_SHARED_H */
