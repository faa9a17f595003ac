/*
 * The backend side of a login: connect (only once the attempt is allowed),
 * read the greeting, STARTTLS or implicit TLS with certificate and name
 * checks, learn the capabilities, optionally tell the backend the client's
 * address with ID, then send the client's LOGIN or AUTHENTICATE under the
 * client's own tag and carry SASL steps both ways until the tagged result.
 * Our own prelude commands use tags "ig.N", which never reach the client.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "proxy/attempt.h"
#include "proxy/conn.h"
#include "util/err.h"
#include "proxy/gen.h"
#include "proxy/proxyproto.h"
#include "proxy/session_types.h"
#include "proxy/tls.h"

#define CASE(x) case x: return #x
const char *
ig_backend_state_str(enum ig_backend_state st)
{
	switch (st) {
	CASE(IG_BS_NONE);
	CASE(IG_BS_CONNECTING);
	CASE(IG_BS_TLS);
	CASE(IG_BS_GREETING);
	CASE(IG_BS_STARTTLS);
	CASE(IG_BS_CAPABILITY);
	CASE(IG_BS_ID);
	CASE(IG_BS_AUTH);
	case IG_BS_COUNT:
		break;
	}
	return "?";
}
#undef CASE

static void backend_connect_cb(uv_connect_t *req, int status);

static void
backend_set(struct ig_session *s, enum ig_backend_state st)
{
	ig_session_log(s, IG_LOG_DEBUG, "event=backend-state from=%s to=%s",
	    ig_backend_state_str(s->bstate) + 6, ig_backend_state_str(st) + 6);
	s->bstate = st;
}

void
ig_backend_close(struct ig_session *s)
{
	s->bstate = IG_BS_NONE;
	s->backend_unconfirmed = false;
	s->bin.off = s->bin.len; /* what is left is dropped */
	ig_session_buf_drop(s, &s->bin);
	if (s->backend.open)
		ig_conn_close(&s->backend);
}

/* The backend failed before answering the login: temporary failure. */
static void
backend_fail(struct ig_session *s, const char *reason, const char *detail)
{
	/* Not known to be connected yet: still connecting, for the log. */
	enum ig_backend_state st = s->backend_unconfirmed ? IG_BS_CONNECTING : s->bstate;
	ig_session_log(s, IG_LOG_WARN, "event=backend-error reason=%s state=%s%s%s%s",
	    reason, ig_backend_state_str(st) + 6, detail ? " detail=\"" : "",
	    detail ? detail : "", detail ? "\"" : "");
	IG_SESSION_METRIC(s, backend_err[ig_metrics_backend_err_of(reason)], 1);
	ig_backend_close(s);
	ig_attempt_done(s, false, true);
}

/* The connection is made (for one that did not wait: its first bytes came). */
static void
backend_connected(struct ig_session *s)
{
	s->backend_unconfirmed = false;
	if (s->set->metrics != NULL)
		ig_metrics_observe(s->set->metrics, IG_MH_BACKEND_CONNECT,
		    uv_hrtime() - s->backend_connect_ns);
	ig_session_log(s, IG_LOG_DEBUG, "event=backend-connected backend=%s",
	    s->gen->cfg->backend.address);
}

static void
backend_connect(struct ig_session *s)
{
	const struct ig_backend_conf *b = &s->gen->cfg->backend;
	s->backend_wanted = false;
	if (ig_conn_init(&s->backend, &ig_session_conn_ops, s, s->set->loop, "backend",
	        NULL, 0, NULL, 0) != 0) {
		backend_fail(s, "socket", NULL);
		return;
	}
	/* Its buffers come from the pool while bytes are in them. */
	ig_conn_use_pool(&s->backend, s->set->bufpool, &s->bufs_held, s->set->buf_size);
	s->backend_connect_ns = uv_hrtime();
	if (b->tls != IG_TLS_IMPLICIT && b->send_proxy_protocol == IG_SEND_PROXY_OFF) {
		/* The backend speaks first (its greeting): its first bytes say
		   the connection is made, and a failure comes as a read's. */
		int rc = ig_conn_connect_greeted(&s->backend, (const struct sockaddr *)&b->addr);
		if (rc != 0) {
			backend_fail(s, "connect-failed", strerror(-rc));
			return;
		}
		s->backend_unconfirmed = true;
		backend_set(s, IG_BS_GREETING);
		ig_session_timer(s, b->connect_timeout_ms);
		ig_conn_update_read(&s->backend);
		return;
	}
	s->connect_req.data = s;
	if (uv_tcp_connect(&s->connect_req, &s->backend.tcp,
	        (const struct sockaddr *)&b->addr, backend_connect_cb) != 0) {
		backend_fail(s, "connect", NULL);
		return;
	}
	ig_session_handle_opened(s);
	backend_set(s, IG_BS_CONNECTING);
	ig_session_timer(s, b->connect_timeout_ms);
}

void
ig_backend_start(struct ig_session *s)
{
	s->att.backend_used = true;
	s->bin.off = s->bin.len;
	ig_session_buf_drop(s, &s->bin);
	if (s->backend.open) {
		/* The previous attempt's handle is still closing. */
		s->backend_wanted = true;
		return;
	}
	backend_connect(s);
}

/*
 * backend.send_proxy_protocol: the header with the client's address (the
 * socket's peer, or what the load balancer's header carried) and the one
 * it connected to, as the first bytes on the connection, before TLS and
 * before the greeting is read. Returns 0 or IG_E*.
 */
static int
backend_send_proxy_header(struct ig_session *s)
{
	uint8_t hdr[IG_PP_MAX];
	enum ig_pp_version v = s->gen->cfg->backend.send_proxy_protocol == IG_SEND_PROXY_V1 ?
	    IG_PP_V1 : IG_PP_V2;
	size_t n = ig_pp_format(v, (const struct sockaddr *)&s->peer,
	    (const struct sockaddr *)ig_session_local(s), hdr, sizeof(hdr));
	if (n == 0)
		return IG_EINVAL;
	long w = ig_conn_write(&s->backend, hdr, n);
	if (w < 0)
		return (int)w;
	return (size_t)w == n ? 0 : IG_EIO;
}

static void
backend_connect_cb(uv_connect_t *req, int status)
{
	struct ig_session *s = req->data;
	if (!ig_session_handle_closed(s))
		return;
	if (s->closing || status == UV_ECANCELED || s->bstate != IG_BS_CONNECTING)
		return;
	if (status < 0) {
		backend_fail(s, "connect-failed", uv_strerror(status));
		ig_session_on_io(s);
		return;
	}
	struct ig_conn *c = &s->backend;
	c->connected = true;
	backend_connected(s);
	uv_tcp_nodelay(&c->tcp, 1);
	if (s->gen->cfg->backend.send_proxy_protocol != IG_SEND_PROXY_OFF &&
	    backend_send_proxy_header(s) != 0) {
		backend_fail(s, "write", "PROXY header");
		ig_session_on_io(s);
		return;
	}
	if (s->gen->cfg->backend.tls == IG_TLS_IMPLICIT) {
		if (ig_tls_start_client(c, s->gen->tls_client) != 0) {
			backend_fail(s, "tls-setup", NULL);
			ig_session_on_io(s);
			return;
		}
		backend_set(s, IG_BS_TLS);
	} else {
		backend_set(s, IG_BS_GREETING);
	}
	ig_conn_update_read(c);
	ig_session_on_io(s);
}

/* Queues stage[send_off..send_len) to the backend. Returns 0 or IG_E*. */
static int
backend_push(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	while (a->send_off < a->send_len) {
		long n = ig_conn_write(&s->backend, a->stage.buf + a->send_off,
		    a->send_len - a->send_off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		a->send_off += (size_t)n;
	}
	return 0;
}

/* Sends one short command of our own. Returns 0 or IG_E*. */
static int
backend_command(struct ig_session *s, const char *line)
{
	size_t len = strlen(line);
	long n = ig_conn_write(&s->backend, (const uint8_t *)line, len);
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : IG_EIO;
}

static bool
backend_line_is(struct ig_span line, const char *prefix)
{
	size_t n = strlen(prefix);
	return line.len >= n && strncasecmp((const char *)line.p, prefix, n) == 0;
}

/* Points send_off..send_len at the next segment. False when none is left. */
static bool
stage_next_segment(struct ig_attempt *a)
{
	if (a->seg_next >= a->stage.nseg)
		return false;
	unsigned i = a->seg_next++;
	a->send_off = a->stage.seg_off[i];
	a->send_len = ig_loginfmt_seg_end(&a->stage, i);
	return true;
}

/* Appends one SASL response line (base64) from cmd[off..off+len). */
static bool
stage_response(struct ig_attempt *a, size_t off, size_t len)
{
	return ig_loginfmt_add(&a->stage, a->cmd + off, len) &&
	    ig_loginfmt_add(&a->stage, "\r\n", 2);
}

/*
 * Formats the client's login command into stage (astrings as
 * proxy/loginfmt.c writes them). Returns false when it does not fit.
 */
static bool
backend_format_login(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	struct ig_loginfmt *f = &a->stage;
	const char *mech = ig_sasl_mech_str(a->mech);
	bool sasl_ir = ig_caps_has(s->bcaps.list, "SASL-IR");
	a->seg_next = 0;
	ig_loginfmt_start(f, ig_caps_has(s->bcaps.list, "LITERAL+"));
	if (a->login_cmd)
		return ig_loginfmt_addf(f, "%s LOGIN ", a->tag) &&
		    ig_loginfmt_astring(f, a->cmd, a->ir_off) && ig_loginfmt_add(f, " ", 1) &&
		    ig_loginfmt_astring(f, a->cmd + a->ir_off, a->ir_len) &&
		    ig_loginfmt_add(f, "\r\n", 2);
	if (ig_sasl_mech_server_first(a->mech))
		return ig_loginfmt_addf(f, "%s AUTHENTICATE %s\r\n", a->tag, mech);
	bool ok;
	if (sasl_ir) {
		ok = ig_loginfmt_addf(f, "%s AUTHENTICATE %s ", a->tag, mech) &&
		    (a->ir_len > 0 ? ig_loginfmt_add(f, a->cmd + a->ir_off, a->ir_len) :
		    ig_loginfmt_add(f, "=", 1)) && ig_loginfmt_add(f, "\r\n", 2);
	} else {
		ok = ig_loginfmt_addf(f, "%s AUTHENTICATE %s\r\n", a->tag, mech) &&
		    ig_loginfmt_segment(f) && stage_response(a, a->ir_off, a->ir_len);
	}
	/* The LOGIN mechanism: the password, read by us, answers the
	   backend's second prompt. */
	if (ok && a->mech == IG_MECH_LOGIN && a->sasl_step == 2)
		ok = ig_loginfmt_segment(f) && stage_response(a, a->pw_off, a->pw_len);
	return ok;
}

/*
 * Formats the login as backend.master_login for the attempt's user
 * (ig_attempt_use_master()). Returns false when it does not fit; may
 * close the session (a user that cannot be named: checked before, so
 * only a bug gets there), and then sets *failed.
 */
static bool
backend_format_master(struct ig_session *s, bool *failed)
{
	struct ig_attempt *a = &s->att;
	const struct ig_master_login *m = &s->gen->cfg->backend.master_login;
	char who[4 * IG_USER_MAX + 8];
	*failed = false;
	a->seg_next = 0;
	int rc = ig_loginfmt_master(&a->stage, a->tag, a->user, m,
	    ig_caps_has(s->bcaps.list, "SASL-IR"), ig_caps_has(s->bcaps.list, "LITERAL+"));
	if (rc == IG_EINVAL) {
		*failed = true;
		backend_fail(s, "master-login", "the user cannot be named in a master login");
		return false;
	}
	/* Never the secret: the master user and how. */
	ig_session_log(s, IG_LOG_DEBUG, "event=backend-login as=master style=%s master_user=%s",
	    ig_master_style_str(m->style), ig_log_user(m->user, who, sizeof(who)));
	return rc == 0;
}

/* Formats and sends the client's login command. May close the session. */
static void
backend_send_login(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	bool failed = false;
	bool ok = a->as_master ? backend_format_master(s, &failed) : backend_format_login(s);
	ig_attempt_wipe_cmd(a);
	if (failed)
		return;
	if (!ok) {
		ig_session_log(s, IG_LOG_WARN, "event=login-refused reason=command-too-long code=LIMIT");
		ig_backend_close(s);
		ig_session_reply(s, "%s NO [LIMIT] Login command too long for the backend", a->tag);
		ig_attempt_done(s, false, false);
		return;
	}
	stage_next_segment(a);
	s->backend.wipe_writes = true;
	backend_set(s, IG_BS_AUTH);
	ig_session_set_state(s, IG_SS_BACKEND_AUTH);
	ig_session_timer(s, s->gen->cfg->backend.auth_timeout_ms);
	if (backend_push(s) != 0)
		backend_fail(s, "write", NULL);
}

/* Capabilities are known: tell the client address, then log in. */
static void
backend_after_caps(struct ig_session *s)
{
	/* What this connection learned is what clients are shown next. */
	if (s->bcaps.known)
		(void)ig_shared_caps_learn(s->set->sh, s->bcaps.list);
	if (s->gen->cfg->backend.forward_client_address == IG_FORWARD_ID &&
	    ig_caps_has(s->bcaps.list, "ID")) {
		char line[512];
		snprintf(line, sizeof(line),
		    "ig.3 ID (\"x-originating-ip\" \"%s\" \"x-originating-port\" \"%u\" "
		    "\"x-session-id\" \"%s\")\r\n", s->peer_ip, s->peer_port, s->ids);
		if (backend_command(s, line) != 0) {
			backend_fail(s, "write", NULL);
			return;
		}
		backend_set(s, IG_BS_ID);
		return;
	}
	backend_send_login(s);
}

static void
backend_greeting(struct ig_session *s, struct ig_span line)
{
	if (!backend_line_is(line, "* OK")) {
		char esc[128];
		ig_log_escape(line.p, line.len, esc, sizeof(esc));
		backend_fail(s, "bad-greeting", esc);
		return;
	}
	ig_caps_learn_line(&s->bcaps, line);
	if (s->gen->cfg->backend.tls == IG_TLS_STARTTLS) {
		if (backend_command(s, "ig.1 STARTTLS\r\n") != 0) {
			backend_fail(s, "write", NULL);
			return;
		}
		ig_caps_forget(&s->bcaps); /* what was said before TLS */
		backend_set(s, IG_BS_STARTTLS);
		return;
	}
	if (!s->bcaps.known) {
		if (backend_command(s, "ig.2 CAPABILITY\r\n") != 0) {
			backend_fail(s, "write", NULL);
			return;
		}
		backend_set(s, IG_BS_CAPABILITY);
		return;
	}
	backend_after_caps(s);
}

/* One complete line from the backend, without its CRLF. */
static void
backend_line(struct ig_session *s, struct ig_span line, size_t consumed)
{
	struct ig_attempt *a = &s->att;
	switch (s->bstate) {
	case IG_BS_GREETING:
		backend_greeting(s, line);
		return;
	case IG_BS_STARTTLS:
		if (backend_line_is(line, "ig.1 OK")) {
			/* Nothing the backend sent before TLS is kept. */
			s->bin.off = s->bin.len;
			ig_session_buf_drop(s, &s->bin);
			ig_conn_discard_input(&s->backend);
			if (ig_tls_start_client(&s->backend, s->gen->tls_client) != 0) {
				backend_fail(s, "tls-setup", NULL);
				return;
			}
			backend_set(s, IG_BS_TLS);
		} else if (backend_line_is(line, "ig.1 ")) {
			backend_fail(s, "starttls-refused", NULL);
		}
		return;
	case IG_BS_CAPABILITY:
		if (backend_line_is(line, "* CAPABILITY "))
			ig_caps_learn_line(&s->bcaps, line);
		else if (backend_line_is(line, "ig.2 OK"))
			backend_after_caps(s);
		else if (backend_line_is(line, "ig.2 "))
			backend_fail(s, "capability-refused", NULL);
		return;
	case IG_BS_ID:
		if (backend_line_is(line, "ig.3 "))
			backend_send_login(s);
		return;
	case IG_BS_AUTH:
		break;
	case IG_BS_NONE:
	case IG_BS_CONNECTING:
	case IG_BS_TLS:
	case IG_BS_COUNT:
		return;
	}

	/* The login is with the backend. */
	if (line.len >= 1 && line.p[0] == '+') {
		if (a->send_off == a->send_len && stage_next_segment(a)) {
			if (backend_push(s) != 0)
				backend_fail(s, "write", NULL);
			return;
		}
		if (a->as_master) {
			/* Nothing of ours is left to send, and the client has
			   nothing to answer for a login it did not send. */
			char esc[128];
			ig_log_escape(line.p, line.len, esc, sizeof(esc));
			backend_fail(s, "master-login-refused", esc);
			return;
		}
		/* A SASL challenge: the client answers it. */
		a->backend_cont_seen = true;
		ig_session_reply_raw(s, line.p, consumed);
		return;
	}
	size_t tl = strlen(a->tag);
	if (line.len > tl && memcmp(line.p, a->tag, tl) == 0 && line.p[tl] == ' ') {
		struct ig_span st = { line.p + tl + 1, line.len - tl - 1 };
		bool ok = backend_line_is(st, "OK");
		if (!ok && a->as_master) {
			/* The proxy's credential was refused, not the user's
			   secret: a temporary failure, logged with the answer. */
			char esc[256];
			ig_log_escape(st.p, st.len, esc, sizeof(esc));
			backend_fail(s, "master-login-refused", esc);
			return;
		}
		if (ok && !ig_attempt_recheck(s))
			return;
		ig_session_reply_raw(s, line.p, consumed);
		ig_attempt_done(s, ok, false);
		return;
	}
	if (line.len >= 2 && line.p[0] == '*' && line.p[1] == ' ') {
		ig_session_reply_raw(s, line.p, consumed);
		return;
	}
	char esc[128];
	ig_log_escape(line.p, line.len, esc, sizeof(esc));
	ig_session_log(s, IG_LOG_WARN, "event=backend-unexpected line=\"%s\"", esc);
}

/* Client SASL lines during IG_BS_AUTH (answers to the backend's "+"). */
static void
backend_client_lines(struct ig_session *s)
{
	struct ig_attempt *a = &s->att;
	while (s->bstate == IG_BS_AUTH && a->backend_cont_seen && !s->closing) {
		struct ig_span line;
		size_t consumed = 0;
		int r = ig_attempt_read_line(s, &line, &consumed);
		if (r < 0)
			return;
		if (r == 0) {
			/* The client's input ended in the middle of the exchange:
			   nobody will answer the backend. */
			if (s->client_end != 0)
				ig_session_close(s, "client-closed", false);
			return;
		}
		ig_backend_client_line(s, line);
		ig_session_consume_input(s, consumed, true);
	}
}

void
ig_backend_client_line(struct ig_session *s, struct ig_span line)
{
	struct ig_attempt *a = &s->att;
	a->backend_cont_seen = false;
	bool cancel = line.len == 1 && line.p[0] == '*';
	if (cancel)
		a->cancel_sent = true; /* the backend's BAD is no failed login */
	if (!cancel && !a->user_known && ig_sasl_mech_server_first(a->mech)) {
		if (!ig_attempt_judge_step(s, line))
			return;
	}
	a->send_off = a->send_len = 0;
	a->stage.len = a->stage.nseg = a->seg_next = 0;
	if (line.len + 2 > a->stage.cap) {
		backend_fail(s, "sasl-line-too-long", NULL);
		return;
	}
	memcpy(a->stage.buf, line.p, line.len);
	memcpy(a->stage.buf + line.len, "\r\n", 2);
	a->send_len = a->stage.len = line.len + 2;
	if (a->stage.len > a->stage.hi)
		a->stage.hi = a->stage.len;
	ig_session_timer(s, s->gen->cfg->backend.auth_timeout_ms);
	if (backend_push(s) != 0)
		backend_fail(s, "write", NULL);
}

void
ig_backend_pump(struct ig_session *s)
{
	struct ig_conn *c = &s->backend;
	if (s->bstate == IG_BS_NONE) {
		if (s->backend_wanted && !c->open)
			backend_connect(s);
		return;
	}
	if (s->bstate == IG_BS_CONNECTING)
		return;
	for (;;) {
		if (s->closing || s->state == IG_SS_RELAY || s->bstate == IG_BS_NONE)
			return;
		if (s->bstate == IG_BS_TLS) {
			char err[256] = "";
			int rc = ig_tls_handshake(c, err, sizeof(err));
			if (ig_conn_flush(c) != 0)
				rc = IG_EIO;
			if (rc == 0)
				break;
			if (rc < 0) {
				backend_fail(s, rc == IG_ECERT ? "tls-identity" : "tls", err);
				return;
			}
			ig_session_log(s, IG_LOG_DEBUG, "event=backend-tls version=%s cipher=%s",
			    ig_tls_version(c), ig_tls_cipher(c));
			if (s->gen->cfg->backend.tls == IG_TLS_STARTTLS) {
				if (backend_command(s, "ig.2 CAPABILITY\r\n") != 0) {
					backend_fail(s, "write", NULL);
					return;
				}
				backend_set(s, IG_BS_CAPABILITY);
			} else {
				backend_set(s, IG_BS_GREETING);
			}
			continue;
		}
		if (s->att.send_off < s->att.send_len && backend_push(s) != 0) {
			backend_fail(s, "write", NULL);
			return;
		}
		if (s->bstate == IG_BS_AUTH) {
			backend_client_lines(s);
			if (s->closing || s->bstate != IG_BS_AUTH)
				return;
		}
		/* Lines from the backend. */
		if (!ig_session_buf_take(s, &s->bin)) {
			backend_fail(s, "out-of-memory", NULL);
			return;
		}
		if (s->bin.len < s->bin.cap) {
			long n = ig_conn_read(c, s->bin.p + s->bin.len, s->bin.cap - s->bin.len);
			if (n > 0) {
				if (s->backend_unconfirmed)
					backend_connected(s);
				ig_buf_filled(&s->bin, (size_t)n);
			} else if (n < 0 && s->bin.off == s->bin.len && s->backend_unconfirmed &&
			    c->sys_error != 0) {
				backend_fail(s, "connect-failed", uv_strerror(c->sys_error));
				return;
			} else if (n < 0 && s->bin.off == s->bin.len) {
				backend_fail(s, n == IG_EEOF ? "closed" : "read",
				    ig_strerror((int)n));
				return;
			}
		}
		if (s->bin.off == s->bin.len) {
			ig_session_buf_drop(s, &s->bin);
			break;
		}
		struct ig_span line;
		size_t consumed = 0;
		enum ig_parse_result r = ig_imap_parse_line(s->bin.p + s->bin.off,
		    s->bin.len - s->bin.off, s->bin.cap, &line, &consumed);
		if (r == IG_PARSE_AGAIN) {
			if (s->bin.off > 0) {
				size_t n = s->bin.len - s->bin.off;
				memmove(s->bin.p, s->bin.p + s->bin.off, n);
				s->bin.off = 0;
				s->bin.len = n;
				continue;
			}
			if (s->bin.len < s->bin.cap)
				break;
			r = IG_PARSE_TOO_LONG;
		}
		if (r != IG_PARSE_OK) {
			backend_fail(s, "line-too-long", NULL);
			return;
		}
		if (ig_session_reply_room(s) < consumed + 2)
			break; /* the client must take our output first */
		/* Consume first: the span stays valid, and whatever follows a
		   tagged OK in bin belongs to the relay. */
		s->bin.off += consumed;
		backend_line(s, line, consumed);
		if (s->closing)
			return;
		if (s->bin.off == s->bin.len && s->state != IG_SS_RELAY)
			ig_session_buf_drop(s, &s->bin);
	}
	/* A line in part, or our replies full: bin holds it meanwhile. */
	ig_conn_update_read(c);
}
