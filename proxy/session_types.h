/*
 * struct ig_session, shared by the files that make up the session:
 * session.c (life cycle, pump, timers), preauth.c (command loop), backend.c
 * (backend connection and login) and relay.c (after login). Nothing outside
 * proxy/ includes this, but tests/unit/test_attempt_master.c (which builds
 * a session by hand for ig_attempt_use_master()).
 */
#ifndef IG_PROXY_SESSION_TYPES_H
#define IG_PROXY_SESSION_TYPES_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "apppass/password.h"
#include "policy/ratelimit.h"
#include "proxy/caps.h"
#include "proxy/conn_types.h"
#include "proxy/conncount.h"
#include "proxy/imap_parse.h"
#include "proxy/loginfmt.h"
#include "util/log.h"
#include "util/sasl.h"
#include "proxy/session.h"
#include "proxy/sessions.h"

struct ig_apprt_verify;
struct ig_gen;
struct ig_policy_conf;
struct ig_pp_parser;

/* Adds n to this worker's counter `field` (struct ig_metrics). */
#define IG_SESSION_METRIC(s, field, n) do { \
		if ((s)->set->metrics != NULL) \
			ig_metric_add(&(s)->set->metrics->field, (n)); \
	} while (0)

/*
 * A buffer of cap bytes, held only while bytes are pending in it (p is
 * NULL otherwise): bytes [off..len) are pending.
 */
struct ig_buf {
	uint8_t *p;
	size_t cap;
	size_t off;
	size_t len;
	size_t dirty;                   /* p[0..dirty) written since taken
	                                   (wiped when given back) */
};

/* n bytes were appended at p + len. */
static inline void
ig_buf_filled(struct ig_buf *b, size_t n)
{
	b->len += n;
	if (b->len > b->dirty)
		b->dirty = b->len;
}

enum ig_backend_state {
	IG_BS_NONE,          /* no backend connection */
	IG_BS_CONNECTING,    /* TCP connect in progress */
	IG_BS_TLS,           /* TLS handshake (implicit, or after STARTTLS) */
	IG_BS_GREETING,      /* waiting for "* OK" */
	IG_BS_STARTTLS,      /* our STARTTLS sent */
	IG_BS_CAPABILITY,    /* our CAPABILITY sent */
	IG_BS_ID,            /* our ID (client address) sent */
	IG_BS_AUTH,          /* the client's login command sent */
	IG_BS_COUNT
};
const char *ig_backend_state_str(enum ig_backend_state st);

/* The login attempt being carried to the backend. */
struct ig_attempt {
	char tag[128];                /* the client's tag (copied) */
	bool active;
	bool login_cmd;               /* LOGIN rather than AUTHENTICATE */
	enum ig_sasl_mech mech;
	char user[IG_USER_MAX + 1];   /* normalised user, "" until known */
	bool user_known;
	bool decided;                 /* policy consulted and allowed */
	uint64_t decided_gen;         /* set->gen_seq then */
	bool cancel_sent;             /* "*" sent to the backend */
	bool backend_cont_seen;       /* backend sent a "+" continuation */
	bool backend_used;            /* a backend connection was opened for
	                                 this attempt (it cost the backend) */
	unsigned sasl_step;           /* LOGIN mechanism: responses read so far
	                                 (1: user, 2: password) */
	/*
	 * The command line (or the SASL responses) to send once the backend
	 * is ready. Holds credentials: wiped as soon as it is sent. cmd and
	 * stage are allocated (together) only while an attempt is active,
	 * and wiped when it ends.
	 */
	uint8_t *cmd;                 /* buffer of cmd_cap bytes, or NULL */
	size_t cmd_cap;
	size_t cmd_len;
	size_t cmd_hi;                /* cmd[0..cmd_hi) may hold what the
	                                 client sent: what the wipes cover
	                                 (ig_attempt_cmd_dirty) */
	size_t ir_off, ir_len;        /* LOGIN: the password within cmd (the
	                                 user is cmd[0..ir_off)); SASL: the
	                                 base64 initial response */
	size_t pw_off, pw_len;        /* LOGIN mechanism: the base64 password
	                                 response within cmd */
	/*
	 * Log in to the backend as backend.master_login for user, not with
	 * what the client sent (set by ig_attempt_use_master(), attempt.h:
	 * the proxy checked the client's secret itself). cmd then holds
	 * nothing, and the backend's refusal is no failure of the user's.
	 */
	bool as_master;
	/*
	 * The policy's credentials rule for this user (set with decided):
	 * who checks the secret. cred_monitored: the rule is in monitor mode
	 * (a refusal is logged, not enforced).
	 */
	enum ig_credentials credentials;
	bool cred_monitored;
	/*
	 * An app password (issue 17): the hash being computed on the thread
	 * pool (IG_SS_VERIFY; the session holds a reference until it is
	 * back), then the id of the one that verified.
	 */
	struct ig_apprt_verify *verify;
	char apppass_id[IG_APPPASS_ID_LEN + 1]; /* "" when none */
	/*
	 * What goes to the backend, formatted in stage.buf[0..stage.len)
	 * (proxy/loginfmt.h; buf is the stage.cap bytes after cmd): the
	 * first segment is written at once, each later one after a "+" from
	 * the backend (a synchronizing literal, a response without SASL-IR
	 * or the LOGIN mechanism's: at most IG_LOGINFMT_SEGMENTS).
	 * stage.buf[send_off..send_len) is what is being written now.
	 */
	struct ig_loginfmt stage;
	unsigned seg_next;            /* next segment to send */
	size_t send_off, send_len;
	/*
	 * The limiter's hash of the password or token (LOGIN, PLAIN, the
	 * LOGIN mechanism's second response, XOAUTH2, OAUTHBEARER), taken when
	 * it was read so the secret need not be kept: password spraying is
	 * counted over every mechanism that carries one.
	 */
	uint8_t secret_hash[IG_RL_SECRET_HASH_LEN];
	bool has_secret_hash;
	uint64_t started_ms;
	uint64_t started_ns;          /* uv_hrtime() (login duration metric) */
};

struct ig_session {
	struct ig_session *prev, *next; /* set->sessions */
	struct ig_session_set *set;     /* shared with the other sessions and
	                                   the worker (proxy/sessions.h) */
	struct ig_gen *gen;             /* generation (one reference) */
	struct ig_session_listener *l;  /* the listener that accepted it */
	enum ig_session_state state;
	enum ig_backend_state bstate;

	uint64_t id;
	char ids[17];                   /* 16 hex digits */
	struct sockaddr_storage peer;   /* the client: the socket's peer, or
	                                   the address a PROXY header carried */
	char peer_ip[INET6_ADDRSTRLEN];
	unsigned peer_port;
	struct sockaddr_storage local;  /* where the client connected to (the
	                                   same two ways): the destination in
	                                   our PROXY header to the backend;
	                                   read from the socket only then
	                                   (ig_session_local) */
	bool local_known;               /* local is set */
	struct ig_pp_parser *pp;        /* the PROXY header being read
	                                   (IG_SS_PROXY_HEADER only), else NULL */
	char sni[256];
	uint64_t started_ms;
	uint64_t last_activity_ms;

	struct ig_conn client;
	struct ig_conn backend;
	uv_timer_t timer;
	uint64_t deadline_ms;           /* the session's deadline (uv_now) */
	uint64_t timer_due_ms;          /* when the timer fires: the deadline,
	                                   or earlier (ig_session_timer) */
	uv_connect_t connect_req;
	uint64_t backend_connect_ns;    /* uv_hrtime() the connect started */
	bool backend_unconfirmed;       /* connected without waiting (it speaks
	                                   first): its first bytes, or the
	                                   failure, are still to come */
	bool timer_open;
	unsigned refs;                  /* open handles + pending requests */

	bool closing;
	bool close_graceful;            /* waiting to flush before closing */
	bool starttls_pending;          /* tagged OK queued; TLS next */
	bool backend_wanted;            /* connect once the old handle closed */
	bool tls_active;                /* client side TLS is up */
	bool logged_out;
	bool greeted_early;             /* the greeting went as TLS 0.5-RTT data,
	                                   with the server's handshake flight */
	bool tarpit;                    /* holding our answer back (a failed or
	                                   refused login): no output, no
	                                   commands until the timer fires */
	bool bye_after_tarpit;          /* too many failures: close then */
	int client_end;                 /* 0 while the client may still send;
	                                   then why its input ended: IG_EEOF
	                                   (closed, with or without
	                                   close_notify) or an error. What it
	                                   sent before is still answered. */
	int backend_end;                /* the same for the backend, in relay */
	struct ig_imap_resp_scan to_client; /* in relay: where the backend's
	                                   responses written to the client
	                                   stand (our "* BYE" goes only
	                                   between two of them) */
	const char *end_reason;         /* in relay, ending (shutdown, kick):
	                                   the close reason (a static string);
	                                   NULL while relaying */
	const char *end_text;           /* the "* BYE [UNAVAILABLE]" text said
	                                   at the next response boundary */
	bool bye_held;                  /* in relay: the backend said BYE, and
	                                   what followed waits for its close
	                                   (IG_RELAY_BYE_HOLD_MS at most) */
	bool bye_hold_over;             /* that wait ran out: no more holding */

	/* Plaintext buffers: cin and bin from set->bufpool, reply allocated,
	   each only while bytes are in it. */
	struct ig_buf cin;              /* from the client: commands, relay */
	struct ig_buf bin;              /* from the backend: lines, relay */
	struct ig_buf reply;            /* our own output to the client */
	unsigned bufs_held;             /* pool buffers held (cin, bin, the
	                                   connections' raw buffers) */

	struct ig_imap_parser parser;
	unsigned errors;                /* BAD answers so far */
	unsigned preauth_commands;      /* commands run before login */
	struct ig_cc_key cc_key;        /* address group, as counted in
	                                   set->cc at accept */
	bool cc_counted;                /* cc_key is in the table: removed
	                                   when the session is freed */
	unsigned failures;              /* failed logins on this connection */
	struct ig_attempt att;
	struct ig_caps_learned bcaps;   /* the backend's capabilities, this
	                                   connection */
	char user[IG_USER_MAX + 1];     /* who logged in (for the close line) */
	char apppass_id[IG_APPPASS_ID_LEN + 1]; /* the app password it logged in
	                                   with ("" for none): its revocation
	                                   ends the session */
	bool login_cmd;                 /* how: the LOGIN command, or ... */
	enum ig_sasl_mech login_mech;   /* ... AUTHENTICATE with this (judged
	                                   again when the policy is reloaded) */
	char close_reason[64];
};

/*
 * Something happened on one of the session's connections (data arrived, a
 * write completed, a peer closed): advance the session. May close it.
 */
void ig_session_on_io(struct ig_session *s);

/* Where the client connected to (s->local), read from the socket on first
   use; zeroed when the socket cannot tell. */
const struct sockaddr_storage *ig_session_local(struct ig_session *s);

/* Handle/request accounting: the session lives while any is open. */
void ig_session_handle_opened(struct ig_session *s);
/* Returns false when this was the last one and s has been freed. */
bool ig_session_handle_closed(struct ig_session *s);

/*
 * The callbacks of the session's two connections (owner: the session):
 * ig_session_on_io(), ig_session_handle_opened(), ig_session_handle_closed().
 */
extern const struct ig_conn_ops ig_session_conn_ops;

/*
 * The policy logins are judged by: always the newest generation's (a
 * reload applies to connections opened before it), while buffers, limits
 * and TLS stay those of the generation the session started with (s->gen).
 */
const struct ig_policy_conf *ig_session_policy(const struct ig_session *s);

/* Milliseconds on the loop's clock. */
uint64_t ig_session_now(const struct ig_session *s);

/* Logs with the session prefix ("sid=... client=... listener=..."). */
void ig_session_log(const struct ig_session *s, enum ig_log_level lvl,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Changes state, logging "old -> new" at debug. */
void ig_session_set_state(struct ig_session *s, enum ig_session_state st);

/*
 * Appends one line (CRLF added) to the reply buffer. Returns 0, or
 * IG_ETOOLONG when the buffer is full (the line is dropped).
 */
int ig_session_reply(struct ig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends raw bytes to the reply buffer. Returns 0 or IG_ETOOLONG. */
int ig_session_reply_raw(struct ig_session *s, const uint8_t *p, size_t len);
/* Pushes queued replies into the client connection. Returns 0 or IG_E*. */
int ig_session_flush_reply(struct ig_session *s);
/* Free room in the reply buffer. */
size_t ig_session_reply_room(const struct ig_session *s);

/*
 * Holds the client's answers back for ms (0: no delay), without blocking
 * the loop; with bye, the session then says "* BYE" and closes.
 * May close the session (bye with no delay).
 */
void ig_session_tarpit(struct ig_session *s, unsigned ms, bool bye);

/*
 * Arms the session timer for ms from now (the one deadline in force), or
 * for the end of limits.preauth_lifetime when that comes first and the
 * session has not logged in. A tarpit deadline is never replaced.
 */
void ig_session_timer(struct ig_session *s, unsigned ms);

/*
 * Counts one command before login against limits.max_preauth_commands.
 * Returns true when it may run; false when the cap is passed: the session
 * has said "* BYE" and is closing (the caller returns).
 */
bool ig_session_preauth_command(struct ig_session *s);

/*
 * Counts one BAD answer against limits.max_errors. Returns true when the
 * budget is spent: the session has said "* BYE" and is closing.
 */
bool ig_session_count_error(struct ig_session *s);
/*
 * Takes a pool buffer for b (cin or bin) if it holds none. Returns false
 * when memory ran out (a buffer that carries bytes on is never refused at
 * the pool's cap).
 */
bool ig_session_buf_take(struct ig_session *s, struct ig_buf *b);
/* Gives b's buffer back if nothing is pending in it (wiping what it held). */
void ig_session_buf_drop(struct ig_session *s, struct ig_buf *b);

/* Drops n bytes read from the client (cin); wipes them first if asked. */
void ig_session_consume_input(struct ig_session *s, size_t n, bool wipe);
/* Answers "tag BAD text", or "* BYE" once the error budget is spent. May close. */
void ig_session_bad(struct ig_session *s, const char *tag, const char *text);

/*
 * Builds the capability list for this connection now: what the policy
 * allows here (ig_policy_possible) shown over the learned list
 * (set->backend_caps, ig_caps_shown).
 */
void ig_session_caps(struct ig_session *s, char *out, size_t outsz);

/* preauth.c */
/* Runs pre-auth commands from s->cin while possible. May close the session. */
void ig_preauth_process(struct ig_session *s);
/* Sends the greeting. */
void ig_preauth_greet(struct ig_session *s);

/* attempt.c: see attempt.h */

/* backend.c */
/* Starts connecting for s->att. May close the session. */
void ig_backend_start(struct ig_session *s);
/* Advances the backend exchange. May close the session. */
void ig_backend_pump(struct ig_session *s);
/* Closes the backend connection (idempotent). */
void ig_backend_close(struct ig_session *s);
/* The client sent a SASL continuation line during IG_BS_AUTH. */
void ig_backend_client_line(struct ig_session *s, struct ig_span line);

/* relay.c */
/* Moves bytes both ways. May close the session. */
void ig_relay_pump(struct ig_session *s);
/*
 * Ends a relaying session with "* BYE [UNAVAILABLE] text" (reason: the
 * close reason; both static strings) without splitting a response of the
 * backend: the client's input is no longer forwarded (it is read and
 * dropped), the backend's keeps going to the client until what has been
 * written ends with a complete response, and the BYE goes there. When no
 * boundary comes within IG_RELAY_END_MS (a response cut mid-line, or a
 * client that does not read), the session closes without it (the
 * session timer, event=bye-skipped). Idempotent. May close the session.
 */
void ig_relay_end(struct ig_session *s, const char *reason, const char *text);
#define IG_RELAY_END_MS 5000
/*
 * After the backend's "* BYE" (it is about to close), the client's output
 * waits for that close for at most this long, so that the last responses,
 * the close_notify and the FIN leave in one segment.
 */
#define IG_RELAY_BYE_HOLD_MS 200
/* That wait ran out: what is held goes to the client. Returns 0 or IG_E*. */
int ig_relay_bye_hold_over(struct ig_session *s);

#endif /* IG_PROXY_SESSION_TYPES_H */
