/*
 * Accepting client connections within the descriptor limit, after
 * OpenSMTPD's smtp_pause(): the soft RLIMIT_NOFILE is raised to the hard
 * limit at start, every session is budgeted two descriptors (client and
 * backend) on top of those open at start and a reserve, and when one more
 * session would not fit, a listener stops accepting instead of letting the
 * process run out of descriptors.
 *
 * Pausing relies on libuv's accept contract (src/unix/stream.c,
 * uv__server_io): a connection callback that does not call uv_accept()
 * leaves the connection it accepted held in the server handle and stops
 * polling that listening socket; the next connections wait in the kernel's
 * backlog, neither accepted nor reset. uv_accept() on the held connection
 * later starts polling again. Running out for real is worse: libuv then
 * accepts and closes every pending connection (its reserve-descriptor
 * trick), which resets clients, and (libuv 1.44) calls the connection
 * callback with the error only when that trick itself fails: the budget is
 * what keeps clients from being reset, the error log is a last resort.
 */
#ifndef IG_PROXY_LISTENER_H
#define IG_PROXY_LISTENER_H

#include <uv.h>

#include "proxy/listener_types.h"

const char *ig_pause_reason_str(enum ig_pause_reason r);

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit (as HAProxy does; up to
 * fs.nr_open when the hard limit is unlimited) and logs the limits. Called
 * once at start, before anything else opens descriptors.
 */
void ig_listener_raise_fd_limit(void);

/*
 * Sets up the accept state g for sessions in set (its timer on set's loop).
 * The caller then fills g->listeners and g->nlisteners, each with gate g.
 */
void ig_listener_gate_init(struct ig_accept_gate *g, struct ig_session_set *set);

/*
 * Sets the session budget from the descriptors open now: call when
 * everything but client sessions is open (listeners bound, control socket
 * listening, just before uv_listen). The budget is the process's: every
 * worker's gate gets the same one and counts every worker's sessions
 * against it (struct ig_shared); worker 0 logs it. Returns 0, or IG_EIO
 * when not one session fits (logged).
 */
int ig_listener_fd_budget(struct ig_accept_gate *g);

/* The uv_connection_cb of every client listener. */
void ig_listener_on_connection(uv_stream_t *server, int status);

/*
 * A session has been freed and its descriptors closed (the owner's
 * on_freed of the session set), here or, with several workers, on another
 * worker (sh->paused_gates tells the others to call this): paused
 * listeners resume from the next loop iteration when there is room.
 */
void ig_listener_session_freed(struct ig_accept_gate *g);

/* Worker shutdown: closes the accept state's timer (idempotent). */
void ig_listener_gate_close(struct ig_accept_gate *g);

#endif /* IG_PROXY_LISTENER_H */
