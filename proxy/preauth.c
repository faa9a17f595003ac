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

#include "proxy/attempt.h"
#include "proxy/gen.h"
#include "proxy/session_types.h"
#include "util/err.h"

/* Room our largest single reply needs: the capability line. */
#define PREAUTH_REPLY_NEED (IG_CAPS_MAX + 512)

struct preauth_cmd {
	const char *name;
	unsigned states; /* IG_SS_BIT()s of the session states it may run in */
	/* Returns NULL if the command may run, else the text for "tag BAD". */
	const char *(*check)(struct ig_session *s, const struct ig_imap_cmd *c);
	void (*run)(struct ig_session *s, const struct ig_imap_cmd *c);
	bool secret; /* arguments carry credentials: wipe, never log */
};


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
	ig_imap_tag_copy(c, tag, sizeof(tag));
	ig_session_caps(s, caps, sizeof(caps));
	ig_session_reply(s, "* CAPABILITY %s", caps);
	ig_session_reply(s, "%s OK Capability completed", tag);
}

static void
run_noop(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	ig_imap_tag_copy(c, tag, sizeof(tag));
	ig_session_reply(s, "%s OK NOOP completed", tag);
}

static void
run_logout(struct ig_session *s, const struct ig_imap_cmd *c)
{
	char tag[128];
	ig_imap_tag_copy(c, tag, sizeof(tag));
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
	ig_imap_tag_copy(c, tag, sizeof(tag));
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
	ig_imap_tag_copy(c, tag, sizeof(tag));
	ig_session_reply(s, "%s OK Begin TLS negotiation now", tag);
	/* Nothing may follow the OK before the handshake: stop the loop. */
	s->starttls_pending = true;
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

/* One line from the client while in IG_SS_SASL. Returns bytes consumed. */
static size_t
preauth_sasl_line(struct ig_session *s)
{
	struct ig_span line;
	size_t consumed = 0;
	if (ig_attempt_read_line(s, &line, &consumed) <= 0)
		return 0;
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_attempt_sasl_line(s, line);
	return consumed;
}

#define PREAUTH IG_SS_BIT(IG_SS_PREAUTH)
static const struct preauth_cmd preauth_cmds[] = {
	/* Commands are read only in PREAUTH (IG_SS_SASL reads SASL responses,
	   the relay reads nothing); STARTTLS's TLS condition is its check. */
	{ "CAPABILITY", PREAUTH, check_no_args, run_capability, false },
	{ "NOOP", PREAUTH, check_no_args, run_noop, false },
	{ "LOGOUT", PREAUTH, check_no_args, run_logout, false },
	{ "ID", PREAUTH, check_id, run_id, false },
	{ "STARTTLS", PREAUTH, check_starttls, run_starttls, false },
	{ "LOGIN", PREAUTH, check_login, ig_attempt_login, true },
	{ "AUTHENTICATE", PREAUTH, check_authenticate, ig_attempt_authenticate, true },
};

static void
preauth_dispatch(struct ig_session *s, const struct ig_imap_cmd *c, bool *secret)
{
	char tag[128];
	ig_imap_tag_copy(c, tag, sizeof(tag));
	for (size_t i = 0; i < sizeof(preauth_cmds) / sizeof(preauth_cmds[0]); i++) {
		const struct preauth_cmd *pc = &preauth_cmds[i];
		if (!ig_span_ieq(c->name, pc->name))
			continue;
		*secret = pc->secret;
		const char *why = (pc->states & IG_SS_BIT(s->state)) == 0 ?
		    "Command not valid in this state" : pc->check(s, c);
		if (why != NULL) {
			ig_session_bad(s, tag, why);
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
	ig_session_bad(s, tag, "Command unknown or not valid before login");
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
			ig_session_consume_input(s, n, true);
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
			ig_session_consume_input(s, consumed, secret);
			ig_imap_parser_reset(&s->parser);
			if (s->state == IG_SS_PREAUTH && !s->closing)
				ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
			continue;
		case IG_PARSE_BAD:
		case IG_PARSE_TOO_LONG: {
			if (s->parser.has_tag)
				ig_imap_tag_copy(&s->parser.cmd, tag, sizeof(tag));
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
			ig_session_consume_input(s, consumed, true);
			ig_imap_parser_reset(&s->parser);
			if (r == IG_PARSE_TOO_LONG) {
				s->errors++;
				ig_session_reply(s, "%s BAD [TOOBIG] %s", tag, err);
			} else {
				ig_session_bad(s, tag, err);
			}
			continue;
		}
		case IG_PARSE_RESULT_COUNT:
			return;
		}
	}
}
