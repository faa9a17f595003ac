/*
 * Unit tests for proxy/conn.c and the TLS glue of proxy/tls.c on a real
 * libuv loop: two connections over a loopback TCP pair, each with a test
 * owner that counts the callbacks the connection makes (struct
 * ig_conn_ops). Plaintext, backpressure with small buffers, half-close,
 * TLS (the listeners' server configuration against the backend client
 * configuration, the dev certificates of tests/data/certs) with
 * close_notify, a full socket (the uv_write path), a refused server identity, an owner freed by its last
 * reference, and buffers from a pool held only while bytes are in them. Every test ends like libuv's MAKE_VALGRIND_HAPPY: the loop
 * closes (a handle left open fails it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "certs/store.h"
#include "config/config.h"
#include "proxy/bufpool.h"
#include "proxy/conn.h"
#include "proxy/tls.h"
#include "util/err.h"

#define BUF 16384

/* A connection's owner: counts what the connection tells it. */
struct owner {
	struct ig_conn c;
	unsigned io;           /* on_io calls */
	unsigned refs;         /* references held now */
	unsigned ref_calls;
	unsigned unref_calls;
	bool free_on_last;     /* behave as freed when the last ref goes */
	bool freed;
	uint8_t rbuf[BUF];
	uint8_t wbuf[BUF];
};

static void
owner_io(void *o)
{
	struct owner *w = o;
	assert_false(w->freed); /* never called once the owner is gone */
	w->io++;
}

static void
owner_ref(void *o)
{
	struct owner *w = o;
	assert_false(w->freed);
	w->refs++;
	w->ref_calls++;
}

static bool
owner_unref(void *o)
{
	struct owner *w = o;
	assert_false(w->freed);
	assert_true(w->refs > 0);
	w->refs--;
	w->unref_calls++;
	if (w->refs == 0 && w->free_on_last) {
		w->freed = true;
		return false;
	}
	return true;
}

static const struct ig_conn_ops owner_ops = {
	.on_io = owner_io,
	.ref = owner_ref,
	.unref = owner_unref,
};

/* The dev certificates (see test_certstore.c). */
static const char *
fixture(const char *name)
{
	static char ring[8][PATH_MAX];
	static size_t next;
	char *out = ring[next++ % 8];
	const char *dir = getenv("IG_TEST_CERTS");
	int n;

	if (dir != NULL) {
		n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
	} else {
		const char *slash = strrchr(__FILE__, '/');
		int dlen = slash == NULL ? 1 : (int)(slash - __FILE__);
		n = snprintf(out, PATH_MAX, "%.*s/../data/certs/%s", dlen,
		    slash == NULL ? "." : __FILE__, name);
	}
	assert_true(n > 0 && n < PATH_MAX);
	return out;
}

/* A blocking socket listening on a free loopback port, its address in *sa. */
static int
listen_loopback(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)sa, &len), 0);
	return l;
}

/* Two connected loopback TCP sockets (blocking setup, before the loop). */
static void
tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa;
	int l = listen_loopback(&sa);

	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*a >= 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*b = accept(l, NULL, NULL);
	assert_true(*b >= 0);
	close(l);
}

struct pair {
	uv_loop_t loop;
	struct owner *cli;     /* "client" side (the backend client in TLS) */
	struct owner *srv;     /* "server" side */
};

/* A loop and two owners, no connection yet. */
static void
pair_alloc(struct pair *p)
{
	assert_int_equal(uv_loop_init(&p->loop), 0);
	p->cli = calloc(1, sizeof(*p->cli));
	p->srv = calloc(1, sizeof(*p->srv));
	assert_non_null(p->cli);
	assert_non_null(p->srv);
}

/* Sets up both connections with capacities rcap/wcap (<= BUF). */
static void
pair_open(struct pair *p, size_t rcap, size_t wcap)
{
	int a, b;

	pair_alloc(p);
	tcp_pair(&a, &b);
	struct owner *o[2] = { p->cli, p->srv };
	int fd[2] = { a, b };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ig_conn_init(&o[i]->c, &owner_ops, o[i], &p->loop,
		    i == 0 ? "client" : "server", o[i]->rbuf, rcap, o[i]->wbuf, wcap), 0);
		assert_int_equal(o[i]->refs, 1); /* the handle */
		assert_int_equal(uv_tcp_open(&o[i]->c.tcp, fd[i]), 0);
		o[i]->c.connected = true;
		ig_conn_update_read(&o[i]->c);
		assert_true(o[i]->c.reading);
	}
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the loop without blocking until pred(p) holds (5 s at most). */
static void
run_until(struct pair *p, bool (*pred)(struct pair *))
{
	uint64_t deadline = mono_ms() + 5000;
	while (!pred(p)) {
		if (mono_ms() > deadline)
			fail_msg("condition not reached within 5 s");
		uv_run(&p->loop, UV_RUN_NOWAIT);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static bool
no_refs(struct pair *p)
{
	return (p->cli->refs == 0 || p->cli->freed) && (p->srv->refs == 0 || p->srv->freed);
}

/* Runs the close callbacks, checks the accounting and that the loop
   closes, frees the owners. Both connections are closing. */
static void
pair_finish(struct pair *p)
{
	run_until(p, no_refs);
	assert_int_equal(uv_run(&p->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&p->loop), 0);
	struct owner *o[2] = { p->cli, p->srv };
	for (int i = 0; i < 2; i++) {
		assert_false(o[i]->c.open);
		assert_int_equal(o[i]->ref_calls, o[i]->unref_calls);
		free(o[i]);
	}
}

/* Closes both connections and finishes. */
static void
pair_close(struct pair *p)
{
	ig_conn_close(&p->cli->c);
	ig_conn_close(&p->srv->c);
	ig_conn_close(&p->cli->c); /* idempotent */
	pair_finish(p);
}

/* Drains up to len bytes of plaintext from o into out; returns the count. */
static size_t
drain(struct owner *o, uint8_t *out, size_t len)
{
	size_t got = 0;
	for (;;) {
		long n = ig_conn_read(&o->c, out + got, len - got);
		if (n <= 0)
			return got;
		got += (size_t)n;
	}
}

/* ---- plaintext ------------------------------------------------------- */

static struct {
	uint8_t buf[1 << 17];
	size_t len;
} rx;

static bool
rx_hello(struct pair *p)
{
	rx.len += drain(p->srv, rx.buf + rx.len, sizeof(rx.buf) - rx.len);
	return rx.len == 7;
}

static void
test_plain_roundtrip(void **state)
{
	struct pair p;
	(void)state;
	pair_open(&p, BUF, BUF);
	rx.len = 0;

	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"hello\r\n", 7), 7);
	/* The socket took it all at once: no request, no callback to come;
	   the owner learns it from ig_conn_take_sync (once). */
	assert_int_equal(p.cli->refs, 1);
	assert_true(ig_conn_drained(&p.cli->c));
	assert_int_equal(p.cli->c.bytes_out, 7);
	assert_true(ig_conn_take_sync(&p.cli->c));
	assert_false(ig_conn_take_sync(&p.cli->c));
	run_until(&p, rx_hello);
	assert_memory_equal(rx.buf, "hello\r\n", 7);
	/* Events: none for the write, one for the bytes that arrived. */
	assert_int_equal(p.cli->io, 0);
	assert_int_equal(p.srv->io, 1);
	assert_int_equal(p.cli->refs, 1);
	assert_int_equal(p.srv->c.bytes_in, 7);
	assert_int_equal(ig_conn_read(&p.srv->c, rx.buf, 1), 0); /* nothing more */
	assert_int_equal(ig_conn_pending_in(&p.srv->c), 0);

	pair_close(&p);
}

/* ---- backpressure ---------------------------------------------------- */

static struct {
	uint8_t data[1 << 14];
	size_t sent;
	unsigned calls;
	bool srv_stopped;      /* the server's reading stopped on a full rbuf */
} tx;

static bool
tx_done(struct pair *p)
{
	/* Writer: push what fits, as a session does on every event. */
	if (tx.sent < sizeof(tx.data)) {
		long n = ig_conn_write(&p->cli->c, tx.data + tx.sent, sizeof(tx.data) - tx.sent);
		assert_true(n >= 0);
		assert_true(n <= 64);
		tx.sent += (size_t)n;
	}
	/* Reader: take little, and only now and then, so rbuf fills up. */
	if (ig_conn_pending_in(&p->srv->c) == p->srv->c.rcap) {
		assert_false(p->srv->c.reading);
		tx.srv_stopped = true;
	}
	if (tx.calls++ % 2 == 0 || tx.sent == sizeof(tx.data)) {
		long n = ig_conn_read(&p->srv->c, rx.buf + rx.len, 48);
		assert_true(n >= 0);
		rx.len += (size_t)n;
	}
	return rx.len == sizeof(tx.data);
}

static void
test_plain_backpressure(void **state)
{
	struct pair p;
	(void)state;
	/* 64-byte raw buffers: the writer fills its own, the reader stops. */
	pair_open(&p, 64, 64);
	for (size_t i = 0; i < sizeof(tx.data); i++)
		tx.data[i] = (uint8_t)(i * 7 + i / 251);
	tx.sent = 0;
	tx.calls = 0;
	tx.srv_stopped = false;
	rx.len = 0;

	/* Only what fits is taken (the socket takes it at once here; a full
	   socket is test_plain_socket_full's). */
	assert_int_equal(ig_conn_write(&p.cli->c, tx.data, sizeof(tx.data)), 64);
	tx.sent = 64;
	run_until(&p, tx_done);
	assert_memory_equal(rx.buf, tx.data, sizeof(tx.data));
	assert_true(tx.srv_stopped);
	assert_true(p.srv->c.reading); /* room again: reading is back on */
	assert_int_equal(p.cli->c.bytes_out, sizeof(tx.data));
	assert_int_equal(p.srv->c.bytes_in, sizeof(tx.data));
	/* Every write request has called back: only the handles hold refs. */
	assert_int_equal(p.cli->refs, 1);
	assert_int_equal(p.srv->refs, 1);

	pair_close(&p);
}

/* ---- a full socket: the write goes through uv_write ----------------- */

/*
 * Writes without running the loop (the peer reads nothing) until the
 * socket takes no more at once and a write is in flight.
 */
static void
write_until_in_flight(struct owner *o, uint64_t *written)
{
	static uint8_t junk[BUF];
	for (unsigned i = 0; i < 200000 && o->c.wflight == 0; i++) {
		long n = ig_conn_write(&o->c, junk, sizeof(junk));
		assert_true(n > 0);
		*written += (uint64_t)n;
	}
	assert_true(o->c.wflight > 0);
}

static uint64_t full_written;

static bool
srv_got_all(struct pair *p)
{
	uint8_t tmp[BUF];
	while (ig_conn_read(&p->srv->c, tmp, sizeof(tmp)) > 0)
		;
	return p->srv->c.bytes_in == full_written && ig_conn_drained(&p->cli->c);
}

static void
test_plain_socket_full(void **state)
{
	struct pair p;
	(void)state;
	pair_open(&p, BUF, BUF);
	full_written = 0;
	write_until_in_flight(p.cli, &full_written);
	/* The write request holds the owner until its callback; nothing more
	   is taken once the buffer behind it is full, and no write went whole. */
	assert_int_equal(p.cli->refs, 2);
	assert_false(ig_conn_drained(&p.cli->c));
	while (p.cli->c.wlen < p.cli->c.wcap) {
		long n = ig_conn_write(&p.cli->c, (const uint8_t *)"y", 1);
		assert_int_equal(n, 1);
		full_written++;
	}
	assert_true(p.cli->c.wflight < p.cli->c.wlen);
	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"z", 1), 0);
	(void)ig_conn_take_sync(&p.cli->c);
	/* The server reads: the callbacks come and write the rest. */
	run_until(&p, srv_got_all);
	assert_true(p.cli->io >= 1);
	assert_int_equal(p.cli->refs, 1);
	assert_int_equal(p.cli->c.bytes_out, full_written);
	pair_close(&p);
}

/* ---- half-close ------------------------------------------------------ */

static bool
cli_shut_and_srv_eof(struct pair *p)
{
	return p->cli->c.shut_done && p->srv->c.eof;
}

static bool
cli_got_reply(struct pair *p)
{
	rx.len += drain(p->cli, rx.buf + rx.len, sizeof(rx.buf) - rx.len);
	return rx.len == 9;
}

static void
test_plain_half_close(void **state)
{
	struct pair p;
	(void)state;
	pair_open(&p, BUF, BUF);
	rx.len = 0;

	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"bye\r\n", 5), 5);
	assert_int_equal(ig_conn_shutdown(&p.cli->c), 0);
	assert_int_equal(ig_conn_shutdown(&p.cli->c), 0); /* idempotent */
	/* Our output is over: plaintext is refused from now on. */
	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"x", 1), IG_EINVAL);
	/* The write went at once, so the shutdown was made on the spot: no
	   request, no callback. */
	assert_true(p.cli->c.shut_done);
	run_until(&p, cli_shut_and_srv_eof);
	/* Events: none for the client; the server got the bytes, then the
	   FIN. */
	assert_int_equal(p.cli->io, 0);
	assert_int_equal(p.cli->ref_calls, 1); /* handle */
	assert_int_equal(p.cli->refs, 1);
	assert_int_equal(p.srv->io, 2);
	uint8_t got[16];
	assert_int_equal(drain(p.srv, got, sizeof(got)), 5);
	assert_memory_equal(got, "bye\r\n", 5);
	assert_int_equal(ig_conn_read(&p.srv->c, got, sizeof(got)), IG_EEOF);

	/* The other direction still works. */
	assert_int_equal(ig_conn_write(&p.srv->c, (const uint8_t *)"* BYE ok\n", 9), 9);
	run_until(&p, cli_got_reply);
	assert_memory_equal(rx.buf, "* BYE ok\n", 9);

	pair_close(&p);
}

/* Linux's struct tcp_info goes on past glibc's copy of it (which ends at
   tcpi_total_retrans) up to the segment counters (Linux 4.2). */
struct tcp_info_segs {
	struct tcp_info glibc;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
	uint32_t segs_out, segs_in;
};

/* Segments the socket of c has sent so far (TCP_INFO). */
static unsigned
segs_out(struct ig_conn *c)
{
	uv_os_fd_t fd;
	assert_int_equal(uv_fileno((const uv_handle_t *)&c->tcp, &fd), 0);
	struct tcp_info_segs ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	assert_true(len >= offsetof(struct tcp_info_segs, segs_in));
	return ti.segs_out;
}

/* Bytes still queued at the shutdown leave in one segment with the FIN. */
static void
test_plain_last_segment(void **state)
{
	struct pair p;
	(void)state;
	pair_open(&p, BUF, BUF);
	ig_conn_cork(&p.cli->c);
	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"a1 OK bye\r\n", 11), 11);
	ig_conn_cork_end(&p.cli->c);
	assert_int_equal(p.cli->c.wlen, 11); /* queued, not written */
	unsigned before = segs_out(&p.cli->c);
	assert_int_equal(ig_conn_shutdown(&p.cli->c), 0);
	assert_true(p.cli->c.shut_done);
	assert_true(ig_conn_drained(&p.cli->c));
	assert_int_equal(segs_out(&p.cli->c) - before, 1);
	run_until(&p, cli_shut_and_srv_eof);
	uint8_t got[16];
	assert_int_equal(drain(p.srv, got, sizeof(got)), 11);
	assert_memory_equal(got, "a1 OK bye\r\n", 11);
	assert_int_equal(ig_conn_read(&p.srv->c, got, sizeof(got)), IG_EEOF);
	assert_int_equal(p.cli->io, 0);
	pair_close(&p);
}

/* ---- connecting to a peer that speaks first ---------------------------- */

static bool
cli_has_greeting(struct pair *p)
{
	return p->cli->c.rlen - p->cli->c.roff >= 9;
}

static bool
cli_failed(struct pair *p)
{
	return p->cli->c.error != 0;
}

/*
 * ig_conn_connect_greeted: no wait for the connection; the peer's first
 * bytes arrive as a read, TCP_NODELAY is set, and a refused connection
 * comes as the first read's error with its cause.
 */
static void
test_connect_greeted(void **state)
{
	struct pair p;
	struct sockaddr_in sa;
	(void)state;

	pair_alloc(&p);
	int l = listen_loopback(&sa);

	assert_int_equal(ig_conn_init(&p.cli->c, &owner_ops, p.cli, &p.loop, "backend",
	    p.cli->rbuf, BUF, p.cli->wbuf, BUF), 0);
	assert_int_equal(ig_conn_connect_greeted(&p.cli->c, (struct sockaddr *)&sa), 0);
	assert_true(p.cli->c.connected);
	ig_conn_update_read(&p.cli->c);
	assert_true(p.cli->c.reading);
	uv_os_fd_t fd;
	int one = 0;
	socklen_t olen = sizeof(one);
	assert_int_equal(uv_fileno((const uv_handle_t *)&p.cli->c.tcp, &fd), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, &olen), 0);
	assert_int_equal(one, 1);

	int b = accept(l, NULL, NULL);
	assert_true(b >= 0);
	close(l);
	assert_int_equal(ig_conn_init(&p.srv->c, &owner_ops, p.srv, &p.loop, "server",
	    p.srv->rbuf, BUF, p.srv->wbuf, BUF), 0);
	assert_int_equal(uv_tcp_open(&p.srv->c.tcp, b), 0);
	p.srv->c.connected = true;
	assert_int_equal(ig_conn_write(&p.srv->c, (const uint8_t *)"* OK hi\r\n", 9), 9);
	run_until(&p, cli_has_greeting);
	uint8_t got[16];
	assert_int_equal(drain(p.cli, got, sizeof(got)), 9);
	assert_memory_equal(got, "* OK hi\r\n", 9);
	assert_int_equal(p.cli->c.error, 0);
	pair_close(&p);

	/* Nothing listens there now: refused. */
	pair_alloc(&p);
	assert_int_equal(ig_conn_init(&p.cli->c, &owner_ops, p.cli, &p.loop, "backend",
	    p.cli->rbuf, BUF, p.cli->wbuf, BUF), 0);
	int rc = ig_conn_connect_greeted(&p.cli->c, (struct sockaddr *)&sa);
	if (rc == 0) {
		ig_conn_update_read(&p.cli->c);
		run_until(&p, cli_failed);
		assert_int_equal(p.cli->c.error, IG_EIO);
		assert_int_equal(p.cli->c.sys_error, UV_ECONNREFUSED);
		assert_int_equal(ig_conn_read(&p.cli->c, got, sizeof(got)), IG_EIO);
	} else {
		assert_int_equal(rc, -ECONNREFUSED);
	}
	pair_close(&p);
}

/* ---- TLS ------------------------------------------------------------- */

struct tls_env {
	struct ig_certstore *store;
	struct ig_tls_server *ts;
	struct ig_tls_client *tc;
	struct ig_tls_client *tc_wrong;  /* expects another server name */
};

static int
tls_setup(void **state)
{
	struct tls_env *e = calloc(1, sizeof(*e));
	static struct ig_config cfg;   /* only the TLS settings are read */
	struct ig_backend_conf b;
	char err[512];

	assert_non_null(e);
	struct ig_cert_pair_conf pair = { fixture("dual-ecdsa.pem"), fixture("dual-ecdsa.key") };
	if (ig_certstore_load(&pair, 1, &e->store, err, sizeof(err)) != 0)
		fail_msg("certstore: %s", err);
	cfg.tls_min_version = 12;
	cfg.strict_sni = false;
	if (ig_tls_server_new(&cfg, e->store, &e->ts, err, sizeof(err)) != 0)
		fail_msg("server: %s", err);

	memset(&b, 0, sizeof(b));
	snprintf(b.host, sizeof(b.host), "dual.example.com");
	b.ca = (char *)fixture("ca.pem");
	b.tls_verify = true;
	b.tls = IG_TLS_IMPLICIT;
	if (ig_tls_client_new(&b, &e->tc, err, sizeof(err)) != 0)
		fail_msg("client: %s", err);
	snprintf(b.host, sizeof(b.host), "mail.example.org");
	if (ig_tls_client_new(&b, &e->tc_wrong, err, sizeof(err)) != 0)
		fail_msg("client: %s", err);
	*state = e;
	return 0;
}

static int
tls_teardown(void **state)
{
	struct tls_env *e = *state;
	ig_tls_client_free(e->tc_wrong);
	ig_tls_client_free(e->tc);
	ig_tls_server_free(e->ts);
	ig_certstore_free(e->store);
	free(e);
	return 0;
}

static struct {
	int cli_rc, srv_rc;    /* last ig_tls_handshake results */
	char cli_err[256], srv_err[256];
	char sni[256];
} hs;

/* Drives both handshakes, as the session and the backend code do on each
   event: advance, then flush what was produced. */
static bool
hs_over(struct pair *p)
{
	if (hs.cli_rc == 0) {
		hs.cli_rc = ig_tls_handshake(&p->cli->c, hs.cli_err, sizeof(hs.cli_err));
		assert_int_equal(ig_conn_flush(&p->cli->c), 0);
	}
	if (hs.srv_rc == 0) {
		hs.srv_rc = ig_tls_handshake(&p->srv->c, hs.srv_err, sizeof(hs.srv_err));
		assert_int_equal(ig_conn_flush(&p->srv->c), 0);
	}
	return hs.cli_rc != 0 && (hs.srv_rc != 0 || hs.cli_rc < 0);
}

static void
tls_start(struct pair *p, const struct tls_env *e, const struct ig_tls_client *tc)
{
	memset(&hs, 0, sizeof(hs));
	assert_int_equal(ig_tls_start_client(&p->cli->c, tc), 0);
	assert_int_equal(ig_tls_start_server(&p->srv->c, e->ts, hs.sni, sizeof(hs.sni)), 0);
	run_until(p, hs_over);
}

static bool
srv_got_cmd(struct pair *p)
{
	rx.len += drain(p->srv, rx.buf + rx.len, sizeof(rx.buf) - rx.len);
	return rx.len == 9;
}

static bool
cli_got_reply_tls(struct pair *p)
{
	rx.len += drain(p->cli, rx.buf + rx.len, sizeof(rx.buf) - rx.len);
	return rx.len == 7;
}

static bool
srv_close_notify(struct pair *p)
{
	uint8_t b[16];
	return ig_conn_read(&p->srv->c, b, sizeof(b)) == IG_EEOF && p->cli->c.shut_done;
}

static bool
cli_close_notify(struct pair *p)
{
	uint8_t b[16];
	return ig_conn_read(&p->cli->c, b, sizeof(b)) == IG_EEOF && p->srv->c.shut_done;
}

static void
test_tls_roundtrip_close_notify(void **state)
{
	struct tls_env *e = *state;
	struct pair p;
	pair_open(&p, BUF, BUF);
	rx.len = 0;

	tls_start(&p, e, e->tc);
	if (hs.cli_rc != 1 || hs.srv_rc != 1)
		fail_msg("handshake: client %d (%s), server %d (%s)", hs.cli_rc, hs.cli_err,
		    hs.srv_rc, hs.srv_err);
	assert_string_equal(hs.sni, "dual.example.com");
	assert_non_null(strstr(ig_tls_version(&p.cli->c), "TLS"));
	assert_string_equal(ig_tls_version(&p.cli->c), ig_tls_version(&p.srv->c));
	assert_int_equal(ig_tls_handshake(&p.cli->c, hs.cli_err, sizeof(hs.cli_err)), 1);

	/* Plaintext through TLS both ways. */
	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"a1 NOOP\r\n", 9), 9);
	run_until(&p, srv_got_cmd);
	assert_memory_equal(rx.buf, "a1 NOOP\r\n", 9);
	assert_true(p.srv->c.bytes_in > 9); /* records, not plaintext */

	/* The client ends its output: close_notify, then the TCP shutdown.
	   The server reads the end; it ends its side the same way. */
	assert_int_equal(ig_conn_shutdown(&p.cli->c), 0);
	run_until(&p, srv_close_notify);
	assert_true(p.srv->c.tls_close_notify);
	assert_int_equal(ig_conn_write(&p.srv->c, (const uint8_t *)"a1 OK\r\n", 7), 7);
	assert_int_equal(ig_conn_shutdown(&p.srv->c), 0);
	rx.len = 0;
	run_until(&p, cli_got_reply_tls);
	assert_memory_equal(rx.buf, "a1 OK\r\n", 7);
	run_until(&p, cli_close_notify);
	assert_true(p.cli->c.tls_close_notify);
	/* Every request has called back: the handles hold the only refs. */
	assert_int_equal(p.cli->refs, 1);
	assert_int_equal(p.srv->refs, 1);

	pair_close(&p);
}

static void
test_tls_identity_refused(void **state)
{
	struct tls_env *e = *state;
	struct pair p;
	pair_open(&p, BUF, BUF);

	tls_start(&p, e, e->tc_wrong);
	assert_int_equal(hs.cli_rc, IG_ECERT);
	assert_non_null(strstr(hs.cli_err, "handshake failed"));
	pair_close(&p);
}

/* ---- ownership ------------------------------------------------------- */

static void
test_owner_freed_by_last_unref(void **state)
{
	struct pair p;
	(void)state;
	pair_open(&p, BUF, BUF);
	p.cli->free_on_last = true;
	p.srv->free_on_last = true;

	/* A write in flight when the handle closes: its callback (before the
	   close callback, libuv's order) drops its ref with the owner alive
	   and says so; the close callback drops the last one, the owner is
	   gone, and nothing calls it any more (owner_io asserts it). */
	uint64_t written = 0;
	write_until_in_flight(p.cli, &written);
	assert_int_equal(p.cli->refs, 2);
	ig_conn_close(&p.cli->c);
	ig_conn_close(&p.srv->c);
	assert_false(p.cli->freed); /* never from inside ig_conn_close */
	run_until(&p, no_refs);
	assert_true(p.cli->freed);
	assert_true(p.srv->freed);
	/* One event for the client (the write's callback), none after the
	   last reference; the server's only reference was its handle. */
	assert_int_equal(p.cli->io, 1);
	assert_int_equal(p.cli->unref_calls, 2);
	assert_int_equal(p.srv->io, 0);
	assert_int_equal(p.srv->unref_calls, 1);
	pair_finish(&p);
}

/* ---- pooled buffers ---------------------------------------------------- */

static struct ig_bufpool *pool;
static unsigned held_cli, held_srv;

static size_t
pool_in_use(void)
{
	struct ig_bufpool_stats st;
	ig_bufpool_stats(pool, &st);
	return st.in_use;
}

static bool
srv_waits(struct pair *p)
{
	return p->srv->c.pool_wait.queued;
}

static bool
srv_has_7(struct pair *p)
{
	return ig_conn_pending_in(&p->srv->c) == 7 && ig_conn_drained(&p->cli->c);
}

static bool
both_eof_drained(struct pair *p)
{
	return p->srv->c.eof && ig_conn_drained(&p->cli->c);
}

/*
 * Connections over a pool hold a buffer only while bytes are in it: none
 * while idle, the write buffer until its write callback, the read buffer
 * until its bytes have been consumed. At the pool's cap a connection whose
 * owner holds nothing stops reading and waits; a buffer coming back
 * restarts it, and nothing was lost.
 */
static void
test_pooled_buffers(void **state)
{
	struct pair p;
	int a, b;
	(void)state;
	/* 64-byte buffers, a cap of one. */
	assert_int_equal(ig_bufpool_new(64, 64, 4, &pool), 0);
	held_cli = held_srv = 0;
	assert_int_equal(uv_loop_init(&p.loop), 0);
	p.cli = calloc(1, sizeof(*p.cli));
	p.srv = calloc(1, sizeof(*p.srv));
	assert_non_null(p.cli);
	assert_non_null(p.srv);
	tcp_pair(&a, &b);
	struct owner *o[2] = { p.cli, p.srv };
	unsigned *held[2] = { &held_cli, &held_srv };
	int fd[2] = { a, b };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ig_conn_init(&o[i]->c, &owner_ops, o[i], &p.loop,
		    i == 0 ? "client" : "server", NULL, 0, NULL, 0), 0);
		/* reads at most the pool's buffer (a larger rcap is cut down) */
		ig_conn_use_pool(&o[i]->c, pool, held[i], i == 0 ? 100 : 64);
		assert_int_equal(o[i]->c.rcap, 64);
		assert_int_equal(o[i]->c.wcap, 64);
		assert_int_equal(uv_tcp_open(&o[i]->c.tcp, fd[i]), 0);
		o[i]->c.connected = true;
		ig_conn_update_read(&o[i]->c);
		assert_true(o[i]->c.reading); /* idle, reading, holding nothing */
		assert_null(o[i]->c.rbuf);
		assert_null(o[i]->c.wbuf);
	}
	assert_int_equal(pool_in_use(), 0);

	/* Someone else holds the one buffer the cap allows. */
	uint8_t *other = ig_bufpool_get(pool, IG_BP_START);
	assert_non_null(other);
	/* Writing carries bytes on: a buffer even at the cap; the socket took
	   them at once, and the buffer went straight back. */
	assert_int_equal(ig_conn_write(&p.cli->c, (const uint8_t *)"hello\r\n", 7), 7);
	assert_int_equal(p.cli->c.bytes_out, 7);
	assert_null(p.cli->c.wbuf);
	assert_int_equal(held_cli, 0);
	assert_int_equal(pool_in_use(), 1);
	assert_int_equal(p.cli->refs, 1);
	/* The server's first buffer is refused: it stops reading and waits. */
	run_until(&p, srv_waits);
	assert_false(p.srv->c.reading);
	assert_null(p.srv->c.rbuf);
	assert_int_equal(held_srv, 0);
	/* The other buffer comes back: the server reads again, all of it. */
	ig_bufpool_put(pool, other, 64);
	assert_false(p.srv->c.pool_wait.queued);
	assert_true(p.srv->c.reading);
	run_until(&p, srv_has_7);
	assert_int_equal(held_srv, 1);
	uint8_t got[8];
	assert_int_equal(ig_conn_read(&p.srv->c, got, sizeof(got)), 7);
	assert_memory_equal(got, "hello\r\n", 7);
	/* Consumed: the read buffer went back. */
	assert_null(p.srv->c.rbuf);
	assert_int_equal(held_srv, 0);
	assert_int_equal(pool_in_use(), 0);

	/* The client ends its side: the server sees EOF holding nothing. */
	assert_int_equal(ig_conn_shutdown(&p.cli->c), 0);
	run_until(&p, both_eof_drained);
	assert_null(p.srv->c.rbuf);
	assert_int_equal(pool_in_use(), 0);

	/* A buffer held at close (under a write in flight) goes back in the
	   close callback. */
	uint64_t written = 0;
	write_until_in_flight(p.srv, &written);
	assert_non_null(p.srv->c.wbuf);
	assert_int_equal(held_srv, 1);
	pair_close(&p);
	assert_int_equal(held_cli, 0);
	assert_int_equal(held_srv, 0);
	assert_int_equal(pool_in_use(), 0);
	ig_bufpool_free(pool);
	pool = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_roundtrip),
		cmocka_unit_test(test_plain_backpressure),
		cmocka_unit_test(test_plain_socket_full),
		cmocka_unit_test(test_plain_half_close),
		cmocka_unit_test(test_plain_last_segment),
		cmocka_unit_test(test_connect_greeted),
		cmocka_unit_test_setup_teardown(test_tls_roundtrip_close_notify, tls_setup,
		    tls_teardown),
		cmocka_unit_test_setup_teardown(test_tls_identity_refused, tls_setup,
		    tls_teardown),
		cmocka_unit_test(test_owner_freed_by_last_unref),
		cmocka_unit_test(test_pooled_buffers),
	};
	if (ig_tls_global_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
