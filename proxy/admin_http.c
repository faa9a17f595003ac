/*
 * The admin HTTP endpoint (proxy/admin_http.h): accept, read one request
 * head into a fixed buffer, parse it (proxy/http_parse.c), answer once,
 * close.
 */
#include "proxy/admin_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/expo.h"
#include "proxy/http_parse.h"
#include "util/err.h"
#include "util/log.h"

struct ah_conn {
	struct ig_admin_http *h;
	struct ah_conn *next, *prev;
	uv_tcp_t tcp;
	uv_timer_t timer;
	unsigned open;                 /* handles not closed yet (tcp, timer) */
	bool closing;
	bool answered;                 /* a response is being written */
	bool shut;                     /* it was written and our FIN sent */
	bool peer_done;                /* the client's side ended */
	char peer[64];                 /* "ip:port" for logs */
	uint8_t in[IG_AH_MAX_REQUEST];
	size_t inlen;
	char head[512];                /* the response's status and headers */
	char text[320];                /* a short body (health, errors) */
	struct ig_expo metrics;        /* the /metrics body */
	const char *body;              /* text or metrics.p */
	size_t body_len;
	uv_write_t wr;
	uv_shutdown_t sd;
};

struct ig_admin_http {
	uv_tcp_t tcp;
	const struct ig_admin_http_ops *ops;
	void *owner;
	struct ah_conn *conns;
	unsigned nconns;
	bool listening;                /* tcp open (not closed yet) */
	bool stopping;
};

static void
ah_maybe_free(struct ig_admin_http *h)
{
	if (h->stopping && !h->listening && h->conns == NULL)
		free(h);
}

static void
ah_conn_close_cb(uv_handle_t *hd)
{
	struct ah_conn *c = hd->data;
	if (--c->open > 0)
		return;
	struct ig_admin_http *h = c->h;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	h->nconns--;
	ig_expo_free(&c->metrics);
	free(c);
	ah_maybe_free(h);
}

/* Closes c's handles; c is freed in the last close callback. */
static void
ah_conn_close(struct ah_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->timer, ah_conn_close_cb);
	uv_close((uv_handle_t *)&c->tcp, ah_conn_close_cb);
}

/*
 * The answer is out and our side shut down. The connection is closed when
 * the client's side ends too (or at the timer): closing while its unread
 * bytes (the rest of an oversized request) sit in our socket would send a
 * reset that can destroy the answer before the client reads it (a
 * lingering close, as nginx and HAProxy do).
 */
static void
ah_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct ah_conn *c = req->data;
	c->shut = true;
	if (status < 0 || c->peer_done)
		ah_conn_close(c);
}

static void
ah_write_cb(uv_write_t *req, int status)
{
	struct ah_conn *c = req->data;
	if (c->closing)
		return;
	if (status < 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, ah_shutdown_cb) != 0)
		ah_conn_close(c);
}

static const char *
ah_status_text(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void ah_timer_cb(uv_timer_t *t);

/*
 * Sends status with c->body (c->body_len bytes), then shuts our side
 * down and closes once the client's side ends (ah_shutdown_cb); what it
 * still sends is read and dropped. The timer now bounds the whole (a
 * client that does not read its answer, or never closes, is closed).
 */
static void
ah_respond(struct ah_conn *c, unsigned status, const char *ctype)
{
	if (c->answered || c->closing)
		return;
	c->answered = true;
	/* Reading goes on (into nothing) until the client's side ends. */
	int n = snprintf(c->head, sizeof(c->head),
	    "HTTP/1.1 %u %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n\r\n",
	    status, ah_status_text(status), ctype, c->body_len,
	    status == 405 ? "Allow: GET\r\n" : "");
	uv_buf_t bufs[2] = {
		uv_buf_init(c->head, (unsigned)n),
		uv_buf_init((char *)(c->body != NULL ? c->body : c->head), (unsigned)c->body_len),
	};
	c->wr.data = c;
	c->sd.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, c->body_len > 0 ? 2 : 1,
	        ah_write_cb) != 0) {
		ah_conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, ah_timer_cb, IG_AH_TIMEOUT_MS, 0);
}

/* A short text answer: the line and a line feed. */
static void
ah_text(struct ah_conn *c, unsigned status, const char *line)
{
	int n = snprintf(c->text, sizeof(c->text), "%s\n", line);
	c->body = c->text;
	c->body_len = n < 0 ? 0 : (size_t)n < sizeof(c->text) ? (size_t)n : sizeof(c->text) - 1;
	if (status != 200)
		log_info("event=admin-http client=%s status=%u reason=\"%s\"", c->peer, status,
		    line);
	ah_respond(c, status, "text/plain; charset=utf-8");
}


static void
ah_timer_cb(uv_timer_t *t)
{
	struct ah_conn *c = t->data;
	if (c->answered) {
		/* The client does not read its answer. */
		ah_conn_close(c);
		return;
	}
	ah_text(c, 408, "request timeout");
}

/* A complete, well-formed head: route it. */
static void
ah_dispatch(struct ah_conn *c, const struct ig_http_req *req)
{
	struct ig_admin_http *h = c->h;
	bool metrics = req->path.len == 8 && memcmp(req->path.p, "/metrics", 8) == 0;
	bool healthz = req->path.len == 8 && memcmp(req->path.p, "/healthz", 8) == 0;
	bool readyz = req->path.len == 7 && memcmp(req->path.p, "/readyz", 7) == 0;
	if (!metrics && !healthz && !readyz) {
		ah_text(c, 404, "not found");
		return;
	}
	if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
		ah_text(c, 405, "method not allowed");
		return;
	}
	if (healthz) {
		ah_text(c, 200, "ok");
		return;
	}
	if (readyz) {
		char why[256] = "";
		bool ok = h->ops->ready(h->owner, why, sizeof(why));
		ah_text(c, ok ? 200 : 503, ok ? "ok" : why);
		return;
	}
	ig_expo_init(&c->metrics, IG_AH_MAX_BODY);
	h->ops->metrics(h->owner, &c->metrics);
	if (c->metrics.overflow) {
		log_error("event=admin-http client=%s status=503 reason=metrics-too-large "
		    "max_bytes=%u", c->peer, IG_AH_MAX_BODY);
		ah_text(c, 503, "metrics unavailable");
		return;
	}
	log_debug("event=admin-http client=%s status=200 path=/metrics bytes=%zu", c->peer,
	    c->metrics.len);
	c->body = c->metrics.p;
	c->body_len = c->metrics.len;
	ah_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8");
}

static void
ah_alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	struct ah_conn *c = hd->data;
	(void)suggested;
	if (c->answered) {
		/* The request is parsed: what comes now is dropped. */
		*buf = uv_buf_init((char *)c->in, (unsigned)sizeof(c->in));
		return;
	}
	*buf = uv_buf_init((char *)c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen));
}

static void
ah_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct ah_conn *c = s->data;
	(void)buf;
	if (n == 0 || c->closing)
		return;
	if (c->answered) {
		/* Draining after the answer: bytes are dropped. */
		if (n < 0) {
			c->peer_done = true;
			if (c->shut)
				ah_conn_close(c);
			else
				uv_read_stop(s);
		}
		return;
	}
	if (n < 0) {
		/* Gone before a complete request: nothing to answer. */
		ah_conn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	struct ig_http_req req;
	enum ig_http_result r = ig_http_parse(c->in, c->inlen, IG_AH_MAX_HEADERS, &req);
	switch (r) {
	case IG_HTTP_AGAIN:
		if (c->inlen == sizeof(c->in))
			ah_text(c, 413, "request too large");
		return;
	case IG_HTTP_OK:
		ah_dispatch(c, &req);
		return;
	case IG_HTTP_BAD:
		ah_text(c, 400, req.error);
		return;
	case IG_HTTP_TOO_MANY:
		ah_text(c, 431, req.error);
		return;
	case IG_HTTP_VERSION:
		ah_text(c, 505, req.error);
		return;
	case IG_HTTP_RESULT_COUNT:
		break;
	}
	ah_conn_close(c);
}

static void
ah_reject_close_cb(uv_handle_t *hd)
{
	free(hd);
}

static void
ah_connection_cb(uv_stream_t *server, int status)
{
	struct ig_admin_http *h = server->data;
	if (status < 0 || h->stopping)
		return;
	if (h->nconns >= IG_AH_MAX_CONNS) {
		/* Too many at once: accepted and closed, so the backlog drains. */
		uv_tcp_t *t = malloc(sizeof(*t));
		if (t == NULL)
			return;
		uv_tcp_init(server->loop, t);
		if (uv_accept(server, (uv_stream_t *)t) == 0)
			log_warn("event=admin-http status=refused reason=too-many-connections "
			    "limit=%u", IG_AH_MAX_CONNS);
		uv_close((uv_handle_t *)t, ah_reject_close_cb);
		return;
	}
	struct ah_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->h = h;
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open = 2;
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	snprintf(c->peer, sizeof(c->peer), "?");
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		ah_conn_close(c);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char ip[48] = "?";
		unsigned port = 0;
		if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, port);
	}
	uv_timer_start(&c->timer, ah_timer_cb, IG_AH_TIMEOUT_MS, 0);
	if (uv_read_start((uv_stream_t *)&c->tcp, ah_alloc_cb, ah_read_cb) != 0)
		ah_conn_close(c);
}

int
ig_admin_http_start(uv_loop_t *loop, const struct sockaddr *addr, const char *name,
    const struct ig_admin_http_ops *ops, void *owner, struct ig_admin_http **out)
{
	*out = NULL;
	struct ig_admin_http *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return IG_ENOMEM;
	h->ops = ops;
	h->owner = owner;
	uv_tcp_init(loop, &h->tcp);
	h->tcp.data = h;
	h->listening = true;
	int rc = uv_tcp_bind(&h->tcp, addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&h->tcp, 64, ah_connection_cb);
	if (rc != 0) {
		log_error("event=start-failed reason=admin-listen listen=%s error=\"%s\"", name,
		    uv_strerror(rc));
		ig_admin_http_stop(h);
		return IG_EIO;
	}
	log_info("event=admin-http-listening listen=%s", name);
	*out = h;
	return 0;
}

static void
ah_server_close_cb(uv_handle_t *hd)
{
	struct ig_admin_http *h = hd->data;
	h->listening = false;
	ah_maybe_free(h);
}

void
ig_admin_http_stop(struct ig_admin_http *h)
{
	if (h == NULL || h->stopping)
		return;
	h->stopping = true;
	for (struct ah_conn *c = h->conns; c != NULL; c = c->next)
		ah_conn_close(c);
	uv_close((uv_handle_t *)&h->tcp, ah_server_close_cb);
}
