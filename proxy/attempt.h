/*
 * A login attempt (LOGIN or AUTHENTICATE), one per session at a time, kept
 * in struct ig_session's `att` (session_types.h). It owns the judgement of
 * a login: the policy (newest generation), the rate limiter before any
 * backend contact, the accounting of the result. Functions marked "may
 * close" may end the session; callers return right after.
 */
#ifndef IG_PROXY_ATTEMPT_H
#define IG_PROXY_ATTEMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/span.h"

struct ig_attempt;
struct ig_imap_cmd;
struct ig_session;

/* LOGIN user password (arguments checked by the caller). May close. */
void ig_attempt_login(struct ig_session *s, const struct ig_imap_cmd *c);

/* AUTHENTICATE mechanism [initial-response] (checked by the caller). May close. */
void ig_attempt_authenticate(struct ig_session *s, const struct ig_imap_cmd *c);

/*
 * Reads one SASL response line from the client's buffer into *line (without
 * its line end; *consumed includes it). Returns 1 with a line, 0 when more
 * bytes are needed, -1 when the line is too long: the session has said
 * "* BYE" and is closing.
 */
int ig_attempt_read_line(struct ig_session *s, struct ig_span *line, size_t *consumed);

/*
 * A response to our own "+" (IG_SS_SASL): the first response, the LOGIN
 * mechanism's password, or "*" to cancel. May close.
 */
void ig_attempt_sasl_line(struct ig_session *s, struct ig_span line);

/*
 * A server-first mechanism (CRAM-MD5): the client's answer to the backend's
 * challenge carries the user. Extracts and judges it. Returns true when the
 * attempt may go on; false when it was refused (the client has been
 * answered, the backend connection closed, the session is back in PREAUTH).
 */
bool ig_attempt_judge_step(struct ig_session *s, struct ig_span b64);

/*
 * Makes the attempt log in to the backend as backend.master_login for its
 * user instead of with the secret the client sent: for a login whose
 * secret the proxy checked itself (an app password, issue 17), so that
 * the backend never sees it. This is the one entry point to a master
 * login; nothing else sets it.
 *
 * Call it once the user is known and the policy allowed the attempt, with
 * the client's secret verified, and before the attempt goes to the
 * backend (ig_backend_start()): attempt.c calls it when an app password
 * verified (attempt_verified(), after the hash on the thread pool), for a
 * LOGIN command, PLAIN or the LOGIN mechanism under credentials
 * app_passwords or both.
 *
 * What the client sent is wiped now; the command that goes to the backend
 * is formatted when the connection is ready (backend.c, proxy/loginfmt.c)
 * from the session's generation (s->gen: the backend the connection goes
 * to, its address, TLS and credential together), so a rotated secret
 * applies to sessions accepted after the reload. The client's address
 * still reaches the backend first (ID, or the PROXY header). A backend
 * refusal of the master login is the proxy's problem, not the user's:
 * it is logged (event=backend-error reason=master-login-refused, with the
 * backend's answer), the client gets NO [UNAVAILABLE] and no failure is
 * counted.
 *
 * Returns 0; IG_EINVAL when the attempt has no known user, was not allowed
 * by the policy for that user (a->decided), its login was already sent,
 * or the user cannot be named in a master login (style
 * separator and the name holds the separator); IG_ENOTFOUND when the
 * session's generation has no backend.master_login (a reload turned it on
 * after this session started). On an error nothing changed: the caller
 * refuses the attempt. Does not close the session.
 */
int ig_attempt_use_master(struct ig_session *s);

/*
 * The backend said OK: if the policy was reloaded since the attempt was
 * judged, judges it again with the newest one. Returns true when the login
 * may complete; false when it was refused (the client has been answered,
 * the backend connection closed, the session is back in PREAUTH).
 */
bool ig_attempt_recheck(struct ig_session *s);

/*
 * The backend's answer (ok: tagged OK; tempfail: it failed or timed out
 * first): the relay starts, or the session is back in PREAUTH with the
 * failure counted. May close.
 */
void ig_attempt_done(struct ig_session *s, bool ok, bool tempfail);

/*
 * The session is closing with an attempt under way: one that cost a backend
 * connection counts as a failure of the address.
 */
void ig_attempt_abandon(struct ig_session *s);

/*
 * Wipes and frees the attempt's command buffers (they exist only while an
 * attempt is active). Idempotent; the teardown calls it.
 */
void ig_attempt_release(struct ig_session *s);

/* cmd[0..end) may hold what the client sent (before writing there). */
void ig_attempt_cmd_dirty(struct ig_attempt *a, size_t end);

/* Wipes what cmd may hold (cmd[0..cmd_hi)), not the whole 16 KiB. */
void ig_attempt_wipe_cmd(struct ig_attempt *a);

#endif /* IG_PROXY_ATTEMPT_H */
