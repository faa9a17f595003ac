/*
 * Session life cycle: accept, the pump that advances whichever state the
 * session is in, the one timer, logging with the session prefix, and the one
 * teardown. The session struct is one allocation, freed only when the last
 * handle or request has called back; its buffers are held only while bytes
 * are in them (the worker's buffer pool for cin, bin and the connections'
 * raw buffers; the reply buffer and the login attempt's allocated), so an
 * idle session holds none.
 */
#include "proxy/session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "apppass/store.h"
#include "policy/cidr.h"
#include "policy/decide.h"
#include "proxy/attempt.h"
#include "proxy/bufpool.h"
#include "proxy/conn.h"
#include "proxy/gen.h"
#include "proxy/proxyproto.h"
#include "util/err.h"
#include "proxy/session_types.h"
#include "proxy/tls.h"

#define IG_REPLY_CAP 8192 /* our own responses: caps line + a few lines */
#define IG_LINGER_MS 2000 /* how long a closing session may flush */
#define IG_STAGE_EXTRA 2048 /* backend command: tag, verb, quoting */
/* A load balancer sends its PROXY header with the connection's first
   bytes: a few seconds is plenty (limits.handshake_timeout when shorter). */
#define IG_PP_TIMEOUT_MS 5000

#define CASE(x) case x: return #x
const char *
ig_session_state_str(enum ig_session_state st)
{
	switch (st) {
	CASE(IG_SS_PROXY_HEADER);
	CASE(IG_SS_TLS_HANDSHAKE);
	CASE(IG_SS_PREAUTH);
	CASE(IG_SS_SASL);
	CASE(IG_SS_VERIFY);
	CASE(IG_SS_BACKEND_CONNECT);
	CASE(IG_SS_BACKEND_AUTH);
	CASE(IG_SS_RELAY);
	CASE(IG_SS_CLOSING);
	case IG_SS_COUNT:
		break;
	}
	return "?";
}
#undef CASE

static void session_timer_cb(uv_timer_t *t);
static void session_pump(struct ig_session *s);
static void session_timer_close_cb(uv_handle_t *h);
static void session_finish_close(struct ig_session *s);
static void session_linger(struct ig_session *s);

const struct ig_policy_conf *
ig_session_policy(const struct ig_session *s)
{
	return &s->set->gen->cfg->policy;
}

uint64_t
ig_session_now(const struct ig_session *s)
{
	return uv_now(s->set->loop);
}

void
ig_session_log(const struct ig_session *s, enum ig_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > (int)ig_log_get_level())
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *user = s->att.user_known ? s->att.user : s->user;
	char ushow[4 * IG_USER_MAX + 8];
	if (user[0] != '\0')
		ig_log_user(user, ushow, sizeof(ushow));
	ig_log(lvl, "sid=%s client=%s:%u listener=%s%s%s %s", s->ids, s->peer_ip,
	    s->peer_port, s->l->name, user[0] ? " user=" : "", user[0] ? ushow : "", msg);
}

void
ig_session_set_state(struct ig_session *s, enum ig_session_state st)
{
	if (s->state == st)
		return;
	ig_session_log(s, IG_LOG_DEBUG, "event=state from=%s to=%s",
	    ig_session_state_str(s->state) + 6, ig_session_state_str(st) + 6);
	if (st == IG_SS_RELAY)
		IG_SESSION_METRIC(s, relay_in, 1);
	else if (s->state == IG_SS_RELAY)
		IG_SESSION_METRIC(s, relay_out, 1);
	s->state = st;
}

bool
ig_session_buf_take(struct ig_session *s, struct ig_buf *b)
{
	if (b->p != NULL)
		return true;
	b->p = ig_bufpool_get(s->set->bufpool, IG_BP_CARRY);
	if (b->p == NULL)
		return false;
	s->bufs_held++;
	b->off = b->len = b->dirty = 0;
	return true;
}

void
ig_session_buf_drop(struct ig_session *s, struct ig_buf *b)
{
	if (b->p == NULL || b->off != b->len)
		return;
	uint8_t *p = b->p;
	size_t dirty = b->dirty;
	b->p = NULL;
	b->off = b->len = b->dirty = 0;
	s->bufs_held--;
	ig_bufpool_put(s->set->bufpool, p, dirty);
}

/* Gives b's buffer back whatever it holds, wiped (teardown, STARTTLS). */
static void
session_buf_wipe(struct ig_session *s, struct ig_buf *b)
{
	b->off = b->len;
	ig_session_buf_drop(s, b);
}

size_t
ig_session_reply_room(const struct ig_session *s)
{
	return s->reply.cap - s->reply.len;
}

int
ig_session_reply_raw(struct ig_session *s, const uint8_t *p, size_t len)
{
	if (len == 0)
		return 0;
	if (s->reply.p == NULL) {
		/* Our own answers are short-lived: allocated when one is queued,
		   freed once it has gone to the client connection. */
		s->reply.p = malloc(s->reply.cap);
		if (s->reply.p == NULL)
			return IG_ENOMEM;
		s->reply.off = s->reply.len = 0;
	}
	if (s->reply.off > 0 && s->reply.cap - s->reply.len < len) {
		size_t n = s->reply.len - s->reply.off;
		memmove(s->reply.p, s->reply.p + s->reply.off, n);
		s->reply.off = 0;
		s->reply.len = n;
	}
	if (s->reply.cap - s->reply.len < len)
		return IG_ETOOLONG;
	memcpy(s->reply.p + s->reply.len, p, len);
	ig_buf_filled(&s->reply, len);
	return 0;
}

/* Frees the reply buffer once everything in it has gone. */
static void
session_reply_drop(struct ig_session *s)
{
	if (s->reply.p == NULL || s->reply.off != s->reply.len)
		return;
	free(s->reply.p);
	s->reply.p = NULL;
	s->reply.off = s->reply.len = s->reply.dirty = 0;
}

int
ig_session_reply(struct ig_session *s, const char *fmt, ...)
{
	char line[IG_CAPS_MAX + 512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return IG_EINVAL;
	size_t len = (size_t)n;
	if (len > sizeof(line) - 3)
		len = sizeof(line) - 3;
	line[len++] = '\r';
	line[len++] = '\n';
	return ig_session_reply_raw(s, (const uint8_t *)line, len);
}

/* Not logged in yet: limits.preauth_lifetime runs. */
static bool
session_before_login(const struct ig_session *s)
{
	switch (s->state) {
	case IG_SS_PROXY_HEADER:
	case IG_SS_TLS_HANDSHAKE:
	case IG_SS_PREAUTH:
	case IG_SS_SASL:
	case IG_SS_VERIFY:
	case IG_SS_BACKEND_CONNECT:
	case IG_SS_BACKEND_AUTH:
		return true;
	case IG_SS_RELAY:
	case IG_SS_CLOSING:
	case IG_SS_COUNT:
		break;
	}
	return false;
}

/* Milliseconds left of the pre-login lifetime (0 once it is over). */
static uint64_t
session_lifetime_left(const struct ig_session *s)
{
	uint64_t end = s->started_ms + s->gen->cfg->limits.preauth_lifetime_ms;
	uint64_t now = ig_session_now(s);
	return end > now ? end - now : 0;
}

void
ig_session_timer(struct ig_session *s, unsigned ms)
{
	/* A tarpit deadline is not replaced: the timer callback re-arms the
	   idle deadline when the tarpit ends. */
	if (!s->timer_open || s->tarpit)
		return;
	/* Before login no deadline lies past the lifetime, so nothing the
	   client sends can extend it; the callback tells which one fired. */
	if (session_before_login(s)) {
		uint64_t left = session_lifetime_left(s);
		if (left < ms)
			ms = (unsigned)left;
	}
	s->deadline_ms = ig_session_now(s) + ms;
	/* Most deadlines move later (handshake, pre-login, backend, idle):
	   a timer due no later than the new one is left alone, and when it
	   fires early the callback arms it for what is left. Moving a libuv
	   timer takes it out of the heap and puts it back. */
	if (uv_is_active((const uv_handle_t *)&s->timer) && s->timer_due_ms <= s->deadline_ms)
		return;
	s->timer_due_ms = s->deadline_ms;
	uv_timer_start(&s->timer, session_timer_cb, ms, 0);
}

bool
ig_session_count_error(struct ig_session *s)
{
	if (++s->errors <= s->gen->cfg->limits.max_errors)
		return false;
	ig_session_log(s, IG_LOG_INFO, "event=refused reason=too-many-errors errors=%u",
	    s->errors);
	ig_session_reply(s, "* BYE [CLIENTBUG] Too many invalid commands");
	ig_session_close(s, "too-many-errors", true);
	return true;
}

void
ig_session_consume_input(struct ig_session *s, size_t n, bool wipe)
{
	if (s->cin.p == NULL)
		return; /* the teardown (or STARTTLS) wiped it meanwhile */
	if (wipe)
		mbedtls_platform_zeroize(s->cin.p + s->cin.off, n);
	s->cin.off += n;
	if (s->cin.off == s->cin.len)
		ig_session_buf_drop(s, &s->cin);
}

void
ig_session_bad(struct ig_session *s, const char *tag, const char *text)
{
	if (!ig_session_count_error(s))
		ig_session_reply(s, "%s BAD %s", tag, text);
}

bool
ig_session_preauth_command(struct ig_session *s)
{
	unsigned max = s->gen->cfg->limits.max_preauth_commands;
	if (++s->preauth_commands <= max)
		return true;
	ig_session_log(s, IG_LOG_INFO, "event=refused reason=too-many-commands count=%u limit=%u",
	    s->preauth_commands, max);
	ig_session_reply(s, "* BYE [CLIENTBUG] Too many commands before login");
	ig_session_close(s, "too-many-commands", true);
	return false;
}

void
ig_session_caps(struct ig_session *s, char *out, size_t outsz)
{
	struct ig_login_facts f = {
		.user = NULL,
		.mech = IG_MECH_COUNT,
		.tls = s->tls_active,
		.addr = (const struct sockaddr *)&s->peer,
		.listener = s->l->name,
	};
	bool login_ok = false;
	uint32_t mechs = ig_policy_possible(ig_session_policy(s), &f, &login_ok);
	struct ig_caps_view v = {
		.starttls_offered = s->l->tls == IG_TLS_STARTTLS && !s->tls_active,
		.login_allowed = login_ok,
		.mechs_allowed = mechs,
	};
	struct ig_caps_memo *m = &s->set->caps_memo;
	uint64_t version = atomic_load(&s->set->sh->caps_version);
	if (ig_caps_memo_get(m, version, &v, out, outsz))
		return;
	ig_shared_caps_shown(s->set->sh, &v, out, outsz, &version);
	ig_caps_memo_put(m, version, &v, out);
}

int
ig_session_flush_reply(struct ig_session *s)
{
	while (s->reply.off < s->reply.len) {
		long n = ig_conn_write(&s->client, s->reply.p + s->reply.off,
		    s->reply.len - s->reply.off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		s->reply.off += (size_t)n;
	}
	session_reply_drop(s);
	return 0;
}

/* STARTTLS: the tagged OK has left; switch the client side to TLS. */
static void
session_begin_starttls(struct ig_session *s)
{
	s->starttls_pending = false;
	/*
	 * Everything the client sent after the STARTTLS line and before the
	 * handshake is thrown away (CVE-2011-0411 class): both the decoded
	 * command buffer and the raw socket buffer.
	 */
	size_t dropped = (s->cin.len - s->cin.off) + ig_conn_pending_in(&s->client);
	session_buf_wipe(s, &s->cin);
	ig_conn_discard_input(&s->client);
	ig_imap_parser_reset(&s->parser);
	if (dropped > 0)
		ig_session_log(s, IG_LOG_WARN,
		    "event=starttls-injection reason=pipelined-plaintext-discarded bytes=%zu",
		    dropped);
	if (ig_tls_start_server(&s->client, s->gen->tls_server, s->sni, sizeof(s->sni)) != 0) {
		ig_session_close(s, "tls-setup-failed", false);
		return;
	}
	ig_session_set_state(s, IG_SS_TLS_HANDSHAKE);
	ig_session_timer(s, s->gen->cfg->limits.handshake_timeout_ms);
}

static void
session_handshake(struct ig_session *s)
{
	char err[256] = "";
	int rc = ig_tls_handshake(&s->client, err, sizeof(err));
	/*
	 * TLS 1.3 on an implicit-TLS listener: the greeting goes with the
	 * server's flight as 0.5-RTT data, so the client can send its first
	 * command with its Finished, one round trip sooner. (No command is
	 * read before the handshake completes.)
	 */
	if (rc == 0 && !s->greeted_early && s->l->tls == IG_TLS_IMPLICIT &&
	    ig_tls_half_rtt_start(&s->client)) {
		s->greeted_early = true;
		s->tls_active = true; /* the capabilities of a TLS channel */
		ig_preauth_greet(s);
		if (ig_session_flush_reply(s) < 0)
			rc = IG_EIO;
	}
	/*
	 * A TLS 1.3 handshake is done when the client's Finished arrives; all
	 * it queued then is session tickets, and they go out with our next
	 * answer: the greeting on an implicit-TLS listener when it did not go
	 * early, which the pump writes next (one write, not two), or the
	 * answer to the client's first command. Clients that read and write one TLS
	 * connection from two threads (imaplib2: offlineimap) break when a
	 * ticket arrives while they write; with the answer, it arrives while
	 * they wait for it. (A TLS 1.2 server ends with its own Finished,
	 * which must go now.)
	 */
	bool hold = rc > 0 &&
	    mbedtls_ssl_get_version_number(&s->client.ssl) == MBEDTLS_SSL_VERSION_TLS1_3;
	if (!hold && ig_conn_flush(&s->client) != 0)
		rc = IG_EIO;
	if (rc == 0)
		return;
	if (rc < 0) {
		ig_session_log(s, rc == IG_EEOF ? IG_LOG_INFO : IG_LOG_WARN,
		    "event=tls-failed reason=\"%s\"", err[0] ? err : ig_strerror(rc));
		IG_SESSION_METRIC(s, tls_fail[rc == IG_EEOF ? IG_MTF_CLOSED : IG_MTF_ERROR], 1);
		ig_session_close(s, "tls-failed", false);
		return;
	}
	s->tls_active = true;
	IG_SESSION_METRIC(s, tls_ok, 1);
	ig_session_log(s, IG_LOG_INFO, "event=tls version=%s cipher=%s resumed=%s sni=%s alpn=%s",
	    ig_tls_version(&s->client), ig_tls_cipher(&s->client),
	    ig_tls_resumed(&s->client) ? "yes" : "no",
	    s->sni[0] ? s->sni : "-",
	    mbedtls_ssl_get_alpn_protocol(&s->client.ssl) ?
	    mbedtls_ssl_get_alpn_protocol(&s->client.ssl) : "-");
	ig_session_set_state(s, IG_SS_PREAUTH);
	ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
	if (s->l->tls == IG_TLS_IMPLICIT && !s->greeted_early)
		ig_preauth_greet(s);
}

/*
 * Reads what the client sent into cin, as much as fits. cin is taken for
 * the read and given back if nothing came.
 */
static int
session_read_client(struct ig_session *s)
{
	if (!ig_session_buf_take(s, &s->cin))
		return IG_ENOMEM;
	int rc = 0;
	for (;;) {
		if (s->cin.off > 0 && s->cin.len == s->cin.cap) {
			/* Moving bytes keeps parser offsets valid: they are
			   relative to cin.off, which becomes 0. */
			size_t n = s->cin.len - s->cin.off;
			memmove(s->cin.p, s->cin.p + s->cin.off, n);
			s->cin.off = 0;
			s->cin.len = n;
		}
		if (s->cin.len == s->cin.cap)
			break;
		long n = ig_conn_read(&s->client, s->cin.p + s->cin.len, s->cin.cap - s->cin.len);
		if (n == 0)
			break;
		if (n < 0) {
			rc = (int)n;
			break;
		}
		ig_buf_filled(&s->cin, (size_t)n);
		s->last_activity_ms = ig_session_now(s);
	}
	ig_session_buf_drop(s, &s->cin);
	return rc;
}

static void session_proxy_header(struct ig_session *s);
static void session_pump_once(struct ig_session *s);

/*
 * Runs the session until it waits for the network: again whenever a write
 * went out whole during a round (no write callback will come for it, and
 * the round may have stopped for room in an output buffer). Every round
 * that goes again has written bytes from finite buffers, so this ends.
 */
static void
session_pump(struct ig_session *s)
{
	for (;;) {
		(void)ig_conn_take_sync(&s->client);
		(void)ig_conn_take_sync(&s->backend);
		session_pump_once(s);
		if (s->closing)
			return;
		bool again = ig_conn_take_sync(&s->client);
		if (ig_conn_take_sync(&s->backend))
			again = true;
		if (!again)
			return;
	}
}

static void
session_pump_once(struct ig_session *s)
{
	if (s->state == IG_SS_PROXY_HEADER) {
		/* What followed the header (a ClientHello) is handled below. */
		session_proxy_header(s);
		if (s->closing || s->state == IG_SS_PROXY_HEADER)
			return;
	}
	if (s->state == IG_SS_TLS_HANDSHAKE) {
		session_handshake(s);
		if (s->closing || s->state == IG_SS_TLS_HANDSHAKE)
			return;
	}
	if (s->state == IG_SS_RELAY) {
		ig_relay_pump(s);
		return;
	}

	/* Not authenticated yet: our own command loop, maybe a backend login. */
	int rc = 0;
	if (s->client_end == 0) {
		rc = session_read_client(s);
		if (rc == IG_EEOF) {
			/* The client will send nothing more; what it sent (a
			   pipelined LOGIN and commands, say) is still answered. */
			s->client_end = IG_EEOF;
			rc = 0;
		}
	}
	bool probing = false;
	size_t left = 0;
	for (;;) {
		if (s->state == IG_SS_PREAUTH || s->state == IG_SS_SASL)
			ig_preauth_process(s);
		if (s->closing)
			return;
		if (probing && s->reply.len == 0 && !s->tarpit && !s->starttls_pending &&
		    (s->state == IG_SS_PREAUTH || s->state == IG_SS_SASL) &&
		    s->cin.len - s->cin.off == left) {
			/* Input over, every complete command answered. */
			ig_session_close(s, "client-closed", true);
			return;
		}
		if (s->state == IG_SS_BACKEND_CONNECT || s->state == IG_SS_BACKEND_AUTH)
			ig_backend_pump(s);
		if (s->closing)
			return;
		if (s->state == IG_SS_RELAY) {
			ig_relay_pump(s);
			return;
		}
		if (s->tarpit) {
			ig_conn_update_read(&s->client);
			return;
		}
		if (ig_session_flush_reply(s) < 0) {
			ig_session_close(s, "client-write-error", false);
			return;
		}
		if (s->starttls_pending && s->reply.len == 0) {
			session_begin_starttls(s);
			if (s->closing)
				return;
			if (s->client_end != 0) {
				/* No handshake can follow the end of the input. */
				ig_session_close(s, "client-closed", false);
				return;
			}
		}
		if (rc < 0 && !s->starttls_pending) {
			if (rc == IG_ETLS) {
				char err[256];
				ig_tls_last_error(&s->client, err, sizeof(err));
				ig_session_log(s, IG_LOG_WARN,
				    "event=tls-error side=client reason=\"%s\"", err);
			}
			ig_session_close(s, rc == IG_ETLS ? "client-tls-error" : "client-error",
			    false);
			return;
		}
		/*
		 * Input over and our answers handed to the socket: go round once
		 * more in case the command loop had stopped for room in the
		 * reply buffer; if it finds nothing to answer, close.
		 */
		if (s->client_end == 0 || s->starttls_pending || s->reply.len > 0 ||
		    (s->state != IG_SS_PREAUTH && s->state != IG_SS_SASL))
			break;
		probing = true;
		left = s->cin.len - s->cin.off;
	}
	if (s->set->draining && s->state == IG_SS_PREAUTH && !s->starttls_pending) {
		/* A login that was under way when the drain began has ended
		   without a session (its answer has gone first). */
		ig_session_shutdown(s);
		return;
	}
	ig_conn_update_read(&s->client);
}

static void
session_conn_io(void *owner)
{
	ig_session_on_io(owner);
}

static void
session_conn_ref(void *owner)
{
	ig_session_handle_opened(owner);
}

static bool
session_conn_unref(void *owner)
{
	return ig_session_handle_closed(owner);
}

const struct ig_conn_ops ig_session_conn_ops = {
	.on_io = session_conn_io,
	.ref = session_conn_ref,
	.unref = session_conn_unref,
};

void
ig_session_on_io(struct ig_session *s)
{
	if (s->closing) {
		if (s->close_graceful)
			session_linger(s);
		return;
	}
	session_pump(s);
	if (!s->closing && s->client.error != 0)
		ig_session_close(s, "client-error", false);
}

static void
session_bye_failures(struct ig_session *s)
{
	ig_session_log(s, IG_LOG_INFO, "event=refused reason=too-many-failures failures=%u",
	    s->failures);
	ig_session_reply(s, "* BYE [UNAVAILABLE] Too many failed logins");
	ig_session_close(s, "too-many-failures", true);
}

void
ig_session_tarpit(struct ig_session *s, unsigned ms, bool bye)
{
	if (ms == 0) {
		if (bye)
			session_bye_failures(s);
		return;
	}
	ig_session_timer(s, ms);
	IG_SESSION_METRIC(s, tarpit_ms, ms);
	s->tarpit = true;
	s->bye_after_tarpit = bye;
	ig_session_log(s, IG_LOG_DEBUG, "event=tarpit delay_ms=%u", ms);
}

/* limits.preauth_lifetime is over: "* BYE" (unless mid-handshake), close. */
static void
session_lifetime_over(struct ig_session *s)
{
	const struct ig_limits *lim = &s->gen->cfg->limits;
	ig_session_log(s, IG_LOG_INFO,
	    "event=refused reason=preauth-lifetime lifetime_ms=%u state=%s commands=%u",
	    lim->preauth_lifetime_ms, ig_session_state_str(s->state) + 6, s->preauth_commands);
	if (s->state == IG_SS_TLS_HANDSHAKE || s->state == IG_SS_PROXY_HEADER) {
		ig_session_close(s, "preauth-lifetime", false);
		return;
	}
	ig_session_reply(s, "* BYE [UNAVAILABLE] Too long without logging in");
	ig_session_close(s, "preauth-lifetime", true);
}

static void
session_timer_cb(uv_timer_t *t)
{
	struct ig_session *s = t->data;
	uint64_t now = ig_session_now(s);
	if (now < s->deadline_ms) { /* due for a deadline since moved later */
		s->timer_due_ms = s->deadline_ms;
		uv_timer_start(t, session_timer_cb, s->deadline_ms - now, 0);
		return;
	}
	if (s->closing) {
		session_finish_close(s);
		return;
	}
	/* First: the lifetime ends a tarpit and a backend exchange too. */
	if (session_before_login(s) && session_lifetime_left(s) == 0) {
		session_lifetime_over(s);
		return;
	}
	if (s->tarpit) {
		s->tarpit = false;
		if (s->bye_after_tarpit) {
			session_bye_failures(s);
			return;
		}
		ig_session_timer(s, s->gen->cfg->limits.preauth_timeout_ms);
		session_pump(s);
		return;
	}
	const struct ig_limits *lim = &s->gen->cfg->limits;
	switch (s->state) {
	case IG_SS_PROXY_HEADER:
		ig_session_log(s, IG_LOG_WARN, "event=refused reason=proxy-header-timeout "
		    "got_bytes=%zu", s->pp != NULL ? s->pp->have : 0);
		ig_session_close(s, "proxy-header-timeout", false);
		return;
	case IG_SS_TLS_HANDSHAKE:
		ig_session_log(s, IG_LOG_INFO, "event=timeout reason=tls-handshake");
		IG_SESSION_METRIC(s, tls_fail[IG_MTF_TIMEOUT], 1);
		ig_session_close(s, "handshake-timeout", false);
		return;
	case IG_SS_PREAUTH:
	case IG_SS_SASL:
		ig_session_log(s, IG_LOG_INFO, "event=timeout reason=preauth-idle");
		ig_session_reply(s, "* BYE [UNAVAILABLE] Idle for too long");
		ig_session_close(s, "preauth-timeout", true);
		return;
	case IG_SS_VERIFY:
		/* The hash ends by itself (bounded work, bounded queue): its
		   answer decides. */
		ig_session_timer(s, 1000);
		return;
	case IG_SS_BACKEND_CONNECT:
	case IG_SS_BACKEND_AUTH:
		ig_session_log(s, IG_LOG_WARN, "event=backend-timeout state=%s",
		    ig_backend_state_str(s->backend_unconfirmed ? IG_BS_CONNECTING : s->bstate));
		IG_SESSION_METRIC(s, backend_err[IG_MBE_TIMEOUT], 1);
		ig_backend_close(s);
		ig_attempt_done(s, false, true);
		return;
	case IG_SS_RELAY: {
		if (s->bye_held && !s->bye_hold_over && s->end_reason == NULL &&
		    ig_relay_bye_hold_over(s) < 0) {
			ig_session_close(s, "client-write-error", false);
			return;
		}
		if (s->end_reason != NULL) {
			/* No response boundary in time: a "* BYE" now could
			   split a response, so the connection just closes. */
			ig_session_log(s, IG_LOG_INFO, "event=bye-skipped reason=mid-response "
			    "waited_ms=%u", IG_RELAY_END_MS);
			ig_session_close(s, s->end_reason, false);
			return;
		}
		uint64_t idle = ig_session_now(s) - s->last_activity_ms;
		if (idle < lim->idle_timeout_ms) {
			ig_session_timer(s, (unsigned)(lim->idle_timeout_ms - idle));
			return;
		}
		ig_session_log(s, IG_LOG_INFO, "event=timeout reason=idle");
		ig_session_close(s, "idle-timeout", false);
		return;
	}
	case IG_SS_CLOSING:
	case IG_SS_COUNT:
		break;
	}
}

/*
 * Refuses a session just accepted, before any TLS: "* BYE [UNAVAILABLE]"
 * with text on a STARTTLS listener (its greeting is cleartext), a plain
 * close on an implicit TLS one. Closes the session.
 */
static void
session_refuse_early(struct ig_session *s, const char *reason, const char *text)
{
	if (s->l->tls == IG_TLS_IMPLICIT) {
		ig_session_close(s, reason, false);
		return;
	}
	ig_session_reply(s, "* BYE [UNAVAILABLE] %s", text);
	ig_session_flush_reply(s);
	ig_session_close(s, reason, true);
}

/*
 * Counts the session in the per-address table (the workers' shared one). Returns true when
 * it may go on; false when its address group is over
 * limits.max_connections_per_address (or the table could not grow): then it
 * has been refused and is closing.
 */
static bool
session_count_address(struct ig_session *s)
{
	const struct ig_limits *lim = &s->gen->cfg->limits;
	const struct sockaddr *sa = (const struct sockaddr *)&s->peer;
	if (!ig_cc_key_from_addr(sa, lim->conn_ipv6_prefix, &s->cc_key))
		return true; /* no address: nothing to count */
	unsigned count = 0;
	ig_shared_lock(s->set->sh);
	int rc = ig_cc_add(s->set->sh->cc, &s->cc_key, &count);
	ig_shared_unlock(s->set->sh);
	if (rc != 0) {
		ig_session_log(s, IG_LOG_ERROR, "event=refused reason=connection-table error=\"%s\"",
		    ig_strerror(rc));
		session_refuse_early(s, "connection-table", "Server busy, try later");
		return false;
	}
	s->cc_counted = true;
	unsigned limit = ig_cc_limit(lim, sa);
	if (limit == 0 || count <= limit)
		return true;
	char group[64];
	ig_cc_key_format(&s->cc_key, group, sizeof(group));
	ig_session_log(s, IG_LOG_WARN,
	    "event=refused reason=max-connections-per-address address=%s count=%u limit=%u",
	    group, count, limit);
	session_refuse_early(s, "max-connections-per-address",
	    "Too many connections from your address");
	return false;
}

/* An address as text and port ("?" and 0 when neither IPv4 nor IPv6). */
static void
session_peer_text(const struct sockaddr_storage *ss, char *ip, size_t ipsz, unsigned *port)
{
	snprintf(ip, ipsz, "?");
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)ipsz);
		*port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)ipsz);
		*port = ntohs(a->sin6_port);
	}
}

/* The configuration of the session's listener, in its generation. */
static const struct ig_listener_conf *
session_listener_conf(const struct ig_session *s)
{
	const struct ig_config *cfg = s->gen->cfg;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, s->l->name) == 0)
			return &cfg->listeners[i];
	return NULL;
}

/*
 * The client's address is known (the socket's peer, or what a PROXY header
 * carried): log the connection, count it per address, check the
 * listener's cap (here: its sessions with this one; 0 when checked
 * already), then the TLS handshake or the greeting. May close the session.
 */
static void
session_begin(struct ig_session *s, unsigned here)
{
	const struct ig_limits *lim = &s->gen->cfg->limits;
	const struct ig_session_listener *l = s->l;
	ig_session_log(s, IG_LOG_INFO, "event=connect tls=%s worker=%u", ig_tls_mode_str(l->tls),
	    s->set->worker);
	if (!session_count_address(s))
		return;
	if (here != 0 && l->max_sessions && here > l->max_sessions) {
		ig_session_log(s, IG_LOG_WARN, "event=refused reason=max-sessions limit=%u",
		    l->max_sessions);
		session_refuse_early(s, "max-sessions", "Too many connections, try later");
		return;
	}
	if (l->tls == IG_TLS_IMPLICIT) {
		if (ig_tls_start_server(&s->client, s->gen->tls_server, s->sni, sizeof(s->sni)) != 0) {
			ig_session_close(s, "tls-setup-failed", false);
			return;
		}
		ig_session_set_state(s, IG_SS_TLS_HANDSHAKE);
		ig_session_timer(s, lim->handshake_timeout_ms);
	} else {
		ig_session_set_state(s, IG_SS_PREAUTH);
		ig_session_timer(s, lim->preauth_timeout_ms);
		ig_preauth_greet(s);
		ig_session_flush_reply(s);
	}
}

/*
 * IG_SS_PROXY_HEADER: reads the load balancer's header, never a byte past
 * it (the ClientHello or the first command stays in the connection's
 * buffer), then takes the client's address from it and begins the session.
 * A missing, malformed or cut header ends the session. May close it.
 */
static void
session_proxy_header(struct ig_session *s)
{
	struct ig_pp_parser *pp = s->pp;
	uint8_t tmp[IG_PP_MAX];
	enum ig_parse_result r = IG_PARSE_AGAIN;
	size_t got = 0, used = 0;
	while (r == IG_PARSE_AGAIN) {
		/* No TLS yet: plain reads take the raw bytes. */
		long n = ig_conn_read(&s->client, tmp, ig_pp_want(pp));
		if (n == 0) {
			ig_conn_update_read(&s->client);
			return;
		}
		if (n < 0) {
			ig_session_log(s, IG_LOG_WARN, "event=refused reason=proxy-header-missing "
			    "detail=\"the connection %s before the header ended\" got_bytes=%zu",
			    n == IG_EEOF ? "closed" : "failed", pp->have);
			ig_session_close(s, "proxy-header-missing", false);
			return;
		}
		got = (size_t)n;
		r = ig_pp_parse(pp, tmp, got, &used);
	}
	ig_conn_update_read(&s->client);
	if (r != IG_PARSE_OK) {
		/* What the peer sent, for the operator (a client talking IMAP or
		   TLS to a proxy_protocol port): the parser stopped at the first
		   wrong byte; show the start of everything read. */
		uint8_t head[24];
		size_t hl = pp->have - used;
		if (hl > sizeof(head))
			hl = sizeof(head);
		memcpy(head, pp->buf, hl);
		size_t k = got < sizeof(head) - hl ? got : sizeof(head) - hl;
		memcpy(head + hl, tmp, k);
		hl += k;
		char esc[128];
		ig_log_escape(head, hl, esc, sizeof(esc));
		ig_session_log(s, IG_LOG_WARN, "event=refused reason=bad-proxy-header "
		    "detail=\"%s\" start=\"%s\"", pp->error, esc);
		ig_session_close(s, "bad-proxy-header", false);
		return;
	}
	char proxy_ip[INET6_ADDRSTRLEN];
	unsigned proxy_port;
	session_peer_text(&s->peer, proxy_ip, sizeof(proxy_ip), &proxy_port);
	if (pp->command == IG_PP_CMD_PROXY) {
		/* From here on the carried address is the client's everywhere:
		   policy, limiter, connection caps, logs, the backend. */
		s->peer = pp->src;
		s->local = pp->dst;
		s->local_known = true;
		session_peer_text(&s->peer, s->peer_ip, sizeof(s->peer_ip), &s->peer_port);
	}
	ig_session_log(s, IG_LOG_INFO, "event=proxy-header version=%d command=%s proxy=%s:%u",
	    (int)pp->version, ig_pp_command_str(pp->command), proxy_ip, proxy_port);
	free(s->pp);
	s->pp = NULL;
	session_begin(s, 0);
}

int
ig_session_accept(struct ig_session_set *set, uv_stream_t *server,
    struct ig_session_listener *l)
{
	const struct ig_limits *lim = &set->gen->cfg->limits;
	/* limits.buffer_size as the worker started (a reload changes it
	   only at restart); the pool's buffers are a little larger, the
	   connections' output taking whole TLS records. */
	size_t bs = set->buf_size;
	/* The struct only: buffers are taken while bytes are in them. */
	struct ig_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return IG_ENOMEM;
	s->set = set;
	s->l = l;
	s->gen = set->gen;
	ig_gen_ref(s->gen);
	s->refs = 1; /* held by this function until the end */
	s->state = IG_SS_PREAUTH;
	s->cin = (struct ig_buf){ .p = NULL, .cap = bs };
	s->bin = (struct ig_buf){ .p = NULL, .cap = bs };
	s->att.cmd_cap = bs;
	s->att.stage.cap = bs + IG_STAGE_EXTRA;
	s->reply = (struct ig_buf){ .p = NULL, .cap = IG_REPLY_CAP };

	s->id = ig_shared_next_sid(set->sh);
	snprintf(s->ids, sizeof(s->ids), "%016llx", (unsigned long long)s->id);
	snprintf(s->peer_ip, sizeof(s->peer_ip), "?");

	/* Link first: from here on ig_session_close() is the only way out. */
	s->next = set->sessions;
	if (set->sessions)
		set->sessions->prev = s;
	set->sessions = s;
	set->nsessions++;
	atomic_fetch_add(&set->sh->nsessions, 1);
	unsigned here = atomic_fetch_add(l->nsessions, 1) + 1;

	uv_timer_init(set->loop, &s->timer);
	s->timer.data = s;
	s->timer_open = true;
	s->refs++;

	int rc = ig_conn_init(&s->client, &ig_session_conn_ops, s, set->loop, "client",
	    NULL, 0, NULL, 0);
	if (rc == 0) {
		ig_conn_use_pool(&s->client, set->bufpool, &s->bufs_held, set->buf_size);
		if (uv_accept(server, (uv_stream_t *)&s->client.tcp) != 0)
			rc = IG_EIO;
	}
	/* The backend side is set up only when a login is allowed. */

	struct ig_imap_limits il = {
		.max_line = lim->max_line,
		.max_literal = lim->max_literal,
		.max_command = bs,
		.max_tag = 64,
	};
	ig_imap_parser_init(&s->parser, &il);
	s->started_ms = s->last_activity_ms = ig_session_now(s);

	if (rc == 0) {
		int alen = sizeof(s->peer);
		uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&s->peer, &alen);
		session_peer_text(&s->peer, s->peer_ip, sizeof(s->peer_ip), &s->peer_port);
		/* TCP_NODELAY comes from the listening socket (server.c), and
		   the local address is read when a PROXY header needs it: two
		   system calls fewer for every connection. */
		s->client.connected = true;
	}
	if (rc != 0) {
		ig_session_close(s, "accept-failed", false);
		ig_session_handle_closed(s);
		return rc;
	}

	if (set->metrics != NULL && l->index < set->metrics->nlisteners)
		ig_metric_add(&set->metrics->conns[l->index], 1);
	const struct ig_listener_conf *lc = session_listener_conf(s);
	if (lc == NULL || !lc->proxy_protocol) {
		session_begin(s, here);
		ig_conn_update_read(&s->client);
		ig_session_handle_closed(s); /* drop this function's reference */
		return 0;
	}
	/*
	 * Behind a load balancer: its PROXY header comes first, and only a
	 * trusted one may send it (anyone else could claim any address).
	 * The session is counted per address, and greeted, once the header
	 * has told the client's address.
	 */
	if (!ig_netset_contains(&lc->trusted_proxies,
	        (const struct sockaddr *)&s->peer)) {
		ig_session_log(s, IG_LOG_WARN, "event=refused reason=untrusted-proxy "
		    "note=\"proxy_protocol listener: the peer is not in trusted_proxies\"");
		ig_session_close(s, "untrusted-proxy", false);
		ig_session_handle_closed(s);
		return 0;
	}
	if (l->max_sessions && here > l->max_sessions) {
		ig_session_log(s, IG_LOG_WARN, "event=refused reason=max-sessions limit=%u",
		    l->max_sessions);
		session_refuse_early(s, "max-sessions", "Too many connections, try later");
		ig_session_handle_closed(s);
		return 0;
	}
	s->pp = malloc(sizeof(*s->pp));
	if (s->pp == NULL) {
		ig_session_log(s, IG_LOG_ERROR, "event=refused reason=no-memory");
		ig_session_close(s, "no-memory", false);
		ig_session_handle_closed(s);
		return 0;
	}
	ig_pp_init(s->pp);
	ig_session_set_state(s, IG_SS_PROXY_HEADER);
	ig_session_timer(s, lim->handshake_timeout_ms < IG_PP_TIMEOUT_MS ?
	    lim->handshake_timeout_ms : IG_PP_TIMEOUT_MS);
	ig_conn_update_read(&s->client);
	ig_session_handle_closed(s); /* drop this function's reference */
	return 0;
}

const struct sockaddr_storage *
ig_session_local(struct ig_session *s)
{
	if (!s->local_known) {
		int alen = sizeof(s->local);
		if (uv_tcp_getsockname(&s->client.tcp, (struct sockaddr *)&s->local, &alen) != 0)
			memset(&s->local, 0, sizeof(s->local));
		s->local_known = true;
	}
	return &s->local;
}

void
ig_session_handle_opened(struct ig_session *s)
{
	s->refs++;
}

static void
session_free(struct ig_session *s)
{
	struct ig_session_set *set = s->set;
	struct ig_session_listener *l = s->l;
	if (s->prev)
		s->prev->next = s->next;
	else if (set->sessions == s)
		set->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	set->nsessions--;
	atomic_fetch_sub(&set->sh->nsessions, 1);
	atomic_fetch_sub(l->nsessions, 1);
	if (s->cc_counted) {
		ig_shared_lock(set->sh);
		ig_cc_remove(set->sh->cc, &s->cc_key);
		ig_shared_unlock(set->sh);
	}
	ig_gen_unref(s->gen);
	/* Teardown gave everything back already; this is for certainty. */
	session_buf_wipe(s, &s->cin);
	session_buf_wipe(s, &s->bin);
	s->reply.off = s->reply.len;
	session_reply_drop(s);
	ig_attempt_release(s);
	free(s->pp);
	mbedtls_platform_zeroize(s, sizeof(*s));
	free(s);
	/* Its descriptors are closed (close callbacks ran): room for one more
	   (the worker resumes paused listeners). */
	if (set->on_freed != NULL)
		set->on_freed(set->owner);
}

bool
ig_session_handle_closed(struct ig_session *s)
{
	if (--s->refs > 0)
		return true;
	session_free(s);
	return false;
}

static void
session_timer_close_cb(uv_handle_t *h)
{
	struct ig_session *s = h->data;
	ig_session_handle_closed(s);
}

static void
session_finish_close(struct ig_session *s)
{
	s->close_graceful = false;
	ig_backend_close(s);
	ig_conn_close(&s->client);
	if (s->timer_open) {
		s->timer_open = false;
		uv_close((uv_handle_t *)&s->timer, session_timer_close_cb);
	}
}

void
ig_session_close(struct ig_session *s, const char *reason, bool graceful)
{
	if (s->closing)
		return;
	s->closing = true;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	uint64_t dur = ig_session_now(s) - s->started_ms;
	/* The session's summary: TLS (when it came up), the backend (when one
	   was contacted), bytes each way and the duration, on one line. */
	char tls[400] = "";
	if (s->tls_active) {
		const char *alpn = mbedtls_ssl_get_alpn_protocol(&s->client.ssl);
		snprintf(tls, sizeof(tls), " tls_version=%s cipher=%s sni=%s alpn=%s",
		    ig_tls_version(&s->client), ig_tls_cipher(&s->client),
		    s->sni[0] ? s->sni : "-", alpn != NULL ? alpn : "-");
	}
	bool backend_used = s->backend.bytes_in > 0 || s->backend.bytes_out > 0;
	ig_session_log(s, IG_LOG_INFO,
	    "event=close reason=%s state=%s duration_ms=%llu client_in=%llu client_out=%llu "
	    "backend_in=%llu backend_out=%llu%s%s%s",
	    reason, ig_session_state_str(s->state) + 6, (unsigned long long)dur,
	    (unsigned long long)s->client.bytes_in, (unsigned long long)s->client.bytes_out,
	    (unsigned long long)s->backend.bytes_in, (unsigned long long)s->backend.bytes_out,
	    tls, backend_used ? " backend=" : "",
	    backend_used ? s->gen->cfg->backend.address : "");
	ig_session_set_state(s, IG_SS_CLOSING);
	s->tarpit = false; /* closing owns the timer now (linger) */
	ig_attempt_abandon(s);
	ig_attempt_release(s);
	session_buf_wipe(s, &s->cin);
	ig_backend_close(s);
	struct ig_conn *c = &s->client;
	bool usable = c->open && !c->closing && c->connected && c->error == 0;
	if (graceful && usable) {
		s->close_graceful = true;
		ig_session_timer(s, IG_LINGER_MS);
		session_linger(s);
		return;
	}
	if (usable && !c->shut_wanted && c->tls_wpending == 0) {
		/* Best effort: the handle closes right after. */
		(void)ig_tls_close_notify(c);
		(void)ig_conn_flush(c);
	}
	session_finish_close(s);
}

/*
 * Graceful close, step by step (called again on every I/O until done): our
 * remaining replies go out, then close_notify and a TCP shutdown of the
 * client's write side; the handles close once the shutdown has completed
 * and the client has closed its side too. Whatever the client sends
 * meanwhile is read and dropped: closing a socket with unread input makes
 * the kernel reset the connection and throw away what we sent that is
 * still in flight (our last words). The linger timer bounds all of it.
 * May close the session's handles.
 */
static void
session_linger(struct ig_session *s)
{
	struct ig_conn *c = &s->client;
	if (!c->open || c->closing || c->error != 0) {
		session_finish_close(s);
		return;
	}
	ig_conn_discard_input(c);
	if (ig_session_flush_reply(s) < 0) {
		session_finish_close(s);
		return;
	}
	if (s->reply.len > 0)
		return;
	if (ig_conn_shutdown(c) < 0) {
		session_finish_close(s);
		return;
	}
	if (c->shut_done && c->eof)
		session_finish_close(s);
}

#define IG_SHUTDOWN_TEXT "Server shutting down"

void
ig_session_shutdown(struct ig_session *s)
{
	if (s->closing)
		return;
	switch (s->state) {
	case IG_SS_PROXY_HEADER:
	case IG_SS_TLS_HANDSHAKE:
		/* No channel for an answer yet. */
		ig_session_close(s, "shutdown", false);
		return;
	case IG_SS_PREAUTH:
	case IG_SS_SASL:
	case IG_SS_VERIFY:
	case IG_SS_BACKEND_CONNECT:
	case IG_SS_BACKEND_AUTH:
		/* Our own lines only so far (a tarpit's held answer goes first):
		   "* BYE" may follow any of them. After a STARTTLS OK the
		   client starts a handshake: no cleartext line then. */
		if (!s->starttls_pending)
			ig_session_reply(s, "* BYE [UNAVAILABLE] " IG_SHUTDOWN_TEXT);
		ig_session_close(s, "shutdown", true);
		return;
	case IG_SS_RELAY:
		ig_relay_end(s, "shutdown", IG_SHUTDOWN_TEXT);
		return;
	case IG_SS_CLOSING:
	case IG_SS_COUNT:
		break;
	}
}

void
ig_session_shutdown_all(struct ig_session_set *set)
{
	/* Closing never frees synchronously (only close callbacks do), so
	   the list can be walked while sessions are closed. */
	for (struct ig_session *s = set->sessions; s != NULL; s = s->next)
		ig_session_shutdown(s);
}

/*
 * Draining: true when s has nothing under way that may finish by itself
 * (a TLS handshake, or waiting for a command before login), so it ends
 * now. A login under way (SASL exchange, backend connection and login)
 * may finish: into the relay, which drains like any other, or back to
 * the command loop, which ends then (session_pump).
 */
static bool
session_drain_now(const struct ig_session *s)
{
	switch (s->state) {
	case IG_SS_PROXY_HEADER:
	case IG_SS_TLS_HANDSHAKE:
	case IG_SS_PREAUTH:
		return true;
	case IG_SS_SASL:
	case IG_SS_VERIFY:
	case IG_SS_BACKEND_CONNECT:
	case IG_SS_BACKEND_AUTH:
	case IG_SS_RELAY:
	case IG_SS_CLOSING:
	case IG_SS_COUNT:
		break;
	}
	return false;
}

unsigned
ig_session_drain_all(struct ig_session_set *set)
{
	unsigned n = 0;
	set->draining = true;
	/* Closing never frees synchronously: the walk stays valid. */
	for (struct ig_session *s = set->sessions; s != NULL; s = s->next) {
		if (s->closing || !session_drain_now(s))
			continue;
		ig_session_shutdown(s);
		n++;
	}
	return n;
}

/* Ends a session the administrator took access from: "* BYE", then close
   (in relay, between two of the backend's responses). */
static void
session_revoke(struct ig_session *s, const char *reason, const char *text)
{
	if (s->state == IG_SS_RELAY) {
		ig_relay_end(s, reason, text);
		return;
	}
	ig_session_reply(s, "* BYE [UNAVAILABLE] %s", text);
	ig_session_close(s, reason, true);
}

unsigned
ig_session_recheck_all(struct ig_session_set *set)
{
	unsigned n = 0;
	/* Closing never frees synchronously: the walk stays valid. */
	for (struct ig_session *s = set->sessions; s != NULL; s = s->next) {
		if (s->closing || s->state != IG_SS_RELAY || s->user[0] == '\0' ||
		    s->end_reason != NULL)
			continue;
		struct ig_login_facts f = {
			.user = s->user,
			.mech = s->login_cmd ? IG_MECH_COUNT : s->login_mech,
			.login_cmd = s->login_cmd,
			.tls = s->tls_active,
			.addr = (const struct sockaddr *)&s->peer,
			.listener = s->l->name,
		};
		struct ig_decision d;
		char rule[4 * sizeof(d.rule_name) + 8];
		if (ig_policy_decide(ig_session_policy(s), &f, &d) == IG_VERDICT_ALLOW) {
			if (d.would_deny)
				ig_session_log(s, IG_LOG_WARN,
				    "event=session-revoked verdict=would-deny mode=monitor "
				    "reason=%s rule=%s", d.reason,
				    ig_log_rule(d.rule_name, rule, sizeof(rule)));
			continue;
		}
		ig_session_log(s, IG_LOG_WARN,
		    "event=session-revoked by=reload verdict=%s reason=%s rule=%s",
		    ig_verdict_str(d.verdict), d.reason,
		    ig_log_rule(d.rule_name, rule, sizeof(rule)));
		session_revoke(s, "policy-revoked", "Access revoked by the administrator");
		n++;
	}
	return n;
}

int
ig_session_kick_user(struct ig_session_set *set, const char *user, unsigned *count)
{
	char u[IG_USER_MAX + 1];
	*count = 0;
	if (ig_user_normalize((const uint8_t *)user, strlen(user),
	        set->gen->cfg->policy.fold_case, u, sizeof(u)) != 0)
		return IG_EINVAL;
	for (struct ig_session *s = set->sessions; s != NULL; s = s->next) {
		if (s->closing || s->end_reason != NULL)
			continue;
		bool in_relay = s->state == IG_SS_RELAY && strcmp(s->user, u) == 0;
		bool trying = s->att.active && s->att.user_known && strcmp(s->att.user, u) == 0;
		if (!in_relay && !trying)
			continue;
		ig_session_log(s, IG_LOG_WARN, "event=session-kicked by=ctl state=%s",
		    ig_session_state_str(s->state) + 6);
		session_revoke(s, "kicked", "Session ended by the administrator");
		(*count)++;
	}
	return 0;
}

unsigned
ig_session_apppass_sweep(struct ig_session_set *set, const struct ig_apppass_snapshot *snap)
{
	unsigned n = 0;
	/* Closing never frees synchronously: the walk stays valid. */
	for (struct ig_session *s = set->sessions; s != NULL; s = s->next) {
		if (s->closing || s->end_reason != NULL || s->state != IG_SS_RELAY ||
		    s->apppass_id[0] == '\0' ||
		    ig_apppass_snapshot_find(snap, s->user, s->apppass_id) != NULL)
			continue;
		ig_session_log(s, IG_LOG_WARN, "event=session-revoked by=app-password "
		    "apppass_id=%s reason=%s", s->apppass_id,
		    ig_apppass_snapshot_is_revoked(snap, s->apppass_id) ? "revoked" : "removed");
		IG_SESSION_METRIC(s, apppass[IG_MAP_SESSIONS_ENDED], 1);
		session_revoke(s, "app-password-revoked", "App password revoked");
		n++;
	}
	return n;
}
