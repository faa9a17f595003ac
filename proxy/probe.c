/*
 * The backend probe, asynchronous on the worker's loop: a small state
 * machine over a struct ig_conn it owns (its callbacks in probe_conn_ops),
 * one uv_timer_t that bounds every step, and a reference count that frees
 * the probe when its last handle or request has called back. Our commands
 * use tags "ig.N", as the sessions' backend preludes do.
 */
#include "proxy/probe.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "proxy/caps.h"
#include "proxy/conn.h"
#include "proxy/gen.h"
#include "proxy/proxyproto.h"
#include "proxy/tls.h"
#include "util/err.h"
#include "util/span.h"

#define PROBE_RBUF 16384  /* raw bytes from the backend */
#define PROBE_WBUF 4096   /* raw bytes to it: our commands, TLS handshake */
#define PROBE_LINE 4096   /* longest answer line taken */

enum probe_step {
	PROBE_CONNECT,       /* TCP connect in progress */
	PROBE_TLS,           /* TLS handshake (implicit, or after STARTTLS) */
	PROBE_GREETING,      /* waiting for "* OK" */
	PROBE_STARTTLS,      /* "ig.1 STARTTLS" sent */
	PROBE_CAPABILITY,    /* "ig.2 CAPABILITY" sent */
	PROBE_DONE,          /* result given or probe cancelled: closing */
	PROBE_STEP_COUNT
};

/* What each step waits for, in a reason: "timed out ... waiting for X". */
static const char *
probe_step_str(enum probe_step st)
{
	switch (st) {
	case PROBE_CONNECT:
		return "the connection";
	case PROBE_TLS:
		return "the TLS handshake";
	case PROBE_GREETING:
		return "the greeting";
	case PROBE_STARTTLS:
		return "the answer to STARTTLS";
	case PROBE_CAPABILITY:
		return "the answer to CAPABILITY";
	case PROBE_DONE:
	case PROBE_STEP_COUNT:
		break;
	}
	return "?";
}

struct ig_probe {
	struct ig_conn conn;          /* owner: this probe */
	uv_connect_t connect_req;     /* data = this probe */
	uv_timer_t timer;             /* data = this probe; one step's deadline */
	struct ig_gen *gen;           /* one reference: the backend's address and
	                                 TLS configuration */
	unsigned step_ms;
	enum probe_step step;
	unsigned refs;                /* open handles + pending requests (+ one
	                                 while ig_probe_start runs) */
	bool closing;                 /* handles closed or closing */
	ig_probe_done_fn *done;       /* NULL once called, or cancelled */
	void *arg;
	char caps[IG_CAPS_MAX];       /* from "* CAPABILITY", "" until then */
	char in[PROBE_LINE];          /* plaintext from the backend */
	size_t inlen;
	uint8_t rbuf[PROBE_RBUF];
	uint8_t wbuf[PROBE_WBUF];
};

static void probe_advance(struct ig_probe *p);

static void
probe_ref(struct ig_probe *p)
{
	p->refs++;
}

/* Drops one reference. Returns false when it was the last: p is freed. */
static bool
probe_unref(struct ig_probe *p)
{
	if (--p->refs > 0)
		return true;
	ig_gen_unref(p->gen);
	free(p);
	return false;
}

static void
probe_conn_io(void *owner)
{
	probe_advance(owner);
}

static void
probe_conn_ref(void *owner)
{
	probe_ref(owner);
}

static bool
probe_conn_unref(void *owner)
{
	return probe_unref(owner);
}

static const struct ig_conn_ops probe_conn_ops = {
	.on_io = probe_conn_io,
	.ref = probe_conn_ref,
	.unref = probe_conn_unref,
};

static void
probe_timer_close_cb(uv_handle_t *h)
{
	probe_unref(h->data);
}

/* Closes every handle (idempotent); p is freed in the last callback. */
static void
probe_close(struct ig_probe *p)
{
	if (p->closing)
		return;
	p->closing = true;
	p->step = PROBE_DONE;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, probe_timer_close_cb);
	/* A connect still pending is cancelled (UV_ECANCELED) by the close. */
	ig_conn_close(&p->conn);
}

/* Gives the result (once) and closes. */
static void
probe_finish(struct ig_probe *p, int rc, const char *reason)
{
	ig_probe_done_fn *done = p->done;
	p->done = NULL;
	if (rc == 0 && !p->closing) {
		/* Best effort, as a polite client: whatever is not written when
		   the handle closes is dropped. */
		static const char logout[] = "ig.3 LOGOUT\r\n";
		(void)ig_conn_write(&p->conn, (const uint8_t *)logout, sizeof(logout) - 1);
	}
	probe_close(p);
	if (done != NULL)
		done(p->arg, rc, rc == 0 ? p->caps : NULL, rc == 0 ? NULL : reason);
}

static void
probe_fail(struct ig_probe *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
probe_fail(struct ig_probe *p, int rc, const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	probe_finish(p, rc, reason);
}

static const char *
probe_addr(const struct ig_probe *p)
{
	return p->gen->cfg->backend.address;
}

static void
probe_timer_cb(uv_timer_t *t)
{
	struct ig_probe *p = t->data;
	if (p->step == PROBE_CONNECT)
		probe_fail(p, IG_ETIMEDOUT, "cannot connect to %s: timed out after %u ms",
		    probe_addr(p), p->step_ms);
	else
		probe_fail(p, IG_ETIMEDOUT, "timed out after %u ms waiting for %s from %s",
		    p->step_ms, probe_step_str(p->step), probe_addr(p));
}

/* Enters st with a fresh deadline. */
static void
probe_set_step(struct ig_probe *p, enum probe_step st)
{
	p->step = st;
	uv_timer_start(&p->timer, probe_timer_cb, p->step_ms, 0);
}

/* Sends one short command of ours. Returns false after failing the probe. */
static bool
probe_send(struct ig_probe *p, const char *line)
{
	size_t len = strlen(line);
	long n = ig_conn_write(&p->conn, (const uint8_t *)line, len);
	if (n < 0 || (size_t)n != len) {
		probe_fail(p, n < 0 ? (int)n : IG_EIO, "cannot write to %s: %s", probe_addr(p),
		    ig_strerror(n < 0 ? (int)n : IG_EIO));
		return false;
	}
	return true;
}

/* Starts the client side of TLS. Returns false after failing the probe. */
static bool
probe_start_tls(struct ig_probe *p)
{
	if (ig_tls_start_client(&p->conn, p->gen->tls_client) != 0) {
		probe_fail(p, IG_ETLS, "cannot set up TLS towards %s", probe_addr(p));
		return false;
	}
	probe_set_step(p, PROBE_TLS);
	return true;
}

static bool
probe_line_is(const char *line, const char *prefix)
{
	return strncasecmp(line, prefix, strlen(prefix)) == 0;
}

/* One complete line from the backend, without its CRLF. May finish p. */
static void
probe_line(struct ig_probe *p, const char *line, size_t len)
{
	switch (p->step) {
	case PROBE_GREETING:
		if (!probe_line_is(line, "* OK")) {
			probe_fail(p, IG_EPROTO, "no IMAP greeting from %s", probe_addr(p));
			return;
		}
		if (p->gen->cfg->backend.tls == IG_TLS_STARTTLS) {
			if (probe_send(p, "ig.1 STARTTLS\r\n"))
				probe_set_step(p, PROBE_STARTTLS);
			return;
		}
		if (probe_send(p, "ig.2 CAPABILITY\r\n"))
			probe_set_step(p, PROBE_CAPABILITY);
		return;
	case PROBE_STARTTLS:
		if (probe_line_is(line, "ig.1 OK")) {
			/* Nothing the backend sent before TLS is kept. */
			p->inlen = 0;
			ig_conn_discard_input(&p->conn);
			probe_start_tls(p);
		} else if (probe_line_is(line, "ig.1 ")) {
			probe_fail(p, IG_EPROTO, "backend refused STARTTLS");
		}
		return;
	case PROBE_CAPABILITY:
		if (probe_line_is(line, "* CAPABILITY ")) {
			char caps[IG_CAPS_MAX];
			struct ig_span sp = { (const uint8_t *)line, len };
			if (ig_caps_from_response(sp, caps, sizeof(caps)) == 0)
				memcpy(p->caps, caps, sizeof(caps));
		} else if (probe_line_is(line, "ig.2 ")) {
			if (p->caps[0] == '\0')
				probe_fail(p, IG_EPROTO, "no capabilities in the answer to "
				    "CAPABILITY from %s", probe_addr(p));
			else
				probe_finish(p, 0, NULL);
		}
		return;
	case PROBE_CONNECT:
	case PROBE_TLS:
	case PROBE_DONE:
	case PROBE_STEP_COUNT:
		break;
	}
}

/*
 * Advances the conversation with what has arrived; called on every event of
 * the connection. May finish p.
 */
static void
probe_advance(struct ig_probe *p)
{
	struct ig_conn *c = &p->conn;
	for (;;) {
		if (p->closing || p->step == PROBE_CONNECT)
			return;
		if (p->step == PROBE_TLS) {
			char err[256] = "";
			int rc = ig_tls_handshake(c, err, sizeof(err));
			(void)ig_conn_take_sync(c);
			if (ig_conn_flush(c) != 0)
				rc = IG_EIO;
			if (rc == 0 && ig_conn_take_sync(c))
				continue; /* it may have waited for room: no callback comes */
			if (rc == 0)
				break;
			if (rc < 0) {
				probe_fail(p, rc, "TLS with %s: %s", probe_addr(p),
				    err[0] ? err : ig_strerror(rc));
				return;
			}
			if (p->gen->cfg->backend.tls == IG_TLS_STARTTLS) {
				if (!probe_send(p, "ig.2 CAPABILITY\r\n"))
					return;
				probe_set_step(p, PROBE_CAPABILITY);
			} else {
				probe_set_step(p, PROBE_GREETING);
			}
			continue;
		}
		long n = 0;
		if (p->inlen < sizeof(p->in)) {
			n = ig_conn_read(c, (uint8_t *)p->in + p->inlen, sizeof(p->in) - p->inlen);
			if (n > 0)
				p->inlen += (size_t)n;
		}
		char *nl = memchr(p->in, '\n', p->inlen);
		if (nl == NULL) {
			if (n < 0) {
				probe_fail(p, (int)n, "%s from %s while waiting for %s",
				    n == IG_EEOF ? "connection closed" : ig_strerror((int)n),
				    probe_addr(p), probe_step_str(p->step));
				return;
			}
			if (p->inlen == sizeof(p->in)) {
				probe_fail(p, IG_ETOOLONG, "line too long from %s", probe_addr(p));
				return;
			}
			if (n == 0)
				break;
			continue;
		}
		size_t take = (size_t)(nl - p->in) + 1;
		char line[PROBE_LINE];
		size_t len = take - 1;
		if (len > 0 && p->in[len - 1] == '\r')
			len--;
		memcpy(line, p->in, len);
		line[len] = '\0';
		memmove(p->in, p->in + take, p->inlen - take);
		p->inlen -= take;
		probe_line(p, line, len);
	}
	ig_conn_update_read(c);
}

static void
probe_connect_cb(uv_connect_t *req, int status)
{
	struct ig_probe *p = req->data;
	if (!probe_unref(p))
		return;
	if (p->closing)
		return;
	if (status < 0) {
		probe_fail(p, IG_EIO, "cannot connect to %s: %s", probe_addr(p),
		    uv_strerror(status));
		return;
	}
	p->conn.connected = true;
	uv_tcp_nodelay(&p->conn.tcp, 1);
	enum ig_send_proxy sp = p->gen->cfg->backend.send_proxy_protocol;
	if (sp != IG_SEND_PROXY_OFF) {
		/* A backend that wants the header wants it on every connection:
		   ours is no client's, so LOCAL (v2) or UNKNOWN (v1). */
		uint8_t hdr[IG_PP_MAX];
		size_t n = ig_pp_format(sp == IG_SEND_PROXY_V1 ? IG_PP_V1 : IG_PP_V2, NULL, NULL,
		    hdr, sizeof(hdr));
		if (ig_conn_write(&p->conn, hdr, n) != (long)n) {
			probe_fail(p, IG_EIO, "cannot write the PROXY header to %s", probe_addr(p));
			return;
		}
	}
	if (p->gen->cfg->backend.tls == IG_TLS_IMPLICIT) {
		if (!probe_start_tls(p))
			return;
	} else {
		probe_set_step(p, PROBE_GREETING);
	}
	ig_conn_update_read(&p->conn);
	probe_advance(p);
}

int
ig_probe_start(uv_loop_t *loop, struct ig_gen *g, unsigned step_ms,
    ig_probe_done_fn *done, void *arg, struct ig_probe **out, char *err, size_t errsz)
{
	const struct ig_backend_conf *b = &g->cfg->backend;
	*out = NULL;
	struct ig_probe *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errsz, "%s", ig_strerror(IG_ENOMEM));
		return IG_ENOMEM;
	}
	p->refs = 1; /* this function's, dropped at the end */
	p->gen = g;
	ig_gen_ref(g);
	p->step_ms = step_ms;
	p->step = PROBE_CONNECT;
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	probe_ref(p);
	int rc = ig_conn_init(&p->conn, &probe_conn_ops, p, loop, "probe", p->rbuf,
	    sizeof(p->rbuf), p->wbuf, sizeof(p->wbuf));
	if (rc != 0) {
		snprintf(err, errsz, "cannot create a socket: %s", ig_strerror(rc));
		goto fail;
	}
	p->connect_req.data = p;
	int uvrc = uv_tcp_connect(&p->connect_req, &p->conn.tcp,
	    (const struct sockaddr *)&b->addr, probe_connect_cb);
	if (uvrc != 0) {
		snprintf(err, errsz, "cannot connect to %s: %s", b->address, uv_strerror(uvrc));
		rc = IG_EIO;
		goto fail;
	}
	probe_ref(p);
	uv_timer_start(&p->timer, probe_timer_cb, p->step_ms, 0);
	p->done = done;
	p->arg = arg;
	*out = p;
	probe_unref(p);
	return 0;
fail:
	probe_close(p);
	probe_unref(p);
	return rc;
}

void
ig_probe_cancel(struct ig_probe *p)
{
	p->done = NULL;
	probe_close(p);
}
