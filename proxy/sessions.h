/*
 * What the sessions of one loop share with their owner (the worker), and
 * all they know of it: the loop, the configuration generation new sessions
 * get, the list of live sessions, and what every worker of the process
 * shares (struct ig_shared: the limiter, the per-address connection table,
 * the backend's learned capabilities, session counts and ids). The worker
 * embeds one struct ig_session_set and hands it to the sessions and the
 * listeners, so that none of them includes worker.h: they are below the
 * worker and reach it only through the callback it set (on_freed).
 */
#ifndef IG_PROXY_SESSIONS_H
#define IG_PROXY_SESSIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "proxy/shared.h"

struct ig_bufpool;
struct ig_gen;
struct ig_session;

/* Told when a session has been freed and its descriptors closed. */
typedef void ig_session_freed_fn(void *owner);

struct ig_session_set {
	uv_loop_t *loop;               /* the owner's */
	unsigned worker;               /* the owner's index (logs) */
	struct ig_gen *gen;            /* current generation (the owner's
	                                  reference; swapped on reload) */
	uint64_t gen_seq;              /* counts reloads: which generation a
	                                  login was judged by */
	struct ig_shared *sh;          /* every worker's: the limiter, the
	                                  connection table (limits.
	                                  max_connections_per_address), learned
	                                  capabilities, counts, ids */
	struct ig_bufpool *bufpool;    /* this worker's: the sessions' buffers
	                                  while bytes are in them (limits.
	                                  buffer_size and room for TLS records'
	                                  expansion, limits.buffer_pool_max) */
	size_t buf_size;               /* limits.buffer_size as the worker
	                                  started: a plaintext buffer's size */
	struct ig_metrics *metrics;    /* this worker's counters (in sh; only
	                                  this worker's thread writes them) */
	struct ig_caps_memo caps_memo; /* capabilities shown lately (only
	                                  this worker's thread) */
	struct ig_session *sessions;   /* live sessions (doubly linked) */
	unsigned nsessions;            /* on this loop */
	bool stopping;                 /* the owner is shutting down */
	bool draining;                 /* no more accepts; sessions end by
	                                  themselves (pre-auth ones at once) */
	/* Called (with owner) after a session has been freed: from inside a
	   close callback, so it must not start anything synchronously. */
	ig_session_freed_fn *on_freed;
	void *owner;
};

/*
 * What a session knows of the listener that accepted it; embedded in that
 * listener (struct ig_listener, proxy/listener_types.h), which outlives its
 * sessions.
 */
struct ig_session_listener {
	char name[IG_NAME_MAX + 1];
	unsigned index;                /* in the configuration (metrics) */
	enum ig_tls_mode tls;
	atomic_uint *nsessions;        /* live sessions accepted by this
	                                  listener on every worker (in the
	                                  struct ig_shared) */
	unsigned max_sessions;         /* its cap (0: none) */
};

#endif /* IG_PROXY_SESSIONS_H */
