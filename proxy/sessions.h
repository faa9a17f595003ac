/*
 * What the sessions of one loop share with their owner (the worker), and
 * all they know of it: the loop, the configuration generation new sessions
 * get, the limiter, the per-address connection table, the backend's learned
 * capabilities, the list of live sessions and the source of their ids. The
 * worker embeds one struct ig_session_set and hands it to the session, the
 * listeners and the admin socket, so that none of them includes worker.h:
 * they are below the worker and reach it only through callbacks it set
 * (on_freed here; the admin socket's stats).
 */
#ifndef IG_PROXY_SESSIONS_H
#define IG_PROXY_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "proxy/caps.h"

struct ig_bufpool;
struct ig_cc;
struct ig_gen;
struct ig_rl;
struct ig_session;

/* Told when a session has been freed and its descriptors closed. */
typedef void ig_session_freed_fn(void *owner);

struct ig_session_set {
	uv_loop_t *loop;               /* the owner's */
	struct ig_gen *gen;            /* current generation (the owner's
	                                  reference; swapped on reload) */
	uint64_t gen_seq;              /* counts reloads: which generation a
	                                  login was judged by */
	struct ig_rl *rl;              /* the brute-force limiter (the owner's),
	                                  or NULL when disabled */
	struct ig_cc *cc;              /* live connections per address group
	                                  (limits.max_connections_per_address;
	                                  the owner's) */
	struct ig_bufpool *bufpool;    /* the sessions' buffers while bytes are
	                                  in them (limits.buffer_size,
	                                  limits.buffer_pool_max; the owner's) */
	/* The backend's capabilities as last learned (the probe, or a login's
	   backend connection): what clients are shown, filtered. */
	struct ig_caps_learned backend_caps;
	struct ig_session *sessions;   /* live sessions (doubly linked) */
	unsigned nsessions;
	uint64_t sid_base;             /* random; session ids count up from it */
	uint64_t sid_next;
	bool stopping;                 /* the owner is shutting down */
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
	enum ig_tls_mode tls;
	unsigned nsessions;            /* live sessions accepted here */
	unsigned max_sessions;         /* its cap (0: none) */
};

#endif /* IG_PROXY_SESSIONS_H */
