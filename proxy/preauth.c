/*
 * The not-authenticated state, owned by the proxy: greeting, CAPABILITY,
 * NOOP, LOGOUT, ID, STARTTLS, LOGIN and AUTHENTICATE. Commands come from a
 * table with a check (syntax and state: answers BAD) and a run step.
 * A login attempt is judged by the policy as soon as its user name is known;
 * only an allowed attempt reaches the backend.
 */
#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "policy/decide.h"
#include "policy/ratelimit.h"
#include "proxy/conn.h"
#include "util/clock.h"
#include "util/err.h"
#include "proxy/session_types.h"
#include "proxy/worker.h"

/* Room our largest single reply needs: the capability line. */
#define PREAUTH_REPLY_NEED (IG_CAPS_MAX + 512)

struct preauth_cmd {
	const char *name;
	/* Returns NULL if the command may run, else the text for "tag BAD". */
	const char *(*check)(struct ig_session *s, const struct ig_imap_cmd *c);
	void (*run)(struct ig_session *s, const struct ig_imap_cmd *c);
	bool secret; /* arguments carry credentials: wipe, never log */
};

static void
preauth_tag(const struct ig_imap_cmd *c, char *out, size_t outsz)
{
	size_t n = c->tag.len < outsz - 1 ? c->tag.len : outsz - 1;
	memcpy(out, c->tag.p, n);
	out[n] = '\0';
}

void
ig_preauth_greet(struct ig_session *s)
{
	char caps[IG_CAPS_MAX];
	ig_session_caps(s, caps, sizeof(caps));
	ig_session_reply(s, "* OK [CAPABILITY %s] IMAP server ready", caps);
}

static const char *
check_no_args(struct ig_session *s, const struct ig_imap_cmd *c)
{
	(void)s;
	return c->nargs == 0 ? NULL : "Unexpected arguments";
}

static void
run_capability(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char caps[IG_CAPS_MAX], tag[128];
	preauth_tag(c, tag, sizeof(tag));
	ig_session_caps(s, caps, sizeof(caps));
	ig_session_reply(s, "* CAPABILITY %s", caps);
	ig_session_reply(s, "%s OK Capability completed", tag);
}

static void
run_noop(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	ig_session_reply(s, "%s OK NOOP completed", tag);
}

static void
run_logout(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	ig_session_reply(s, "* BYE Logging out");
	ig_session_reply(s, "%s OK Logout completed", tag);
	s->logged_out = true;
	ig_session_close(s, "logout", true);
}

static const char *
check_id(struct ig_session *s, const struct ig_imap_cmd *c)
{
	(void)s;
	if (c->nargs == 1 && c->args[0].type == IG_ARG_NIL)
		return NULL;
	if (c->nargs < 2 || c->args[0].type != IG_ARG_LIST_BEGIN ||
	    c->args[c->nargs - 1].type != IG_ARG_LIST_END)
		return "ID needs NIL or a list of field/value pairs";
	unsigned inner = c->nargs - 2;
	if (inner % 2 != 0 || inner > 60)
		return "ID needs at most 30 field/value pairs";
	for (unsigned i = 1; i + 1 < c->nargs; i++) {
		enum ig_imap_arg_type t = c->args[i].type;
		bool field = (i % 2) == 1;
		if (t == IG_ARG_LIST_BEGIN || t == IG_ARG_LIST_END ||
		    (field && t != IG_ARG_QUOTED && t != IG_ARG_LITERAL))
			return "ID fields are strings, values strings or NIL";
	}
	return NULL;
}

static void
run_id(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	/* Log what the client says it is: useful when clients misbehave. */
	char name[64] = "", ver[64] = "";
	for (unsigned i = 1; i + 2 < c->nargs; i += 2) {
		const struct ig_imap_arg *k = &c->args[i], *v = &c->args[i + 1];
		if (v->type == IG_ARG_NIL)
			continue;
		char *dst = ig_span_ieq(k->val, "name") ? name :
		    ig_span_ieq(k->val, "version") ? ver : NULL;
		if (dst != NULL)
			ig_log_escape(v->val.p, v->val.len, dst, 64);
	}
	if (name[0] || ver[0])
		ig_session_log(s, IG_LOG_INFO, "event=client-id name=\"%s\" version=\"%s\"",
		    name, ver);
	ig_session_reply(s, "* ID NIL");
	ig_session_reply(s, "%s OK ID completed", tag);
}

static const char *
check_starttls(struct ig_session *s, const struct ig_imap_cmd *c)
{
	if (c->nargs != 0)
		return "STARTTLS takes no arguments";
	if (s->tls_active)
		return "TLS is already active";
	if (s->l->tls != IG_TLS_STARTTLS)
		return "STARTTLS is not available here";
	return NULL;
}

static void
run_starttls(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	ig_session_reply(s, "%s OK Begin TLS negotiation now", tag);
	/* Nothing may follow the OK before the handshake: stop the loop. */
	s->starttls_pending = true;
}

/* Starts an attempt: copies the tag, clears the rest. */
static void
attempt_begin(struct ig_session *s, const struct ig_imap_cmd *c, bool login_cmd,
    enum ig_sasl_mech mech)
{
	struct ig_attempt *a = &s->att;
	mbedtls_platform_zeroize(a->cmd, a->cmd_cap);
	mbedtls_platform_zeroize(a->stage, a->stage_cap);
	uint8_t *cmd = a->cmd, *stage = a->stage;
	size_t cap = a->cmd_cap, scap = a->stage_cap;
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->cmd_cap = cap;
	a->stage = stage;
	a->stage_cap = scap;
	a->active = true;
	a->login_cmd = login_cmd;
	a->mech = mech;
	a->started_ms = ig_session_now(s);
	preauth_tag(c, a->tag, sizeof(a->tag));
}

static void
attempt_end(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	mbedtls_platform_zeroize(a->cmd, a->cmd_cap);
	mbedtls_platform_zeroize(a->stage, a->stage_cap);
	a->cmd_len = a->ir_off = a->ir_len = a->pw_off = a->pw_len = 0;
	a->send_off = a->send_len = a->stage_len = 0;
	a->nseg = a->seg_next = 0;
	a->sasl_step = 0;
	mbedtls_platform_zeroize(a->secret_hash, sizeof(a->secret_hash));
	a->has_secret_hash = false;
	a->backend_used = false;
	a->active = false;
	a->user_known = false;
	a->user[0] = '\0';
}

static const char *
preauth_mech_name(const struct ig_attempt *a)
{
	return a->login_cmd ? "LOGIN-command" : ig_sasl_mech_str(a->mech);
}

static void
preauth_rl_attempt(struct ig_session *s, struct ig_rl_attempt *ra)
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
preauth_keep_secret(struct ig_session *s, const uint8_t *p, size_t len)
{
	struct ig_attempt *a = &s->att;
	if (s->w->rl == NULL || len == 0)
		return;
	ig_rl_secret_hash(s->w->rl, p, len, a->secret_hash);
	a->has_secret_hash = true;
}

/*
 * The limiter, before any backend contact. Returns true when the attempt
 * may go on; otherwise answers NO [UNAVAILABLE] (after the tarpit delay)
 * and ends the attempt. May close the session.
 */
static bool
preauth_ratelimit(struct ig_session *s)
{
	struct ig_rl *rl = s->w->rl;
	if (rl == NULL)
		return true;
	struct ig_attempt *a = &s->att;
	struct ig_rl_attempt ra;
	preauth_rl_attempt(s, &ra);
	struct ig_rl_verdict v;
	ig_rl_check(rl, &ra, &v);
	if (!v.refuse)
		return true;
	uint64_t left_s = v.until_ms > ra.now_ms ? (v.until_ms - ra.now_ms + 999) / 1000 : 0;
	ig_session_log(s, IG_LOG_WARN,
	    "event=login-decision verdict=tempfail reason=ratelimit limit=%s count=%u "
	    "threshold=%u remaining_s=%llu known_address=%s mech=%s",
	    v.limit, v.count, v.threshold, (unsigned long long)left_s,
	    v.known_address ? "yes" : "no", preauth_mech_name(a));
	if (left_s >= 120)
		ig_session_reply(s, "%s NO [UNAVAILABLE] Too many failed logins, try again in "
		    "%llu minutes", a->tag, (unsigned long long)((left_s + 59) / 60));
	else
		ig_session_reply(s, "%s NO [UNAVAILABLE] Too many failed logins, try again in "
		    "%llu seconds", a->tag, (unsigned long long)left_s);
	s->failures++;
	attempt_end(s);
	ig_session_tarpit(s, v.delay_ms, s->failures >= ig_rl_max_conn_failures(rl));
	return false;
}

/* What the policy judges this attempt by. */
static void
preauth_facts(const struct ig_session *s, struct ig_login_facts *f)
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
preauth_judge(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	struct ig_login_facts f;
	preauth_facts(s, &f);
	struct ig_decision d;
	/* Always the newest policy: a reload that denies a user applies to
	   connections opened before it. */
	enum ig_verdict v = ig_policy_decide(ig_session_policy(s), &f, &d);
	if (v == IG_VERDICT_ALLOW) {
		if (d.would_deny)
			ig_session_log(s, IG_LOG_WARN,
			    "event=login-decision verdict=would-deny mode=monitor mech=%s tls=%s "
			    "reason=%s rule=%s", preauth_mech_name(a), s->tls_active ? "yes" : "no",
			    d.reason, d.rule_name);
		if (!preauth_ratelimit(s))
			return false;
		if (a->user_known) {
			a->decided = true;
			a->decided_gen = s->w->gen_seq;
			if (!d.would_deny)
				ig_session_log(s, IG_LOG_INFO,
				    "event=login-decision verdict=allow mech=%s tls=%s reason=%s "
				    "rule=%s", preauth_mech_name(a), s->tls_active ? "yes" : "no",
				    d.reason, d.rule_name);
		}
		return true;
	}
	ig_session_log(s, IG_LOG_INFO,
	    "event=login-decision verdict=%s mech=%s tls=%s reason=%s rule=%s",
	    ig_verdict_str(d.verdict), preauth_mech_name(a), s->tls_active ? "yes" : "no",
	    d.reason, d.rule_name);
	if (d.code != NULL)
		ig_session_reply(s, "%s NO [%s] %s", a->tag, d.code, d.text);
	else
		ig_session_reply(s, "%s NO %s", a->tag, d.text);
	s->failures++;
	attempt_end(s);
	return false;
}

/* Normalises name into a->user; on failure answers BAD. */
static bool
preauth_set_user(struct ig_session *s, const uint8_t *name, size_t len)
{
	struct ig_attempt *a = &s->att;
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

static const char *
check_login(struct ig_session *s, const struct ig_imap_cmd *c)
{
	(void)s;
	if (c->nargs != 2 || !ig_imap_arg_is_astring(&c->args[0]) ||
	    !ig_imap_arg_is_astring(&c->args[1]))
		return "LOGIN needs a user name and a password";
	return NULL;
}

static void
run_login(struct ig_session *s, const struct ig_imap_cmd *c)
{
	struct ig_attempt *a = &s->att;
	attempt_begin(s, c, true, IG_MECH_COUNT);
	/* cmd holds "user" then "password", decoded; formatted at send time. */
	long ul = ig_imap_unquote(&c->args[0], a->cmd, IG_USER_MAX + 1);
	if (ul < 0 || (size_t)ul > IG_USER_MAX) {
		ig_session_reply(s, "%s BAD Invalid user name", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	if (!preauth_set_user(s, a->cmd, (size_t)ul))
		return;
	long pl = ig_imap_unquote(&c->args[1], a->cmd + ul, a->cmd_cap - (size_t)ul);
	if (pl < 0) {
		ig_session_reply(s, "%s BAD Password too long", a->tag);
		s->errors++;
		attempt_end(s);
		return;
	}
	preauth_keep_secret(s, a->cmd + ul, (size_t)pl);
	if (!preauth_judge(s))
		return;
	a->ir_off = (size_t)ul;
	a->ir_len = (size_t)pl;
	a->cmd_len = (size_t)ul + (size_t)pl;
	ig_session_set_state(s, IG_SS_BACKEND_CONNECT);
	ig_backend_start(s);
}

static const char *
check_authenticate(struct ig_session *s, const struct ig_imap_cmd *c)
{
	(void)s;
	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != IG_ARG_ATOM)
		return "AUTHENTICATE needs a mechanism name";
	if (c->nargs == 2 && c->args[1].type != IG_ARG_ATOM)
		return "Invalid initial response";
	return NULL;
}

/*
 * A SASL response that carries the user name: decode it, extract the
 * identities, normalise, refuse a foreign authorization identity, judge.
 * Returns true when the attempt may go on; otherwise the client has been
 * answered and the attempt ended. The decoded bytes are wiped.
 */
static bool
preauth_sasl_user(struct ig_session *s, struct ig_span b64)
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
		preauth_keep_secret(s, id.secret.p, id.secret.len);
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
	bool ok = preauth_set_user(s, (const uint8_t *)mbox, strlen(mbox));
	if (ok && id.authzid[0] != '\0' && id.authcid[0] != '\0') {
		char authc[IG_USER_MAX + 1];
		if (ig_user_normalize((const uint8_t *)id.authcid, strlen(id.authcid),
		        ig_session_policy(s)->fold_case, authc, sizeof(authc)) != 0 ||
		    strcmp(authc, a->user) != 0) {
			/* A different authorization identity is a master-user
			   login: refused unless configured (not yet). */
			ig_session_log(s, IG_LOG_INFO,
			    "event=login-decision verdict=deny reason=authzid-mismatch mech=%s",
			    ig_sasl_mech_str(a->mech));
			ig_session_reply(s, "%s NO [AUTHORIZATIONFAILED] Authorization identity refused",
			    a->tag);
			s->failures++;
			attempt_end(s);
			ok = false;
		}
	}
	mbedtls_platform_zeroize(&id, sizeof(id));
	return ok && preauth_judge(s);
}

/*
 * The client's first SASL response (base64, or "=" for empty) is known:
 * judge, then hand the attempt to the backend.
 */
static void
preauth_sasl_first(struct ig_session *s, struct ig_span b64)
{
	struct ig_attempt *a = &s->att;
	if (!preauth_sasl_user(s, b64))
		return;
	/* cmd = the base64 initial response, sent as SASL-IR or after "+". */
	if (b64.len > a->cmd_cap) {
		ig_session_reply(s, "%s BAD SASL response too long", a->tag);
		attempt_end(s);
		return;
	}
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
	ig_session_set_state(s, IG_SS_BACKEND_CONNECT);
	ig_backend_start(s);
}

/*
 * The LOGIN mechanism's second response, the password: hashed for the
 * limiter (spraying), checked against it, then the attempt goes to the
 * backend with both responses.
 */
static void
preauth_sasl_password(struct ig_session *s, struct ig_span b64)
{
	struct ig_attempt *a = &s->att;
	uint8_t dec[4096];
	size_t dlen = 0;
	int rc = ig_sasl_b64_decode(b64, dec, sizeof(dec), &dlen);
	if (rc == 0)
		preauth_keep_secret(s, dec, dlen);
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
	memcpy(a->cmd + a->pw_off, b64.p, b64.len);
	a->cmd_len += b64.len;
	a->sasl_step = 2;
	if (!preauth_ratelimit(s))
		return;
	ig_session_set_state(s, IG_SS_BACKEND_CONNECT);
	ig_backend_start(s);
}

bool
ig_preauth_judge_step(struct ig_session *s, struct ig_span b64)
{
	if (preauth_sasl_user(s, b64))
		return true;
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	return false;
}

static void
run_authenticate(struct ig_session *s, const struct ig_imap_cmd *c)
{
	enum ig_sasl_mech m = ig_sasl_mech_from_name(c->args[0].val);
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	char caps[IG_CAPS_MAX], want[64];
	ig_session_caps(s, caps, sizeof(caps));
	snprintf(want, sizeof(want), "AUTH=%s", ig_sasl_mech_str(m));
	if (m == IG_MECH_COUNT || !ig_caps_has(caps, want)) {
		/* Not offered here: either unknown, not the backend's, or not
		   allowed on this connection (the policy tells which). */
		attempt_begin(s, c, false, m == IG_MECH_COUNT ? IG_MECH_PLAIN : m);
		if (m != IG_MECH_COUNT && !preauth_judge(s))
			return;
		attempt_end(s);
		ig_session_log(s, IG_LOG_INFO, "event=login-refused reason=mechanism-unavailable");
		ig_session_reply(s, "%s NO [CANNOT] Unsupported authentication mechanism", tag);
		return;
	}
	attempt_begin(s, c, false, m);
	if (!preauth_judge(s))
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
		preauth_sasl_first(s, c->args[1].val);
		return;
	}
	/* No initial response: ask for it ourselves (LOGIN asks "Username:"). */
	ig_session_reply(s, m == IG_MECH_LOGIN ? "+ VXNlcm5hbWU6" : "+ ");
	ig_session_set_state(s, IG_SS_SASL);
}

/* Answers BAD; after limits.max_errors of them, "* BYE". May close. */
static void
preauth_bad(struct ig_session *s, const char *tag, const char *text)
{
	s->errors++;
	if (s->errors > s->gen->cfg->limits.max_errors) {
		ig_session_log(s, IG_LOG_INFO, "event=refused reason=too-many-errors errors=%u",
		    s->errors);
		ig_session_reply(s, "* BYE [CLIENTBUG] Too many invalid commands");
		ig_session_close(s, "too-many-errors", true);
		return;
	}
	ig_session_reply(s, "%s BAD %s", tag, text);
}

/* One line from the client while in IG_SS_SASL. Returns bytes consumed. */
static size_t
preauth_sasl_line(struct ig_session *s)
{
	struct ig_span line;
	size_t consumed = 0;
	enum ig_parse_result r = ig_imap_parse_line(s->cin.p + s->cin.off,
	    s->cin.len - s->cin.off, s->gen->cfg->limits.max_line, &line, &consumed);
	if (r == IG_PARSE_AGAIN)
		return 0;
	if (r != IG_PARSE_OK) {
		ig_session_reply(s, "* BYE [CLIENTBUG] SASL response too long");
		ig_session_close(s, "sasl-line-too-long", true);
		return 0;
	}
	ig_session_set_state(s, IG_SS_PREAUTH);
	if (line.len == 1 && line.p[0] == '*') {
		/* A BAD answer like any other: it counts towards max_errors. */
		char tag[sizeof(s->att.tag)];
		memcpy(tag, s->att.tag, sizeof(tag));
		ig_session_log(s, IG_LOG_INFO, "event=login-cancelled mech=%s",
		    ig_sasl_mech_str(s->att.mech));
		attempt_end(s);
		preauth_bad(s, tag, "Authentication cancelled");
	} else if (s->att.mech == IG_MECH_LOGIN && s->att.sasl_step == 1) {
		preauth_sasl_password(s, line);
	} else {
		preauth_sasl_first(s, line);
	}
	return consumed;
}

static const struct preauth_cmd preauth_cmds[] = {
	{ "CAPABILITY", check_no_args, run_capability, false },
	{ "NOOP", check_no_args, run_noop, false },
	{ "LOGOUT", check_no_args, run_logout, false },
	{ "ID", check_id, run_id, false },
	{ "STARTTLS", check_starttls, run_starttls, false },
	{ "LOGIN", check_login, run_login, true },
	{ "AUTHENTICATE", check_authenticate, run_authenticate, true },
};

static void
preauth_dispatch(struct ig_session *s, const struct ig_imap_cmd *c, bool *secret)
{
	char tag[128];
	preauth_tag(c, tag, sizeof(tag));
	for (size_t i = 0; i < sizeof(preauth_cmds) / sizeof(preauth_cmds[0]); i++) {
		const struct preauth_cmd *pc = &preauth_cmds[i];
		if (!ig_span_ieq(c->name, pc->name))
			continue;
		*secret = pc->secret;
		const char *why = pc->check(s, c);
		if (why != NULL) {
			preauth_bad(s, tag, why);
			return;
		}
		ig_session_log(s, IG_LOG_DEBUG, "event=command name=%s", pc->name);
		pc->run(s, c);
		return;
	}
	/* Only known command names are logged: an unknown word may be a
	   password typed in the wrong place. */
	ig_session_log(s, IG_LOG_DEBUG, "event=command result=unknown name_len=%zu",
	    c->name.len);
	preauth_bad(s, tag, "Command unknown or not valid before login");
}

/* Drops n processed bytes from cin; wipes them when they held secrets. */
static void
preauth_consume(struct ig_session *s, size_t n, bool wipe)
{
	if (wipe)
		mbedtls_platform_zeroize(s->cin.p + s->cin.off, n);
	s->cin.off += n;
	if (s->cin.off == s->cin.len)
		s->cin.off = s->cin.len = 0;
}

void
ig_preauth_process(struct ig_session *s)
{
	while (!s->closing && !s->starttls_pending && !s->tarpit &&
	    (s->state == IG_SS_PREAUTH || s->state == IG_SS_SASL)) {
		if (ig_session_reply_room(s) < PREAUTH_REPLY_NEED)
			return; /* resumes when our replies have drained */
		size_t avail = s->cin.len - s->cin.off;
		if (avail == 0)
			return;
		if (s->state == IG_SS_SASL) {
			size_t n = preauth_sasl_line(s);
			if (n == 0)
				return;
			preauth_consume(s, n, true);
			continue;
		}
		size_t consumed = 0;
		enum ig_parse_result r = ig_imap_parse(&s->parser, s->cin.p + s->cin.off,
		    avail, &consumed);
		bool secret = false;
		char tag[128] = "*";
		switch (r) {
		case IG_PARSE_AGAIN:
			if (s->cin.off == 0 && s->cin.len == s->cin.cap) {
				ig_session_log(s, IG_LOG_INFO,
				    "event=refused reason=command-too-long limit=%zu", s->cin.cap);
				ig_session_reply(s, "* BYE [TOOBIG] Command too long");
				ig_session_close(s, "command-too-long", true);
			}
			return;
		case IG_PARSE_NEED_CONTINUATION:
			ig_session_reply(s, "+ Ready for literal data");
			continue;
		case IG_PARSE_OK:
			s->last_activity_ms = ig_session_now(s);
			if (!ig_session_preauth_command(s))
				return; /* too many: closing */
			preauth_dispatch(s, &s->parser.cmd, &secret);
			preauth_consume(s, consumed, secret);
			ig_imap_parser_reset(&s->parser);
			if (s->state == IG_SS_PREAUTH && !s->closing)
				ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
			continue;
		case IG_PARSE_BAD:
		case IG_PARSE_TOO_LONG: {
			if (s->parser.has_tag)
				preauth_tag(&s->parser.cmd, tag, sizeof(tag));
			const char *err = s->parser.error ? s->parser.error : "Syntax error";
			bool fatal = s->parser.literal_seen || s->parser.literal_plus ||
			    consumed == 0;
			ig_session_log(s, IG_LOG_INFO, "event=%s reason=\"%s\"%s",
			    r == IG_PARSE_BAD ? "bad-command" : "too-long", err,
			    fatal ? " action=disconnect" : "");
			if (fatal) {
				ig_session_reply(s, "* BYE [%s] %s",
				    r == IG_PARSE_TOO_LONG ? "TOOBIG" : "CLIENTBUG", err);
				ig_session_close(s, r == IG_PARSE_BAD ? "bad-literal" : "too-long", true);
				return;
			}
			preauth_consume(s, consumed, true);
			ig_imap_parser_reset(&s->parser);
			if (r == IG_PARSE_TOO_LONG) {
				s->errors++;
				ig_session_reply(s, "%s BAD [TOOBIG] %s", tag, err);
			} else {
				preauth_bad(s, tag, err);
			}
			continue;
		}
		case IG_PARSE_RESULT_COUNT:
			return;
		}
	}
}

/* Logs a block that a failure just started. */
static void
preauth_log_block(struct ig_session *s, const struct ig_rl_verdict *v)
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
preauth_count_abandoned(struct ig_session *s, const char *what)
{
	struct ig_attempt *a = &s->att;
	struct ig_rl *rl = s->w->rl;
	ig_session_log(s, IG_LOG_INFO, "event=login-%s mech=%s cost=backend-connection",
	    what, preauth_mech_name(a));
	if (rl == NULL)
		return 0;
	struct ig_rl_attempt ra;
	preauth_rl_attempt(s, &ra);
	ra.user = NULL; /* nobody's password was tried */
	ra.secret_hash = NULL;
	struct ig_rl_verdict v;
	ig_rl_failure(rl, &ra, &v);
	preauth_log_block(s, &v);
	return v.delay_ms;
}

void
ig_preauth_abandon(struct ig_session *s)
{
	if (s->att.active && s->att.backend_used && !s->w->stopping)
		(void)preauth_count_abandoned(s, "aborted");
}

bool
ig_preauth_recheck(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	if (a->decided_gen == s->w->gen_seq)
		return true;
	struct ig_login_facts f;
	preauth_facts(s, &f);
	struct ig_decision d;
	if (ig_policy_decide(ig_session_policy(s), &f, &d) == IG_VERDICT_ALLOW) {
		a->decided_gen = s->w->gen_seq;
		return true;
	}
	/* The policy was reloaded while the backend checked the password,
	   and no longer allows this login: the backend's OK is dropped. */
	ig_session_log(s, IG_LOG_INFO,
	    "event=login-decision verdict=%s mech=%s tls=%s reason=%s rule=%s "
	    "phase=after-reload", ig_verdict_str(d.verdict), preauth_mech_name(a),
	    s->tls_active ? "yes" : "no", d.reason, d.rule_name);
	if (d.code != NULL)
		ig_session_reply(s, "%s NO [%s] %s", a->tag, d.code, d.text);
	else
		ig_session_reply(s, "%s NO %s", a->tag, d.text);
	s->failures++;
	attempt_end(s);
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	return false;
}

void
ig_preauth_login_done(struct ig_session *s, bool ok, bool tempfail)
{
	struct ig_attempt *a = &s->att;
	uint64_t ms = ig_session_now(s) - a->started_ms;
	struct ig_rl *rl = s->w->rl;
	struct ig_rl_attempt ra;
	preauth_rl_attempt(s, &ra);
	if (tempfail) {
		ig_session_reply(s, "%s NO [UNAVAILABLE] Backend unavailable, try again later",
		    a->tag);
		ig_session_log(s, IG_LOG_WARN, "event=login-result result=tempfail "
		    "reason=backend-unavailable mech=%s ms=%llu", preauth_mech_name(a),
		    (unsigned long long)ms);
	} else {
		ig_session_log(s, IG_LOG_INFO, "event=login-result result=%s mech=%s ms=%llu",
		    ok ? "ok" : a->cancel_sent ? "cancelled" : "fail", preauth_mech_name(a),
		    (unsigned long long)ms);
	}
	if (ok) {
		if (rl != NULL && a->user_known)
			ig_rl_success(rl, &ra);
		snprintf(s->user, sizeof(s->user), "%s", a->user);
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
		if (rl != NULL && a->user_known) {
			struct ig_rl_verdict v;
			ig_rl_failure(rl, &ra, &v);
			delay = v.delay_ms;
			preauth_log_block(s, &v);
		}
	} else if (cancelled) {
		s->errors++; /* the backend's BAD, forwarded */
		delay = preauth_count_abandoned(s, "cancelled");
	}
	attempt_end(s);
	ig_backend_close(s);
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	if (cancelled && s->errors > s->gen->cfg->limits.max_errors) {
		ig_session_log(s, IG_LOG_INFO, "event=refused reason=too-many-errors errors=%u",
		    s->errors);
		ig_session_reply(s, "* BYE [CLIENTBUG] Too many invalid commands");
		ig_session_close(s, "too-many-errors", true);
		return;
	}
	if ((failed || cancelled) && rl != NULL)
		ig_session_tarpit(s, delay, s->failures >= ig_rl_max_conn_failures(rl));
}
