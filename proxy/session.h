/*
 * A client session: accepted on a listener, owns the not-authenticated phase,
 * then relays to the backend. One owner (its worker's loop), one teardown
 * (ig_session_close), memory freed only when its last handle has closed.
 */
#ifndef IG_PROXY_SESSION_H
#define IG_PROXY_SESSION_H

#include <stdbool.h>

#include <uv.h>

struct ig_session;
struct ig_session_listener;
struct ig_session_set;

enum ig_session_state {
	IG_SS_PROXY_HEADER,    /* reading the load balancer's PROXY header
	                          (listeners with proxy_protocol: true) */
	IG_SS_TLS_HANDSHAKE,   /* client TLS handshake (implicit or STARTTLS) */
	IG_SS_PREAUTH,         /* not authenticated: our own command loop */
	IG_SS_SASL,            /* AUTHENTICATE: waiting for the client's first
	                          response before any backend contact */
	IG_SS_VERIFY,          /* an app password's hash is being computed on
	                          the thread pool (proxy/apprt.h) */
	IG_SS_BACKEND_CONNECT, /* connecting, greeting, TLS, capabilities */
	IG_SS_BACKEND_AUTH,    /* the login command is with the backend */
	IG_SS_RELAY,           /* authenticated: byte-for-byte relay */
	IG_SS_CLOSING,         /* teardown started */
	IG_SS_COUNT
};
const char *ig_session_state_str(enum ig_session_state st);
/* A state's bit, for sets of states. */
#define IG_SS_BIT(st) (1u << (unsigned)(st))

/*
 * Accepts one connection from server, the handle of listener l, and starts
 * the session in set (l must outlive it). Returns 0, or a negative IG_E*
 * when the connection could not be accepted (nothing is left allocated).
 * IG_ENOMEM means the session could not be allocated and the connection
 * was not taken: it still waits in server.
 */
int ig_session_accept(struct ig_session_set *set, uv_stream_t *server,
    struct ig_session_listener *l);

/*
 * Ends the session: logs once with reason, flushes what can be flushed when
 * graceful (a final "* BYE"), closes every handle. Idempotent. The session
 * is freed in the last close callback, so callers must return right after.
 */
void ig_session_close(struct ig_session *s, const char *reason, bool graceful);

/*
 * Worker shutdown: "* BYE [UNAVAILABLE] Server shutting down" and close, as
 * ig_session_close(); a TLS handshake just closes, and a relaying session
 * gets the BYE between two of the backend's responses (or, when none comes
 * within a moment, closes without it: ig_relay_end()). May close s.
 */
void ig_session_shutdown(struct ig_session *s);
/* Shuts down every session of set. */
void ig_session_shutdown_all(struct ig_session_set *set);
/*
 * Drain (SIGTERM, before drain_timeout): marks set draining and shuts down
 * its sessions that have nothing under way (TLS handshakes, and sessions
 * waiting for a command before login). Logins under way may finish; one
 * that fails is shut down after its answer. Relaying sessions go on.
 * Returns how many were shut down now.
 */
unsigned ig_session_drain_all(struct ig_session_set *set);

/*
 * After a reload: judges every logged-in session again with the newest
 * policy (its user, mechanism, TLS state, address and listener) and ends
 * those it no longer allows with "* BYE [UNAVAILABLE]" (a rule in monitor
 * mode only logs). Returns how many were ended.
 */
unsigned ig_session_recheck_all(struct ig_session_set *set);

/*
 * `imapguard ctl kick USER`: ends every session logged in as user (and
 * every login attempt for it under way) with "* BYE [UNAVAILABLE]". The
 * name is normalised as logins are. Returns 0 and *count, or IG_EINVAL for
 * a name no login could have.
 */
int ig_session_kick_user(struct ig_session_set *set, const char *user, unsigned *count);

struct ig_apppass_snapshot;
/*
 * The app password store changed (snap is the newest snapshot): ends every
 * logged-in session whose app password snap no longer has for its user
 * (revoked, or its row gone or invalid) with "* BYE [UNAVAILABLE]". A login
 * still under way is checked when the backend accepts it
 * (ig_attempt_recheck()). Returns how many were ended.
 */
unsigned ig_session_apppass_sweep(struct ig_session_set *set,
    const struct ig_apppass_snapshot *snap);

#endif /* IG_PROXY_SESSION_H */
