/*
 * The worker's listeners and their accept state (proxy/listener.c),
 * embedded in struct ig_worker: the descriptor budget and the paused
 * listeners. Sessions see a listener only through its struct
 * ig_session_listener (proxy/sessions.h).
 */
#ifndef IG_PROXY_LISTENER_TYPES_H
#define IG_PROXY_LISTENER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/sessions.h"

/* Descriptors kept apart from sessions: the limiter's state file, control
 * socket connections, a reload (configuration, certificates, resolver) and
 * the backend probe. */
#define IG_FD_RESERVE 32u
/* Descriptors one session may hold: the client's and the backend's. */
#define IG_FD_PER_SESSION 2u

/* Why accepting stopped. */
enum ig_pause_reason {
	IG_PAUSE_FD_LIMIT,             /* the descriptor budget is spent */
	IG_PAUSE_NO_MEMORY,            /* a session could not be allocated */
	IG_PAUSE_REASON_COUNT
};

struct ig_accept_gate;

/* A client listener. */
struct ig_listener {
	uv_tcp_t tcp;                  /* data = this listener */
	struct ig_accept_gate *gate;   /* the one that holds it */
	size_t index;                  /* in the generation's listeners */
	struct ig_session_listener info; /* name, TLS mode, sessions and their
	                                  cap: what its sessions see */
	bool open;                     /* tcp not closed */
	bool paused;                   /* holds one accepted connection, not
	                                  polled (proxy/listener.c) */
};

/* The worker's listeners and accept state; embedded in struct ig_worker. */
struct ig_accept_gate {
	struct ig_session_set *set;    /* where sessions are accepted (the
	                                  worker's): loop, count, stopping */
	struct ig_listener *listeners; /* the worker's (it binds and closes
	                                  them), in the generation's order */
	size_t nlisteners;
	uint64_t fd_limit;             /* soft RLIMIT_NOFILE in force */
	unsigned fd_in_use;            /* open when the budget was set */
	unsigned max_sessions;         /* sessions the budget allows, every
	                                  worker's together */
	uv_timer_t timer;              /* resumes from the loop, never from
	                                  inside a session's teardown */
	bool timer_open;
	unsigned npaused;              /* listeners holding a connection */
	size_t next;                   /* where resuming starts (fairness) */
	uint64_t error_log_ms;         /* last accept-error line */
	unsigned errors_unlogged;      /* accept errors since, not logged */
};

#endif /* IG_PROXY_LISTENER_TYPES_H */
