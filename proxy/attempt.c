/*
 * A login attempt, from the command that starts it to the backend's answer:
 * the user name (LOGIN arguments, or the SASL response that carries it),
 * the policy judgement (always the newest generation), the rate-limit check
 * before any backend contact, the secret's hash for the spraying count, the
 * LOGIN mechanism's steps, and the result: relay, or back to pre-auth with
 * the failure counted. "Where is a login judged" has this one answer.
 * The backend exchange itself is backend.c's; the command loop preauth.c's.
 */
#include "proxy/attempt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "apppass/password.h"
#include "apppass/store.h"
#include "policy/cidr.h"
#include "policy/decide.h"
#include "policy/ratelimit.h"
#include "proxy/apprt.h"
#include "proxy/gen.h"
#include "proxy/session_types.h"
#include "util/clock.h"
#include "util/err.h"

void
ig_attempt_release(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	if (a->cmd == NULL)
		return;
	/* cmd and stage are one allocation (cmd first): each is wiped as far
	   as anything was written into it. */
	ig_attempt_wipe_cmd(a);
	mbedtls_platform_zeroize(a->stage.buf, a->stage.hi);
	a->stage.hi = 0;
	free(a->cmd);
	a->cmd = a->stage.buf = NULL;
}

void
ig_attempt_cmd_dirty(struct ig_attempt *a, size_t end)
{
	if (end > a->cmd_cap)
		end = a->cmd_cap;
	if (end > a->cmd_hi)
		a->cmd_hi = end;
}

void
ig_attempt_wipe_cmd(struct ig_attempt *a)
{
	mbedtls_platform_zeroize(a->cmd, a->cmd_hi);
	a->cmd_hi = 0;
}

static void attempt_end(struct ig_session *s);
static unsigned attempt_fail_address(struct ig_session *s);

/*
 * Starts an attempt: copies the tag, clears the rest, allocates the
 * command buffers. Returns false when they could not be allocated: the
 * client has been answered NO [UNAVAILABLE] and there is no attempt.
 */
static bool
attempt_begin(struct ig_session *s, const struct ig_imap_cmd *c, bool login_cmd,
    enum ig_sasl_mech mech)
{
	struct ig_attempt *a = &s->att;
	ig_attempt_release(s);
	size_t cap = a->cmd_cap, scap = a->stage.cap;
	memset(a, 0, sizeof(*a));
	a->cmd_cap = cap;
	a->stage.cap = scap;
	a->active = true;
	a->login_cmd = login_cmd;
	a->mech = mech;
	a->started_ms = ig_session_now(s);
	a->started_ns = uv_hrtime();
	ig_imap_tag_copy(c, a->tag, sizeof(a->tag));
	a->cmd = malloc(cap + scap);
	if (a->cmd == NULL) {
		ig_session_log(s, IG_LOG_ERROR,
		    "event=login-refused reason=out-of-memory code=UNAVAILABLE");
		ig_session_reply(s, "%s NO [UNAVAILABLE] Server busy, try again later", a->tag);
		attempt_end(s);
		return false;
	}
	a->stage.buf = a->cmd + cap;
	return true;
}

static void
attempt_end(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	ig_attempt_release(s);
	a->cmd_len = a->ir_off = a->ir_len = a->pw_off = a->pw_len = 0;
	a->send_off = a->send_len = a->stage.len = 0;
	a->stage.nseg = a->seg_next = 0;
	a->as_master = false;
	a->apppass_id[0] = '\0';
	a->credentials = IG_CRED_PASSWORD;
	a->cred_monitored = false;
	a->sasl_step = 0;
	mbedtls_platform_zeroize(a->secret_hash, sizeof(a->secret_hash));
	a->has_secret_hash = false;
	a->backend_used = false;
	a->active = false;
	a->user_known = false;
	a->user[0] = '\0';
}

/* The attempt's mechanism as a metrics index. */
static unsigned
attempt_mech_index(const struct ig_attempt *a)
{
	if (a->login_cmd)
		return IG_M_MECH_LOGIN_CMD;
	return (unsigned)a->mech < (unsigned)IG_MECH_COUNT ? (unsigned)a->mech :
	    IG_M_MECH_UNKNOWN;
}

/* Counts the attempt's result; a refusal also by its reason. */
static void
attempt_count(struct ig_session *s, enum ig_m_login result, enum ig_m_refusal why)
{
	IG_SESSION_METRIC(s, logins[attempt_mech_index(&s->att)][result], 1);
	if (result == IG_ML_REFUSED && why != IG_MR_COUNT)
		IG_SESSION_METRIC(s, refusals[why], 1);
}

static const char *
attempt_mech_name(const struct ig_attempt *a)
{
	return a->login_cmd ? "LOGIN-command" : ig_sasl_mech_str(a->mech);
}

static void
attempt_rl(struct ig_session *s, struct ig_rl_attempt *ra)
{
	struct ig_attempt *a = &s->att;
	ra->user = a->user_known ? a->user : NULL;
	ra->addr = (const struct sockaddr *)&s->peer;
	ra->secret = NULL;
	ra->secret_len = 0;
	ra->secret_hash = a->has_secret_hash ? a->secret_hash : NULL;
	ra->now_ms = ig_wall_ms();
}

/* Keeps the limiter's hash of a password or token just read. */
static void
attempt_keep_secret(struct ig_session *s, const uint8_t *p, size_t len)
{
	struct ig_attempt *a = &s->att;
	struct ig_shared *sh = s->set->sh;
	if (sh->rl == NULL || len == 0)
		return;
	ig_shared_lock(sh);
	ig_rl_secret_hash(sh->rl, p, len, a->secret_hash);
	ig_shared_unlock(sh);
	a->has_secret_hash = true;
}

/*
 * The limiter, before any backend contact. Returns true when the attempt
 * may go on; otherwise answers NO [UNAVAILABLE] (after the tarpit delay)
 * and ends the attempt. May close the session.
 */
static bool
attempt_ratelimit(struct ig_session *s)
{
	struct ig_shared *sh = s->set->sh;
	if (sh->rl == NULL)
		return true;
	struct ig_attempt *a = &s->att;
	struct ig_rl_attempt ra;
	attempt_rl(s, &ra);
	struct ig_rl_verdict v;
	ig_shared_lock(sh);
	ig_rl_check(sh->rl, &ra, &v);
	unsigned max_failures = ig_rl_max_conn_failures(sh->rl);
	ig_shared_unlock(sh);
	if (!v.refuse)
		return true;
	uint64_t left_s = v.until_ms > ra.now_ms ? (v.until_ms - ra.now_ms + 999) / 1000 : 0;
	ig_session_log(s, IG_LOG_WARN,
	    "event=login-decision verdict=tempfail reason=ratelimit limit=%s count=%u "
	    "threshold=%u remaining_s=%llu known_address=%s mech=%s code=UNAVAILABLE",
	    v.limit, v.count, v.threshold, (unsigned long long)left_s,
	    v.known_address ? "yes" : "no", attempt_mech_name(a));
	attempt_count(s, IG_ML_REFUSED, ig_metrics_refusal_of_limit(v.limit));
	if (left_s >= 120)
		ig_session_reply(s, "%s NO [UNAVAILABLE] Too many failed logins, try again in "
		    "%llu minutes", a->tag, (unsigned long long)((left_s + 59) / 60));
	else
		ig_session_reply(s, "%s NO [UNAVAILABLE] Too many failed logins, try again in "
		    "%llu seconds", a->tag, (unsigned long long)left_s);
	s->failures++;
	attempt_end(s);
	ig_session_tarpit(s, v.delay_ms, s->failures >= max_failures);
	return false;
}

/* What the policy judges this attempt by. */
static void
attempt_facts(const struct ig_session *s, struct ig_login_facts *f)
{
	const struct ig_attempt *a = &s->att;
	*f = (struct ig_login_facts){
		.user = a->user_known ? a->user : NULL,
		.mech = a->login_cmd ? IG_MECH_COUNT : a->mech,
		.login_cmd = a->login_cmd,
		.tls = s->tls_active,
		.addr = (const struct sockaddr *)&s->peer,
		.listener = s->l->name,
	};
}

/*
 * Judges the attempt (a->user set if known). On refusal answers the client
 * and ends the attempt. Returns true when the attempt may go on.
 */
static bool
attempt_judge(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	struct ig_login_facts f;
	attempt_facts(s, &f);
	struct ig_decision d;
	char rule[4 * sizeof(d.rule_name) + 8]; /* as logged (ig_log_rule) */
	/* Always the newest policy: a reload that denies a user applies to
	   connections opened before it. */
	enum ig_verdict v = ig_policy_decide(ig_session_policy(s), &f, &d);
	if (v == IG_VERDICT_ALLOW) {
		if (d.would_deny)
			ig_session_log(s, IG_LOG_WARN,
			    "event=login-decision verdict=would-deny mode=monitor mech=%s tls=%s "
			    "reason=%s rule=%s", attempt_mech_name(a), s->tls_active ? "yes" : "no",
			    d.reason, ig_log_rule(d.rule_name, rule, sizeof(rule)));
		if (!attempt_ratelimit(s))
			return false;
		if (a->user_known) {
			a->decided = true;
			a->decided_gen = s->set->gen_seq;
			a->credentials = d.credentials;
			a->cred_monitored = d.credentials_monitored;
			if (!d.would_deny)
				ig_session_log(s, IG_LOG_INFO,
				    "event=login-decision verdict=allow mech=%s tls=%s reason=%s "
				    "rule=%s", attempt_mech_name(a), s->tls_active ? "yes" : "no",
				    d.reason, ig_log_rule(d.rule_name, rule, sizeof(rule)));
		}
		return true;
	}
	ig_session_log(s, IG_LOG_INFO,
	    "event=login-decision verdict=%s mech=%s tls=%s reason=%s rule=%s code=%s",
	    ig_verdict_str(d.verdict), attempt_mech_name(a), s->tls_active ? "yes" : "no",
	    d.reason, ig_log_rule(d.rule_name, rule, sizeof(rule)),
	    d.code != NULL ? d.code : "-");
	attempt_count(s, IG_ML_REFUSED, ig_metrics_refusal_of(d.reason));
	if (d.code != NULL)
		ig_session_reply(s, "%s NO [%s] %s", a->tag, d.code, d.text);
	else
		ig_session_reply(s, "%s NO %s", a->tag, d.text);
	s->failures++;
	attempt_end(s);
	return false;
}

/*
 * A login the credentials rule refuses (credentials: app_passwords, and no
 * app password of the user's was given), or an app password that did not
 * verify: the same tagged NO as a wrong password, counted by the limiter
 * like one. reason and id (NULL: not logged) go to the log.
 */
static void
attempt_refuse_credentials(struct ig_session *s, const char *reason, const char *id,
    enum ig_m_apppass metric)
{
	struct ig_attempt *a = &s->att;
	ig_session_log(s, IG_LOG_INFO,
	    "event=login-decision verdict=deny mech=%s tls=%s reason=%s%s%s "
	    "rule=credentials code=AUTHENTICATIONFAILED", attempt_mech_name(a),
	    s->tls_active ? "yes" : "no", reason, id != NULL ? " apppass_id=" : "",
	    id != NULL ? id : "");
	IG_SESSION_METRIC(s, apppass[metric], 1);
	/* The account password where an app password is required: the
	   hint, if configured, as an alert clients show (Gmail's way). */
	const char *hint = s->gen->cfg->apppass.hint;
	if (metric == IG_MAP_ACCOUNT_REFUSED && hint != NULL)
		ig_session_reply(s, "* NO [ALERT] %s", hint);
	ig_session_reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed.", a->tag);
	ig_attempt_done(s, false, false);
}

/*
 * The attempt cannot go on for a reason of ours (verifications busy, no
 * thread, master login unusable): NO [UNAVAILABLE], not counted as the
 * user's failure, back to the command loop.
 */
static void
attempt_tempfail(struct ig_session *s, const char *reason, const char *text)
{
	struct ig_attempt *a = &s->att;
	ig_session_log(s, IG_LOG_WARN, "event=login-result result=tempfail reason=%s mech=%s "
	    "code=UNAVAILABLE", reason, attempt_mech_name(a));
	attempt_count(s, IG_ML_TEMPFAIL, IG_MR_COUNT);
	ig_session_reply(s, "%s NO [UNAVAILABLE] %s", a->tag, text);
	attempt_end(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
}

/* Hands the attempt to the backend. */
static void
attempt_to_backend(struct ig_session *s)
{
	ig_session_set_state(s, IG_SS_BACKEND_CONNECT);
	ig_backend_start(s);
}

/*
 * Parses the password the client sent as an app password (LOGIN command,
 * PLAIN, the LOGIN mechanism). Returns true with *pw (wiped by the
 * caller); false when the mechanism carries no password or it is not
 * shaped like an app password. Decoded bytes are wiped.
 */
static bool
attempt_app_password(struct ig_session *s, struct ig_apppass_pw *pw)
{
	struct ig_attempt *a = &s->att;
	if (a->login_cmd)
		return ig_apppass_parse(a->cmd + a->ir_off, a->ir_len, pw) == 0;
	if (a->mech != IG_MECH_PLAIN && a->mech != IG_MECH_LOGIN)
		return false;
	uint8_t dec[4096];
	size_t dlen = 0;
	struct ig_span b64 = a->mech == IG_MECH_PLAIN ?
	    (struct ig_span){ a->cmd, a->ir_len } : (struct ig_span){ a->cmd + a->pw_off, a->pw_len };
	bool ok = false;
	if (ig_sasl_b64_decode(b64, dec, sizeof(dec), &dlen) == 0) {
		if (a->mech == IG_MECH_LOGIN) {
			ok = ig_apppass_parse(dec, dlen, pw) == 0;
		} else {
			struct ig_sasl_ident id;
			if (ig_sasl_extract_user(IG_MECH_PLAIN, dec, dlen, &id) == 0 &&
			    id.secret.p != NULL)
				ok = ig_apppass_parse(id.secret.p, id.secret.len, pw) == 0;
			mbedtls_platform_zeroize(&id, sizeof(id));
		}
	}
	mbedtls_platform_zeroize(dec, sizeof(dec));
	return ok;
}

/* True when the client's address is in networks ("" = anywhere; CIDR
   blocks separated by ','; one that does not parse refuses). */
static bool
attempt_from_allowed(const struct ig_session *s, const char *networks)
{
	if (networks[0] == '\0')
		return true;
	const char *p = networks;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char block[64];
		if (n == 0 || n >= sizeof(block))
			return false;
		memcpy(block, p, n);
		block[n] = '\0';
		struct ig_cidr c;
		if (ig_cidr_parse(block, &c) != 0)
			return false;
		if (ig_cidr_contains(&c, (const struct sockaddr *)&s->peer))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static void attempt_verified(uv_work_t *req, int status);

/*
 * An app password for the user: look it up in the current snapshot,
 * check its expiry and networks, then hash it on the thread pool behind
 * the verifications' cap (IG_SS_VERIFY until attempt_verified()).
 */
static void
attempt_app_check(struct ig_session *s, const struct ig_apppass_pw *pw)
{
	struct ig_attempt *a = &s->att;
	struct ig_apprt *rt = s->set->sh->apprt;
	if (rt == NULL) {
		/* (app_passwords.store was added by a reload: at restart) */
		attempt_tempfail(s, "app-passwords-off", "App passwords unavailable, try again "
		    "later");
		return;
	}
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(rt);
	const struct ig_apppass_snap_entry *e = snap != NULL ?
	    ig_apppass_snapshot_find(snap, a->user, pw->id) : NULL;
	if (e == NULL) {
		/* An id that is not the user's is not logged: it could be part
		   of a password typed into the wrong field. */
		bool revoked = snap != NULL && ig_apppass_snapshot_is_revoked(snap, pw->id);
		ig_apppass_snapshot_unref(snap);
		attempt_refuse_credentials(s, revoked ? "app-password-revoked" :
		    "app-password-unknown", NULL, revoked ? IG_MAP_REVOKED : IG_MAP_UNKNOWN);
		return;
	}
	char id[IG_APPPASS_ID_LEN + 1];
	memcpy(id, e->id, sizeof(id));
	if (e->expires != 0 && (int64_t)(ig_wall_ms() / 1000) >= e->expires) {
		ig_apppass_snapshot_unref(snap);
		attempt_refuse_credentials(s, "app-password-expired", id, IG_MAP_EXPIRED);
		return;
	}
	if (!attempt_from_allowed(s, e->networks)) {
		ig_apppass_snapshot_unref(snap);
		attempt_refuse_credentials(s, "app-password-network", id, IG_MAP_NETWORK);
		return;
	}
	if (!ig_apprt_verify_reserve(rt)) {
		ig_apppass_snapshot_unref(snap);
		IG_SESSION_METRIC(s, apppass[IG_MAP_BUSY], 1);
		attempt_tempfail(s, "verifications-busy", "Server busy, try again later");
		return;
	}
	struct ig_apprt_verify *v = calloc(1, sizeof(*v));
	if (v == NULL) {
		/* (the reservation is given back through a dummy release) */
		struct ig_apprt_verify tmp = { .rt = rt };
		ig_apprt_verify_release(&tmp);
		ig_apppass_snapshot_unref(snap);
		attempt_tempfail(s, "out-of-memory", "Server busy, try again later");
		return;
	}
	v->req.data = s;
	memcpy(a->apppass_id, id, sizeof(id));
	int rc = ig_apprt_verify(rt, s->set->loop, v, snap, e, pw, attempt_verified);
	ig_apppass_snapshot_unref(snap);
	if (rc != 0) {
		free(v);
		attempt_tempfail(s, "thread-pool", "Server busy, try again later");
		return;
	}
	a->verify = v;
	ig_session_handle_opened(s);
	ig_session_set_state(s, IG_SS_VERIFY);
}

/* The hash is back (on the session's loop). */
static void
attempt_verified(uv_work_t *req, int status)
{
	struct ig_session *s = req->data;
	struct ig_apprt_verify *v = (struct ig_apprt_verify *)((char *)req -
	    offsetof(struct ig_apprt_verify, req));
	struct ig_attempt *a = &s->att;
	int rc = status != 0 ? IG_EIO : v->rc;
	bool match = rc == 0 && v->match;
	uint64_t wait_ms = (v->started_ns - v->queued_ns) / 1000000u;
	uint64_t hash_ms = (v->done_ns - v->started_ns) / 1000000u;
	if (status != 0)
		wait_ms = hash_ms = 0;
	ig_apprt_verify_release(v);
	free(v);
	a->verify = NULL;
	if (s->closing || s->state != IG_SS_VERIFY) {
		ig_session_handle_closed(s);
		return;
	}
	char id[IG_APPPASS_ID_LEN + 1];
	memcpy(id, a->apppass_id, sizeof(id));
	if (rc != 0) {
		ig_session_log(s, IG_LOG_ERROR, "event=apppass-verify-failed apppass_id=%s "
		    "error=\"%s\"", id, ig_strerror(rc));
		attempt_tempfail(s, "verify-error", "Server busy, try again later");
	} else if (!match) {
		a->apppass_id[0] = '\0';
		attempt_refuse_credentials(s, "app-password-wrong", id, IG_MAP_WRONG);
	} else {
		rc = ig_attempt_use_master(s);
		if (rc != 0) {
			ig_session_log(s, IG_LOG_ERROR, "event=apppass-master-login-unusable "
			    "apppass_id=%s reason=%s", id, rc == IG_ENOTFOUND ?
			    "backend.master_login-not-configured" : "user-not-nameable");
			attempt_tempfail(s, "master-login-unusable", "Server unavailable, try "
			    "again later");
		} else {
			ig_session_log(s, IG_LOG_INFO, "event=login-credential credential=app-password "
			    "apppass_id=%s mech=%s wait_ms=%llu hash_ms=%llu", id,
			    attempt_mech_name(a), (unsigned long long)wait_ms,
			    (unsigned long long)hash_ms);
			attempt_to_backend(s);
		}
	}
	if (ig_session_handle_closed(s))
		ig_session_on_io(s); /* pipelined input, replies to flush */
}

/*
 * The policy allowed the attempt and the limiter let it through: the
 * credentials rule says who checks the secret. password: the backend.
 * app_passwords: only an app password, checked here, then the login as
 * backend.master_login; anything else is refused (monitor mode: logged,
 * and the backend checks the secret). both: an app password as above,
 * else the backend checks the secret as the account password. A bearer
 * token (XOAUTH2, OAUTHBEARER) is no password: the backend checks it
 * under every rule.
 */
static void
attempt_go(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	if (a->credentials == IG_CRED_PASSWORD) {
		attempt_to_backend(s);
		return;
	}
	if (!a->login_cmd && (a->mech == IG_MECH_XOAUTH2 || a->mech == IG_MECH_OAUTHBEARER)) {
		ig_session_log(s, IG_LOG_INFO, "event=login-credential credential=bearer-token "
		    "mech=%s", attempt_mech_name(a));
		attempt_to_backend(s);
		return;
	}
	struct ig_apppass_pw pw;
	if (attempt_app_password(s, &pw)) {
		attempt_app_check(s, &pw);
		ig_apppass_wipe(&pw);
		return;
	}
	if (a->credentials == IG_CRED_APP_PASSWORDS) {
		if (!a->cred_monitored) {
			attempt_refuse_credentials(s, "app-password-required", NULL,
			    IG_MAP_ACCOUNT_REFUSED);
			return;
		}
		ig_session_log(s, IG_LOG_WARN,
		    "event=login-decision verdict=would-deny mode=monitor mech=%s "
		    "reason=app-password-required rule=credentials", attempt_mech_name(a));
	} else {
		ig_session_log(s, IG_LOG_INFO, "event=login-credential credential=password "
		    "mech=%s", attempt_mech_name(a));
	}
	IG_SESSION_METRIC(s, apppass[IG_MAP_ACCOUNT_USED], 1);
	attempt_to_backend(s);
}

/*
 * True when a user name is one of the store's app passwords (a client
 * with its fields swapped): such a name is never logged nor sent on.
 */
static bool
attempt_user_is_app_password(struct ig_session *s, const uint8_t *name, size_t len)
{
	struct ig_apprt *rt = s->set->sh->apprt;
	struct ig_apppass_pw pw;
	if (rt == NULL || ig_apppass_parse(name, len, &pw) != 0)
		return false;
	struct ig_apppass_snapshot *snap = ig_apprt_snapshot(rt);
	bool known = snap != NULL && ig_apppass_snapshot_knows(snap, pw.id);
	ig_apppass_snapshot_unref(snap);
	ig_apppass_wipe(&pw);
	return known;
}

/* Normalises name into a->user; on failure answers BAD (or NO, for a name
   that is an app password). */
static bool
attempt_set_user(struct ig_session *s, const uint8_t *name, size_t len)
{
	struct ig_attempt *a = &s->att;
	if (attempt_user_is_app_password(s, name, len)) {
		ig_session_log(s, IG_LOG_INFO, "event=login-decision verdict=deny mech=%s "
		    "reason=user-is-an-app-password user=[redacted] code=AUTHENTICATIONFAILED",
		    attempt_mech_name(a));
		attempt_count(s, IG_ML_REFUSED, IG_MR_COUNT);
		ig_session_reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed.", a->tag);
		/* A failure of the address (no user is known), tarpitted like
		   any other. */
		s->failures++;
		unsigned delay = attempt_fail_address(s);
		attempt_end(s);
		struct ig_shared *sh = s->set->sh;
		if (sh->rl != NULL) {
			ig_shared_lock(sh);
			unsigned max_failures = ig_rl_max_conn_failures(sh->rl);
			ig_shared_unlock(sh);
			ig_session_tarpit(s, delay, s->failures >= max_failures);
		}
		return false;
	}
	int rc = ig_user_normalize(name, len, ig_session_policy(s)->fold_case, a->user,
	    sizeof(a->user));
	if (rc != 0) {
		ig_session_log(s, IG_LOG_INFO, "event=login-refused reason=bad-user-name");
		ig_session_reply(s, "%s BAD Invalid user name", a->tag);
		s->errors++;
		attempt_end(s);
		return false;
	}
	a->user_known = true;
	return true;
}

void
ig_attempt_login(struct ig_session *s, const struct ig_imap_cmd *c)
{
	struct ig_attempt *a = &s->att;
	if (!attempt_begin(s, c, true, IG_MECH_COUNT))
		return;
	/* cmd holds "user" then "password", decoded; formatted at send time. */
	/* Unquoting writes at most the argument's length (escapes only
	   shrink it) and its limit, also when it fails. */
	ig_attempt_cmd_dirty(a, c->args[0].val.len < IG_USER_MAX + 1 ? c->args[0].val.len :
	    IG_USER_MAX + 1);
	long ul = ig_imap_unquote(&c->args[0], a->cmd, IG_USER_MAX + 1);
	if (ul < 0 || (size_t)ul > IG_USER_MAX) {
		ig_session_reply(s, "%s BAD Invalid user name", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	if (!attempt_set_user(s, a->cmd, (size_t)ul))
		return;
	ig_attempt_cmd_dirty(a, (size_t)ul + c->args[1].val.len);
	long pl = ig_imap_unquote(&c->args[1], a->cmd + ul, a->cmd_cap - (size_t)ul);
	if (pl < 0) {
		ig_session_reply(s, "%s BAD Password too long", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	attempt_keep_secret(s, a->cmd + ul, (size_t)pl);
	if (!attempt_judge(s))
		return;
	a->ir_off = (size_t)ul;
	a->ir_len = (size_t)pl;
	a->cmd_len = (size_t)ul + (size_t)pl;
	attempt_go(s);
}

/*
 * A SASL response that carries the user name: decode it, extract the
 * identities, normalise, refuse a foreign authorization identity, judge.
 * Returns true when the attempt may go on; otherwise the client has been
 * answered and the attempt ended. The decoded bytes are wiped.
 */
static bool
attempt_sasl_user(struct ig_session *s, struct ig_span b64)
{
	struct ig_attempt *a = &s->att;
	uint8_t dec[4096];
	size_t dlen = 0;
	int rc = ig_sasl_b64_decode(b64, dec, sizeof(dec), &dlen);
	if (rc != 0) {
		mbedtls_platform_zeroize(dec, sizeof(dec));
		ig_session_reply(s, "%s BAD Invalid base64 in SASL response", a->tag);
		s->errors++;
		attempt_end(s);
		return false;
	}
	struct ig_sasl_ident id;
	rc = ig_sasl_extract_user(a->mech, dec, dlen, &id);
	/* A password or bearer token in the same response (PLAIN, XOAUTH2,
	   OAUTHBEARER) feeds the limiter's spraying count, hashed now. */
	if (rc == 0 && id.secret.p != NULL)
		attempt_keep_secret(s, id.secret.p, id.secret.len);
	mbedtls_platform_zeroize(dec, sizeof(dec));
	if (rc != 0) {
		mbedtls_platform_zeroize(&id, sizeof(id));
		ig_session_log(s, IG_LOG_INFO, "event=login-refused reason=sasl-%s mech=%s",
		    rc == IG_ENOTFOUND ? "no-user" : "malformed", ig_sasl_mech_str(a->mech));
		ig_session_reply(s, "%s BAD Malformed SASL response", a->tag);
		s->errors++;
		attempt_end(s);
		return false;
	}
	const char *mbox = ig_sasl_mailbox_user(&id);
	bool ok = attempt_set_user(s, (const uint8_t *)mbox, strlen(mbox));
	if (ok && id.authzid[0] != '\0' && id.authcid[0] != '\0') {
		char authc[IG_USER_MAX + 1];
		if (ig_user_normalize((const uint8_t *)id.authcid, strlen(id.authcid),
		        ig_session_policy(s)->fold_case, authc, sizeof(authc)) != 0 ||
		    strcmp(authc, a->user) != 0) {
			/* A different authorization identity is a master-user
			   login: refused unless configured (not yet). */
			ig_session_log(s, IG_LOG_INFO,
			    "event=login-decision verdict=deny reason=authzid-mismatch mech=%s "
			    "code=AUTHORIZATIONFAILED",
			    ig_sasl_mech_str(a->mech));
			ig_session_reply(s, "%s NO [AUTHORIZATIONFAILED] Authorization identity refused",
			    a->tag);
			attempt_count(s, IG_ML_REFUSED, IG_MR_AUTHZID);
			s->failures++;
			attempt_end(s);
			ok = false;
		}
	}
	mbedtls_platform_zeroize(&id, sizeof(id));
	return ok && attempt_judge(s);
}

/*
 * The client's first SASL response (base64, or "=" for empty) is known:
 * judge, then hand the attempt to the backend.
 */
static void
attempt_sasl_first(struct ig_session *s, struct ig_span b64)
{
	struct ig_attempt *a = &s->att;
	if (!attempt_sasl_user(s, b64))
		return;
	/* cmd = the base64 initial response, sent as SASL-IR or after "+". */
	if (b64.len > a->cmd_cap) {
		ig_session_reply(s, "%s BAD SASL response too long", a->tag);
		attempt_end(s);
		return;
	}
	ig_attempt_cmd_dirty(a, b64.len);
	memcpy(a->cmd, b64.p, b64.len);
	a->ir_off = 0;
	a->ir_len = b64.len;
	a->cmd_len = b64.len;
	if (a->mech == IG_MECH_LOGIN) {
		/* The password comes in the next response: read it here, so
		   the limiter sees it before the backend does. */
		a->sasl_step = 1;
		ig_session_reply(s, "+ UGFzc3dvcmQ6"); /* "Password:" */
		ig_session_set_state(s, IG_SS_SASL);
		return;
	}
	attempt_go(s);
}

/*
 * The LOGIN mechanism's second response, the password: hashed for the
 * limiter (spraying), checked against it, then the attempt goes to the
 * backend with both responses.
 */
static void
attempt_sasl_password(struct ig_session *s, struct ig_span b64)
{
	struct ig_attempt *a = &s->att;
	uint8_t dec[4096];
	size_t dlen = 0;
	int rc = ig_sasl_b64_decode(b64, dec, sizeof(dec), &dlen);
	if (rc == 0)
		attempt_keep_secret(s, dec, dlen);
	mbedtls_platform_zeroize(dec, sizeof(dec));
	if (rc != 0) {
		ig_session_reply(s, "%s BAD Invalid base64 in SASL response", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	if (b64.len > a->cmd_cap - a->cmd_len) {
		ig_session_reply(s, "%s BAD SASL response too long", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	a->pw_off = a->cmd_len;
	a->pw_len = b64.len;
	ig_attempt_cmd_dirty(a, a->pw_off + b64.len);
	memcpy(a->cmd + a->pw_off, b64.p, b64.len);
	a->cmd_len += b64.len;
	a->sasl_step = 2;
	if (!attempt_ratelimit(s))
		return;
	attempt_go(s);
}

bool
ig_attempt_judge_step(struct ig_session *s, struct ig_span b64)
{
	if (attempt_sasl_user(s, b64)) {
		struct ig_attempt *a = &s->att;
		/* A challenge-response over the account password: never an
		   app password (the proxy cannot check one here). */
		if (a->credentials != IG_CRED_APP_PASSWORDS)
			return true;
		if (a->cred_monitored) {
			ig_session_log(s, IG_LOG_WARN,
			    "event=login-decision verdict=would-deny mode=monitor mech=%s "
			    "reason=app-password-required rule=credentials", attempt_mech_name(a));
			return true;
		}
		/* (ig_attempt_done() closes the backend and goes back to the
		   command loop) */
		attempt_refuse_credentials(s, "app-password-required", NULL,
		    IG_MAP_ACCOUNT_REFUSED);
		return false;
	}
	if (s->closing)
		return false; /* (a refusal's tarpit said BYE) */
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	return false;
}

int
ig_attempt_use_master(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	const struct ig_master_login *m = &s->gen->cfg->backend.master_login;
	/* Never for an attempt the policy has not allowed for this user. */
	if (!a->active || !a->user_known || !a->decided || s->bstate == IG_BS_AUTH)
		return IG_EINVAL;
	if (!m->on)
		return IG_ENOTFOUND;
	if (ig_loginfmt_master_check(m, a->user) != 0)
		return IG_EINVAL;
	/* The client's secret is not needed any more. */
	ig_attempt_wipe_cmd(a);
	a->cmd_len = a->ir_off = a->ir_len = a->pw_off = a->pw_len = 0;
	a->as_master = true;
	return 0;
}

void
ig_attempt_authenticate(struct ig_session *s, const struct ig_imap_cmd *c)
{
	enum ig_sasl_mech m = ig_sasl_mech_from_name(c->args[0].val);
	char tag[128];
	ig_imap_tag_copy(c, tag, sizeof(tag));
	char caps[IG_CAPS_MAX], want[64];
	ig_session_caps(s, caps, sizeof(caps));
	snprintf(want, sizeof(want), "AUTH=%s", ig_sasl_mech_str(m));
	if (m == IG_MECH_COUNT || !ig_caps_has(caps, want)) {
		/* Not offered here: either unknown, not the backend's, or not
		   allowed on this connection (the policy tells which). */
		if (!attempt_begin(s, c, false, m == IG_MECH_COUNT ? IG_MECH_PLAIN : m))
			return;
		if (m != IG_MECH_COUNT && !attempt_judge(s))
			return;
		if (m == IG_MECH_COUNT)
			s->att.mech = IG_MECH_COUNT; /* counted as "unknown" */
		attempt_count(s, IG_ML_REFUSED, IG_MR_MECHANISM);
		attempt_end(s);
		ig_session_log(s, IG_LOG_INFO,
		    "event=login-refused reason=mechanism-unavailable code=CANNOT");
		ig_session_reply(s, "%s NO [CANNOT] Unsupported authentication mechanism", tag);
		return;
	}
	if (!attempt_begin(s, c, false, m))
		return;
	if (!attempt_judge(s))
		return;
	/* "=" is an empty initial response (RFC 4959): the same as none for a
	   mechanism where the server speaks first, as Dovecot treats it. */
	bool empty_ir = c->nargs == 2 && c->args[1].val.len == 1 && c->args[1].val.p[0] == '=';
	if (ig_sasl_mech_server_first(m)) {
		if (c->nargs == 2 && !empty_ir) {
			ig_session_reply(s, "%s BAD %s does not take an initial response", tag,
			    ig_sasl_mech_str(m));
			s->errors++;
			attempt_end(s);
			return;
		}
		/* The user appears only in the answer to the backend's
		   challenge: connect now, judge at that step. */
		ig_session_set_state(s, IG_SS_BACKEND_CONNECT);
		ig_backend_start(s);
		return;
	}
	if (c->nargs == 2) {
		attempt_sasl_first(s, c->args[1].val);
		return;
	}
	/* No initial response: ask for it ourselves (LOGIN asks "Username:"). */
	ig_session_reply(s, m == IG_MECH_LOGIN ? "+ VXNlcm5hbWU6" : "+ ");
	ig_session_set_state(s, IG_SS_SASL);
}

int
ig_attempt_read_line(struct ig_session *s, struct ig_span *line, size_t *consumed)
{
	*consumed = 0;
	if (s->cin.off == s->cin.len)
		return 0; /* nothing read (cin is not even held) */
	enum ig_parse_result r = ig_imap_parse_line(s->cin.p + s->cin.off,
	    s->cin.len - s->cin.off, s->gen->cfg->limits.max_line, line, consumed);
	if (r == IG_PARSE_AGAIN)
		return 0;
	if (r != IG_PARSE_OK) {
		ig_session_reply(s, "* BYE [CLIENTBUG] SASL response too long");
		ig_session_close(s, "sasl-line-too-long", true);
		return -1;
	}
	return 1;
}

void
ig_attempt_sasl_line(struct ig_session *s, struct ig_span line)
{
	struct ig_attempt *a = &s->att;
	if (line.len == 1 && line.p[0] == '*') {
		/* A BAD answer like any other: it counts towards max_errors. */
		char tag[sizeof(a->tag)];
		memcpy(tag, a->tag, sizeof(tag));
		ig_session_log(s, IG_LOG_INFO, "event=login-cancelled mech=%s",
		    ig_sasl_mech_str(a->mech));
		attempt_end(s);
		ig_session_bad(s, tag, "Authentication cancelled");
	} else if (a->mech == IG_MECH_LOGIN && a->sasl_step == 1) {
		attempt_sasl_password(s, line);
	} else {
		attempt_sasl_first(s, line);
	}
}

/* Logs a block that a failure just started. */
static void
attempt_log_block(struct ig_session *s, const struct ig_rl_verdict *v)
{
	if (v->started)
		ig_session_log(s, IG_LOG_WARN,
		    "event=ratelimit-block limit=%s count=%u threshold=%u until_s=%llu",
		    v->limit, v->count, v->threshold, (unsigned long long)(v->until_ms / 1000));
}

/*
 * An attempt that cost a backend connection and ended without a verdict
 * from the backend (cancelled with "*", or abandoned by the client) counts
 * as a failure of the address: start-and-cancel loops cannot open backend
 * connections for free. Returns the tarpit delay.
 */
static unsigned
attempt_count_abandoned(struct ig_session *s, const char *what)
{
	struct ig_attempt *a = &s->att;
	ig_session_log(s, IG_LOG_INFO, "event=login-%s mech=%s cost=backend-connection",
	    what, attempt_mech_name(a));
	return attempt_fail_address(s);
}

/* Counts a failure of the client's address alone (no user's password was
   tried). Returns the tarpit delay. */
static unsigned
attempt_fail_address(struct ig_session *s)
{
	struct ig_shared *sh = s->set->sh;
	if (sh->rl == NULL)
		return 0;
	struct ig_rl_attempt ra;
	attempt_rl(s, &ra);
	ra.user = NULL; /* nobody's password was tried */
	ra.secret_hash = NULL;
	struct ig_rl_verdict v;
	ig_shared_lock(sh);
	ig_rl_failure(sh->rl, &ra, &v);
	ig_shared_unlock(sh);
	attempt_log_block(s, &v);
	return v.delay_ms;
}

void
ig_attempt_abandon(struct ig_session *s)
{
	if (s->att.active && s->att.backend_used && !s->set->stopping)
		(void)attempt_count_abandoned(s, "aborted");
}

/*
 * The backend said OK but the login is refused after all (the client has
 * been answered): a failure on this connection, the backend connection
 * closed, back to the command loop.
 */
static void
attempt_drop_backend_ok(struct ig_session *s)
{
	s->failures++;
	attempt_end(s);
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
}

/*
 * The backend accepted the master login for an app password: the password
 * must still be in the newest snapshot (a revocation while the login was
 * under way ran its sweep before this session was in the relay). Returns
 * false after refusing the login (client answered, backend closed).
 */
static bool
attempt_app_still_valid(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	struct ig_apprt *rt = s->set->sh->apprt;
	struct ig_apppass_snapshot *snap = rt != NULL ? ig_apprt_snapshot(rt) : NULL;
	bool ok = snap != NULL && ig_apppass_snapshot_find(snap, a->user, a->apppass_id) != NULL;
	ig_apppass_snapshot_unref(snap);
	if (ok)
		return true;
	char id[IG_APPPASS_ID_LEN + 1];
	memcpy(id, a->apppass_id, sizeof(id));
	ig_session_log(s, IG_LOG_INFO, "event=login-decision verdict=deny mech=%s "
	    "reason=app-password-revoked apppass_id=%s rule=credentials phase=after-backend "
	    "code=AUTHENTICATIONFAILED", attempt_mech_name(a), id);
	IG_SESSION_METRIC(s, apppass[IG_MAP_REVOKED], 1);
	attempt_count(s, IG_ML_REFUSED, IG_MR_COUNT);
	ig_session_reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed.", a->tag);
	attempt_drop_backend_ok(s);
	return false;
}

bool
ig_attempt_recheck(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	if (a->apppass_id[0] != '\0' && !attempt_app_still_valid(s))
		return false;
	if (a->decided_gen == s->set->gen_seq)
		return true;
	struct ig_login_facts f;
	attempt_facts(s, &f);
	struct ig_decision d;
	char rule[4 * sizeof(d.rule_name) + 8];
	if (ig_policy_decide(ig_session_policy(s), &f, &d) == IG_VERDICT_ALLOW) {
		a->decided_gen = s->set->gen_seq;
		return true;
	}
	/* The policy was reloaded while the backend checked the password,
	   and no longer allows this login: the backend's OK is dropped. */
	ig_session_log(s, IG_LOG_INFO,
	    "event=login-decision verdict=%s mech=%s tls=%s reason=%s rule=%s code=%s "
	    "phase=after-reload", ig_verdict_str(d.verdict), attempt_mech_name(a),
	    s->tls_active ? "yes" : "no", d.reason, ig_log_rule(d.rule_name, rule, sizeof(rule)),
	    d.code != NULL ? d.code : "-");
	attempt_count(s, IG_ML_REFUSED, ig_metrics_refusal_of(d.reason));
	if (d.code != NULL)
		ig_session_reply(s, "%s NO [%s] %s", a->tag, d.code, d.text);
	else
		ig_session_reply(s, "%s NO %s", a->tag, d.text);
	attempt_drop_backend_ok(s);
	return false;
}

void
ig_attempt_done(struct ig_session *s, bool ok, bool tempfail)
{
	struct ig_attempt *a = &s->att;
	uint64_t ms = ig_session_now(s) - a->started_ms;
	struct ig_shared *sh = s->set->sh;
	attempt_count(s, ok ? IG_ML_OK : tempfail ? IG_ML_TEMPFAIL :
	    a->cancel_sent ? IG_ML_CANCELLED : IG_ML_FAIL, IG_MR_COUNT);
	if (s->set->metrics != NULL)
		ig_metrics_observe(s->set->metrics, IG_MH_LOGIN, uv_hrtime() - a->started_ns);
	bool rl = sh->rl != NULL; /* (created at start, never replaced) */
	struct ig_rl_attempt ra;
	attempt_rl(s, &ra);
	if (tempfail) {
		ig_session_reply(s, "%s NO [UNAVAILABLE] Backend unavailable, try again later",
		    a->tag);
		ig_session_log(s, IG_LOG_WARN, "event=login-result result=tempfail "
		    "reason=backend-unavailable mech=%s code=UNAVAILABLE ms=%llu",
		    attempt_mech_name(a),
		    (unsigned long long)ms);
	} else {
		ig_session_log(s, IG_LOG_INFO, "event=login-result result=%s mech=%s ms=%llu",
		    ok ? "ok" : a->cancel_sent ? "cancelled" : "fail", attempt_mech_name(a),
		    (unsigned long long)ms);
	}
	if (ok) {
		if (rl && a->user_known) {
			ig_shared_lock(sh);
			ig_rl_success(sh->rl, &ra);
			ig_shared_unlock(sh);
		}
		snprintf(s->user, sizeof(s->user), "%s", a->user);
		memcpy(s->apppass_id, a->apppass_id, sizeof(s->apppass_id));
		if (s->apppass_id[0] != '\0') {
			IG_SESSION_METRIC(s, apppass[IG_MAP_OK], 1);
			if (sh->apprt != NULL)
				ig_apprt_record_use(sh->apprt, s->apppass_id,
				    (int64_t)(ig_wall_ms() / 1000), s->peer_ip);
		}
		s->login_cmd = a->login_cmd;
		s->login_mech = a->mech;
		attempt_end(s);
		ig_session_set_state(s, IG_SS_RELAY);
		s->last_activity_ms = ig_session_now(s);
		ig_session_timer(s, s->gen->cfg->limits.idle_timeout_ms);
		ig_session_log(s, IG_LOG_INFO, "event=relay-start");
		return;
	}
	unsigned delay = 0;
	bool failed = !tempfail && !a->cancel_sent;
	bool cancelled = !tempfail && a->cancel_sent;
	if (failed) {
		s->failures++;
		if (rl && a->user_known) {
			struct ig_rl_verdict v;
			ig_shared_lock(sh);
			ig_rl_failure(sh->rl, &ra, &v);
			ig_shared_unlock(sh);
			delay = v.delay_ms;
			attempt_log_block(s, &v);
		}
	} else if (cancelled) {
		delay = attempt_count_abandoned(s, "cancelled");
	}
	attempt_end(s);
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	/* The backend's BAD to a cancel, forwarded, is a BAD like ours. */
	if (cancelled && ig_session_count_error(s))
		return;
	if ((failed || cancelled) && rl) {
		ig_shared_lock(sh);
		unsigned max_failures = ig_rl_max_conn_failures(sh->rl);
		ig_shared_unlock(sh);
		ig_session_tarpit(s, delay, s->failures >= max_failures);
	}
}
